// Goal: the Raft codec round-trips every persisted and wire record exactly, and rejects every corrupt, truncated,
// foreign or ill-formed input with a CodecError (never another exception, never a value the core would assert on).
// Method: round trips of every PeerMessage variant and every record kind; exhaustive single-bit flips and
// truncations; wrong version and kind; seeded random garbage; hand-forged envelopes (valid checksum around
// ill-typed payloads); and a seeded fuzzer that mutates payloads, re-seals them, and checks that whatever decodes
// is well-formed enough to be encoded again.
import { Packr } from 'msgpackr';
import t from 'tap';
import {
  CodecError,
  codecHeaderBytes,
  codecVersion,
  decodeEntry,
  decodeHandshake,
  decodeHardState,
  decodeMessage,
  decodeSnapshot,
  decodeSnapshotMetadata,
  encodeEntry,
  encodeHandshake,
  encodeHardState,
  encodeMessage,
  encodeSnapshot,
  encodeSnapshotMetadata,
} from '../../../src/raft/codec.js';
import type { PeerMessage } from '../../../src/raft/messages.js';
import type { Entry, SnapshotMetadata } from '../../../src/raft/types.js';
import { crc32, crc32Portable } from '../../../src/util/crc32.js';
import { SeededPrng } from '../../../src/util/prng.js';

const bytes = (...values: number[]): Uint8Array => new Uint8Array(values);
const metadata: SnapshotMetadata = { index: 120, term: 7, conf: { voters: ['n1', 'n2', 'n3'], learners: ['n4'] } };

const entries: Entry[] = [
  { type: 'normal', term: 1, index: 1, data: new Uint8Array(0) },
  { type: 'normal', term: 2, index: 2, data: bytes(1, 2, 3, 255) },
  { type: 'conf', term: 2, index: 3, change: { type: 'init', voters: ['n1', 'n2', 'n3'] } },
  { type: 'conf', term: 3, index: 4, change: { type: 'addLearner', id: 'n4', context: bytes(9, 9) } },
  { type: 'conf', term: 3, index: 5, change: { type: 'promote', id: 'n4' } },
  { type: 'conf', term: 3, index: 6, change: { type: 'remove', id: 'n2', context: new Uint8Array(0) } },
  { type: 'normal', term: Number.MAX_SAFE_INTEGER, index: Number.MAX_SAFE_INTEGER, data: bytes(0) },
];

const base = { from: 'n1', to: 'n2', term: 7 };
const messages: PeerMessage[] = [
  { ...base, type: 'vote', lastLogIndex: 10, lastLogTerm: 6, transfer: false },
  { ...base, type: 'preVote', lastLogIndex: 0, lastLogTerm: 0, transfer: true },
  { ...base, type: 'voteResp', granted: true },
  { ...base, type: 'preVoteResp', granted: false },
  { ...base, type: 'append', prevLogIndex: 1, prevLogTerm: 1, commit: 2, entries: entries.slice(1, 6) },
  { ...base, type: 'append', prevLogIndex: 0, prevLogTerm: 0, commit: 0, entries: [] },
  { ...base, type: 'appendResp', index: 9, reject: true, rejectHint: 4, hintTerm: 3 },
  { ...base, type: 'heartbeat', commit: 5, context: '' },
  { ...base, type: 'heartbeatResp', context: 'read-17' },
  { ...base, type: 'snapshot', metadata, offset: 0, data: bytes(1, 2, 3), totalBytes: 10, done: false },
  { ...base, type: 'snapshot', metadata, offset: 7, data: bytes(4, 5, 6), totalBytes: 10, done: true },
  { ...base, type: 'snapshot', metadata, offset: 0, data: new Uint8Array(0), totalBytes: 0, done: true },
  // A chunk is a view into the snapshot's bytes: only the view's bytes are encoded.
  { ...base, type: 'snapshot', metadata, offset: 4, data: bytes(0, 1, 2, 3, 4, 5, 6, 7).subarray(4, 6), totalBytes: 8, done: false },
  { ...base, type: 'snapshotResp', snapshotIndex: 120, nextOffset: 3 },
  { ...base, type: 'timeoutNow' },
  { ...base, type: 'readIndex', context: 'ctx-ü-☃' },
  { ...base, type: 'readIndexResp', context: 'ctx', index: 0, ok: false },
  { ...base, type: 'readIndexResp', context: 'ctx', index: 44, ok: true },
];

/** Builds an envelope by hand (the format is spelled out in codec.ts), so tests can seal any payload. */
const kindTag = { entry: 1, hardState: 2, snapshotMetadata: 3, snapshot: 4, message: 5, handshake: 6 } as const;
const rawPackr = new Packr({ useRecords: false, moreTypes: false, int64AsType: 'number' });
function seal(kind: keyof typeof kindTag, payload: Uint8Array, version = codecVersion): Uint8Array {
  const out = new Uint8Array(codecHeaderBytes + payload.byteLength);
  out[0] = version;
  out[1] = kindTag[kind];
  out.set(payload, codecHeaderBytes);
  new DataView(out.buffer).setUint32(2, crc32(payload, crc32(out.subarray(0, 2))));
  return out;
}
const forge = (kind: keyof typeof kindTag, value: unknown): Uint8Array => seal(kind, rawPackr.pack(value));

/** Null when `fn` throws a CodecError; otherwise what went wrong (tests collect these and expect none). */
function problem(fn: () => unknown, what: string): string | null {
  try {
    const value = fn();
    return `${what}: decoded instead of failing: ${JSON.stringify(value)}`;
  } catch (err) {
    return err instanceof CodecError ? null : `${what}: threw ${String(err)} instead of a CodecError`;
  }
}

/** Runs labelled decode attempts; returns what went wrong (empty when each was rejected with a CodecError). */
function rejectionProblems(attempts: Iterable<[string, () => unknown]>): string[] {
  const problems: string[] = [];
  for (const [label, fn] of attempts) {
    const found = problem(fn, label);
    if (found !== null) problems.push(found);
  }
  return problems;
}

void t.test('crc32: native and portable agree with the standard check value', async (t) => {
  const check = new TextEncoder().encode('123456789');
  t.equal(crc32(check), 0xcbf43926);
  t.equal(crc32Portable(check), 0xcbf43926);
  const prng = new SeededPrng(1);
  const data = Uint8Array.from({ length: 10_000 }, () => prng.int(0, 255));
  t.equal(crc32Portable(data), crc32(data));
  t.equal(crc32(data.subarray(5000), crc32(data.subarray(0, 5000))), crc32(data), 'continuation');
});

void t.test('round trips', async (t) => {
  for (const entry of entries) t.same(decodeEntry(encodeEntry(entry)), entry, `entry ${entry.index}`);
  for (const message of messages) t.same(decodeMessage(encodeMessage(message)), message, `message ${message.type}`);
  for (const hardState of [{ term: 0, vote: null, commit: 0 }, { term: 2 ** 40, vote: 'n3', commit: 2 ** 40 - 1 }]) {
    t.same(decodeHardState(encodeHardState(hardState)), hardState, 'hard state');
  }
  t.same(decodeSnapshotMetadata(encodeSnapshotMetadata(metadata)), metadata, 'snapshot metadata');
  const snapshot = { metadata, data: Uint8Array.from({ length: 100_000 }, (_, i) => i % 251) };
  t.same(decodeSnapshot(encodeSnapshot(snapshot)), snapshot, 'snapshot');
  const handshake = { clusterName: 'prod-east', from: 'n1', to: 'n2' };
  t.same(decodeHandshake(encodeHandshake(handshake)), handshake, 'handshake');
});

void t.test('decoded values have exactly the declared shapes', async (t) => {
  const decoded = decodeEntry(encodeEntry(entries[1]!));
  t.equal(decoded.type === 'normal' && Object.getPrototypeOf(decoded.data), Uint8Array.prototype, 'plain Uint8Array');
  const conf = decodeEntry(encodeEntry(entries[2]!));
  t.notOk(conf.type === 'conf' && 'context' in conf.change, 'an absent context stays absent');
  // Decoded bytes own their memory: scribbling on the input afterwards changes nothing.
  const encoded = encodeEntry(entries[1]!);
  const copy = decodeEntry(encoded);
  encoded.fill(0);
  t.same(copy, entries[1]);
});

void t.test('encoding is deterministic', async (t) => {
  for (const message of messages) t.same(encodeMessage(message), encodeMessage(message), message.type);
});

function* bitFlips(encoded: Uint8Array, decode: (b: Uint8Array) => unknown, what: string): Generator<[string, () => unknown]> {
  for (let bit = 0; bit < encoded.byteLength * 8; bit++) {
    const flipped = encoded.slice();
    flipped[bit >> 3]! ^= 1 << (bit & 7);
    yield [`${what} bit ${bit}`, () => decode(flipped)];
  }
}

void t.test('every single-bit flip is detected', async (t) => {
  for (const message of [messages[0]!, messages[4]!, messages[9]!]) {
    t.same(rejectionProblems(bitFlips(encodeMessage(message), decodeMessage, message.type)), [], `${message.type} bit flips`);
  }
  t.same(rejectionProblems(bitFlips(encodeEntry(entries[3]!), decodeEntry, 'entry')), [], 'entry bit flips');
  t.same(rejectionProblems(bitFlips(encodeHardState({ term: 3, vote: 'n1', commit: 2 }), decodeHardState, 'hs')), [], 'hard state bit flips');
  const snapshot = encodeSnapshot({ metadata, data: bytes(1, 2, 3) });
  t.same(rejectionProblems(bitFlips(snapshot, decodeSnapshot, 'snapshot')), [], 'snapshot bit flips');
});

void t.test('every truncation and any extension is detected', async (t) => {
  for (const message of messages) {
    const encoded = encodeMessage(message);
    const attempts: [string, () => unknown][] = [];
    for (let length = 0; length < encoded.byteLength; length++) {
      attempts.push([`cut at ${length}`, () => decodeMessage(encoded.subarray(0, length))]);
    }
    const longer = new Uint8Array(encoded.byteLength + 1);
    longer.set(encoded);
    attempts.push(['a trailing byte', () => decodeMessage(longer)]);
    t.same(rejectionProblems(attempts), [], `${message.type} truncated or extended`);
  }
});

void t.test('wrong version and wrong kind', async (t) => {
  const payload = encodeMessage(messages[0]!).subarray(codecHeaderBytes);
  t.throws(() => decodeMessage(seal('message', payload, codecVersion + 1)), { name: 'CodecError', message: /version/ });
  t.throws(() => decodeMessage(seal('message', payload, 0)), { name: 'CodecError', message: /version/ });
  t.throws(() => decodeEntry(encodeHardState({ term: 1, vote: null, commit: 1 })), { name: 'CodecError', message: /kind/ });
  t.throws(() => decodeMessage(encodeHandshake({ clusterName: 'c', from: 'a', to: 'b' })), { name: 'CodecError' });
  t.throws(() => decodeSnapshot(encodeSnapshotMetadata(metadata)), { name: 'CodecError' });
});

void t.test('random garbage', async (t) => {
  const prng = new SeededPrng(42);
  const attempts: [string, () => unknown][] = [];
  for (let i = 0; i < 2000; i++) {
    const garbage = Uint8Array.from({ length: prng.int(0, 64) }, () => prng.int(0, 255));
    attempts.push([`message ${i}`, () => decodeMessage(garbage)], [`entry ${i}`, () => decodeEntry(garbage)]);
  }
  t.same(rejectionProblems(attempts), [], 'random garbage');
});

void t.test('well-sealed but ill-formed payloads are rejected field by field', async (t) => {
  const head = [1, 'n1', 'n2', 7]; // vote from n1 to n2 in term 7
  const bad: [string, unknown][] = [
    ['not a tuple', { type: 'vote' }],
    ['unknown message type', [99, 'n1', 'n2', 7]],
    ['missing fields', [...head, 10, 6]],
    ['extra fields', [...head, 10, 6, false, 1]],
    ['term as string', [1, 'n1', 'n2', '7', 10, 6, false]],
    ['negative term', [1, 'n1', 'n2', -1, 10, 6, false]],
    ['fractional index', [...head, 10.5, 6, false]],
    ['unsafe integer', [...head, 2 ** 53, 6, false]],
    ['uint64 above 2^53', [...head, 2n ** 60n, 6, false]],
    ['empty sender', [1, '', 'n2', 7, 10, 6, false]],
    ['numeric sender', [1, 5, 'n2', 7, 10, 6, false]],
    ['transfer not boolean', [...head, 10, 6, 0]],
    ['lastLogTerm above term', [...head, 10, 8, false]],
    ['null context', [8, 'n1', 'n2', 7, null]],
    ['entries not contiguous', [5, 'n1', 'n2', 7, 4, 7, [[0, 7, 5, bytes()], [0, 7, 7, bytes()]], 0]],
    ['entry before prevLogIndex', [5, 'n1', 'n2', 7, 4, 7, [[0, 7, 4, bytes()]], 0]],
    ['entry term above message term', [5, 'n1', 'n2', 7, 4, 7, [[0, 8, 5, bytes()]], 0]],
    ['entry terms decreasing', [5, 'n1', 'n2', 7, 4, 3, [[0, 5, 5, bytes()], [0, 4, 6, bytes()]], 0]],
    ['entry data as string', [5, 'n1', 'n2', 7, 4, 7, [[0, 7, 5, 'abc']], 0]],
    ['unknown entry type', [5, 'n1', 'n2', 7, 4, 7, [[2, 7, 5, bytes()]], 0]],
    ['unknown conf change', [5, 'n1', 'n2', 7, 4, 7, [[1, 7, 5, [9, 'n3', null]]], 0]],
    ['init without voters', [5, 'n1', 'n2', 7, 4, 7, [[1, 7, 5, [0, [], null]]], 0]],
    ['duplicate voters', [5, 'n1', 'n2', 7, 4, 7, [[1, 7, 5, [0, ['a', 'a'], null]]], 0]],
    ['context not bytes', [5, 'n1', 'n2', 7, 4, 7, [[1, 7, 5, [1, 'n3', 'ctx']]], 0]],
    ['chunk beyond totalBytes', [9, 'n1', 'n2', 7, [120, 7, [['n1'], []]], 8, bytes(1, 2, 3), 10, true]],
    ['done too early', [9, 'n1', 'n2', 7, [120, 7, [['n1'], []]], 0, bytes(1, 2, 3), 10, true]],
    ['last chunk not done', [9, 'n1', 'n2', 7, [120, 7, [['n1'], []]], 7, bytes(1, 2, 3), 10, false]],
    ['learner also voter', [9, 'n1', 'n2', 7, [120, 7, [['n1'], ['n1']]], 0, bytes(), 0, true]],
    ['snapshot term above term', [9, 'n1', 'n2', 7, [120, 8, [['n1'], []]], 0, bytes(), 0, true]],
  ];
  t.same(rejectionProblems(bad.map(([what, value]) => [what, () => decodeMessage(forge('message', value))])), [], 'ill-formed messages');
  const others: [string, () => unknown][] = [
    ['hard state with an empty vote', () => decodeHardState(forge('hardState', [1, '', 1]))],
    ['hard state tuple too short', () => decodeHardState(forge('hardState', [1, null]))],
    ['entry with null data', () => decodeEntry(forge('entry', [0, 1, 1, null]))],
    ['handshake without a receiver', () => decodeHandshake(forge('handshake', ['c', 'a']))],
  ];
  // Two msgpack values in one payload: the checksum is right but the record does not end where the data does.
  const two = new Uint8Array([...rawPackr.pack([1, null, 1]), ...rawPackr.pack(1)]);
  others.push(['trailing value in the payload', () => decodeHardState(seal('hardState', two))]);
  // msgpackr extensions (a timestamp, a record definition) never pass for our tuples.
  others.push(['timestamp extension', () => decodeMessage(seal('message', bytes(0xd6, 0xff, 0, 0, 0, 1)))]);
  others.push(['record extension', () => decodeMessage(seal('message', bytes(0xd4, 0x72, 0x40)))]);
  // Nesting deep enough to overflow the decoder's stack: the RangeError is contained too.
  const deep = new Uint8Array(200_000).fill(0x91);
  deep[deep.length - 1] = 0xc0;
  others.push(['deeply nested arrays', () => decodeMessage(seal('message', deep))]);
  // A bin header announcing more bytes than there are.
  others.push(['bin longer than the payload', () => decodeEntry(seal('entry', bytes(0x94, 0, 1, 1, 0xc6, 0x7f, 0xff, 0xff, 0xff, 1)))]);
  others.push(['array longer than the payload', () => decodeMessage(seal('message', bytes(0xdd, 0x7f, 0xff, 0xff, 0xff, 1)))]);
  t.same(rejectionProblems(others), [], 'ill-formed records');
});

void t.test('fuzz: re-sealed mutations decode to well-formed values or fail with CodecError', async (t) => {
  const prng = new SeededPrng(7);
  const problems: string[] = [];
  let decoded = 0;
  for (let i = 0; i < 20_000; i++) {
    const source = encodeMessage(messages[prng.int(0, messages.length - 1)]!);
    const payload = source.slice(codecHeaderBytes);
    for (let k = prng.int(1, 3); k > 0; k--) payload[prng.int(0, payload.length - 1)] = prng.int(0, 255);
    let message: PeerMessage;
    try {
      message = decodeMessage(seal('message', payload));
    } catch (err) {
      if (!(err instanceof CodecError)) problems.push(`iteration ${i}: ${String(err)}`);
      continue;
    }
    decoded++;
    // Whatever got through must satisfy the encoder's assertions and survive a second round trip unchanged.
    try {
      const again = decodeMessage(encodeMessage(message));
      if (JSON.stringify(again) !== JSON.stringify(message)) problems.push(`iteration ${i}: second round trip differs`);
    } catch (err) {
      problems.push(`iteration ${i}: re-encoding failed: ${String(err)}`);
    }
  }
  t.same(problems, [], 'no mutation escaped as anything but a CodecError or a well-formed message');
  t.ok(decoded > 100, `some mutations still decode (${decoded}), so the fuzzer reaches the field checks`);
});

void t.test('a snapshot record is the msgpack of [metadata, data], written without packing the data', async (t) => {
  const tuple = [metadata.index, metadata.term, [metadata.conf.voters, metadata.conf.learners]];
  for (const size of [0, 1, 255, 256, 65_535, 65_536, 300_000]) {
    const data = new Uint8Array(size).map((_, i) => (i * 31) & 0xff);
    const encoded = encodeSnapshot({ metadata, data });
    t.same(Buffer.from(encoded).equals(forge('snapshot', [tuple, data])), true, `${size} bytes: same bytes as msgpackr`);
    t.same(decodeSnapshot(encoded), { metadata, data }, `${size} bytes: decodes back`);
  }
});
