// History compaction. `compact(c)` makes revisions below c unreadable: reads and watches that start below c
// answer COMPACTED. What must survive is everything a read or watch at c or later can see:
//   - every change at revision >= c (a watch from c replays revision c whole, deletes included);
//   - per key, its last change before c if that is a put: it is the key's version at c (if nothing at c
//     replaced it) and the prevKv of the key's first change at c or later.
// Everything else before c goes: older versions, and a key whose last change before c is a delete entirely.
//
// The compact entry itself only sets compactRevision (atomically with appliedIndex, so the semantic effect is
// immediate and crash-safe) and compactPending. The store writes the apply batch holding the compact entry
// first (so a compact ends the apply() call's batch: see kv-store.ts), then the physical deletion runs in bounded
// batches of its own, reading the database as of that entry; a crash in the middle leaves compactPending set
// and open() runs it again. Re-running over a partly compacted history
// deletes exactly what is left to delete, so the final bytes are the same on every node.
import type { Logger } from '../util/logger.js';
import type { BatchOp } from './apply-context.js';
import { decodeMark } from './codec.js';
import type { EventType } from './codec.js';
import type { Bytes } from './keys.js';
import { compareBytes, familyRange, metaKey, parseHistoryKey, revisionKey } from './keys.js';
import type { StoreDb } from './mvcc.js';
import { writeBatch } from '../util/level-batch.js';

export const compactionBatchOpsDefault = 10_000;

interface Mark {
  readonly dbKey: Bytes;
  readonly revision: number;
  readonly sub: number;
  readonly type: EventType;
}

/** Deletes the history compact(c) dropped; ends by clearing compactPending. */
export async function runCompaction(
  db: StoreDb,
  compactRevision: number,
  opts: { batchOpsMax: number; sync: boolean; logger: Logger },
): Promise<void> {
  let ops: BatchOp[] = [];
  let dropped = 0;
  const flush = async (): Promise<void> => {
    if (ops.length === 0) return;
    await writeBatch(db, ops, opts.sync);
    ops = [];
  };
  let group: Bytes | null = null;
  /** The key's last change before c seen so far: it is dropped only once an even later one (< c) shows up. */
  let latest: Mark | null = null;
  const drop = (mark: Mark): void => {
    dropped += 1;
    ops.push({ type: 'del', key: mark.dbKey }, { type: 'del', key: revisionKey(mark.revision, mark.sub) });
  };
  const closeGroup = (): void => {
    if (latest !== null && latest.type === 'delete') drop(latest);
    latest = null;
  };
  for await (const [dbKey, bytes] of db.iterator(familyRange('history'))) {
    const parsed = parseHistoryKey(dbKey);
    if (group === null || compareBytes(group, parsed.escapedKey) !== 0) {
      closeGroup();
      group = Buffer.from(parsed.escapedKey);
    }
    if (parsed.revision >= compactRevision) continue;
    if (latest !== null) drop(latest);
    latest = { dbKey: Buffer.from(dbKey), revision: parsed.revision, sub: parsed.sub, type: decodeMark(bytes) };
    if (ops.length >= opts.batchOpsMax) await flush();
  }
  closeGroup();
  ops.push({ type: 'del', key: metaKey('compactPending') });
  await flush();
  opts.logger.info({ compactRevision, dropped }, 'history compacted');
}
