// The dedupe table: the results of the last `windowMax` commands that carried a request id, so that a client
// retrying after a timeout (same request id) gets the original answer instead of applying its write twice.
// It lives in LevelDB next to the data, written in the entry's own batch, so it survives restarts and travels
// in snapshots; eviction follows the order the ids were applied in (a sequence number), so every node keeps
// exactly the same ids. `windowMax` is part of the replicated semantics: every node must use the same value.
import { assert } from '../util/assert.js';
import type { BatchOp } from './apply-context.js';
import { decodeDedupeRecord, encodeDedupeRecord } from './codec.js';
import { be8, dedupeKey, dedupeOrderKey, familyRange, fromUtf8, metaKey, utf8 } from './keys.js';
import type { StoreDb } from './mvcc.js';
import { ReadView } from './mvcc.js';

export const dedupeWindowDefault = 10_000;

export class DedupeTable {
  /** The sequence number the next recorded id gets; mirrors m/dedupeSeq as of the last written batch. */
  private nextSeq = 0;
  private readonly view: ReadView;

  constructor(
    private readonly db: StoreDb,
    private readonly windowMax: number,
  ) {
    assert(Number.isSafeInteger(windowMax) && windowMax >= 1, 'dedupe window must be a positive integer');
    this.view = new ReadView(db, null);
  }

  /**
   * Reads the sequence from the database (at open and after a restore). If the window was made smaller since
   * the table was written, the ids that fell out of it are deleted now, so that record() only ever has to
   * evict the single id that leaves the window.
   */
  async load(): Promise<void> {
    this.nextSeq = this.view.meta('dedupeSeq');
    const stale = { gte: familyRange('dedupeOrder').gte, lt: dedupeOrderKey(Math.max(0, this.nextSeq - this.windowMax)) };
    const ops: BatchOp[] = [];
    for await (const [orderKey, requestId] of this.db.iterator(stale)) {
      ops.push({ type: 'del', key: orderKey }, { type: 'del', key: dedupeKey(fromUtf8(requestId)) });
    }
    if (ops.length > 0) await this.db.batch(ops, { sync: true });
  }

  /** The recorded result of `requestId`, or undefined when it was not seen within the window. */
  lookup(requestId: string): { result: unknown } | undefined {
    const bytes = this.view.get(dedupeKey(requestId));
    return bytes === undefined ? undefined : { result: decodeDedupeRecord(bytes).result };
  }

  /** The batch ops that record `result` for `requestId` and evict the id that leaves the window. */
  record(requestId: string, result: unknown): BatchOp[] {
    const seq = this.nextSeq;
    const ops: BatchOp[] = [
      { type: 'put', key: dedupeKey(requestId), value: encodeDedupeRecord(seq, result) },
      { type: 'put', key: dedupeOrderKey(seq), value: utf8(requestId) },
      { type: 'put', key: metaKey('dedupeSeq'), value: be8(seq + 1) },
    ];
    const evictedSeq = seq - this.windowMax;
    if (evictedSeq >= 0) {
      // Absent only if the window grew since it was written: then there is nothing to evict yet.
      const evicted = this.view.get(dedupeOrderKey(evictedSeq));
      if (evicted !== undefined) {
        ops.push({ type: 'del', key: dedupeOrderKey(evictedSeq) }, { type: 'del', key: dedupeKey(fromUtf8(evicted)) });
      }
    }
    return ops;
  }

  /** Called once the batch holding record()'s ops is written. */
  recorded(): void {
    this.nextSeq += 1;
  }
}
