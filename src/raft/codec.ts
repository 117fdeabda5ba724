// The one codec for every persisted and wire format of the Raft layer: log entries, hard state, snapshots and
// their metadata, peer messages and the transport's handshake.
//
// Every record is an envelope:
//
//   byte 0      format version (codecVersion)
//   byte 1      record kind (entry, hardState, ...): a record of one kind never decodes as another
//   bytes 2..5  CRC-32, big-endian, over bytes 0..1 and the payload: a bit flip anywhere is caught
//   bytes 6..   msgpack payload: a positional tuple whose layout is declared below, next to its encoder
//
// Tuples instead of maps or msgpackr records: the layout is written down in this file (it IS the declared record
// structure), keys are not repeated on the wire, and the decoder has no shared structure table that input could
// alter. Changing a layout means bumping codecVersion and keeping a decoder for the old one.
//
// Decoding trusts nothing: peer frames come from the network and disk bytes may rot. Every field is checked
// (type, safe non-negative integer, non-empty node id, byte arrays, discriminants, and the few cross-field rules an
// honest sender always obeys) and any mismatch throws CodecError, so the core, which asserts and would stop the
// node, only ever sees well-formed values. Encoding checks numbers with assertions: a bad value there is our bug.
import { Packr, Unpackr, type Options } from 'msgpackr';
import { assertIndex, unreachable } from '../util/assert.js';
import { crc32 } from '../util/crc32.js';
import { dropGrownPackBuffer } from '../util/msgpack-buffer.js';
import type { PeerMessage, PeerMessageType } from './messages.js';
import type { ConfChange, ConfState, Entry, HardState, NodeId, Snapshot, SnapshotMetadata } from './types.js';

/** A record that cannot be decoded: corrupt, truncated, from another format version, or not well-formed. */
export class CodecError extends Error {
  override readonly name = 'CodecError';
}

export const codecVersion = 1;
/** Version, kind and checksum in front of every payload. */
export const codecHeaderBytes = 6;

/** The first frame on a peer connection: who is talking, to whom, in which cluster. */
export interface Handshake {
  readonly clusterName: string;
  readonly from: NodeId;
  readonly to: NodeId;
}

const kindTags = { entry: 1, hardState: 2, snapshotMetadata: 3, snapshot: 4, message: 5, handshake: 6 } as const;
type RecordKind = keyof typeof kindTags;

// Every msgpackr option is set here, never left to a default. Callbacks (getStructures, saveStructures,
// shouldShareStructure, writeFunction, onInvalidDate) are absent on purpose: there is no shared structure store,
// and no function or date is ever encoded. msgpackr mutates the options object, so each instance gets its own.
function strictOptions(): Options & { trusted: boolean; freezeData: boolean } {
  return {
    useRecords: false, // our tuples are the records; no msgpackr record extension is written
    structures: [], // no shared structures...
    maxSharedStructures: 0, // ...and none may be added
    maxOwnStructures: 0,
    trusted: false, // record definitions inside input are forgotten after each decode
    sequential: false,
    mapsAsObjects: true,
    variableMapSize: false,
    coercibleKeyAsNumber: false,
    allowArraysInMapKeys: false,
    mapAsEmptyObject: false,
    setAsEmptyObject: false,
    moreTypes: false,
    structuredClone: false,
    useToJSON: false,
    bundleStrings: false,
    copyBuffers: true, // decoded byte fields own their memory instead of pinning a whole receive buffer
    freezeData: false,
    useFloat32: 0, // FLOAT32_OPTIONS.NEVER: every number we write is an integer anyway
    useTimestamp32: false,
    int64AsType: 'number', // a uint64 above 2^53 decodes inexactly and then fails the safe-integer check
    largeBigIntToFloat: false,
    largeBigIntToString: false,
    useBigIntExtension: false,
    encodeUndefinedAsNil: false,
    maxIncompleteBufferSize: 0, // streams only; we always decode whole, length-delimited buffers
  };
}

// Separate instances, so decoding hostile input can never disturb the encoder's state.
const packr = new Packr(strictOptions());
const unpackr = new Unpackr(strictOptions());

// ---- envelope ------------------------------------------------------------------------------------------------

function seal(kind: RecordKind, tuple: unknown[]): Uint8Array {
  const payload = packr.pack(tuple);
  const out = new Uint8Array(codecHeaderBytes + payload.byteLength);
  out.set(payload, codecHeaderBytes);
  dropGrownPackBuffer(packr, payload);
  return sealed(kind, out);
}

/** Fills in the header of `out`, whose payload (from codecHeaderBytes on) is already written. */
function sealed(kind: RecordKind, out: Uint8Array): Uint8Array {
  out[0] = codecVersion;
  out[1] = kindTags[kind];
  const checksum = crc32(out.subarray(codecHeaderBytes), crc32(out.subarray(0, 2)));
  new DataView(out.buffer, out.byteOffset, out.byteLength).setUint32(2, checksum);
  return out;
}

/** msgpack bin header for `length` bytes, the smallest form, as msgpackr writes it. */
function binHeader(length: number): Uint8Array {
  if (length < 0x100) return Uint8Array.of(0xc4, length);
  if (length < 0x10000) return Uint8Array.of(0xc5, length >>> 8, length & 0xff);
  return Uint8Array.of(0xc6, length >>> 24, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff);
}

function unseal(kind: RecordKind, bytes: Uint8Array): unknown {
  if (!(bytes instanceof Uint8Array)) throw new CodecError(`${kind}: expected bytes`);
  if (bytes.byteLength <= codecHeaderBytes) {
    throw new CodecError(`${kind}: truncated record (${bytes.byteLength} bytes)`);
  }
  if (bytes[0] !== codecVersion) {
    throw new CodecError(`${kind}: unsupported format version ${bytes[0]} (this build reads ${codecVersion})`);
  }
  if (bytes[1] !== kindTags[kind]) throw new CodecError(`${kind}: record kind ${bytes[1]} is not ${kindTags[kind]}`);
  const payload = bytes.subarray(codecHeaderBytes);
  const stored = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(2);
  const actual = crc32(payload, crc32(bytes.subarray(0, 2)));
  if (stored !== actual) throw new CodecError(`${kind}: checksum mismatch (corrupt or truncated record)`);
  try {
    return unpackr.unpack(payload);
  } catch (err) {
    throw new CodecError(`${kind}: malformed payload`, { cause: err });
  }
}

// ---- field readers: each returns a well-typed value or throws CodecError naming the field --------------------

function tupleOf(value: unknown, what: string, length: number): readonly unknown[] {
  if (!Array.isArray(value) || value.length !== length) {
    throw new CodecError(`${what}: expected a tuple of ${length}, got ${describe(value)}`);
  }
  return value;
}

function arrayOf(value: unknown, what: string): readonly unknown[] {
  if (!Array.isArray(value)) throw new CodecError(`${what}: expected an array, got ${describe(value)}`);
  return value;
}

function readIndex(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new CodecError(`${what}: expected a non-negative safe integer, got ${describe(value)}`);
  }
  return value;
}

function readString(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new CodecError(`${what}: expected a string, got ${describe(value)}`);
  return value;
}

function readNodeId(value: unknown, what: string): NodeId {
  const id = readString(value, what);
  if (id.length === 0) throw new CodecError(`${what}: empty node id`);
  return id;
}

function readNodeIds(value: unknown, what: string): NodeId[] {
  const ids = arrayOf(value, what).map((id, i) => readNodeId(id, `${what}[${i}]`));
  if (new Set(ids).size !== ids.length) throw new CodecError(`${what}: duplicate node id`);
  return ids;
}

function readBool(value: unknown, what: string): boolean {
  if (typeof value !== 'boolean') throw new CodecError(`${what}: expected a boolean, got ${describe(value)}`);
  return value;
}

function readBytes(value: unknown, what: string): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new CodecError(`${what}: expected bytes, got ${describe(value)}`);
  // A plain Uint8Array view (msgpackr hands out Buffers): callers get exactly the declared type.
  return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (value instanceof Uint8Array) return `${value.byteLength} bytes`;
  if (typeof value === 'number') return `number ${value}`;
  return typeof value;
}

/** Asserts (encode side: our own values) and passes the number through. */
function index(value: number, what: string): number {
  assertIndex(value, what);
  return value;
}

// ---- entries and conf changes --------------------------------------------------------------------------------
// Entry:      [0 normal, term, index, data] | [1 conf, term, index, ConfChange]
// ConfChange: [0 init, voters[], context|null] | [1 addLearner | 2 promote | 3 remove, id, context|null]

const confChangeTags = { init: 0, addLearner: 1, promote: 2, remove: 3 } as const;

function confChangeTuple(change: ConfChange): unknown[] {
  const context = change.context ?? null;
  if (change.type === 'init') return [confChangeTags.init, [...change.voters], context];
  return [confChangeTags[change.type], change.id, context];
}

function readConfChange(value: unknown, what: string): ConfChange {
  const [tag, target, rawContext] = tupleOf(value, what, 3);
  const context = rawContext === null ? undefined : readBytes(rawContext, `${what}.context`);
  const withContext = <T extends object>(change: T): T & { context?: Uint8Array } =>
    context === undefined ? change : { ...change, context };
  switch (tag) {
    case confChangeTags.init: {
      const voters = readNodeIds(target, `${what}.voters`);
      if (voters.length === 0) throw new CodecError(`${what}: init without voters`);
      return withContext({ type: 'init' as const, voters });
    }
    case confChangeTags.addLearner:
      return withContext({ type: 'addLearner' as const, id: readNodeId(target, `${what}.id`) });
    case confChangeTags.promote:
      return withContext({ type: 'promote' as const, id: readNodeId(target, `${what}.id`) });
    case confChangeTags.remove:
      return withContext({ type: 'remove' as const, id: readNodeId(target, `${what}.id`) });
    default:
      throw new CodecError(`${what}: unknown conf change type ${describe(tag)}`);
  }
}

function entryTuple(entry: Entry): unknown[] {
  const term = index(entry.term, 'entry term');
  const at = index(entry.index, 'entry index');
  switch (entry.type) {
    case 'normal':
      return [0, term, at, entry.data];
    case 'conf':
      return [1, term, at, confChangeTuple(entry.change)];
    default:
      return unreachable(entry, 'entry type');
  }
}

function readEntry(value: unknown, what: string): Entry {
  const [tag, rawTerm, rawIndex, body] = tupleOf(value, what, 4);
  const term = readIndex(rawTerm, `${what}.term`);
  const at = readIndex(rawIndex, `${what}.index`);
  if (tag === 0) return { type: 'normal', term, index: at, data: readBytes(body, `${what}.data`) };
  if (tag === 1) return { type: 'conf', term, index: at, change: readConfChange(body, `${what}.change`) };
  throw new CodecError(`${what}: unknown entry type ${describe(tag)}`);
}

export function encodeEntry(entry: Entry): Uint8Array {
  return seal('entry', entryTuple(entry));
}

export function decodeEntry(bytes: Uint8Array): Entry {
  return readEntry(unseal('entry', bytes), 'entry');
}

// ---- hard state, membership, snapshots -----------------------------------------------------------------------
// HardState: [term, vote|null, commit]    ConfState: [voters[], learners[]]
// SnapshotMetadata: [index, term, ConfState]    Snapshot: [SnapshotMetadata, data]

export function encodeHardState(hardState: HardState): Uint8Array {
  return seal('hardState', [index(hardState.term, 'term'), hardState.vote, index(hardState.commit, 'commit')]);
}

export function decodeHardState(bytes: Uint8Array): HardState {
  const [term, vote, commit] = tupleOf(unseal('hardState', bytes), 'hardState', 3);
  return {
    term: readIndex(term, 'hardState.term'),
    vote: vote === null ? null : readNodeId(vote, 'hardState.vote'),
    commit: readIndex(commit, 'hardState.commit'),
  };
}

function metadataTuple(metadata: SnapshotMetadata): unknown[] {
  const { conf } = metadata;
  return [index(metadata.index, 'snapshot index'), index(metadata.term, 'snapshot term'), [[...conf.voters], [...conf.learners]]];
}

function readConfState(value: unknown, what: string): ConfState {
  const [voters, learners] = tupleOf(value, what, 2);
  const conf = { voters: readNodeIds(voters, `${what}.voters`), learners: readNodeIds(learners, `${what}.learners`) };
  if (conf.learners.some((id) => conf.voters.includes(id))) throw new CodecError(`${what}: a learner is also a voter`);
  return conf;
}

function readMetadata(value: unknown, what: string): SnapshotMetadata {
  const [at, term, conf] = tupleOf(value, what, 3);
  return {
    index: readIndex(at, `${what}.index`),
    term: readIndex(term, `${what}.term`),
    conf: readConfState(conf, `${what}.conf`),
  };
}

export function encodeSnapshotMetadata(metadata: SnapshotMetadata): Uint8Array {
  return seal('snapshotMetadata', metadataTuple(metadata));
}

export function decodeSnapshotMetadata(bytes: Uint8Array): SnapshotMetadata {
  return readMetadata(unseal('snapshotMetadata', bytes), 'snapshotMetadata');
}

/**
 * The bytes `seal('snapshot', [metadata, data])` would produce, written by hand: the data is the whole store
 * (tens of MB), and packing it through msgpackr grew the shared pack buffer to 2-4x its size and copied it twice,
 * a transient of several times the snapshot on every snapshot taken. Here it is copied once, into the record.
 */
export function encodeSnapshot(snapshot: Snapshot): Uint8Array {
  const meta = packr.pack(metadataTuple(snapshot.metadata));
  const { data } = snapshot;
  const header = binHeader(data.byteLength);
  const out = new Uint8Array(codecHeaderBytes + 1 + meta.byteLength + header.byteLength + data.byteLength);
  let at = codecHeaderBytes;
  out[at++] = 0x92; // fixarray of 2
  out.set(meta, at);
  at += meta.byteLength;
  out.set(header, at);
  out.set(data, at + header.byteLength);
  return sealed('snapshot', out);
}

export function decodeSnapshot(bytes: Uint8Array): Snapshot {
  const [metadata, data] = tupleOf(unseal('snapshot', bytes), 'snapshot', 2);
  return { metadata: readMetadata(metadata, 'snapshot.metadata'), data: readBytes(data, 'snapshot.data') };
}

// ---- handshake: [clusterName, from, to] ----------------------------------------------------------------------

export function encodeHandshake(handshake: Handshake): Uint8Array {
  return seal('handshake', [handshake.clusterName, handshake.from, handshake.to]);
}

export function decodeHandshake(bytes: Uint8Array): Handshake {
  const [clusterName, from, to] = tupleOf(unseal('handshake', bytes), 'handshake', 3);
  return {
    clusterName: readString(clusterName, 'handshake.clusterName'),
    from: readNodeId(from, 'handshake.from'),
    to: readNodeId(to, 'handshake.to'),
  };
}

// ---- peer messages -------------------------------------------------------------------------------------------
// Every message is [typeTag, from, to, term, ...the fields of its type, in the order written in messageTuple].

const messageTags: Readonly<Record<PeerMessageType, number>> = {
  vote: 1, preVote: 2, voteResp: 3, preVoteResp: 4, append: 5, appendResp: 6, heartbeat: 7,
  heartbeatResp: 8, snapshot: 9, snapshotResp: 10, timeoutNow: 11, readIndex: 12, readIndexResp: 13,
};
const messageTypes = new Map<number, PeerMessageType>(
  Object.entries(messageTags).map(([type, tag]) => [tag, type as PeerMessageType]),
);

/** The fields after [tag, from, to, term] for each message type. */
function messageFields(m: PeerMessage): unknown[] {
  switch (m.type) {
    case 'vote':
    case 'preVote':
      return [index(m.lastLogIndex, 'lastLogIndex'), index(m.lastLogTerm, 'lastLogTerm'), m.transfer];
    case 'voteResp':
    case 'preVoteResp':
      return [m.granted];
    case 'append':
      return [index(m.prevLogIndex, 'prevLogIndex'), index(m.prevLogTerm, 'prevLogTerm'), m.entries.map(entryTuple), index(m.commit, 'commit')];
    case 'appendResp':
      return [index(m.index, 'index'), m.reject, index(m.rejectHint, 'rejectHint'), index(m.hintTerm, 'hintTerm')];
    case 'heartbeat':
      return [index(m.commit, 'commit'), m.context];
    case 'heartbeatResp':
    case 'readIndex':
      return [m.context];
    case 'snapshot':
      return [metadataTuple(m.metadata), index(m.offset, 'offset'), m.data, index(m.totalBytes, 'totalBytes'), m.done];
    case 'snapshotResp':
      return [index(m.snapshotIndex, 'snapshotIndex'), index(m.nextOffset, 'nextOffset')];
    case 'timeoutNow':
      return [];
    case 'readIndexResp':
      return [m.context, index(m.index, 'index'), m.ok];
    default:
      return unreachable(m, 'message type');
  }
}

export function encodeMessage(message: PeerMessage): Uint8Array {
  const head = [messageTags[message.type], message.from, message.to, index(message.term, 'message term')];
  return seal('message', [...head, ...messageFields(message)]);
}

export function decodeMessage(bytes: Uint8Array): PeerMessage {
  const value = unseal('message', bytes);
  const fields = arrayOf(value, 'message');
  const type = messageTypes.get(fields[0] as number);
  if (type === undefined) throw new CodecError(`message: unknown type ${describe(fields[0])}`);
  const what = `message(${type})`;
  const arity = messageArity[type];
  if (fields.length !== 4 + arity) throw new CodecError(`${what}: expected ${4 + arity} fields, got ${fields.length}`);
  const base = {
    from: readNodeId(fields[1], `${what}.from`),
    to: readNodeId(fields[2], `${what}.to`),
    term: readIndex(fields[3], `${what}.term`),
  };
  return readMessageBody(type, base, fields.slice(4), what);
}

const messageArity: Readonly<Record<PeerMessageType, number>> = {
  vote: 3, preVote: 3, voteResp: 1, preVoteResp: 1, append: 4, appendResp: 4, heartbeat: 2,
  heartbeatResp: 1, snapshot: 5, snapshotResp: 2, timeoutNow: 0, readIndex: 1, readIndexResp: 3,
};

type MessageBase = Pick<PeerMessage, 'from' | 'to' | 'term'>;

function readMessageBody(type: PeerMessageType, base: MessageBase, f: readonly unknown[], what: string): PeerMessage {
  const field = (i: number, name: string): [unknown, string] => [f[i], `${what}.${name}`];
  switch (type) {
    case 'vote':
    case 'preVote': {
      const lastLogTerm = readIndex(...field(1, 'lastLogTerm'));
      // A candidate's last entry can never be from a later term than the one it campaigns in.
      if (lastLogTerm > base.term) throw new CodecError(`${what}: lastLogTerm ${lastLogTerm} above term ${base.term}`);
      return {
        ...base, type, lastLogIndex: readIndex(...field(0, 'lastLogIndex')), lastLogTerm,
        transfer: readBool(...field(2, 'transfer')),
      };
    }
    case 'voteResp':
    case 'preVoteResp':
      return { ...base, type, granted: readBool(...field(0, 'granted')) };
    case 'append':
      return readAppend(base, f, what);
    case 'appendResp':
      return {
        ...base, type, index: readIndex(...field(0, 'index')), reject: readBool(...field(1, 'reject')),
        rejectHint: readIndex(...field(2, 'rejectHint')), hintTerm: readIndex(...field(3, 'hintTerm')),
      };
    case 'heartbeat':
      return { ...base, type, commit: readIndex(...field(0, 'commit')), context: readString(...field(1, 'context')) };
    case 'heartbeatResp':
    case 'readIndex':
      return { ...base, type, context: readString(...field(0, 'context')) };
    case 'snapshot':
      return readSnapshotChunk(base, f, what);
    case 'snapshotResp':
      return {
        ...base, type, snapshotIndex: readIndex(...field(0, 'snapshotIndex')),
        nextOffset: readIndex(...field(1, 'nextOffset')),
      };
    case 'timeoutNow':
      return { ...base, type };
    case 'readIndexResp':
      return {
        ...base, type, context: readString(...field(0, 'context')), index: readIndex(...field(1, 'index')),
        ok: readBool(...field(2, 'ok')),
      };
    default:
      return unreachable(type, 'message type');
  }
}

/**
 * An honest leader's entries follow prevLogIndex without gaps, with terms that never decrease along the log and
 * never exceed the leader's term. The core relies on this shape (it slices by index arithmetic), so a frame that
 * breaks it is rejected here rather than tripping an assertion there.
 */
function readAppend(base: MessageBase, f: readonly unknown[], what: string): PeerMessage {
  const prevLogIndex = readIndex(f[0], `${what}.prevLogIndex`);
  const prevLogTerm = readIndex(f[1], `${what}.prevLogTerm`);
  const entries = arrayOf(f[2], `${what}.entries`).map((e, i) => readEntry(e, `${what}.entries[${i}]`));
  const commit = readIndex(f[3], `${what}.commit`);
  if (prevLogTerm > base.term) throw new CodecError(`${what}: prevLogTerm ${prevLogTerm} above term ${base.term}`);
  let previousTerm = prevLogTerm;
  entries.forEach((entry, i) => {
    if (entry.index !== prevLogIndex + 1 + i) {
      throw new CodecError(`${what}: entry ${i} has index ${entry.index}, expected ${prevLogIndex + 1 + i}`);
    }
    if (entry.term < previousTerm || entry.term > base.term) {
      throw new CodecError(`${what}: entry ${entry.index} has term ${entry.term} out of [${previousTerm}, ${base.term}]`);
    }
    previousTerm = entry.term;
  });
  if (!Number.isSafeInteger(prevLogIndex + entries.length)) throw new CodecError(`${what}: index overflow`);
  return { ...base, type: 'append', prevLogIndex, prevLogTerm, entries, commit };
}

/** A chunk lies inside the announced total, and `done` marks exactly the chunk that reaches its end. */
function readSnapshotChunk(base: MessageBase, f: readonly unknown[], what: string): PeerMessage {
  const metadata = readMetadata(f[0], `${what}.metadata`);
  const offset = readIndex(f[1], `${what}.offset`);
  const data = readBytes(f[2], `${what}.data`);
  const totalBytes = readIndex(f[3], `${what}.totalBytes`);
  const done = readBool(f[4], `${what}.done`);
  const end = offset + data.byteLength;
  if (end > totalBytes) throw new CodecError(`${what}: chunk ends at ${end}, beyond totalBytes ${totalBytes}`);
  if (done !== (end === totalBytes)) throw new CodecError(`${what}: done is ${done} for a chunk ending at ${end} of ${totalBytes}`);
  if (metadata.term > base.term) throw new CodecError(`${what}: snapshot term ${metadata.term} above term ${base.term}`);
  return { ...base, type: 'snapshot', metadata, offset, data, totalBytes, done };
}

