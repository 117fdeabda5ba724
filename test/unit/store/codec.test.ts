// Goal: the command codec round-trips every command kind exactly, carries its version tag, validates before
// encoding (bad input never reaches the log) and after decoding (every malformed, foreign or damaged input is a
// KeelError, never another exception); the keyspace helpers keep byte order, including across NUL bytes.
// Method: round trips of each kind; a table of invalid commands; seeded random garbage and byte flips of valid
// encodings; and property checks of the history-key escaping against plain byte comparison.
import { Packr } from 'msgpackr';
import t from 'tap';
import type { Command } from '../../../src/store/index.js';
import { commandVersion, decodeCommand, encodeCommand, isApplyFailure } from '../../../src/store/index.js';
import { compareBytes, historyKey, historyRange, prefixEnd } from '../../../src/store/keys.js';
import { isKeelError } from '../../../src/util/errors.js';
import { SeededPrng } from '../../../src/util/prng.js';

const commands: Command[] = [
  { kind: 'put', key: 'k', value: 'v', lease: 0, prevKv: false },
  {
    kind: 'put',
    key: 'ключ/\u0000',
    value: '\u{1F600}'.repeat(3),
    lease: 2 ** 40,
    prevKv: true,
    ifModRevision: 0,
    ifVersion: 3,
    fence: { lock: 'job', token: 2 ** 33 },
  },
  { kind: 'deleteRange', key: '', prefix: true, prevKv: true },
  { kind: 'deleteRange', key: 'a', prefix: false, prevKv: false, ifModRevision: 9 },
  {
    kind: 'txn',
    compare: [
      { key: 'a', target: 'value', op: '==', value: 'x' },
      { key: 'b', target: 'modRevision', op: '<', value: 4 },
    ],
    success: [{ put: { key: 'a', value: 'y', lease: 1 } }, { delete: { key: 'p/', prefix: true } }],
    failure: [{ get: { key: 'a', prefix: false, limit: 3 } }],
  },
  { kind: 'compact', revision: 17 },
  { kind: 'ext', name: 'leaseGrant', body: { id: 5, ttl: 10, nested: [1, 'two'] } },
];

void t.test('every command kind round-trips exactly', async (t) => {
  for (const cmd of commands) {
    const bytes = encodeCommand({ requestId: 'req-1', cmd });
    t.same(decodeCommand(bytes), { requestId: 'req-1', cmd }, cmd.kind);
  }
});

void t.test('optional fields given as undefined are the same as absent', async (t) => {
  const cmd = { kind: 'put', key: 'k', value: 'v', lease: 0, prevKv: false, ifModRevision: undefined, fence: undefined } as const;
  const bytes = encodeCommand({ requestId: '', cmd });
  t.same(bytes, encodeCommand({ requestId: '', cmd: { kind: 'put', key: 'k', value: 'v', lease: 0, prevKv: false } }));
  t.notOk('ifModRevision' in decodeCommand(bytes).cmd);
});

void t.test('the envelope carries the version tag; other versions are refused', async (t) => {
  const packr = new Packr({ useRecords: false });
  const raw = packr.unpack(encodeCommand({ requestId: '', cmd: commands[0]! }));
  t.equal(raw.v, commandVersion);
  t.throws(() => decodeCommand(packr.pack({ ...raw, v: commandVersion + 1 })), { code: 'INVALID_ARGUMENT' });
  t.throws(() => decodeCommand(packr.pack({ requestId: '', cmd: commands[0] })), { code: 'INVALID_ARGUMENT' });
});

void t.test('a guard round-trips; a command without one encodes as before; a bad guard is refused', async (t) => {
  const packr = new Packr({ useRecords: false });
  const cmd = commands[0]!;
  const guard = { key: '_keel/auth/changed', revision: 42 };
  t.same(decodeCommand(encodeCommand({ requestId: 'r', cmd, guard })), { requestId: 'r', cmd, guard });
  t.same(packr.unpack(encodeCommand({ requestId: 'r', cmd })), { v: commandVersion, requestId: 'r', cmd }, 'no guard field when there is none');
  const bad: unknown[] = [null, 'x', { key: 'k' }, { key: 'k', revision: -1 }, { key: '', revision: 1 }, { key: 'k', revision: 1.5 }, { key: 'k', revision: 1, extra: 1 }];
  bad.forEach((g, i) => t.throws(() => encodeCommand({ requestId: '', cmd, guard: g as { key: string; revision: number } }), { code: 'INVALID_ARGUMENT' }, `bad guard[${i}]`));
  t.throws(() => decodeCommand(packr.pack({ v: commandVersion, requestId: '', cmd, guard: { key: 'k' } })), { code: 'INVALID_ARGUMENT' });
});

void t.test('invalid commands are refused before they are encoded', async (t) => {
  const bad: unknown[] = [
    { kind: 'put', key: '', value: 'v', lease: 0, prevKv: false },
    { kind: 'put', key: 'k', value: 1, lease: 0, prevKv: false },
    { kind: 'put', key: 'k', value: 'v', lease: -1, prevKv: false },
    { kind: 'put', key: 'k', value: 'v', lease: 1.5, prevKv: false },
    { kind: 'put', key: 'k', value: 'v', lease: 0 },
    { kind: 'put', key: 'k', value: 'v', lease: 0, prevKv: false, extra: 1 },
    { kind: 'put', key: '\uD800', value: 'v', lease: 0, prevKv: false },
    { kind: 'deleteRange', key: 'k', prefix: true, prevKv: false, ifModRevision: 1 },
    { kind: 'txn', compare: [{ key: 'k', target: 'value', op: '==', value: 1 }], success: [], failure: [] },
    { kind: 'txn', compare: [{ key: 'k', target: 'version', op: '<=', value: 1 }], success: [], failure: [] },
    { kind: 'txn', compare: [], success: [{ put: { key: 'k', value: 'v' }, get: { key: 'k' } }], failure: [] },
    { kind: 'txn', compare: [], success: Array.from({ length: 129 }, () => ({ get: { key: 'k' } })), failure: [] },
    { kind: 'compact' },
    { kind: 'ext', name: '', body: null },
    { kind: 'nope' },
    null,
  ];
  for (const [i, cmd] of bad.entries()) {
    t.throws(() => encodeCommand({ requestId: '', cmd: cmd as Command }), { code: 'INVALID_ARGUMENT' }, `bad[${i}]`);
  }
  t.throws(() => encodeCommand({ requestId: '', cmd: { kind: 'put', key: 'k'.repeat(4097), value: '', lease: 0, prevKv: false } }), {
    code: 'TOO_LARGE',
  });
  t.throws(() => encodeCommand({ requestId: 'r'.repeat(300), cmd: commands[0]! }), { code: 'INVALID_ARGUMENT' });
});

void t.test('garbage and damaged encodings decode to a KeelError or a valid command, nothing else', async (t) => {
  const prng = new SeededPrng(11);
  const valid = commands.map((cmd) => encodeCommand({ requestId: 'r', cmd }));
  let refused = 0;
  for (let i = 0; i < 3000; i++) {
    let bytes: Uint8Array;
    if (i % 2 === 0) {
      bytes = Uint8Array.from({ length: prng.int(0, 40) }, () => prng.int(0, 255));
    } else {
      bytes = Uint8Array.from(valid[prng.int(0, valid.length - 1)]!);
      bytes[prng.int(0, bytes.length - 1)] = prng.int(0, 255);
      if (prng.next() < 0.3) bytes = bytes.subarray(0, prng.int(0, bytes.length));
    }
    try {
      const decoded = decodeCommand(bytes);
      // Whatever decodes is well-formed enough to be encoded again.
      encodeCommand(decoded);
    } catch (err) {
      if (!isKeelError(err, 'INVALID_ARGUMENT') && !isKeelError(err, 'TOO_LARGE')) {
        t.fail(`input ${Buffer.from(bytes).toString('hex')} threw ${String(err)}`);
        return;
      }
      refused += 1;
    }
  }
  t.ok(refused > 1500, `${refused} of 3000 refused`);
  t.notOk(isApplyFailure({ revision: 1 }));
});

void t.test('history keys keep user-key byte order, NUL bytes included', async (t) => {
  const prng = new SeededPrng(3);
  const alphabet = [0x00, 0x01, 0x61, 0xfe, 0xff];
  const randomKey = (): Uint8Array => Uint8Array.from({ length: prng.int(0, 4) }, () => alphabet[prng.int(0, 4)]!);
  for (let i = 0; i < 2000; i++) {
    const [a, b] = [randomKey(), randomKey()];
    const [ra, rb] = [prng.int(0, 3), prng.int(0, 3)];
    const order = Math.sign(compareBytes(a, b));
    const encoded = Math.sign(compareBytes(historyKey(a, ra, 0), historyKey(b, rb, 0)));
    if (order !== 0 && order !== encoded) {
      t.fail(`order of ${Buffer.from(a).toString('hex')} and ${Buffer.from(b).toString('hex')} not kept`);
      return;
    }
    // Range bounds: b is in [a, prefixEnd(a)) as a user key iff its history keys are in the LevelDB range.
    const end = prefixEnd(a);
    const inUserRange = compareBytes(b, a) >= 0 && (end === null || compareBytes(b, end) < 0);
    const bounds = historyRange(a, end);
    const key = historyKey(b, rb, 0);
    const inDbRange = compareBytes(key, bounds.gte) >= 0 && compareBytes(key, bounds.lt) < 0;
    if (inUserRange !== inDbRange) {
      t.fail(`range check differs for ${Buffer.from(b).toString('hex')} in prefix ${Buffer.from(a).toString('hex')}`);
      return;
    }
  }
  t.pass('2000 random pairs keep order and range membership');
});
