// The read side of the MVCC keyspace (layout in keys.ts): current versions, versions at a past revision, the
// changes of a revision span, and the lease index. A ReadView reads either the live database (under the apply
// path's ApplyBatch, which overlays the writes of the apply() call in progress: see apply-batch.ts) or an explicit
// LevelDB snapshot (API reads and watch catch-up, so that the metadata and the data they read belong to the same
// moment even while entries are being applied).
import type { ClassicLevel } from 'classic-level';
import { assert } from '../util/assert.js';
import type { KV, StoreEvent } from './commands.js';
import type { EventType } from './codec.js';
import { decodeChangeRecord, decodeKvRecord, decodeMark } from './codec.js';
import type { Bytes, KeyRange, MetaName } from './keys.js';
import {
  compareBytes,
  currentKey,
  currentRange,
  fromUtf8,
  historyKey,
  historyKeyFloor,
  historyRange,
  inRange,
  leaseRange,
  metaKey,
  parseHistoryKey,
  parseRevisionKey,
  readBe8,
  revisionKey,
  revisionRange,
  userKeyOfCurrent,
  userKeyOfLease,
  userKeyOfMark,
  utf8,
} from './keys.js';

export type StoreDb = ClassicLevel<Bytes, Bytes>;
export type DbSnapshot = ReturnType<StoreDb['snapshot']>;

/** Where the version of a key visible at some revision is recorded. */
export interface ChangePointer {
  readonly key: Bytes;
  readonly revision: number;
  readonly sub: number;
}

/** A revision's matching changes, in sub order. */
export interface ChangeGroup {
  readonly revision: number;
  readonly events: StoreEvent[];
}

/** Bytes a snapshot view keeps of the current versions it read: keys and values (one per character), plus 96 each. */
export const currentMemoBytesMax = 1024 * 1024;
const currentMemoEntryBytes = 96;

export class ReadView {
  private readonly options: { snapshot?: DbSnapshot };
  /** Metadata read through a snapshot never changes: read once (null: a live view, nothing memoized). */
  private readonly metaMemo: Map<MetaName, number> | null;
  /**
   * Nor do the current versions read through it: the reads sharing a snapshot (read-snapshot.ts) look each key up
   * and decode it once, up to currentMemoBytesMax (a key read over and over between two writes costs a Map lookup).
   * KV is immutable, so the readers can share one object. Null for a live view.
   */
  private readonly currentMemo: Map<string, KV | null> | null;
  private currentMemoBytes = 0;

  constructor(
    readonly db: StoreDb,
    snapshot: DbSnapshot | null,
  ) {
    this.options = snapshot === null ? {} : { snapshot };
    this.metaMemo = snapshot === null ? null : new Map();
    this.currentMemo = snapshot === null ? null : new Map();
  }

  // Point reads use getSync: it blocks the event loop for one LevelDB lookup (memtable or block cache in the
  // common case) but costs microseconds instead of a thread-pool round trip (~70 µs), which matters most on
  // the apply path where every entry reads a few keys in sequence.

  get(dbKey: Bytes): Bytes | undefined {
    return this.db.getSync(dbKey, this.options);
  }

  meta(name: MetaName): number {
    const memo = this.metaMemo?.get(name);
    if (memo !== undefined) return memo;
    const bytes = this.get(metaKey(name));
    const value = bytes === undefined ? 0 : readBe8(bytes, 0);
    this.metaMemo?.set(name, value);
    return value;
  }

  hasMeta(name: MetaName): boolean {
    return this.get(metaKey(name)) !== undefined;
  }

  current(key: Bytes): KV | null {
    const memo = this.currentMemo;
    if (memo === null) return this.readCurrent(key);
    const text = fromUtf8(key);
    const seen = memo.get(text);
    if (seen !== undefined) return seen;
    const kv = this.readCurrent(key, text);
    const size = text.length + (kv === null ? 0 : kv.value.length) + currentMemoEntryBytes;
    if (this.currentMemoBytes + size <= currentMemoBytesMax) {
      memo.set(text, kv);
      this.currentMemoBytes += size;
    }
    return kv;
  }

  /** The current version of `key` in LevelDB (through the snapshot, if any); `text` is the key as a string. */
  private readCurrent(key: Bytes, text?: string): KV | null {
    const bytes = this.get(currentKey(key));
    return bytes === undefined ? null : decodeKvRecord(text ?? fromUtf8(key), bytes);
  }

  /** Live keys of the range in key order (reversed when asked), at most `limit` (0 = all). */
  async currentRange(range: KeyRange, limit: number, reverse: boolean): Promise<KV[]> {
    const bounds = currentRange(range.start, range.end);
    const entries = await this.db.iterator({ ...bounds, ...this.options, reverse, limit: limit > 0 ? limit : -1 }).all();
    return entries.map(([dbKey, bytes]) => decodeKvRecord(fromUtf8(userKeyOfCurrent(dbKey)), bytes));
  }

  async countCurrent(range: KeyRange): Promise<number> {
    const iterator = this.db.keys({ ...currentRange(range.start, range.end), ...this.options });
    let count = 0;
    try {
      // nextv hands over keys in batches: far cheaper than one async step per key for large ranges.
      for (let batch = await iterator.nextv(1000); batch.length > 0; batch = await iterator.nextv(1000)) {
        count += batch.length;
      }
    } finally {
      await iterator.close();
    }
    return count;
  }

  /**
   * Per key of the range (in key order), the last change at or before `revision`, keeping only keys whose last
   * change is a put (the keys that existed at `revision`).
   */
  async pointersAt(range: KeyRange, revision: number): Promise<ChangePointer[]> {
    const out: ChangePointer[] = [];
    let group: Bytes | null = null;
    let best: { revision: number; sub: number; type: EventType } | null = null;
    const flush = (): void => {
      if (group !== null && best !== null && best.type === 'put') {
        out.push({ key: userKeyOfMark({ escapedKey: group, revision: 0, sub: 0 }), ...best });
      }
    };
    for await (const [dbKey, bytes] of this.db.iterator({ ...historyRange(range.start, range.end), ...this.options })) {
      const mark = parseHistoryKey(dbKey);
      if (group === null || compareBytes(group, mark.escapedKey) !== 0) {
        flush();
        group = Buffer.from(mark.escapedKey);
        best = null;
      }
      // Marks of one key come in (revision, sub) order, so the last one at or before `revision` wins.
      if (mark.revision <= revision) best = { revision: mark.revision, sub: mark.sub, type: decodeMark(bytes) };
    }
    flush();
    return out;
  }

  /** The versions the pointers point at, in the same order. */
  async load(pointers: readonly ChangePointer[]): Promise<KV[]> {
    if (pointers.length === 0) return [];
    const records = await this.db.getMany(
      pointers.map((p) => revisionKey(p.revision, p.sub)),
      this.options,
    );
    return records.map((bytes, i) => {
      const pointer = pointers[i]!;
      assert(bytes !== undefined, `history mark without its revision record at ${pointer.revision}/${pointer.sub}`);
      const change = decodeChangeRecord(pointer.revision, bytes);
      assert(change.type === 'put', 'a put mark points at a delete record');
      return change.kv;
    });
  }

  /** The version of `key` at `revision`, or null if it did not exist then. */
  async at(key: Bytes, revision: number): Promise<KV | null> {
    const [found] = await this.lastChangeBefore(key, revision + 1, 0);
    return found === undefined ? null : ((await this.load([found]))[0] ?? null);
  }

  /** The version of `key` just before its change at (revision, sub); null if none or compacted away. */
  async before(key: Bytes, revision: number, sub: number): Promise<KV | null> {
    const [found] = await this.lastChangeBefore(key, revision, sub);
    return found === undefined ? null : ((await this.load([found]))[0] ?? null);
  }

  private async lastChangeBefore(key: Bytes, revision: number, sub: number): Promise<ChangePointer[]> {
    const bounds = { gte: historyKeyFloor(key), lt: historyKey(key, revision, sub) };
    for await (const [dbKey, bytes] of this.db.iterator({ ...bounds, ...this.options, reverse: true, limit: 1 })) {
      if (decodeMark(bytes) === 'delete') return [];
      const mark = parseHistoryKey(dbKey);
      return [{ key, revision: mark.revision, sub: mark.sub }];
    }
    return [];
  }

  /**
   * The changes of revisions from..to (inclusive) whose key is in `range`, grouped by revision. Stops at a
   * revision boundary once `eventsMax` matching events or `recordsMax` scanned records are reached, and says
   * up to which revision it has looked (`scannedThrough`), so the caller can continue from there.
   */
  async changes(
    from: number,
    to: number,
    range: KeyRange,
    bounds: { eventsMax: number; recordsMax: number; withPrevKv: boolean },
  ): Promise<{ groups: ChangeGroup[]; scannedThrough: number }> {
    const groups: ChangeGroup[] = [];
    let events = 0;
    let records = 0;
    let open: ChangeGroup | null = null;
    for await (const [dbKey, bytes] of this.db.iterator({ ...revisionRange(from, to), ...this.options })) {
      const { revision, sub } = parseRevisionKey(dbKey);
      if (open === null || open.revision !== revision) {
        if (events >= bounds.eventsMax || records >= bounds.recordsMax) return { groups, scannedThrough: revision - 1 };
        open = { revision, events: [] };
      }
      records += 1;
      const change = decodeChangeRecord(revision, bytes);
      const key = utf8(change.kv.key);
      if (!inRange(range, key)) continue;
      const prevKv = bounds.withPrevKv ? await this.before(key, revision, sub) : null;
      open.events.push({ type: change.type, kv: change.kv, revision, ...(prevKv === null ? {} : { prevKv }) });
      if (open.events.length === 1) groups.push(open);
      events += 1;
    }
    return { groups, scannedThrough: to };
  }

  /** Live keys attached to `lease`, in key order. */
  async leaseKeys(lease: number): Promise<Bytes[]> {
    const out: Bytes[] = [];
    for await (const dbKey of this.db.keys({ ...leaseRange(lease), ...this.options })) {
      out.push(Buffer.from(userKeyOfLease(dbKey)));
    }
    return out;
  }
}
