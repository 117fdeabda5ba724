// The dedupe table: the results of the last `windowMax` commands that carried a request id, so that a client
// retrying after a timeout (same request id) gets the original answer instead of applying its write twice.
// It lives in LevelDB next to the data, written in the same batch as the entry, so it survives restarts and travels
// in snapshots; eviction follows the order the ids were applied in (a sequence number), so every node keeps
// exactly the same ids. `windowMax` is part of the replicated semantics: every node must use the same value.
//
// The ids in the window are also kept in memory (id -> seq and seq -> id, at most `windowMax` of each), so the
// apply path answers "not seen" (the common case: a new request) and finds the id leaving the window without a
// LevelDB read; only a real retry reads its recorded result. The index is rebuilt from the database by prune()
// (at open and after a snapshot restore) and follows every record() and eviction as they go into the apply batch:
// a batch that fails to be written stops the node (kv-store.ts), so the index never runs ahead of a database
// that lives on.
import { assert } from '../util/assert.js';
import type { ApplyBatch } from './apply-batch.js';
import type { BatchOp } from './apply-context.js';
import { decodeDedupeRecord, encodeDedupeRecord } from './codec.js';
import { dedupeKey, dedupeOrderKey, familyRange, fromUtf8, readBe8, utf8 } from './keys.js';
import type { StoreDb } from './mvcc.js';
import { writeBatch } from '../util/level-batch.js';

export const dedupeWindowDefault = 10_000;

export class DedupeTable {
  /** The ids in the window, as of the records put into apply batches so far. */
  private readonly seqOf = new Map<string, number>();
  private readonly idAt = new Map<number, string>();

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
    this.seqOf.clear();
    this.idAt.clear();
    for await (const [orderKey, requestId] of this.db.iterator(familyRange('dedupeOrder'))) {
      const id = fromUtf8(requestId);
      const seq = readBe8(orderKey, orderKey.byteLength - 8);
      this.seqOf.set(id, seq);
      this.idAt.set(seq, id);
    }
  }

  /**
   * The recorded result of `requestId`, or undefined when it was not seen within the window. Reads through the
   * call's batch: an id recorded (or evicted) by an earlier entry of the same apply() call counts.
   */
  lookup(requestId: string, batch: ApplyBatch): { result: unknown } | undefined {
    if (!this.seqOf.has(requestId)) return undefined;
    const bytes = batch.get(dedupeKey(requestId));
    assert(bytes !== undefined, `dedupe id ${requestId} is indexed but has no record`);
    return { result: decodeDedupeRecord(bytes).result };
  }

  /** Records `result` for `requestId` in the batch, with the next sequence, and evicts the id leaving the window. */
  record(requestId: string, result: unknown, batch: ApplyBatch): void {
    const seq = batch.state('dedupeSeq');
    batch.write({ type: 'put', key: dedupeKey(requestId), value: encodeDedupeRecord(seq, result) });
    batch.write({ type: 'put', key: dedupeOrderKey(seq), value: utf8(requestId) });
    batch.setState('dedupeSeq', seq + 1);
    this.seqOf.set(requestId, seq);
    this.idAt.set(seq, requestId);
    const evictedSeq = seq - this.windowMax;
    if (evictedSeq < 0) return;
    // Absent only if the window grew since it was written: then there is nothing to evict yet.
    const evicted = this.idAt.get(evictedSeq);
    if (evicted !== undefined) {
      this.idAt.delete(evictedSeq);
      this.seqOf.delete(evicted);
      batch.write({ type: 'del', key: dedupeOrderKey(evictedSeq) });
      batch.write({ type: 'del', key: dedupeKey(evicted) });
    }
  }
}
