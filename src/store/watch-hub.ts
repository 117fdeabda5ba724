// The watch hub: live fan-out of applied revisions plus catch-up from history.
//
// The store calls publish(revision, events) for each entry that changed something, with all events of that
// revision together, in revision order, once the write of the batch holding it is issued (one batch per apply()
// call, so several revisions are usually written at once and then published one after the other, with no await
// between them; the store's reads, catch-up's included, wait for that write to land). A watch without fromRevision (or from the future) is live
// at once. A watch from a past revision first replays history, like etcd's unsynced watchers: it reads the
// changes after its lastRevision from a LevelDB snapshot, only as much as its buffer can take, and repeats.
// Between two awaits nothing else runs, so the switch to live happens in the same tick as the check that the
// replay reached the published revision:
//
//   published = 7, watcher replayed through 6   -> not caught up: read 7.. again
//   snapshot saw 8 (written, not yet published) -> replayed through 8 >= published 7: go live now; publish(8)
//                                                  arrives later and is skipped (8 <= lastRevision)
//   publish(9)                                  -> 9 > lastRevision: delivered live
//
// So no revision is missed or delivered twice at the seam, and no live events pile up during a replay (the
// replay is paced by the consumer, live delivery is bounded by the watcher's buffer).
//
// The store publishes a whole apply batch inside publishBatch(): a watcher consumed synchronously (listen(), the
// watch route) is told once, at the end of the batch, so it writes all the batch's revisions in one socket write,
// and before the batch's proposers are answered.
import type { Logger } from '../util/logger.js';
import { silentLogger } from '../util/logger.js';
import { assert } from '../util/assert.js';
import { traceMark } from '../util/latency-trace.js';
import { KeelError, isKeelError } from '../util/errors.js';
import type { StoreEvent } from './commands.js';
import { checkCount, checkKey } from './commands.js';
import type { Bytes, KeyRange } from './keys.js';
import { inRange, isSingleKeyRange, utf8 } from './keys.js';
import type { ChangeGroup } from './mvcc.js';
import { keyRange, type RangeRequest } from './range.js';
import { Watcher } from './watcher.js';

/** What to watch: the same key, prefix or [key, rangeEnd) selection as a range read. */
export interface WatchRequest extends Pick<RangeRequest, 'key' | 'prefix' | 'rangeEnd'> {
  /** Replay from this revision (inclusive); absent or 0 = only changes after the current revision. */
  readonly fromRevision?: number | undefined;
  /** Attach the previous version of each key to its events. */
  readonly prevKv?: boolean | undefined;
}

/** What catch-up needs from the store: a consistent read of history (one LevelDB snapshot per call). */
export interface HistorySource {
  readChanges(
    from: number,
    range: KeyRange,
    bounds: { eventsMax: number; recordsMax: number; withPrevKv: boolean },
  ): Promise<{ compactRevision: number; groups: ChangeGroup[]; scannedThrough: number }>;
}

export interface WatchHubOptions {
  /** Undelivered events one watcher may hold (see watcher.ts). */
  readonly watchBufferMax?: number;
  readonly watchersMax?: number;
  /** History records read per catch-up round, so one round never holds a snapshot or the loop for long. */
  readonly catchUpRecordsMax?: number;
  readonly logger?: Logger;
}

export const watchHubDefaults = { watchBufferMax: 1_000, watchersMax: 10_000, catchUpRecordsMax: 10_000 } as const;

export class WatchHub {
  private published: number;
  private nextId = 1;
  private readonly all = new Set<Watcher>();
  /** Live single-key watchers by key; live range and prefix watchers in `ranged`. */
  private readonly exact = new Map<string, Set<Watcher>>();
  private readonly ranged = new Set<Watcher>();
  private readonly catchUps = new Set<Promise<void>>();
  /** Inside publishBatch(): the watchers offered something, told at the end of the batch. */
  private batching = false;
  private readonly offered = new Set<Watcher>();
  private readonly bufferMax: number;
  private readonly watchersMax: number;
  private readonly recordsMax: number;
  private readonly logger: Logger;

  constructor(
    private readonly history: HistorySource,
    publishedRevision: number,
    options: WatchHubOptions = {},
  ) {
    this.published = publishedRevision;
    this.bufferMax = options.watchBufferMax ?? watchHubDefaults.watchBufferMax;
    this.watchersMax = options.watchersMax ?? watchHubDefaults.watchersMax;
    this.recordsMax = options.catchUpRecordsMax ?? watchHubDefaults.catchUpRecordsMax;
    this.logger = options.logger ?? silentLogger;
    assert(this.bufferMax >= 1 && this.watchersMax >= 1 && this.recordsMax >= 1, 'watch hub bounds must be positive');
  }

  /** The last revision published; a new watch without fromRevision starts after it. */
  get publishedRevision(): number {
    return this.published;
  }

  /** Open watchers (catching up or live). */
  size(): number {
    return this.all.size;
  }

  /** Opens a watch; throws KeelError INVALID_ARGUMENT for a bad request, UNAVAILABLE when at watchersMax. */
  watch(req: WatchRequest): Watcher {
    const prefix = req.prefix ?? false;
    if (prefix && req.rangeEnd !== undefined) throw new KeelError('INVALID_ARGUMENT', 'prefix and rangeEnd are exclusive');
    const key = checkKey(req.key, 'key', prefix || req.rangeEnd !== undefined);
    if (req.rangeEnd !== undefined && req.rangeEnd !== '\u0000') checkKey(req.rangeEnd, 'rangeEnd');
    const fromRevision = checkCount(req.fromRevision ?? 0, 'fromRevision');
    if (this.all.size >= this.watchersMax) {
      throw new KeelError('UNAVAILABLE', `this node already serves ${this.watchersMax} watchers`);
    }
    const isReplay = fromRevision > 0 && fromRevision <= this.published;
    const start = fromRevision > 0 ? fromRevision - 1 : this.published;
    const range = keyRange(key, prefix, req.rangeEnd);
    const watcher = new Watcher(this.nextId++, range, req.prevKv ?? false, start, this.bufferMax, (w) => this.forget(w));
    this.all.add(watcher);
    if (isReplay) this.startCatchUp(watcher);
    else this.goLive(watcher);
    return watcher;
  }

  /**
   * Runs `publishAll` (which publishes revisions) with the watchers' notifications held until it returns: each
   * watcher that got anything is then notified once (Watcher.notify), even if `publishAll` throws.
   */
  publishBatch(publishAll: () => void): void {
    assert(!this.batching, 'publish batches do not nest');
    this.batching = true;
    try {
      publishAll();
    } finally {
      this.batching = false;
      if (this.offered.size > 0) {
        const offered = [...this.offered];
        this.offered.clear();
        for (const watcher of offered) watcher.notify();
      }
    }
  }

  /** Delivers one applied revision to the live watchers; events carry prevKv, stripped for those not asking. */
  publish(revision: number, events: readonly StoreEvent[]): void {
    assert(revision > this.published, `published revisions strictly increase (${revision} after ${this.published})`);
    this.published = revision;
    if (this.all.size === 0) return;
    traceMark('watch.publish');
    const matched = new Map<Watcher, StoreEvent[]>();
    const add = (watcher: Watcher, event: StoreEvent): void => {
      const list = matched.get(watcher);
      if (list === undefined) matched.set(watcher, [event]);
      else list.push(event);
    };
    for (const event of events) {
      for (const watcher of this.exact.get(event.kv.key) ?? []) add(watcher, event);
      if (this.ranged.size === 0) continue;
      const key: Bytes = utf8(event.kv.key);
      for (const watcher of this.ranged) if (inRange(watcher.range, key)) add(watcher, event);
    }
    for (const [watcher, list] of matched) {
      watcher.offer(revision, watcher.withPrevKv ? list : list.map(withoutPrevKv), !this.batching);
      if (this.batching) this.offered.add(watcher);
    }
  }

  /** Ends every watcher with `err` (store closing, or restored from a snapshot: revisions jumped). */
  endAll(err: KeelError): void {
    for (const watcher of [...this.all]) watcher.end(err, false);
  }

  /** Moves the published revision after a snapshot restore (watchers were ended first). */
  resetPublished(revision: number): void {
    assert(this.all.size === 0, 'reset the hub only without watchers');
    this.published = revision;
  }

  async close(): Promise<void> {
    this.endAll(new KeelError('UNAVAILABLE', 'the store is closing'));
    await Promise.all([...this.catchUps]);
  }

  private goLive(watcher: Watcher): void {
    watcher.goLive();
    if (isSingleKeyRange(watcher.range)) {
      const key = Buffer.from(watcher.range.start).toString('utf8');
      const set = this.exact.get(key) ?? new Set<Watcher>();
      set.add(watcher);
      this.exact.set(key, set);
    } else {
      this.ranged.add(watcher);
    }
  }

  private forget(watcher: Watcher): void {
    this.all.delete(watcher);
    this.ranged.delete(watcher);
    const key = Buffer.from(watcher.range.start).toString('utf8');
    const set = this.exact.get(key);
    if (set?.delete(watcher) === true && set.size === 0) this.exact.delete(key);
  }

  private startCatchUp(watcher: Watcher): void {
    const task = this.catchUp(watcher).catch((err: unknown) => {
      // The consumer learns of the failure through its iterator. A KeelError is an expected condition (the
      // store is closing or restoring); anything else is a fault the operator must see in the log too.
      if (!isKeelError(err)) this.logger.error({ err, watcher: watcher.id }, 'watch catch-up failed');
      watcher.end(err instanceof Error ? err : new Error(String(err)), false);
    });
    this.catchUps.add(task);
    void task.finally(() => this.catchUps.delete(task));
  }

  private async catchUp(watcher: Watcher): Promise<void> {
    while (true) {
      await watcher.waitForSpace();
      if (watcher.isEnded) return;
      const from = watcher.lastRevision + 1;
      const bounds = { eventsMax: watcher.freeEvents, recordsMax: this.recordsMax, withPrevKv: watcher.withPrevKv };
      const read = await this.history.readChanges(from, watcher.range, bounds);
      if (watcher.isEnded) return;
      if (from < read.compactRevision) {
        watcher.compacted(read.compactRevision);
        return;
      }
      const messages = read.groups.map((g) => ({ type: 'events', revision: g.revision, events: g.events }) as const);
      watcher.appendHistory(messages, read.scannedThrough);
      // No await between this check and goLive: see the worked example at the top of the file.
      if (watcher.lastRevision >= this.published) {
        this.goLive(watcher);
        return;
      }
    }
  }
}

function withoutPrevKv(event: StoreEvent): StoreEvent {
  if (event.prevKv === undefined) return event;
  const { prevKv: _dropped, ...rest } = event;
  return rest;
}
