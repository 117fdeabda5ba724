// The pending writes of one apply() call. Every entry's changes, the dedupe records and the metadata go into
// this one batch, and the store writes it to LevelDB once, atomically, when the call ends (or just before a
// compaction: see kv-store.ts). Until then nothing of the call is in the database, so everything the apply path
// reads goes through the batch, on top of the database:
//
//   ApplyContext (one entry, discarded if the entry is refused)
//     -> ApplyBatch (the entries of the call applied so far)
//       -> LevelDB (the state as of the previous batch)
//
// Each layer overlays the current versions of the keys it changed (CurrentOverlay in overlay.ts: point reads,
// ranges and the lease index are merged through it), and the batch also overlays every raw key it will write
// (get(): the dedupe table). So a later entry reads exactly what it would have read had the earlier ones been
// written one batch per entry, makes exactly the same ops, and the final content of the database is the same
// however the driver splits the entries into calls (LevelDB applies a batch's ops in order: a key written twice
// holds the last value).
//
// The metadata the store mirrors in memory (StoreState) is tracked as numbers and written once per batch with its
// final value, only if some entry of the batch moved it (as that entry's own batch would have). Watch events and
// the effects the layers above register run once the batch's write is issued (afterWrite), in entry order. The
// entries are committed Raft entries, so a crash before the write lands cannot take a revision back: the replay
// rebuilds the very same one; and every read of the database waits for the write to land (kv-store.ts).
import { assert } from '../util/assert.js';
import type { BatchOp } from './apply-context.js';
import type { KV, StoreEvent } from './commands.js';
import type { Bytes, KeyRange } from './keys.js';
import { be8, fromUtf8, metaKey, utf8 } from './keys.js';
import type { ReadView } from './mvcc.js';
import type { StoreState } from './open.js';
import type { CurrentCache } from './current-cache.js';
import { CurrentOverlay } from './overlay.js';

/** The key a raw LevelDB key has in the overlay: latin1 maps each byte to one char, so it is one-to-one. */
function rawId(dbKey: Bytes): string {
  return Buffer.from(dbKey.buffer, dbKey.byteOffset, dbKey.byteLength).toString('latin1');
}

/** What one applied (not refused) entry adds to the batch. */
export interface EntryChanges {
  readonly ops: readonly BatchOp[];
  readonly currents: CurrentOverlay;
  /** The revision the changes took; null when the entry changed no key (then `events` is empty). */
  readonly revision: number | null;
  readonly events: readonly StoreEvent[];
  readonly keyDelta: number;
  /** Run after the batch is written (ApplyContext.afterCommit). */
  readonly effects: readonly (() => void)[];
}

type StateName = keyof StoreState;
/** The order the metadata is written in at the end of a batch (any fixed order: the keys are distinct). */
const stateNames: readonly StateName[] = ['appliedIndex', 'revision', 'keyCount', 'compactRevision', 'dedupeSeq'];

export class ApplyBatch {
  private readonly ops: BatchOp[] = [];
  /**
   * Raw key -> value the database will hold once the batch is written; null = deleted. Built on the first get()
   * (only a dedupe hit, a retry, reads raw keys) and kept up to date from then on: most batches never need it.
   */
  private written: Map<string, Bytes | null> | null = null;
  private readonly currents = new CurrentOverlay();
  private readonly values: { -readonly [K in StateName]: number };
  private readonly moved = new Set<StateName>();
  private readonly after: (() => void)[] = [];
  /** Set by a compact entry: the store writes the batch, then runs the compaction, then opens a new batch. */
  compactTo: number | null = null;

  constructor(
    private readonly view: ReadView,
    base: StoreState,
    private readonly publish: (revision: number, events: readonly StoreEvent[]) => void,
    /** Current versions as the database holds them (current-cache.ts); the store fills it once the batch landed. */
    private readonly cache: CurrentCache,
  ) {
    this.values = { ...base };
  }

  /** Whether no entry was applied into the batch (then there is nothing to write). */
  get isEmpty(): boolean {
    return this.ops.length === 0 && this.moved.size === 0;
  }

  /** The metadata as of the entries applied so far. */
  state(name: StateName): number {
    return this.values[name];
  }

  setState(name: StateName, value: number): void {
    this.values[name] = value;
    this.moved.add(name);
  }

  /** What the database will hold at `dbKey` once the batch is written (metadata excepted: see state()). */
  get(dbKey: Bytes): Bytes | undefined {
    if (this.written === null) {
      this.written = new Map();
      for (const op of this.ops) this.track(this.written, op);
    }
    const pending = this.written.get(rawId(dbKey));
    if (pending === null) return undefined;
    return pending ?? this.view.get(dbKey);
  }

  write(op: BatchOp): void {
    this.ops.push(op);
    if (this.written !== null) this.track(this.written, op);
  }

  private track(written: Map<string, Bytes | null>, op: BatchOp): void {
    written.set(rawId(op.key), op.type === 'put' ? op.value : null);
  }

  /** The current version of `key` as of the entries applied so far. */
  current(key: string): KV | null {
    const overlaid = this.currents.lookup(key);
    if (overlaid !== undefined) return overlaid.kv;
    const cached = this.cache.get(key);
    if (cached !== undefined) return cached;
    const stored = this.view.current(utf8(key));
    this.cache.set(key, stored);
    return stored;
  }

  /** Live keys of the range as of the entries applied so far, in key order. */
  async currentRange(range: KeyRange): Promise<KV[]> {
    return this.currents.overRange(await this.view.currentRange(range, 0, false), range);
  }

  /** Live keys attached to `lease` as of the entries applied so far (user key -> bytes, unordered). */
  async leaseKeys(lease: number): Promise<Map<string, Bytes>> {
    const keys = new Map<string, Bytes>();
    for (const bytes of await this.view.leaseKeys(lease)) keys.set(fromUtf8(bytes), bytes);
    this.currents.overLease(keys, lease);
    return keys;
  }

  /** Adds an applied entry's changes; its revision must be the next one. */
  addEntry(changes: EntryChanges): void {
    for (const op of changes.ops) this.write(op);
    this.currents.absorb(changes.currents);
    const { revision, events } = changes;
    if (revision !== null) {
      assert(revision === this.values.revision + 1, 'revisions strictly increase by one');
      assert(events.length > 0, 'a revision is taken only by an entry that changed something');
      this.setState('revision', revision);
      this.setState('keyCount', this.values.keyCount + changes.keyDelta);
      this.after.push(() => this.publish(revision, events));
    }
    this.after.push(...changes.effects);
  }

  /** The ops to write: every entry's, in order, then each moved metadata once, with its final value. */
  finish(): { ops: BatchOp[]; state: StoreState } {
    const ops = [...this.ops];
    for (const name of stateNames) {
      if (this.moved.has(name)) ops.push({ type: 'put', key: metaKey(name), value: be8(this.values[name]) });
    }
    return { ops, state: { ...this.values } };
  }

  /** Once the batch has landed: the current versions it wrote are now the database's. */
  landed(): void {
    for (const [key, { kv }] of this.currents.entries()) this.cache.set(key, kv);
  }

  /** Publishes the batch's revisions and runs the entries' effects, in entry order; once the batch is written. */
  afterWrite(): void {
    for (const step of this.after.splice(0)) step();
  }
}
