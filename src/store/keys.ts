// The LevelDB keyspace of the store, written down in one place and built only through these helpers.
// Every LevelDB key is binary: a two-byte family tag ('x/') followed by the family's fields. Numbers are
// fixed-width big-endian so that byte order equals numeric order.
//
//   m/<name>                                   metadata (names below), an 8-byte big-endian number
//   k/<key>                                    the current version of a live key → kv record
//   h/<escaped key>00 01<revision be8><sub be4> one history mark per change of a key → 1 byte: 0 put, 1 delete
//   r/<revision be8><sub be4>                  the change itself (event record), in revision order
//   l/<lease be8><key>                         lease index: live keys attached to a lease → empty
//   d/<requestId>                              dedupe table: request id → [seq, result]
//   q/<seq be8>                                dedupe eviction order: seq → request id
//
// `sub` numbers the changes inside one revision (a txn may change several keys; all share the revision).
// `h/` lets a read at a past revision find, per key, the last change at or before it, and lets a range at a past
// revision scan keys in order; `r/` lets watchers replay history in revision order. `k/` holds a copy of the
// latest version so that reads at the current revision (the common case) cost one get or one scan.
//
// In `h/` the user key is followed by more fields, so it is escaped to keep byte order (the FoundationDB tuple
// trick): 0x00 becomes 00 FF and the key ends with 00 01. For user keys a < b, escaped(a)+00 01 < escaped(b)+00 01,
// and a range [start, end) of user keys is exactly the LevelDB range [h/escaped(start), h/escaped(end)).
import { assert, assertIndex } from '../util/assert.js';

export type Bytes = Uint8Array;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/**
 * The UTF-8 bytes of `text`, for keys and values that go into a LevelDB batch or a lookup and are then dropped.
 * A short string's bytes are a view into Node's shared 8 KiB buffer pool, as every key that concat() builds
 * already is: TextEncoder allocates a backing store per call, which was 8% of the write path's main-thread time
 * in process (bench/group-commit.ts). A view keeps its whole pool slab alive, so bytes held for long (a watcher's
 * range, the family tags) come from ownUtf8() instead.
 */
export function utf8(text: string): Bytes {
  return Buffer.from(text, 'utf8');
}

/** The UTF-8 bytes of `text` in a buffer of their own, for bytes that are kept. */
export function ownUtf8(text: string): Bytes {
  return encoder.encode(text);
}

export function fromUtf8(bytes: Bytes): string {
  return decoder.decode(bytes);
}

export function compareBytes(a: Bytes, b: Bytes): number {
  return Buffer.compare(a, b);
}

export const metaNames = [
  /** Store format version (formatVersion below); written when the store is created, checked on open. */
  'format',
  /** The last Raft index applied; written in the same batch as the changes of the entries up to it. */
  'appliedIndex',
  /** The store revision: +1 per write request that changed something. */
  'revision',
  /** Live keys, kept with every revision so status and metrics need no scan. */
  'keyCount',
  /** Reads and watches below this revision answer COMPACTED. */
  'compactRevision',
  /** Set while the physical deletion of a compaction is in progress; open() finishes it. */
  'compactPending',
  /** Next sequence number of the dedupe table. */
  'dedupeSeq',
  /** Set while a snapshot is being restored; open() finds a half-restored store and wipes it. */
  'restoring',
] as const;
export type MetaName = (typeof metaNames)[number];

/** Bumped when the layout or a record format changes incompatibly. */
export const formatVersion = 1;

const family = {
  meta: tag('m'),
  current: tag('k'),
  history: tag('h'),
  revision: tag('r'),
  lease: tag('l'),
  dedupe: tag('d'),
  dedupeOrder: tag('q'),
  /** Test-only applied-entries log (applied-log.ts), written only when the debug flag is on; never in snapshots. */
  appliedLog: tag('a'),
  /** Membership contexts of applied conf changes (member addresses), so snapshots carry them. */
  member: tag('c'),
} as const;
export type Family = keyof typeof family;

function tag(letter: string): Bytes {
  return ownUtf8(`${letter}/`);
}

/** [lower, upper) bounds of a whole family, for scans and clears. */
export function familyRange(name: Family): { gte: Bytes; lt: Bytes } {
  const prefix = family[name];
  return { gte: prefix, lt: Uint8Array.of(prefix[0]!, prefix[1]! + 1) };
}

export function appliedLogKey(index: number): Bytes {
  return concat([family.appliedLog, be8(index)]);
}

/** Whether a raw key belongs to the test-only applied-entries log. */
export function isAppliedLogKey(dbKey: Bytes): boolean {
  return dbKey[0] === family.appliedLog[0] && dbKey[1] === family.appliedLog[1];
}

function concat(parts: readonly Bytes[]): Bytes {
  return Buffer.concat(parts);
}

export function be8(value: number): Bytes {
  assertIndex(value, 'be8 value');
  const out = new Uint8Array(8);
  writeBe4(out, 0, Math.floor(value / 0x1_0000_0000));
  writeBe4(out, 4, value % 0x1_0000_0000);
  return out;
}

export function readBe8(bytes: Bytes, offset: number): number {
  assert(bytes.byteLength >= offset + 8, 'be8 out of bounds');
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, 8);
  const value = view.getUint32(0) * 0x1_0000_0000 + view.getUint32(4);
  assertIndex(value, 'be8 value read');
  return value;
}

function be4(value: number): Bytes {
  assert(Number.isInteger(value) && value >= 0 && value <= 0xffff_ffff, 'be4 value out of range');
  const out = new Uint8Array(4);
  writeBe4(out, 0, value);
  return out;
}

/** Big-endian uint32 into `out` at `at`, byte by byte (no DataView per number: this runs several times a put). */
function writeBe4(out: Uint8Array, at: number, value: number): void {
  out[at] = value >>> 24;
  out[at + 1] = (value >>> 16) & 0xff;
  out[at + 2] = (value >>> 8) & 0xff;
  out[at + 3] = value & 0xff;
}

function readBe4(bytes: Bytes, offset: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset + offset, 4).getUint32(0);
}

// ---- metadata

export function metaKey(name: MetaName): Bytes {
  return concat([family.meta, utf8(name)]);
}

// ---- current versions

export function currentKey(key: Bytes): Bytes {
  return concat([family.current, key]);
}

export function userKeyOfCurrent(dbKey: Bytes): Bytes {
  return dbKey.subarray(family.current.byteLength);
}

/** LevelDB bounds of `k/` for the user-key range [start, end); end null = to the end of the keyspace. */
export function currentRange(start: Bytes, end: Bytes | null): { gte: Bytes; lt: Bytes } {
  return { gte: currentKey(start), lt: end === null ? familyRange('current').lt : currentKey(end) };
}

// ---- history marks

const terminator = Uint8Array.of(0x00, 0x01);
const markSuffixBytes = terminator.byteLength + 8 + 4;

export function escapeKey(key: Bytes): Bytes {
  let zeros = 0;
  for (const byte of key) if (byte === 0) zeros += 1;
  if (zeros === 0) return key;
  const out = new Uint8Array(key.byteLength + zeros);
  let at = 0;
  for (const byte of key) {
    out[at++] = byte;
    if (byte === 0) out[at++] = 0xff;
  }
  return out;
}

function unescapeKey(escaped: Bytes): Bytes {
  const out: number[] = [];
  for (let i = 0; i < escaped.byteLength; i++) {
    const byte = escaped[i]!;
    out.push(byte);
    if (byte === 0) {
      assert(escaped[i + 1] === 0xff, 'bad escape in a history key');
      i += 1;
    }
  }
  return Uint8Array.from(out);
}

export function historyKey(key: Bytes, revision: number, sub: number): Bytes {
  return concat([family.history, escapeKey(key), terminator, be8(revision), be4(sub)]);
}

/** All history marks of one key lie in [historyKeyFloor(key), historyKey(key, revision + 1, 0)). */
export function historyKeyFloor(key: Bytes): Bytes {
  return concat([family.history, escapeKey(key), terminator]);
}

/** LevelDB bounds of `h/` for the user-key range [start, end). */
export function historyRange(start: Bytes, end: Bytes | null): { gte: Bytes; lt: Bytes } {
  return {
    gte: concat([family.history, escapeKey(start)]),
    lt: end === null ? familyRange('history').lt : concat([family.history, escapeKey(end)]),
  };
}

export interface HistoryMark {
  /** The escaped user key: equal bytes ⇔ same key; cheap to compare while scanning. */
  readonly escapedKey: Bytes;
  readonly revision: number;
  readonly sub: number;
}

export function parseHistoryKey(dbKey: Bytes): HistoryMark {
  const end = dbKey.byteLength - markSuffixBytes;
  assert(end >= family.history.byteLength, 'history key too short');
  assert(dbKey[end] === 0x00 && dbKey[end + 1] === 0x01, 'history key lacks its terminator');
  return {
    escapedKey: dbKey.subarray(family.history.byteLength, end),
    revision: readBe8(dbKey, end + 2),
    sub: readBe4(dbKey, end + 10),
  };
}

export function userKeyOfMark(mark: HistoryMark): Bytes {
  return unescapeKey(mark.escapedKey);
}

// ---- revision records

export function revisionKey(revision: number, sub: number): Bytes {
  return concat([family.revision, be8(revision), be4(sub)]);
}

export function parseRevisionKey(dbKey: Bytes): { revision: number; sub: number } {
  assert(dbKey.byteLength === family.revision.byteLength + 12, 'revision key has the wrong length');
  return { revision: readBe8(dbKey, 2), sub: readBe4(dbKey, 10) };
}

/** LevelDB bounds of `r/` for revisions in [from, to]. */
export function revisionRange(from: number, to: number): { gte: Bytes; lt: Bytes } {
  return { gte: revisionKey(from, 0), lt: revisionKey(to + 1, 0) };
}

// ---- lease index

export function leaseKey(lease: number, key: Bytes): Bytes {
  return concat([family.lease, be8(lease), key]);
}

export function leaseRange(lease: number): { gte: Bytes; lt: Bytes } {
  const empty = new Uint8Array(0);
  const lt = lease === Number.MAX_SAFE_INTEGER ? familyRange('lease').lt : leaseKey(lease + 1, empty);
  return { gte: leaseKey(lease, empty), lt };
}

export function userKeyOfLease(dbKey: Bytes): Bytes {
  return dbKey.subarray(family.lease.byteLength + 8);
}

// ---- dedupe table

export function dedupeKey(requestId: string): Bytes {
  return concat([family.dedupe, utf8(requestId)]);
}

export function dedupeOrderKey(seq: number): Bytes {
  return concat([family.dedupeOrder, be8(seq)]);
}

// ---- membership contexts (id '' holds the bootstrap entry's context)

export function memberKey(id: string): Bytes {
  return concat([family.member, utf8(id)]);
}

export function memberIdOf(dbKey: Bytes): string {
  return fromUtf8(dbKey.subarray(family.member.byteLength));
}

// ---- user-key ranges

/** The first key after every key that starts with `prefix`; null when there is none (empty or all 0xff). */
export function prefixEnd(prefix: Bytes): Bytes | null {
  for (let i = prefix.byteLength - 1; i >= 0; i--) {
    if (prefix[i]! < 0xff) {
      // A copy: a Buffer's slice() is a view, and the increment below must not change `prefix`.
      const out = new Uint8Array(prefix.subarray(0, i + 1));
      out[i] = prefix[i]! + 1;
      return out;
    }
  }
  return null;
}

/** The range holding exactly `key`: [key, key + 0x00). */
export function singleKeyEnd(key: Bytes): Bytes {
  return concat([key, Uint8Array.of(0)]);
}

export interface KeyRange {
  readonly start: Bytes;
  /** Exclusive; null = to the end of the keyspace. */
  readonly end: Bytes | null;
}

/** Whether the range holds exactly one key: [k, k + 0x00), as singleKeyEnd builds it. */
export function isSingleKeyRange(range: KeyRange): boolean {
  const { start, end } = range;
  return (
    end !== null &&
    end.byteLength === start.byteLength + 1 &&
    end[start.byteLength] === 0 &&
    compareBytes(end.subarray(0, start.byteLength), start) === 0
  );
}

export function inRange(range: KeyRange, key: Bytes): boolean {
  return compareBytes(key, range.start) >= 0 && (range.end === null || compareBytes(key, range.end) < 0);
}
