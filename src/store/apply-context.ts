// The changes of one entry while it is being applied. Every write goes to a pending LevelDB batch and to an
// overlay of current versions, so that later operations of the same entry (the ops of a txn run in order) see
// earlier ones; nothing reaches the database until the store writes the batch together with appliedIndex.
// All changes of the entry share one revision (base + 1) and are numbered by `sub` in the order they happen.
// The revision is only taken if something changed: a delete of nothing or a read-only txn leaves it alone.
//
// Extensions (leases, locks) get this object too: it is the only way to change MVCC keys, so everything they
// store is ordinary keys that watchers and snapshots see.
import { KeelError } from '../util/errors.js';
import type { KV, StoreEvent } from './commands.js';
import { encodeChangeRecord, encodeKvRecord, encodeMark } from './codec.js';
import type { Bytes, KeyRange } from './keys.js';
import { compareBytes, currentKey, fromUtf8, historyKey, inRange, leaseKey, revisionKey, utf8 } from './keys.js';
import type { ReadView } from './mvcc.js';

export type BatchOp = { type: 'put'; key: Bytes; value: Bytes } | { type: 'del'; key: Bytes };

/** Deterministic checks the layers above plug into the store (all nodes must be given the same ones). */
export interface StoreHooks {
  /** Whether a lease id may be attached to a key; without it any id is accepted. */
  leaseExists?(lease: number, ctx: ApplyContext): Promise<boolean>;
  /** The fence token of a lock's current holder, or null when nobody holds it; without it fenced puts fail. */
  lockFence?(lock: string, ctx: ApplyContext): Promise<number | null>;
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

interface Overlaid {
  readonly bytes: Bytes;
  /** null = deleted in this entry. */
  readonly kv: KV | null;
}

export class ApplyContext {
  readonly ops: BatchOp[] = [];
  readonly events: StoreEvent[] = [];
  private readonly overlay = new Map<string, Overlaid>();

  constructor(
    readonly view: ReadView,
    /** The store revision before this entry. */
    readonly baseRevision: number,
    readonly hooks: StoreHooks,
  ) {}

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

  async get(key: string): Promise<KV | null> {
    const overlaid = this.overlay.get(key);
    if (overlaid !== undefined) return overlaid.kv;
    return this.view.current(utf8(key));
  }

  /** Live keys of the range as of the changes so far, in key (byte) order. */
  async range(range: KeyRange): Promise<KV[]> {
    const stored = await this.view.currentRange(range, 0, false);
    if (this.overlay.size === 0) return stored;
    const merged = new Map<string, { bytes: Bytes; kv: KV }>();
    for (const kv of stored) merged.set(kv.key, { bytes: utf8(kv.key), kv });
    for (const [key, { bytes, kv }] of this.overlay) {
      if (!inRange(range, bytes)) continue;
      if (kv === null) merged.delete(key);
      else merged.set(key, { bytes, kv });
    }
    return [...merged.values()].sort((a, b) => compareBytes(a.bytes, b.bytes)).map((entry) => entry.kv);
  }

  /** Live keys attached to `lease` as of the changes so far, in key order. */
  async leaseKeys(lease: number): Promise<string[]> {
    const keys = new Map<string, Bytes>();
    for (const bytes of await this.view.leaseKeys(lease)) keys.set(fromUtf8(bytes), bytes);
    for (const [key, { bytes, kv }] of this.overlay) {
      if (kv !== null && kv.lease === lease) keys.set(key, bytes);
      else keys.delete(key);
    }
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
    this.overlay.set(key, { bytes, kv });
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
    this.overlay.set(prevKv.key, { bytes, kv: null });
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
