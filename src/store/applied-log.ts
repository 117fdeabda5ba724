// Test-only applied-entries log (the fault-injection suite's GET /v1/debug/applied): with the debug flag on, the
// store records, for every entry it applies, {index, term, revision after it, request id, hash of the entry} in
// the SAME LevelDB batch as the entry's changes (under its own key family), so the record survives kill -9
// exactly when the apply does. Off by default: then nothing is written and nothing is decoded.
// The records are node-local diagnostics: snapshots do not carry them, and a snapshot restore clears them.
import { createHash } from 'node:crypto';
import type { Entry } from '../raft/index.js';
import type { ApplyBatch } from './apply-batch.js';
import { decodeCommand, pack, unpack } from './codec.js';
import { appliedLogKey, familyRange, type Bytes } from './keys.js';
import type { StoreDb } from './mvcc.js';

export interface AppliedRecord {
  readonly index: number;
  readonly term: number;
  readonly revision: number;
  readonly requestId?: string;
  readonly hash: string;
}

function entryHash(entry: Entry): string {
  const hash = createHash('sha256').update(entry.type);
  if (entry.type === 'normal') hash.update(entry.data);
  else hash.update(JSON.stringify({ ...entry.change, context: entry.change.context === undefined ? null : Buffer.from(entry.change.context).toString('hex') }));
  return hash.digest('hex').slice(0, 16);
}

function requestIdOf(entry: Entry): string {
  if (entry.type !== 'normal' || entry.data.byteLength === 0) return '';
  try {
    return decodeCommand(entry.data).requestId;
  } catch {
    return '';
  }
}

/** Adds the record of an applied entry to the batch that applies it. */
export function recordApplied(batch: ApplyBatch, entry: Entry): void {
  const value = pack([entry.term, batch.state('revision'), requestIdOf(entry), entryHash(entry)]);
  batch.write({ type: 'put', key: appliedLogKey(entry.index), value });
}

/** Every recorded entry with index >= fromIndex, in index order, at most `limit`. */
export async function readAppliedLog(db: StoreDb, fromIndex: number, limit: number): Promise<AppliedRecord[]> {
  const out: AppliedRecord[] = [];
  const range = familyRange('appliedLog');
  for await (const [key, value] of db.iterator({ gte: appliedLogKey(Math.max(fromIndex, 0)), lt: range.lt, limit })) {
    const index = new DataView(key.buffer, key.byteOffset + 2, 8).getBigUint64(0);
    const [term, revision, requestId, hash] = unpack(value as Bytes) as [number, number, string, string];
    out.push({ index: Number(index), term, revision, ...(requestId === '' ? {} : { requestId }), hash });
  }
  return out;
}
