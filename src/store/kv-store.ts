// KvStore: the replicated state machine. Raft's driver feeds it committed entries through apply(); the API reads
// from it directly (after ReadIndex, or serializable) and watches it through the hub.
//
// Apply is deterministic: it reads no clock and no randomness, only the entries and the state. One apply() call
// (all the committed entries of one Raft Ready) makes ONE LevelDB batch: every entry's changes and dedupe record,
// then the final `appliedIndex`, `revision` and `keyCount` (see apply-batch.ts; later entries read the earlier
// ones' writes through it). One write per call instead of one per entry: a thread-pool round trip is ~55 µs,
// which capped apply at ~7,000 entries/s and held up the driver's loop (heartbeats wait behind apply).
//
// Crash safety: a LevelDB batch is written atomically (one record of its write-ahead log: recovery replays it
// whole or drops it), so a crash leaves the store at the previous call's appliedIndex (Raft replays the entries)
// or at the call's last entry (replays skip them), never in between. The one exception is a compact entry: the
// compaction deletes history in bounded batches of its own, so the call's batch is written up to and including
// the compact entry first, the compaction runs (a crash in it is finished by open()), and the call goes on with a
// new batch. A crash then leaves the store at the compact entry, a state a call ending with it would have left
// too.
//
// Answers before the write lands: once a batch's write is prepared, the in-memory metadata moves, watchers get its
// revisions, the effects run and the driver answers the proposers (apply()'s `answer`), without waiting the
// ~0.2 ms the write takes; the write itself is handed to LevelDB right after the answers went out. Nothing a
// crash could undo is shown: the entries are committed in the Raft log, and replaying them rebuilds the very
// same revisions. Every read of the database first waits for the write in flight (settled()), so whoever saw an
// answer or an event reads its data; and the driver's applied index, which ReadIndex waits for, moves only once
// apply() returned, after the write landed.
//
// Batches are not synced by default: the Raft log is synced before entries commit, and replaying the tail after
// a crash rebuilds the same state (`syncWrites` trades throughput for not depending on that). A batch is bounded
// by what one Ready hands over (committedBytesMax in the Raft config).
//
// User-level failures (a failed precondition, a missing lease) are results, not exceptions: every node must
// reach the same outcome, record it for dedupe and move appliedIndex on. Exceptions out of apply() are bugs or
// I/O failures and stop the node.
import { createHash } from 'node:crypto';
import type { ConfChange, Entry, Snapshot, StateMachine } from '../raft/index.js';
import { assert, assertIndex } from '../util/assert.js';
import { KeelError, isKeelError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { silentLogger } from '../util/logger.js';
import type { CommandExtension, StoreHooks } from './apply-context.js';
import { ApplyContext } from './apply-context.js';
import { ApplyBatch } from './apply-batch.js';
import { readAppliedLog, recordApplied, type AppliedRecord } from './applied-log.js';
import type { ApplyResult, Command, CommandEnvelope, CompactCommand, KV, RangeResult } from './commands.js';
import { applyFailure, isApplyFailure } from './commands.js';
import { decodeCommand, pack } from './codec.js';
import { compactionBatchOpsDefault, runCompaction } from './compaction.js';
import { CurrentCache, currentCacheBytesDefault } from './current-cache.js';
import { DedupeTable, dedupeWindowDefault } from './dedupe.js';
import { executeCommand } from './execute.js';
import type { KeyRange } from './keys.js';
import { be8, familyRange, formatVersion, fromUtf8, memberIdOf, memberKey, metaKey } from './keys.js';
import type { ChangeGroup, DbSnapshot, StoreDb } from './mvcc.js';
import { ReadView } from './mvcc.js';
import { SharedReadSnapshot } from './read-snapshot.js';
import type { RangeRequest } from './range.js';
import { parseRangeRequest, readCurrentRange, readRangeAt } from './range.js';
import { decodeSnapshot, exportSnapshot, importSnapshot } from './snapshot.js';
import type { BackupHeader } from './backup.js';
import { backupChunks, backupHeader } from './backup.js';
import type { StoreState } from './open.js';
import { openDb, readState } from './open.js';
import type { WatchHubOptions, WatchRequest } from './watch-hub.js';
import { WatchHub } from './watch-hub.js';
import type { Watcher } from './watcher.js';
import { writeBatch } from '../util/level-batch.js';
import { traceMark } from '../util/latency-trace.js';

export interface KvStoreOptions extends WatchHubOptions {
  /** Request ids remembered for dedupe; replicated semantics: the same on every node. */
  readonly dedupeWindowMax?: number;
  /** History marks deleted per LevelDB batch during compaction. */
  readonly compactionBatchOpsMax?: number;
  /** fsync every apply batch, one per apply() call (default false, see the top of this file). */
  readonly syncWrites?: boolean;
  readonly hooks?: StoreHooks;
  readonly extensions?: readonly CommandExtension[];
  readonly logger?: Logger;
  /** Test-only: record every applied entry for GET /v1/debug/applied (applied-log.ts). Default false. */
  readonly recordApplied?: boolean;
  /** Bound of the recently written keys' current versions kept in memory (current-cache.ts); 0 keeps none. */
  readonly currentCacheBytes?: number;
}

/** A read's answer comes with the store revision it was served at (the API's X-Keel-Revision). */
export interface Revisioned {
  readonly revision: number;
}

export class KvStore implements StateMachine {
  /** The metadata as of the last batch whose write was issued (what a read of the database sees once it landed). */
  private state: StoreState;
  private phase: 'open' | 'applying' | 'restoring' | 'closed' = 'open';
  /** The apply write issued but not landed yet (write()); reads of the database wait for it. */
  private landing: Promise<void> | null = null;
  /** Settles (never rejects) when the apply() or restore() in progress ends; close() waits for it. */
  private work: Promise<void> = Promise.resolve();
  private readonly hub: WatchHub;
  private readonly dedupe: DedupeTable;
  private readonly currentCache: CurrentCache;
  private readonly extensions: ReadonlyMap<string, CommandExtension>;
  private readonly logger: Logger;
  /** The snapshot reads share until the next write (read-snapshot.ts). */
  private readonly reads: SharedReadSnapshot;

  private constructor(
    private readonly db: StoreDb,
    state: StoreState,
    private readonly options: KvStoreOptions,
  ) {
    this.state = state;
    this.logger = (options.logger ?? silentLogger).child({ component: 'store' });
    this.hub = new WatchHub({ readChanges: (...args) => this.readChanges(...args) }, state.revision, {
      ...options,
      logger: this.logger,
    });
    this.dedupe = new DedupeTable(db, options.dedupeWindowMax ?? dedupeWindowDefault);
    this.currentCache = new CurrentCache(options.currentCacheBytes ?? currentCacheBytesDefault);
    this.reads = new SharedReadSnapshot(db);
    const extensions = new Map<string, CommandExtension>();
    for (const extension of options.extensions ?? []) {
      assert(!extensions.has(extension.name), `two store extensions are named ${extension.name}`);
      extensions.set(extension.name, extension);
    }
    this.extensions = extensions;
  }

  /** Opens (or creates) the store in `dir`, finishing a compaction or discarding a restore a crash interrupted. */
  static async open(dir: string, options: KvStoreOptions = {}): Promise<KvStore> {
    const logger = options.logger ?? silentLogger;
    const { db, state } = await openDb(dir, {
      logger,
      compactionBatchOpsMax: options.compactionBatchOpsMax ?? compactionBatchOpsDefault,
    });
    const store = new KvStore(db, state, options);
    try {
      await store.dedupe.prune(state.dedupeSeq);
    } catch (err) {
      await db.close();
      throw err;
    }
    return store;
  }

  // The getters answer the written state: during an apply() call they move only when its batch is written.

  appliedIndex(): number {
    return this.state.appliedIndex;
  }

  revision(): number {
    return this.state.revision;
  }

  compactRevision(): number {
    return this.state.compactRevision;
  }

  /** Live keys at the applied revision. */
  keyCount(): number {
    return this.state.keyCount;
  }

  /** Applies the entries into one batch and writes it (two or more around a compact entry: see the top). */
  async apply(
    entries: readonly Entry[],
    answer?: (results: readonly (ApplyResult | undefined)[]) => void,
  ): Promise<readonly (ApplyResult | undefined)[]> {
    return this.exclusive('applying', async () => {
      const results: (ApplyResult | undefined)[] = [];
      let batch = this.newBatch();
      for (const entry of entries) {
        const fresh = entry.index > batch.state('appliedIndex');
        results.push(await this.applyEntry(entry, batch));
        if (fresh && this.options.recordApplied === true) recordApplied(batch, entry);
        if (batch.compactTo === null) continue;
        await this.write(batch);
        await this.compactNow(batch.compactTo);
        batch = this.newBatch();
      }
      await this.write(batch, () => answer?.(results));
      return results;
    });
  }

  private newBatch(): ApplyBatch {
    return new ApplyBatch(
      new ReadView(this.db, null),
      this.state,
      (revision, events) => this.hub.publish(revision, events),
      this.currentCache,
    );
  }

  /**
   * Writes the batch. Once the write is prepared (before it lands) the in-memory metadata moves, watchers get the
   * batch's revisions, the entries' effects run and `beforeLanding` answers the proposers: the entries are
   * committed, so a crash before the write lands replays them to exactly this state (the write is not even
   * synced by default: see the top). Everything that reads the database waits for the write in flight
   * (settled()), so a reader that saw an answer or an event also sees its data.
   */
  private async write(batch: ApplyBatch, beforeLanding?: () => void): Promise<void> {
    if (batch.isEmpty) {
      beforeLanding?.();
      return;
    }
    const { ops, state } = batch.finish();
    traceMark('store.write');
    // Issued once the promise jobs queued now have run: the answers (resolved just below) go out first, and the
    // hand-off of the write to LevelDB's thread is not in front of them. Reads wait for `landing` meanwhile.
    const landing = new Promise<void>((resolve) => process.nextTick(resolve))
      .then(() => writeBatch(this.db, ops, this.options.syncWrites ?? false))
      .then(() => this.reads.invalidate());
    this.landing = landing.then(
      () => undefined,
      (err: unknown) => {
        throw new KeelError('UNAVAILABLE', 'the store failed to write applied entries', {}, { cause: err });
      },
    );
    this.landing.catch(() => undefined); // readers get the error; the apply caller gets the original below
    this.state = state;
    // Watch streams write the batch's events in here, before the answers (watch-hub.ts).
    this.hub.publishBatch(() => batch.afterWrite());
    beforeLanding?.();
    try {
      await landing;
      batch.landed();
      traceMark('store.written');
    } catch (err) {
      this.currentCache.clear();
      throw err;
    } finally {
      this.landing = null;
    }
  }

  /** Settles when the apply write in flight (if any) has landed; rejects (UNAVAILABLE) if it failed. */
  private async settled(): Promise<void> {
    if (this.landing !== null) await this.landing;
  }

  /**
   * Runs apply or restore alone. The driver calls them from one loop, so an overlap is a bug, not something
   * to queue; close() waits for the one in progress.
   */
  private async exclusive<T>(phase: 'applying' | 'restoring', run: () => Promise<T>): Promise<T> {
    assert(this.phase === 'open', `${phase} while the store is ${this.phase}`);
    this.phase = phase;
    const done = run();
    this.work = done.then(
      () => undefined,
      () => undefined, // the caller of apply()/restore() gets the error; close() only waits for the end
    );
    try {
      return await done;
    } finally {
      if (this.phase === phase) this.phase = 'open';
    }
  }

  /** Applies one entry into the batch (the entry's appliedIndex included). */
  private async applyEntry(entry: Entry, batch: ApplyBatch): Promise<ApplyResult | undefined> {
    assertIndex(entry.index, 'entry index');
    const applied = batch.state('appliedIndex');
    if (entry.index <= applied) return undefined;
    assert(entry.index === applied + 1, `entry ${entry.index} applied after ${applied}: a gap`);
    batch.setState('appliedIndex', entry.index);
    if (entry.type === 'conf') {
      recordMemberContext(entry.change, batch);
      return undefined;
    }
    if (entry.data.byteLength === 0) return undefined;
    let envelope: CommandEnvelope;
    try {
      envelope = decodeCommand(entry.data);
    } catch (err) {
      if (!isKeelError(err)) throw err;
      // Every node decodes the same bytes the same way, so refusing the entry is deterministic.
      this.logger.warn({ index: entry.index, err }, 'committed entry is not a valid command; answered as a failure');
      return applyFailure(batch.state('revision'), err);
    }
    return this.applyCommand(envelope, batch);
  }

  /** Dedupe, the guard, execute, then the changes (unless refused) and the dedupe record into the batch. */
  private async applyCommand(envelope: CommandEnvelope, batch: ApplyBatch): Promise<ApplyResult> {
    const { requestId, cmd, guard } = envelope;
    const seen = requestId === '' ? undefined : this.dedupe.lookup(requestId, batch);
    if (seen !== undefined) return seen.result as ApplyResult;
    const ctx = new ApplyContext(batch, this.options.hooks ?? {});
    if (guard !== undefined) {
      const changed = await ctx.get(guard.key);
      if (changed !== null && changed.modRevision > guard.revision) {
        // Not recorded under the request id: a retry is checked again against the newer state.
        const why = `${guard.key} changed at revision ${changed.modRevision}, after the request was checked (at ${guard.revision}): retry`;
        return applyFailure(batch.state('revision'), new KeelError('UNAVAILABLE', why));
      }
    }
    const result = await this.execute(cmd, ctx, batch);
    if (!isApplyFailure(result)) ctx.commit();
    if (requestId !== '') this.dedupe.record(requestId, result, batch);
    return result;
  }

  private async execute(cmd: Command, ctx: ApplyContext, batch: ApplyBatch): Promise<ApplyResult> {
    try {
      if (cmd.kind === 'compact') return this.prepareCompact(cmd, batch);
      return await executeCommand(cmd, ctx, this.extensions);
    } catch (err) {
      if (!isKeelError(err)) throw err;
      return applyFailure(batch.state('revision'), err);
    }
  }

  /**
   * Checks a compact and sets compactRevision (its semantic effect, atomic with appliedIndex) and compactPending
   * in the batch; apply() then writes the batch and runs the physical deletion before the next entry.
   */
  private prepareCompact(cmd: CompactCommand, batch: ApplyBatch): ApplyResult {
    const [revision, compactRevision] = [batch.state('revision'), batch.state('compactRevision')];
    if (cmd.revision > revision) {
      throw new KeelError('INVALID_ARGUMENT', `compact revision ${cmd.revision} is a future revision`, {});
    }
    if (cmd.revision <= compactRevision) {
      throw new KeelError('COMPACTED', `revision ${cmd.revision} is already compacted`, { compactRevision });
    }
    batch.setState('compactRevision', cmd.revision);
    batch.write({ type: 'put', key: metaKey('compactPending'), value: be8(cmd.revision) });
    batch.compactTo = cmd.revision;
    return { revision, compactRevision: cmd.revision };
  }

  private async compactNow(revision: number): Promise<void> {
    await runCompaction(this.db, revision, {
      batchOpsMax: this.options.compactionBatchOpsMax ?? compactionBatchOpsDefault,
      sync: this.options.syncWrites ?? false,
      logger: this.logger,
    });
    await this.reads.invalidate();
  }

  // ---- reads (not through the log: the API calls them after ReadIndex, or directly for serializable reads)

  /**
   * Runs `read` on a LevelDB snapshot, so metadata and data belong to the same applied state: the snapshot the
   * reads since the last write share (read-snapshot.ts), or with `own` a new one (a Raft snapshot export must
   * hold exactly the state of the moment it is called).
   */
  private async withReadView<T>(read: (view: ReadView, snapshot: DbSnapshot) => Promise<T>, own = false): Promise<T> {
    if (this.phase === 'restoring' || this.phase === 'closed') {
      throw new KeelError('UNAVAILABLE', `the store is ${this.phase}`);
    }
    if (own) {
      // Not after settled(): the image is of this moment (the driver calls it between applies, nothing in flight).
      const snapshot: DbSnapshot = this.db.snapshot();
      try {
        return await read(new ReadView(this.db, snapshot), snapshot);
      } finally {
        await snapshot.close();
      }
    }
    await this.settled();
    const held = this.reads.acquire();
    try {
      return await read(held.view, held.snapshot);
    } finally {
      await this.reads.release(held);
    }
  }

  /** Resolves the revision a read asks for (0 = current) against the view's revision and compactRevision. */
  private readPoint(view: ReadView, requested: number): { current: number; target: number } {
    const [current, compactRevision] = [view.meta('revision'), view.meta('compactRevision')];
    if (requested > current) {
      throw new KeelError('INVALID_ARGUMENT', `revision ${requested} is a future revision (current ${current})`, {
        revision: current,
      });
    }
    if (requested > 0 && requested < compactRevision) {
      throw new KeelError('COMPACTED', `revision ${requested} is compacted`, { compactRevision });
    }
    return { current, target: requested === 0 ? current : requested };
  }

  /** One key, now or at a past revision; kv null when it does not exist (the API answers 404). */
  async get(key: string, options: { revision?: number | undefined } = {}): Promise<Revisioned & { kv: KV | null }> {
    const { range, revision } = parseRangeRequest({ key, ...options });
    return this.withReadView(async (view) => {
      const { current, target } = this.readPoint(view, revision);
      const kv = target === current ? view.current(range.start) : await view.at(range.start, target);
      return { kv, revision: current };
    });
  }

  /** A range with etcd's options (see RangeRequest); throws KeelError INVALID_ARGUMENT or COMPACTED. */
  async range(request: RangeRequest): Promise<Revisioned & RangeResult> {
    const { range, revision, shape } = parseRangeRequest(request);
    return this.withReadView(async (view) => {
      const { current, target } = this.readPoint(view, revision);
      const result =
        target === current
          ? await readCurrentRange(view, range, shape)
          : await readRangeAt(view, range, target, shape);
      return { ...result, revision: current };
    });
  }

  /** Live keys attached to a lease, in key order. */
  async leaseKeys(lease: number): Promise<Revisioned & { keys: string[] }> {
    assertIndex(lease, 'lease');
    return this.withReadView(async (view) => ({
      keys: (await view.leaseKeys(lease)).map(fromUtf8),
      revision: view.meta('revision'),
    }));
  }

  /**
   * sha256 (hex) over the live keys at `revision` (default: current), in key order, with every field: equal on
   * every node that applied the same entries. For tests and diagnostics.
   */
  async stateHash(revision = 0): Promise<string> {
    return this.withReadView(async (view) => {
      const { current, target } = this.readPoint(view, revision);
      const all: KeyRange = { start: new Uint8Array(0), end: null };
      const kvs =
        target === current
          ? await view.currentRange(all, 0, false)
          : await view.load(await view.pointersAt(all, target));
      const hash = createHash('sha256').update(be8(target));
      for (const kv of kvs) {
        const record = pack([kv.key, kv.value, kv.createRevision, kv.modRevision, kv.version, kv.lease]);
        hash.update(be8(record.byteLength)).update(record);
      }
      return hash.digest('hex');
    });
  }

  /** The test-only applied-entries log (empty unless `recordApplied`): see applied-log.ts. */
  async appliedLog(fromIndex: number, limit: number): Promise<AppliedRecord[]> {
    if (this.options.recordApplied !== true) return [];
    await this.settled();
    return readAppliedLog(this.db, fromIndex, limit);
  }

  get recordsApplied(): boolean {
    return this.options.recordApplied === true;
  }

  /** The member contexts applied conf changes recorded, by member id ('' = the bootstrap entry's). */
  async memberContexts(): Promise<[string, Uint8Array][]> {
    const out: [string, Uint8Array][] = [];
    await this.settled();
    for await (const [key, value] of this.db.iterator(familyRange('member'))) out.push([memberIdOf(key), value]);
    return out;
  }

  // ---- watch

  /** Opens a watch (see watch-hub.ts and watcher.ts); throws KeelError INVALID_ARGUMENT or UNAVAILABLE. */
  watch(request: WatchRequest): Watcher {
    if (this.phase === 'restoring' || this.phase === 'closed') {
      throw new KeelError('UNAVAILABLE', `the store is ${this.phase}`);
    }
    return this.hub.watch(request);
  }

  /** A read-only view of the hub, for status and metrics. */
  get watchHub(): Pick<WatchHub, 'size' | 'publishedRevision'> {
    return this.hub;
  }

  private async readChanges(
    from: number,
    range: KeyRange,
    bounds: { eventsMax: number; recordsMax: number; withPrevKv: boolean },
  ): Promise<{ compactRevision: number; groups: ChangeGroup[]; scannedThrough: number }> {
    return this.withReadView(async (view) => {
      const [revision, compactRevision] = [view.meta('revision'), view.meta('compactRevision')];
      if (from < compactRevision) return { compactRevision, groups: [], scannedThrough: from - 1 };
      return { compactRevision, ...(await view.changes(from, revision, range, bounds)) };
    });
  }

  // ---- snapshots

  async snapshot(): Promise<Uint8Array> {
    return (await this.snapshotWithIndex()).data;
  }

  /** The snapshot and the appliedIndex it holds (safe to call while entries are being applied). */
  async snapshotWithIndex(): Promise<{ index: number; data: Uint8Array }> {
    return this.withReadView((_view, snapshot) => exportSnapshot(this.db, snapshot), true);
  }

  /**
   * Makes every write that landed so far durable, for the driver's snapshots without data (the store then stands
   * for the compacted log). A synced write alone would not do: it fsyncs only LevelDB's current write-ahead log
   * file, and LevelDB switches to a new one whenever its memtable fills without syncing the old one, so writes
   * still in the old file could be lost while later ones survive. compactRange() first flushes the memtable to a
   * table file and waits for it: the table file and the manifest naming it are fsynced, and the old write-ahead
   * logs are no longer needed. The range given lies past every key family (keys.ts), so no level is compacted.
   * compactRange() reports no error; the synced write after it fails if LevelDB stopped on a background error.
   *
   * Returns false, doing nothing, while a defrag runs: LevelDB runs one manual compaction at a time, so this one
   * would wait behind the defrag's (minutes on a big store), and the driver's snapshot with it. A defrag asked for
   * meanwhile starts once this returned.
   */
  async persist(): Promise<boolean> {
    if (this.phase === 'closed') throw new KeelError('UNAVAILABLE', 'the store is closed');
    if (this.defragging !== null) return false;
    const flushing = (async () => {
      await this.db.compactRange(Uint8Array.of(0xfe), Uint8Array.of(0xff));
      await writeBatch(this.db, [{ type: 'put', key: metaKey('format'), value: be8(formatVersion) }], true);
    })();
    const settled = flushing.then(
      () => undefined,
      () => undefined, // the caller gets the error; a defrag waiting for this only needs the end
    );
    this.persisting = settled;
    try {
      await flushing;
    } finally {
      if (this.persisting === settled) this.persisting = null;
    }
    return true;
  }

  async restore(snapshot: Snapshot): Promise<void> {
    const decoded = decodeSnapshot(snapshot.data);
    const index = snapshot.metadata.index;
    assertIndex(index, 'snapshot index');
    assert(
      snapshot.data.byteLength === 0 || decoded.appliedIndex === index,
      `snapshot data holds appliedIndex ${decoded.appliedIndex}, its metadata says ${index}`,
    );
    await this.exclusive('restoring', async () => {
      // Revisions jump: a live watcher would silently miss the gap, so every watcher ends and reconnects
      // (with fromRevision it catches up from the restored history).
      this.hub.endAll(new KeelError('UNAVAILABLE', 'the store was restored from a snapshot; reconnect'));
      // Reads are refused while restoring, so the shared read snapshot stays dropped until the import is done.
      await this.reads.invalidate();
      // The import replaces every k/ record (nothing reads the cache meanwhile: apply waits for the restore).
      try {
        await importSnapshot(this.db, decoded, index);
      } finally {
        this.currentCache.clear();
      }
      const view = new ReadView(this.db, null);
      this.state = readState(view);
      assert(this.state.appliedIndex === index, 'the restored appliedIndex is the snapshot index');
      if (view.hasMeta('compactPending')) await this.compactNow(this.state.compactRevision);
      await this.dedupe.prune(this.state.dedupeSeq);
      this.hub.resetPublished(this.state.revision);
      this.logger.info({ index, revision: this.state.revision }, 'restored from a snapshot');
    });
  }

  // ---- operations (backup.ts): backups and online LevelDB compaction

  /**
   * A point-in-time backup of the whole database, taken now (one LevelDB snapshot) and produced chunk by chunk
   * as the consumer reads `chunks`; apply goes on meanwhile. The consumer must run `chunks` to its end or call
   * its return() (that releases the snapshot).
   */
  async openBackup(cluster: string): Promise<{ header: BackupHeader; chunks: AsyncGenerator<Buffer> }> {
    await this.settled();
    if (this.phase === 'restoring' || this.phase === 'closed') {
      throw new KeelError('UNAVAILABLE', `the store is ${this.phase}`);
    }
    const snapshot: DbSnapshot = this.db.snapshot();
    const header = backupHeader(this.db, snapshot, cluster);
    return { header, chunks: backupChunks(this.db, snapshot, header) };
  }

  private defragging: Promise<void> | null = null;
  /** The persist() in flight (never rejects), or null: a defrag starts after it. */
  private persisting: Promise<void> | null = null;

  /**
   * Compacts the whole LevelDB keyspace (flushes the memtable, merges levels, drops deleted and overwritten
   * records), giving back the disk space that deletes and history compaction freed. It runs on LevelDB's own
   * threads: reads and writes go on meanwhile. A call while one runs joins it.
   */
  async defrag(): Promise<void> {
    if (this.phase === 'closed') throw new KeelError('UNAVAILABLE', 'the store is closed');
    this.defragging ??= (async () => {
      // After a persist() in flight, whose flush must not queue behind this compaction (see persist()).
      await this.persisting;
      await this.db.compactRange(Uint8Array.of(0x00), Uint8Array.of(0xff, 0xff, 0xff, 0xff));
    })().finally(() => {
      this.defragging = null;
    });
    return this.defragging;
  }

  /** Waits for an apply or restore in progress, ends every watcher and releases the database. */
  async close(): Promise<void> {
    if (this.phase === 'closed') return;
    const work = this.work;
    this.phase = 'closed';
    await work;
    await this.hub.close();
    await this.reads.invalidate();
    await this.db.close();
  }
}

/** A conf change's context (opaque here: the node layer keeps member addresses in it) goes into the snapshot. */
function recordMemberContext(change: ConfChange, batch: ApplyBatch): void {
  if (change.type === 'remove') batch.write({ type: 'del', key: memberKey(change.id) });
  else if (change.context !== undefined) {
    batch.write({ type: 'put', key: memberKey(change.type === 'init' ? '' : change.id), value: change.context });
  }
}
