// The changes of one entry while it is being applied. Every write goes to the entry's ops and to an overlay of
// current versions, so that later operations of the same entry (the ops of a txn run in order) see earlier ones.
// Reads fall through to the call's ApplyBatch (the earlier entries of the same apply() call, not yet written)
// and then to the database (see apply-batch.ts). If the entry succeeds the store adds its ops and overlay to the
// batch (commit()); if it is refused they are dropped. Nothing reaches the database until the store writes the
// batch together with appliedIndex.
// All changes of the entry share one revision (base + 1) and are numbered by `sub` in the order they happen.
// The revision is only taken if something changed: a delete of nothing or a read-only txn leaves it alone.
//
// Extensions (leases, locks) get this object too: it is the only way to change MVCC keys, so everything they
// store is ordinary keys that watchers and snapshots see.
import { assert } from '../util/assert.js';
import { KeelError } from '../util/errors.js';
import type { KV, StoreEvent } from './commands.js';
import { encodeChangeRecord, encodeKvRecord, encodeMark } from './codec.js';
import type { Bytes, KeyRange } from './keys.js';
import {
  compareBytes,
  currentKey,
  fromUtf8,
  historyKey,
  isSingleKeyRange,
  leaseKey,
  revisionKey,
  utf8,
} from './keys.js';
import type { ApplyBatch } from './apply-batch.js';
import { CurrentOverlay } from './overlay.js';

export type BatchOp = { type: 'put'; key: Bytes; value: Bytes } | { type: 'del'; key: Bytes };

/** Deterministic checks the layers above plug into the store (all nodes must be given the same ones). */
export interface StoreHooks {
  /** Whether a lease id may be attached to a key; without it any id is accepted. */
  leaseExists?(lease: number, ctx: ApplyContext): Promise<boolean>;
  /** The fence token of a lock's current holder, or null when nobody holds it; without it fenced puts fail. */
  lockFence?(lock: string, ctx: ApplyContext): Promise<number | null>;
  /**
   * Whether user commands (put, deleteRange, txn put/delete) may write the keys of this range (one key, or
   * every key with the prefix `key`). A refused user write is answered INVALID_ARGUMENT and changes nothing.
   * Extensions write through ApplyContext directly and are not checked. Without it every key is writable.
   */
  userMayWrite?(key: string, prefix: boolean): boolean;
}

/** A command kind contributed by another layer, proposed as {kind: 'ext', name, body}. */
export interface CommandExtension {
  readonly name: string;
  /** Throws KeelError (INVALID_ARGUMENT) for a bad body; called before proposing and again before applying. */
  validate(body: unknown): void;
  /**
   * Applies the command: deterministic (no clock, no randomness), reads and writes keys only through `ctx`.
   * Returns plain msgpack-encodable data (the store adds `revision`; an `error` field would make it read as a
   * failure, so report refusals by throwing): a thrown KeelError becomes the entry's failure result and
   * discards its writes.
   */
  apply(body: unknown, ctx: ApplyContext): Promise<Record<string, unknown>>;
}

export class ApplyContext {
  readonly ops: BatchOp[] = [];
  readonly events: StoreEvent[] = [];
  /** The store revision before this entry (as of the earlier entries of the call). */
  readonly baseRevision: number;
  private readonly overlay = new CurrentOverlay();
  private readonly committed: (() => void)[] = [];
  private committedToBatch = false;

  constructor(
    /** The pending batch of the apply() call: reads see what earlier entries of the call wrote. */
    private readonly batch: ApplyBatch,
    readonly hooks: StoreHooks,
  ) {
    this.baseRevision = batch.state('revision');
  }

  /** The revision this entry's changes get. */
  get revision(): number {
    return this.baseRevision + 1;
  }

  get hasChanges(): boolean {
    return this.events.length > 0;
  }

  /** Keys created minus keys deleted by this entry. */
  get keyDelta(): number {
    let delta = 0;
    for (const event of this.events) {
      if (event.type === 'delete') delta -= 1;
      else if (event.prevKv === undefined) delta += 1;
    }
    return delta;
  }

  /** The revision the entry's result reports: its own if it changed something, else the one it read. */
  get resultRevision(): number {
    return this.hasChanges ? this.revision : this.baseRevision;
  }

  /**
   * Runs `effect` once the write of the batch holding this entry is issued (reads wait for it to land: see
   * kv-store.ts), only if the entry was applied (not refused).
   * For the in-memory state of the layers above (lease deadlines, lock waiters): it must not change replicated
   * state and must not throw. The batch holds all the entries of one apply() call, so an effect runs after the
   * later entries of the call were applied too; effects (and watch events) run in entry order, each entry's in
   * the order they were registered.
   */
  afterCommit(effect: () => void): void {
    this.committed.push(effect);
  }

  /** Called by the store (once) when the entry succeeded: adds its changes to the call's batch. */
  commit(): void {
    assert(!this.committedToBatch, 'an entry is added to the batch once');
    this.committedToBatch = true;
    this.batch.addEntry({
      ops: this.ops,
      currents: this.overlay,
      revision: this.hasChanges ? this.revision : null,
      events: this.events,
      keyDelta: this.keyDelta,
      effects: this.committed,
    });
  }

  /**
   * Refuses a user write (one key, or a prefix delete) that the hooks reserve — the lease layer's `_keel/` keys.
   * Deterministic; called by the user commands before they change anything, never by extensions.
   */
  checkUserWrite(key: string, prefix: boolean): void {
    if (this.hooks.userMayWrite === undefined || this.hooks.userMayWrite(key, prefix)) return;
    const what = prefix ? `the prefix "${key}" covers reserved keys` : `the key "${key}" is reserved`;
    throw new KeelError('INVALID_ARGUMENT', `${what}: user writes may not change them`);
  }

  /** The current version of `key` as of the changes so far (this entry's and the call's earlier entries'). */
  async get(key: string): Promise<KV | null> {
    const overlaid = this.overlay.lookup(key);
    return overlaid === undefined ? this.batch.current(key) : overlaid.kv;
  }

  /** Live keys of the range as of the changes so far, in key (byte) order. */
  async range(range: KeyRange): Promise<KV[]> {
    if (isSingleKeyRange(range)) {
      // One point read instead of a scan: deletes and txn gets of one key are the common case.
      const kv = await this.get(fromUtf8(range.start));
      return kv === null ? [] : [kv];
    }
    return this.overlay.overRange(await this.batch.currentRange(range), range);
  }

  /** Live keys attached to `lease` as of the changes so far, in key order. */
  async leaseKeys(lease: number): Promise<string[]> {
    const keys = await this.batch.leaseKeys(lease);
    this.overlay.overLease(keys, lease);
    return [...keys.entries()].sort((a, b) => compareBytes(a[1], b[1])).map(([key]) => key);
  }

  async put(key: string, value: string, lease: number): Promise<{ kv: KV; prevKv: KV | null }> {
    if (lease !== 0 && this.hooks.leaseExists !== undefined && !(await this.hooks.leaseExists(lease, this))) {
      throw new KeelError('LEASE_NOT_FOUND', `lease ${lease} not found`, { lease });
    }
    const prevKv = await this.get(key);
    const revision = this.revision;
    const kv: KV = {
      key,
      value,
      createRevision: prevKv === null ? revision : prevKv.createRevision,
      modRevision: revision,
      version: prevKv === null ? 1 : prevKv.version + 1,
      lease,
    };
    const bytes = utf8(key);
    this.ops.push({ type: 'put', key: currentKey(bytes), value: encodeKvRecord(kv) });
    if (prevKv !== null && prevKv.lease !== 0 && prevKv.lease !== lease) {
      this.ops.push({ type: 'del', key: leaseKey(prevKv.lease, bytes) });
    }
    if (lease !== 0) this.ops.push({ type: 'put', key: leaseKey(lease, bytes), value: new Uint8Array(0) });
    this.record(bytes, { type: 'put', kv, revision, ...(prevKv === null ? {} : { prevKv }) });
    this.overlay.set(key, bytes, kv);
    return { kv, prevKv };
  }

  /** Deletes a live key (as returned by get or range); returns the deleted version. */
  delete(prevKv: KV): KV {
    const bytes = utf8(prevKv.key);
    const revision = this.revision;
    const tombstone: KV = { key: prevKv.key, value: '', createRevision: 0, modRevision: revision, version: 0, lease: 0 };
    this.ops.push({ type: 'del', key: currentKey(bytes) });
    if (prevKv.lease !== 0) this.ops.push({ type: 'del', key: leaseKey(prevKv.lease, bytes) });
    this.record(bytes, { type: 'delete', kv: tombstone, prevKv, revision });
    this.overlay.set(prevKv.key, bytes, null);
    return prevKv;
  }

  /** Deletes every live key of the range; returns the deleted versions in key order. */
  async deleteRange(range: KeyRange): Promise<KV[]> {
    const victims = await this.range(range);
    return victims.map((kv) => this.delete(kv));
  }

  private record(key: Bytes, event: StoreEvent): void {
    const sub = this.events.length;
    this.ops.push({ type: 'put', key: historyKey(key, event.revision, sub), value: encodeMark(event.type) });
    this.ops.push({
      type: 'put',
      key: revisionKey(event.revision, sub),
      value: encodeChangeRecord({ type: event.type, kv: event.kv }),
    });
    this.events.push(event);
  }
}
