// KvStore: the replicated state machine. Raft's driver feeds it committed entries through apply(); the API reads
// from it directly (after ReadIndex, or serializable) and watches it through the hub.
//
// Apply is deterministic: it reads no clock and no randomness, only the entry and the state, and each entry's
// changes, the dedupe record, `revision` and `appliedIndex` go into ONE LevelDB batch. A crash before the batch
// leaves the entry unapplied (Raft replays it); after, it is applied exactly once (replays skip it). The batch
// is not synced by default: the Raft log is synced before entries commit, and replaying the tail after a crash
// rebuilds the same state (`syncWrites` trades throughput for not depending on that).
//
// User-level failures (a failed precondition, a missing lease) are results, not exceptions: every node must
// reach the same outcome, record it for dedupe and move appliedIndex on. Exceptions out of apply() are bugs or
// I/O failures and stop the node.
import { createHash } from 'node:crypto';
import type { Entry, Snapshot, StateMachine } from '../raft/index.js';
import { assert, assertIndex } from '../util/assert.js';
import { KeelError, isKeelError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { silentLogger } from '../util/logger.js';
import type { BatchOp, CommandExtension, StoreHooks } from './apply-context.js';
import { ApplyContext } from './apply-context.js';
import type { ApplyResult, Command, CommandEnvelope, CompactCommand, KV, RangeResult } from './commands.js';
import { applyFailure, isApplyFailure } from './commands.js';
import { decodeCommand, pack } from './codec.js';
import { compactionBatchOpsDefault, runCompaction } from './compaction.js';
import { DedupeTable, dedupeWindowDefault } from './dedupe.js';
import { executeCommand } from './execute.js';
import type { KeyRange } from './keys.js';
import { be8, fromUtf8, metaKey } from './keys.js';
import type { ChangeGroup, DbSnapshot, StoreDb } from './mvcc.js';
import { ReadView } from './mvcc.js';
import type { RangeRequest } from './range.js';
import { parseRangeRequest, readCurrentRange, readRangeAt } from './range.js';
import { decodeSnapshot, exportSnapshot, importSnapshot } from './snapshot.js';
import type { StoreState } from './open.js';
import { openDb } from './open.js';
import type { WatchHubOptions, WatchRequest } from './watch-hub.js';
import { WatchHub } from './watch-hub.js';
import type { Watcher } from './watcher.js';

export interface KvStoreOptions extends WatchHubOptions {
  /** Request ids remembered for dedupe; replicated semantics: the same on every node. */
  readonly dedupeWindowMax?: number;
  /** History marks deleted per LevelDB batch during compaction. */
  readonly compactionBatchOpsMax?: number;
  /** fsync every apply batch (default false, see the top of this file). */
  readonly syncWrites?: boolean;
  readonly hooks?: StoreHooks;
  readonly extensions?: readonly CommandExtension[];
  readonly logger?: Logger;
}

/** A read's answer comes with the store revision it was served at (the API's X-Keel-Revision). */
export interface Revisioned {
  readonly revision: number;
}

export class KvStore implements StateMachine {
  private applied: number;
  private rev: number;
  private compactRev: number;
  private keys: number;
  private phase: 'open' | 'applying' | 'restoring' | 'closed' = 'open';
  /** Settles (never rejects) when the apply() or restore() in progress ends; close() waits for it. */
  private work: Promise<void> = Promise.resolve();
  private readonly hub: WatchHub;
  private readonly dedupe: DedupeTable;
  private readonly extensions: ReadonlyMap<string, CommandExtension>;
  private readonly logger: Logger;

  private constructor(
    private readonly db: StoreDb,
    state: StoreState,
    private readonly options: KvStoreOptions,
  ) {
    this.applied = state.appliedIndex;
    this.rev = state.revision;
    this.compactRev = state.compactRevision;
    this.keys = state.keyCount;
    this.logger = (options.logger ?? silentLogger).child({ component: 'store' });
    this.hub = new WatchHub({ readChanges: (...args) => this.readChanges(...args) }, this.rev, {
      ...options,
      logger: this.logger,
    });
    this.dedupe = new DedupeTable(db, options.dedupeWindowMax ?? dedupeWindowDefault);
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
      await store.dedupe.load();
    } catch (err) {
      await db.close();
      throw err;
    }
    return store;
  }

  appliedIndex(): number {
    return this.applied;
  }

  revision(): number {
    return this.rev;
  }

  compactRevision(): number {
    return this.compactRev;
  }

  /** Live keys at the applied revision. */
  keyCount(): number {
    return this.keys;
  }

  async apply(entries: readonly Entry[]): Promise<readonly (ApplyResult | undefined)[]> {
    return this.exclusive('applying', async () => {
      const results: (ApplyResult | undefined)[] = [];
      for (const entry of entries) results.push(await this.applyEntry(entry));
      return results;
    });
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

  private async applyEntry(entry: Entry): Promise<ApplyResult | undefined> {
    assertIndex(entry.index, 'entry index');
    if (entry.index <= this.applied) return undefined;
    assert(entry.index === this.applied + 1, `entry ${entry.index} applied after ${this.applied}: a gap`);
    if (entry.type === 'conf' || entry.data.byteLength === 0) {
      await this.commit(entry.index, [], null);
      return undefined;
    }
    let envelope: CommandEnvelope;
    try {
      envelope = decodeCommand(entry.data);
    } catch (err) {
      if (!isKeelError(err)) throw err;
      // Every node decodes the same bytes the same way, so refusing the entry is deterministic.
      this.logger.warn({ index: entry.index, err }, 'committed entry is not a valid command; answered as a failure');
      await this.commit(entry.index, [], null);
      return applyFailure(this.rev, err);
    }
    return this.applyCommand(entry.index, envelope);
  }

  /** Dedupe, execute, then one batch with the changes, the dedupe record, revision and appliedIndex. */
  private async applyCommand(index: number, envelope: CommandEnvelope): Promise<ApplyResult> {
    const { requestId, cmd } = envelope;
    const seen = requestId === '' ? undefined : this.dedupe.lookup(requestId);
    if (seen !== undefined) {
      await this.commit(index, [], null);
      return seen.result as ApplyResult;
    }
    const ctx = new ApplyContext(new ReadView(this.db, null), this.rev, this.options.hooks ?? {});
    const result = await this.execute(cmd, ctx);
    const failed = isApplyFailure(result);
    const ops = failed ? [] : [...ctx.ops];
    if (requestId !== '') ops.push(...this.dedupe.record(requestId, result));
    const changed = !failed && ctx.hasChanges;
    await this.commit(index, ops, changed ? { revision: ctx.revision, keyCount: this.keys + ctx.keyDelta } : null);
    if (requestId !== '') this.dedupe.recorded();
    if (changed) this.hub.publish(ctx.revision, ctx.events);
    if (!failed && cmd.kind === 'compact') await this.compactNow(cmd.revision);
    return result;
  }

  private async execute(cmd: Command, ctx: ApplyContext): Promise<ApplyResult> {
    try {
      if (cmd.kind === 'compact') return this.prepareCompact(cmd, ctx);
      return await executeCommand(cmd, ctx, this.extensions);
    } catch (err) {
      if (!isKeelError(err)) throw err;
      return applyFailure(this.rev, err);
    }
  }

  private prepareCompact(cmd: CompactCommand, ctx: ApplyContext): ApplyResult {
    if (cmd.revision > this.rev) {
      throw new KeelError('INVALID_ARGUMENT', `compact revision ${cmd.revision} is a future revision`, {});
    }
    if (cmd.revision <= this.compactRev) {
      throw new KeelError('COMPACTED', `revision ${cmd.revision} is already compacted`, {
        compactRevision: this.compactRev,
      });
    }
    ctx.ops.push(
      { type: 'put', key: metaKey('compactRevision'), value: be8(cmd.revision) },
      { type: 'put', key: metaKey('compactPending'), value: be8(cmd.revision) },
    );
    return { revision: this.rev, compactRevision: cmd.revision };
  }

  private async compactNow(revision: number): Promise<void> {
    this.compactRev = revision;
    await runCompaction(this.db, revision, {
      batchOpsMax: this.options.compactionBatchOpsMax ?? compactionBatchOpsDefault,
      sync: this.options.syncWrites ?? false,
      logger: this.logger,
    });
  }

  /** Writes an entry's batch with appliedIndex (and the new revision), then moves the in-memory copies. */
  private async commit(
    index: number,
    ops: BatchOp[],
    change: { revision: number; keyCount: number } | null,
  ): Promise<void> {
    ops.push({ type: 'put', key: metaKey('appliedIndex'), value: be8(index) });
    if (change !== null) {
      assert(change.revision === this.rev + 1, 'revisions strictly increase by one');
      ops.push(
        { type: 'put', key: metaKey('revision'), value: be8(change.revision) },
        { type: 'put', key: metaKey('keyCount'), value: be8(change.keyCount) },
      );
    }
    await this.db.batch(ops, { sync: this.options.syncWrites ?? false });
    this.applied = index;
    if (change !== null) {
      this.rev = change.revision;
      this.keys = change.keyCount;
    }
  }

  // ---- reads (not through the log: the API calls them after ReadIndex, or directly for serializable reads)

  /** Runs `read` on a LevelDB snapshot, so metadata and data belong to the same applied state. */
  private async withReadView<T>(read: (view: ReadView, snapshot: DbSnapshot) => Promise<T>): Promise<T> {
    if (this.phase === 'restoring' || this.phase === 'closed') {
      throw new KeelError('UNAVAILABLE', `the store is ${this.phase}`);
    }
    const snapshot: DbSnapshot = this.db.snapshot();
    try {
      return await read(new ReadView(this.db, snapshot), snapshot);
    } finally {
      await snapshot.close();
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
    return this.withReadView((_view, snapshot) => exportSnapshot(this.db, snapshot));
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
      await importSnapshot(this.db, decoded, index);
      const view = new ReadView(this.db, null);
      this.applied = index;
      this.rev = view.meta('revision');
      this.compactRev = view.meta('compactRevision');
      this.keys = view.meta('keyCount');
      if (view.hasMeta('compactPending')) await this.compactNow(this.compactRev);
      await this.dedupe.load();
      this.hub.resetPublished(this.rev);
      this.logger.info({ index, revision: this.rev }, 'restored from a snapshot');
    });
  }

  /** Waits for an apply or restore in progress, ends every watcher and releases the database. */
  async close(): Promise<void> {
    if (this.phase === 'closed') return;
    const work = this.work;
    this.phase = 'closed';
    await work;
    await this.hub.close();
    await this.db.close();
  }
}
