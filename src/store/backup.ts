// Backups: the whole store database as of one LevelDB snapshot, as a framed, checksummed byte stream, and the
// reader that verifies one. This is the operator's backup (GET /v1/snapshot, `keel snapshot save|restore`), not
// Raft's snapshot (snapshot.ts): it is streamed in bounded chunks, never held whole in memory, and it carries a
// header an operator can read.
//
// Layout:
//   magic "KEELBAK1" (8 bytes)
//   frames: <u32 big-endian length><msgpack body>, length 1..frameBytesMax
//     frame 1: the header {v, format, cluster, revision, compactRevision, appliedIndex, keyCount}
//     frames 2..n: {pairs: [dbKey, value, dbKey, value, ...]} in key order, about chunkBytes each
//   end: a zero length (4 zero bytes), then sha256 (32 bytes) over every byte before it (magic included)
// A file cut anywhere lacks the end mark or the digest ("truncated"); a flipped bit fails the digest or a frame's
// decoding. The reader hashes as it goes, so a caller that must not act on bad data (restore) reads the stream
// to the end once to verify it before it writes anything.
//
// The stream reads a LevelDB snapshot through an iterator: apply goes on writing meanwhile (LevelDB snapshots
// are copy-free), and each chunk is produced only when the consumer asks for it (backpressure).
import { createHash } from 'node:crypto';
import { KeelError } from '../util/errors.js';
import { pack, unpack } from './codec.js';
import type { Bytes } from './keys.js';
import { compareBytes, formatVersion, metaKey } from './keys.js';
import type { DbSnapshot, StoreDb } from './mvcc.js';
import { ReadView } from './mvcc.js';

export const backupVersion = 1;
export const backupMagic = Buffer.from('KEELBAK1', 'latin1');
const frameBytesMax = 16 * 1024 * 1024;
const chunkBytesDefault = 256 * 1024;
const digestBytes = 32;

export interface BackupHeader {
  readonly v: number;
  /** Store format version (keys.ts): a restore refuses a format it does not know. */
  readonly format: number;
  readonly cluster: string;
  readonly revision: number;
  readonly compactRevision: number;
  /** The Raft index the state was applied up to on the node that made it (informational). */
  readonly appliedIndex: number;
  readonly keyCount: number;
}

function lengthPrefix(length: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(length, 0);
  return out;
}

function frame(body: Uint8Array): Buffer {
  return Buffer.concat([lengthPrefix(body.byteLength), body]);
}

/** The header of the state `snapshot` holds. */
export function backupHeader(db: StoreDb, snapshot: DbSnapshot, cluster: string): BackupHeader {
  const view = new ReadView(db, snapshot);
  return {
    v: backupVersion,
    format: view.meta('format'),
    cluster,
    revision: view.meta('revision'),
    compactRevision: view.meta('compactRevision'),
    appliedIndex: view.meta('appliedIndex'),
    keyCount: view.meta('keyCount'),
  };
}

/**
 * The backup stream of `snapshot`: yields the file's bytes in chunks of about `chunkBytes`. Closes the snapshot
 * when it ends, fails, or the consumer stops early.
 */
export async function* backupChunks(
  db: StoreDb,
  snapshot: DbSnapshot,
  header: BackupHeader,
  chunkBytes = chunkBytesDefault,
): AsyncGenerator<Buffer> {
  const hash = createHash('sha256');
  const emit = (bytes: Buffer): Buffer => {
    hash.update(bytes);
    return bytes;
  };
  const iterator = db.iterator({ snapshot });
  try {
    yield emit(Buffer.concat([backupMagic, frame(pack(header))]));
    const skip = metaKey('restoring');
    let pairs: Bytes[] = [];
    let bytes = 0;
    for (let batch = await iterator.nextv(1000); batch.length > 0; batch = await iterator.nextv(1000)) {
      for (const [key, value] of batch) {
        if (compareBytes(key, skip) === 0) continue;
        pairs.push(key, value);
        bytes += key.byteLength + value.byteLength + 8;
        if (bytes < chunkBytes) continue;
        yield emit(frame(pack({ pairs })));
        pairs = [];
        bytes = 0;
      }
    }
    if (pairs.length > 0) yield emit(frame(pack({ pairs })));
    const end = emit(lengthPrefix(0));
    yield Buffer.concat([end, hash.digest()]);
  } finally {
    await iterator.close();
    await snapshot.close();
  }
}

function rejected(message: string, cause?: unknown): KeelError {
  return new KeelError('INVALID_ARGUMENT', `backup rejected: ${message}`, {}, cause === undefined ? undefined : { cause });
}

function checkHeader(raw: unknown): BackupHeader {
  if (typeof raw !== 'object' || raw === null) throw rejected('the header is not an object');
  const h = raw as Record<string, unknown>;
  if (h.v !== backupVersion) throw rejected(`unsupported backup version ${String(h.v)}`);
  if (h.format !== formatVersion) throw rejected(`unsupported store format ${String(h.format)}`);
  for (const field of ['revision', 'compactRevision', 'appliedIndex', 'keyCount'] as const) {
    const value = h[field];
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw rejected(`bad header field ${field}`);
  }
  if (typeof h.cluster !== 'string') throw rejected('bad header field cluster');
  if ((h.compactRevision as number) > (h.revision as number)) throw rejected('compactRevision is above revision');
  return h as unknown as BackupHeader;
}

function checkPairs(raw: unknown): Bytes[] {
  const pairs = (raw as { pairs?: unknown } | null)?.pairs;
  if (!Array.isArray(pairs) || pairs.length % 2 !== 0 || !pairs.every((p) => p instanceof Uint8Array)) {
    throw rejected('a data frame is malformed');
  }
  return pairs as Bytes[];
}

/** Incremental reader state: bytes not yet consumed, as a list of chunks (no quadratic copying). */
class ByteQueue {
  private chunks: Buffer[] = [];
  length = 0;

  push(chunk: Uint8Array): void {
    this.chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.length += chunk.byteLength;
  }

  /** Removes and returns the first `n` bytes (n <= length). */
  take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.byteLength > 0 ? [rest] : [];
    this.length = rest.byteLength;
    return out;
  }

  /** The u32 at the front, without consuming it (length >= 4). */
  peekLength(): number {
    const head = Buffer.alloc(4);
    let filled = 0;
    for (const chunk of this.chunks) {
      filled += chunk.copy(head, filled, 0, Math.min(chunk.byteLength, 4 - filled));
      if (filled === 4) break;
    }
    return head.readUInt32BE(0);
  }
}

export interface BackupSink {
  /** Called once, before any pairs. */
  header?(header: BackupHeader): void | Promise<void>;
  /** Called per data frame, in key order. */
  pairs?(pairs: readonly Bytes[]): void | Promise<void>;
}

/**
 * Reads and verifies a backup stream, handing the header and the pairs to `sink` as they come. Throws KeelError
 * INVALID_ARGUMENT ("backup rejected: ...") if the stream is truncated, corrupted or of an unknown version;
 * anything the sink saw before that must then be discarded. Returns the header and the bytes read.
 */
export async function readBackup(
  source: AsyncIterable<Uint8Array>,
  sink: BackupSink = {},
): Promise<{ header: BackupHeader; bytes: number }> {
  const hash = createHash('sha256');
  const queue = new ByteQueue();
  let header: BackupHeader | null = null;
  let bytes = 0;
  let state = 'magic' as 'magic' | 'frames' | 'digest' | 'done';
  const step = async (): Promise<boolean> => {
    if (state === 'magic') {
      if (queue.length < backupMagic.byteLength) return false;
      const magic = queue.take(backupMagic.byteLength);
      if (!magic.equals(backupMagic)) throw rejected('not a Keel backup (bad magic bytes)');
      hash.update(magic);
      state = 'frames';
      return true;
    }
    if (state === 'frames') {
      if (queue.length < 4) return false;
      const length = queue.peekLength();
      if (length > frameBytesMax) throw rejected(`a frame claims ${length} bytes (corrupted)`);
      if (length === 0) {
        if (header === null) throw rejected('no header');
        hash.update(queue.take(4));
        state = 'digest';
        return true;
      }
      if (queue.length < 4 + length) return false;
      const whole = queue.take(4 + length);
      hash.update(whole);
      let body: unknown;
      try {
        body = unpack(whole.subarray(4));
      } catch (err) {
        throw rejected('a frame is not valid msgpack (corrupted)', err);
      }
      if (header === null) {
        header = checkHeader(body);
        await sink.header?.(header);
      } else {
        await sink.pairs?.(checkPairs(body));
      }
      return true;
    }
    if (state === 'digest') {
      if (queue.length < digestBytes) return false;
      if (!queue.take(digestBytes).equals(hash.digest())) throw rejected('checksum mismatch (the file is corrupted)');
      state = 'done';
      return true;
    }
    if (queue.length > 0) throw rejected('unexpected bytes after the checksum');
    return false;
  };
  for await (const chunk of source) {
    bytes += chunk.byteLength;
    queue.push(chunk);
    while (await step()) {
      // consume what the queue holds
    }
  }
  if (state !== 'done' || header === null) throw rejected(`truncated after ${bytes} bytes (no end mark and checksum)`);
  return { header, bytes };
}
