// Snapshot export and import: the whole LevelDB content of the store (MVCC data, lease index, dedupe table,
// metadata) as one byte array, so a restored store is the same state machine, not just the same live keys:
// reads at past revisions, watch catch-up and retried requests behave as on the node that made it.
//
// Format (msgpack, through the store's codec): {v, format, appliedIndex, pairs: [key, value, key, value...],
// checksum}. `checksum` is sha256 over the pairs (each length-prefixed), checked before anything is written:
// a snapshot damaged in transit or on disk is refused, never half-applied.
//
// Import is not one LevelDB batch (a snapshot can be larger than a sensible batch), so it is bracketed by the
// `restoring` marker: set (synced) before the old state is cleared, removed (synced) in the batch that writes
// appliedIndex. open() that finds the marker knows the state is half-written and wipes it (appliedIndex 0), so
// Raft sends or restores a snapshot again rather than the node serving a mix.
import { createHash } from 'node:crypto';
import { assert } from '../util/assert.js';
import { KeelError } from '../util/errors.js';
import type { BatchOp } from './apply-context.js';
import { packDetached, unpack } from './codec.js';
import type { Bytes } from './keys.js';
import { be8, compareBytes, formatVersion, isAppliedLogKey, metaKey, readBe8 } from './keys.js';
import type { DbSnapshot, StoreDb } from './mvcc.js';
import { writeBatch } from '../util/level-batch.js';

const snapshotVersion = 1;
const importBatchBytesMax = 4 * 1024 * 1024;

function checksum(pairs: readonly Bytes[]): Uint8Array {
  const hash = createHash('sha256');
  const length = new Uint8Array(4);
  const view = new DataView(length.buffer);
  for (const part of pairs) {
    view.setUint32(0, part.byteLength);
    hash.update(length);
    hash.update(part);
  }
  return hash.digest();
}

/**
 * Everything in the database as of `snapshot`, with the appliedIndex it holds. Runs beside the Raft loop on the
 * same thread, so no step may hold the thread for long: the checksum is computed pair by pair as the iterator
 * yields, and the final copy is made in slices with a yield between them. (Hashing and packing a 50 MB store in
 * one go held the thread for about 0.7 s; with three nodes snapshotting at the same index under load that was
 * enough to lose the leader.) The bytes are plain msgpack that `decodeSnapshot` reads like before.
 *
 * Memory: each pair is copied, msgpack-framed, into 1 MiB chunks as the iterator yields it, so no key or value
 * object outlives its step. (Collecting the pairs first kept two small buffers per pair until the export ended:
 * on a 50 MB store several hundred thousand objects, promoted to the old generation and left there as garbage.)
 */
export async function exportSnapshot(db: StoreDb, snapshot: DbSnapshot): Promise<{ index: number; data: Uint8Array }> {
  const skip = metaKey('restoring');
  const applied = metaKey('appliedIndex');
  const hash = new HashFeed();
  const chunks = new ChunkWriter();
  let count = 0;
  let index = 0;
  const iterator = db.iterator({ snapshot });
  try {
    // A few hundred pairs per call, one promise each: a promise per pair was about a third of the export's time.
    for (let batch = await iterator.nextv(exportBatchPairs); batch.length > 0; batch = await iterator.nextv(exportBatchPairs)) {
      for (const [key, value] of batch) {
        if (compareBytes(key, skip) === 0 || isAppliedLogKey(key)) continue;
        if (compareBytes(key, applied) === 0) index = readBe8(value, 0);
        hash.add(key);
        hash.add(value);
        chunks.writeBin(key);
        chunks.writeBin(value);
        count += 2;
      }
    }
  } finally {
    await iterator.close();
  }
  const data = await packSnapshot({ v: snapshotVersion, format: formatVersion, appliedIndex: index, checksum: hash.digest() }, count, chunks);
  return { index, data };
}

/** Pairs asked of the iterator per call. */
const exportBatchPairs = 512;
const hashBlockBytes = 64 * 1024;

/**
 * The checksum() stream (each part length-prefixed, sha256) fed in 64 KiB blocks instead of two hash updates per
 * part: the same digest, a fraction of the calls.
 */
class HashFeed {
  private readonly hash = createHash('sha256');
  private readonly block = Buffer.allocUnsafe(hashBlockBytes);
  private at = 0;

  add(part: Uint8Array): void {
    if (this.at + 4 + part.byteLength > hashBlockBytes) this.flush();
    if (4 + part.byteLength > hashBlockBytes) {
      const length = Buffer.allocUnsafe(4);
      length.writeUInt32BE(part.byteLength, 0);
      this.hash.update(length);
      this.hash.update(part);
      return;
    }
    this.block.writeUInt32BE(part.byteLength, this.at);
    this.block.set(part, this.at + 4);
    this.at += 4 + part.byteLength;
  }

  digest(): Uint8Array {
    this.flush();
    return this.hash.digest();
  }

  private flush(): void {
    if (this.at > 0) this.hash.update(this.block.subarray(0, this.at));
    this.at = 0;
  }
}

const chunkBytes = 1 << 20;
/** Chunks copied per slice before packSnapshot yields to the event loop. */
const packSliceChunks = 8;

/** An append-only byte sink of msgpack `bin` items in 1 MiB chunks (an item larger than a chunk gets its own). */
class ChunkWriter {
  readonly full: Uint8Array[] = [];
  private current = Buffer.allocUnsafeSlow(chunkBytes);
  private at = 0;

  writeBin(part: Uint8Array): void {
    const need = binHeaderBytes(part.byteLength) + part.byteLength;
    if (this.at + need > this.current.byteLength) {
      this.seal();
      this.current = Buffer.allocUnsafeSlow(Math.max(chunkBytes, need));
    }
    this.at = writeBinHeader(this.current, this.at, part.byteLength);
    this.current.set(part, this.at);
    this.at += part.byteLength;
  }

  /** Every chunk, the last one trimmed to what was written. */
  chunks(): Uint8Array[] {
    this.seal();
    return this.full;
  }

  private seal(): void {
    if (this.at > 0) this.full.push(this.current.subarray(0, this.at));
    this.current = Buffer.allocUnsafeSlow(0);
    this.at = 0;
  }
}

/** msgpack of `{...fields, pairs}` (a map, `pairs` an array of `count` bin items already framed in `body`). */
async function packSnapshot(fields: Record<string, unknown>, count: number, body: ChunkWriter): Promise<Uint8Array> {
  const entries = Object.entries(fields);
  const head: Uint8Array[] = [Uint8Array.of(0x80 | (entries.length + 1))];
  for (const [name, value] of entries) head.push(packDetached(name), packDetached(value));
  head.push(packDetached('pairs'), arrayHeader(count));
  const parts = body.chunks();
  const total = [...head, ...parts].reduce((sum, part) => sum + part.byteLength, 0);
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  for (const part of head) {
    out.set(part, at);
    at += part.byteLength;
  }
  for (let i = 0; i < parts.length; i++) {
    out.set(parts[i]!, at);
    at += parts[i]!.byteLength;
    // Let go of each chunk once copied, so the collector can take it back during the copy, not after it.
    parts[i] = new Uint8Array(0);
    if (i % packSliceChunks === packSliceChunks - 1) await new Promise<void>((resolve) => setImmediate(resolve));
  }
  assert(at === total, 'snapshot packing wrote an unexpected number of bytes');
  return out;
}

function arrayHeader(count: number): Uint8Array {
  if (count < 16) return Uint8Array.of(0x90 | count);
  const out = Buffer.allocUnsafe(count < 0x10000 ? 3 : 5);
  if (count < 0x10000) {
    out[0] = 0xdc;
    out.writeUInt16BE(count, 1);
  } else {
    out[0] = 0xdd;
    out.writeUInt32BE(count, 1);
  }
  return out;
}

function binHeaderBytes(length: number): number {
  return length < 0x100 ? 2 : length < 0x10000 ? 3 : 5;
}

function writeBinHeader(out: Buffer, at: number, length: number): number {
  if (length < 0x100) {
    out[at] = 0xc4;
    out[at + 1] = length;
    return at + 2;
  }
  if (length < 0x10000) {
    out[at] = 0xc5;
    out.writeUInt16BE(length, at + 1);
    return at + 3;
  }
  out[at] = 0xc6;
  out.writeUInt32BE(length, at + 1);
  return at + 5;
}

interface DecodedSnapshot {
  readonly appliedIndex: number;
  readonly pairs: readonly Bytes[];
}

function corrupt(message: string, cause?: unknown): KeelError {
  return new KeelError('INVALID_ARGUMENT', `snapshot rejected: ${message}`, {}, { cause });
}

/** Decodes and verifies a snapshot; throws KeelError INVALID_ARGUMENT if it is not one this store can restore. */
export function decodeSnapshot(data: Uint8Array): DecodedSnapshot {
  if (data.byteLength === 0) return { appliedIndex: 0, pairs: [] };
  let raw: unknown;
  try {
    raw = unpack(data);
  } catch (err) {
    throw corrupt('not valid msgpack', err);
  }
  if (typeof raw !== 'object' || raw === null) throw corrupt('not an object');
  const { v, format, appliedIndex, pairs, checksum: sum } = raw as Record<string, unknown>;
  if (v !== snapshotVersion) throw corrupt(`unsupported snapshot version ${String(v)}`);
  if (format !== formatVersion) throw corrupt(`unsupported store format ${String(format)}`);
  if (typeof appliedIndex !== 'number' || !Number.isSafeInteger(appliedIndex)) throw corrupt('bad appliedIndex');
  if (!Array.isArray(pairs) || pairs.length % 2 !== 0 || !pairs.every((p) => p instanceof Uint8Array)) {
    throw corrupt('bad pairs');
  }
  if (!(sum instanceof Uint8Array) || compareBytes(sum, checksum(pairs as Bytes[])) !== 0) {
    throw corrupt('checksum mismatch');
  }
  return { appliedIndex, pairs: pairs as Bytes[] };
}

/** Replaces the database content by a decoded snapshot, with appliedIndex = `index`. */
export async function importSnapshot(db: StoreDb, snapshot: DecodedSnapshot, index: number): Promise<void> {
  const marker = metaKey('restoring');
  const applied = metaKey('appliedIndex');
  await db.put(marker, be8(1), { sync: true });
  await db.clear({ lt: marker });
  await db.clear({ gt: marker });
  let ops: BatchOp[] = [];
  let bytes = 0;
  for (let i = 0; i < snapshot.pairs.length; i += 2) {
    const key = snapshot.pairs[i]!;
    const value = snapshot.pairs[i + 1]!;
    if (compareBytes(key, marker) === 0 || compareBytes(key, applied) === 0) continue;
    ops.push({ type: 'put', key, value });
    bytes += key.byteLength + value.byteLength;
    if (bytes >= importBatchBytesMax) {
      await writeBatch(db, ops, false);
      ops = [];
      bytes = 0;
    }
  }
  if (snapshot.pairs.length === 0) ops.push({ type: 'put', key: metaKey('format'), value: be8(formatVersion) });
  ops.push({ type: 'put', key: applied, value: be8(index) }, { type: 'del', key: marker });
  await writeBatch(db, ops, true);
  const check = await db.get(applied);
  assert(check !== undefined && readBe8(check, 0) === index, 'appliedIndex reads back as written after a restore');
}
