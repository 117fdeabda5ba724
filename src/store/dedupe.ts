// The dedupe table: the results of the last `windowMax` commands that carried a request id, so that a client
// retrying after a timeout (same request id) gets the original answer instead of applying its write twice.
// It lives in LevelDB next to the data, written in the same batch as the entry, so it survives restarts and travels
// in snapshots; eviction follows the order the ids were applied in (a sequence number), so every node keeps
// exactly the same ids. `windowMax` is part of the replicated semantics: every node must use the same value.
import { assert } from '../util/assert.js';
import type { ApplyBatch } from './apply-batch.js';
import type { BatchOp } from './apply-context.js';
import { decodeDedupeRecord, encodeDedupeRecord } from './codec.js';
import { dedupeKey, dedupeOrderKey, familyRange, fromUtf8, utf8 } from './keys.js';
import type { StoreDb } from './mvcc.js';
import { writeBatch } from '../util/level-batch.js';

export const dedupeWindowDefault = 10_000;

export class DedupeTable {
  constructor(
    private readonly db: StoreDb,
    private readonly windowMax: number,
  ) {
    assert(Number.isSafeInteger(windowMax) && windowMax >= 1, 'dedupe window must be a positive integer');
  }

  /**
   * At open and after a restore, with the sequence in the database (m/dedupeSeq): if the window was made smaller
   * since the table was written, the ids that fell out of it are deleted now, so that record() only ever has to
   * evict the single id that leaves the window.
   */
  async prune(nextSeq: number): Promise<void> {
    const stale = { gte: familyRange('dedupeOrder').gte, lt: dedupeOrderKey(Math.max(0, nextSeq - this.windowMax)) };
    const ops: BatchOp[] = [];
    for await (const [orderKey, requestId] of this.db.iterator(stale)) {
      ops.push({ type: 'del', key: orderKey }, { type: 'del', key: dedupeKey(fromUtf8(requestId)) });
    }
    await writeBatch(this.db, ops, true);
  }

  /**
   * The recorded result of `requestId`, or undefined when it was not seen within the window. Reads through the
   * call's batch: an id recorded (or evicted) by an earlier entry of the same apply() call counts.
   */
  lookup(requestId: string, batch: ApplyBatch): { result: unknown } | undefined {
    const bytes = batch.get(dedupeKey(requestId));
    return bytes === undefined ? undefined : { result: decodeDedupeRecord(bytes).result };
  }

  /** Records `result` for `requestId` in the batch, with the next sequence, and evicts the id leaving the window. */
  record(requestId: string, result: unknown, batch: ApplyBatch): void {
    const seq = batch.state('dedupeSeq');
    batch.write({ type: 'put', key: dedupeKey(requestId), value: encodeDedupeRecord(seq, result) });
    batch.write({ type: 'put', key: dedupeOrderKey(seq), value: utf8(requestId) });
    batch.setState('dedupeSeq', seq + 1);
    const evictedSeq = seq - this.windowMax;
    if (evictedSeq < 0) return;
    // Absent only if the window grew since it was written: then there is nothing to evict yet.
    const evicted = batch.get(dedupeOrderKey(evictedSeq));
    if (evicted !== undefined) {
      batch.write({ type: 'del', key: dedupeOrderKey(evictedSeq) });
      batch.write({ type: 'del', key: dedupeKey(fromUtf8(evicted)) });
    }
  }
}
