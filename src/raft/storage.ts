// LogStorage is the persisted part of the Raft log as the core sees it: synchronous reads of what has been
// durably written. Writes are the driver's job (persist a Ready, then advance); implementations expose them
// through their own methods. MemoryLogStorage is the in-memory implementation used by the simulator and tests;
// the LevelDB one lives in io/.
import { assert, assertIndex } from '../util/assert.js';
import type { ConfState, Entry, HardState, Index, Snapshot, SnapshotMetadata, Term } from './types.js';
import { emptyHardState, emptySnapshot, entryBytes } from './types.js';

export class LogCompactedError extends Error {
  override readonly name = 'LogCompactedError';
}
export class LogUnavailableError extends Error {
  override readonly name = 'LogUnavailableError';
}
/**
 * The latest snapshot was recorded without its data (recordSnapshot(): the state machine's own durable state
 * stands for it) and none has been exported yet. The request is remembered (snapshotRequested()); the driver
 * exports one and the caller asks again later. etcd's ErrSnapshotTemporarilyUnavailable.
 */
export class SnapshotUnavailableError extends Error {
  override readonly name = 'SnapshotUnavailableError';
}

export interface InitialState {
  readonly hardState: HardState;
  /** Membership as of the latest snapshot (index `snapshot().metadata.index`). */
  readonly confState: ConfState;
}

export interface LogStorage {
  initialState(): InitialState;
  /** Entries with index in [lo, hi), at least one if any exist, stopping before `maxBytes` is exceeded. */
  entries(lo: Index, hi: Index, maxBytes: number): Entry[];
  /** Term of the entry at `index`; the snapshot's term at its index. Throws LogCompactedError/LogUnavailableError. */
  term(index: Index): Term;
  /** Index of the first entry still held (snapshot index + 1). */
  firstIndex(): Index;
  lastIndex(): Index;
  /** The most recent snapshot (emptySnapshot if none). Throws SnapshotUnavailableError if its data is not exported. */
  snapshot(): Snapshot;
  /** The most recent snapshot's metadata, whether or not its data is held. */
  snapshotMetadata(): SnapshotMetadata;
  /** Whether snapshot() was refused since the latest snapshot was recorded without data (the driver exports one). */
  snapshotRequested(): boolean;
}

/** The write side shared by every LogStorage implementation, driven by the node loop after each Ready. */
export interface WritableLogStorage extends LogStorage {
  /** Appends entries, truncating any conflicting suffix first (entries[0].index may be <= lastIndex()). */
  append(entries: readonly Entry[]): void;
  setHardState(hardState: HardState): void;
  /** Replaces the whole log by a snapshot received from the leader. */
  applySnapshot(snapshot: Snapshot): void;
  /**
   * Records a snapshot the local state machine made at `index` (<= the last applied index). `index` may equal
   * the current snapshot's when that one was recorded without data: this exports it.
   */
  createSnapshot(index: Index, conf: ConfState, data: Uint8Array): Snapshot;
  /**
   * Records a snapshot at `index` WITHOUT its data: the caller has made the state machine's state at `index` (or
   * later) durable, and exports data only when snapshot() is asked for it (a lagging follower). `index` may equal
   * the current snapshot's (which then counts as not exported).
   */
  recordSnapshot(index: Index, conf: ConfState): void;
  /** Discards entries up to and including `index` (which must be covered by the snapshot); only its term is kept. */
  compact(index: Index): void;
}

/** What one Ready asks to be persisted, written as one batch: snapshot first, then entries, then hard state. */
export interface LogWrite {
  readonly hardState: HardState | null;
  readonly entries: readonly Entry[];
  readonly snapshot: Snapshot | null;
}

/** A LogStorage whose writes are asynchronous and durable (the LevelDB one in io/), as the driver uses it. */
export interface DurableLogStorage extends LogStorage {
  save(write: LogWrite, sync: boolean): Promise<void>;
  createSnapshot(index: Index, conf: ConfState, data: Uint8Array): Promise<Snapshot>;
  recordSnapshot(index: Index, conf: ConfState): Promise<SnapshotMetadata>;
  compact(index: Index): Promise<void>;
  close(): Promise<void>;
}

/** Slab size for entry data copied by LogDataSlab; a larger entry gets a buffer of its own. */
const slabBytes = 256 * 1024;

/**
 * Gives the entries a log holds memory of their own, packed together. An entry's data often arrives as a view
 * into a much larger shared buffer (the leader's commands are views into the codec's pack buffer, a few hundred
 * KB shared with everything else packed meanwhile): held as it is, each entry in the log kept that whole buffer
 * alive, about 6x the entry's own size, and all of it turned into old-generation garbage at compaction. Data that
 * already owns its buffer (a follower's decoded entries) is kept as it is. Slabs are filled in log order, so
 * compaction releases them whole.
 */
class LogDataSlab {
  private slab = new Uint8Array(0);
  private used = 0;

  own(data: Uint8Array): Uint8Array {
    if (data.byteLength === data.buffer.byteLength || data.byteLength === 0) return data;
    if (data.byteLength > slabBytes / 4) return data.slice();
    if (this.used + data.byteLength > this.slab.byteLength) {
      this.slab = new Uint8Array(slabBytes);
      this.used = 0;
    }
    const copy = this.slab.subarray(this.used, this.used + data.byteLength);
    copy.set(data);
    this.used += data.byteLength;
    return copy;
  }

  entry(entry: Entry): Entry {
    if (entry.type !== 'normal') return entry;
    const data = this.own(entry.data);
    return data === entry.data ? entry : { ...entry, data };
  }
}

export class MemoryLogStorage implements WritableLogStorage {
  private readonly slab = new LogDataSlab();
  private hardState: HardState = emptyHardState;
  private snap: Snapshot = emptySnapshot;
  /** False while the latest snapshot was recorded without data (recordSnapshot()); `snap.data` is then empty. */
  private exported = true;
  /** snapshot() was refused since the latest snapshot was recorded. */
  private requested = false;
  /** entries[0] is a dummy at the snapshot/compaction point, holding its index and term. */
  private log: Entry[] = [{ type: 'normal', term: 0, index: 0, data: new Uint8Array(0) }];

  initialState(): InitialState {
    return { hardState: this.hardState, confState: this.snap.metadata.conf };
  }

  private offset(): Index {
    return this.log[0]!.index;
  }

  firstIndex(): Index {
    return this.offset() + 1;
  }

  lastIndex(): Index {
    return this.offset() + this.log.length - 1;
  }

  term(index: Index): Term {
    const offset = this.offset();
    if (index < offset) throw new LogCompactedError(`index ${index} compacted (first ${offset + 1})`);
    if (index > this.lastIndex()) throw new LogUnavailableError(`index ${index} beyond last ${this.lastIndex()}`);
    return this.log[index - offset]!.term;
  }

  entries(lo: Index, hi: Index, maxBytes: number): Entry[] {
    const offset = this.offset();
    if (lo <= offset) throw new LogCompactedError(`index ${lo} compacted (first ${offset + 1})`);
    assert(hi <= this.lastIndex() + 1, `entries(${lo}, ${hi}) beyond last ${this.lastIndex()}`);
    const out: Entry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const entry = this.log[i - offset]!;
      bytes += entryBytes(entry);
      if (out.length > 0 && bytes > maxBytes) break;
      out.push(entry);
    }
    return out;
  }

  snapshot(): Snapshot {
    if (!this.exported) {
      this.requested = true;
      throw new SnapshotUnavailableError(`the snapshot at ${this.snap.metadata.index} has not been exported yet`);
    }
    return this.snap;
  }

  snapshotMetadata(): SnapshotMetadata {
    return this.snap.metadata;
  }

  snapshotRequested(): boolean {
    return this.requested && !this.exported;
  }

  /** False while the latest snapshot was recorded without data and none has been exported since. */
  snapshotExported(): boolean {
    return this.exported;
  }

  append(entries: readonly Entry[]): void {
    const first = entries[0];
    if (first === undefined) return;
    const offset = this.offset();
    for (let i = 1; i < entries.length; i++) {
      assert(entries[i]!.index === first.index + i, 'appended entries must be contiguous');
    }
    // Entries below the compaction point are already covered by the snapshot.
    const kept = entries.filter((entry) => entry.index > offset);
    const head = kept[0];
    if (head === undefined) return;
    assert(head.index <= this.lastIndex() + 1, `gap: appending ${head.index} after ${this.lastIndex()}`);
    this.log.length = head.index - offset;
    for (const entry of kept) this.log.push(this.slab.entry(entry));
  }

  setHardState(hardState: HardState): void {
    assertIndex(hardState.term, 'term');
    assertIndex(hardState.commit, 'commit');
    this.hardState = hardState;
  }

  applySnapshot(snapshot: Snapshot): void {
    assert(snapshot.metadata.index >= this.snap.metadata.index, 'snapshot older than the current one');
    this.setSnapshot(snapshot, true);
    this.log = [{ type: 'normal', term: snapshot.metadata.term, index: snapshot.metadata.index, data: new Uint8Array(0) }];
  }

  createSnapshot(index: Index, conf: ConfState, data: Uint8Array): Snapshot {
    this.checkNewSnapshot(index, !this.exported);
    this.setSnapshot({ metadata: { index, term: this.term(index), conf }, data }, true);
    return this.snap;
  }

  recordSnapshot(index: Index, conf: ConfState): void {
    assert(index > 0, 'a snapshot recorded without data needs an index');
    this.checkNewSnapshot(index, true);
    this.setSnapshot({ metadata: { index, term: this.term(index), conf }, data: new Uint8Array(0) }, false);
  }

  /** A new local snapshot must be newer than the current one (or, `sameAllowed`, at its index) and in the log. */
  checkNewSnapshot(index: Index, sameAllowed: boolean): void {
    const current = this.snap.metadata.index;
    assert(index > current || (sameAllowed && index === current), `snapshot at ${index} is not newer than ${current}`);
    assert(index <= this.lastIndex(), `snapshot at ${index} beyond last ${this.lastIndex()}`);
  }

  private setSnapshot(snapshot: Snapshot, exported: boolean): void {
    this.snap = snapshot;
    this.exported = exported;
    this.requested = false;
  }

  compact(index: Index): void {
    const offset = this.offset();
    if (index <= offset) return;
    assert(index <= this.snap.metadata.index, `compact(${index}) beyond the snapshot at ${this.snap.metadata.index}`);
    assert(index <= this.lastIndex(), `compact(${index}) beyond last ${this.lastIndex()}`);
    this.log = this.log.slice(index - offset);
  }

  /** Test helper for the simulator's crash model: a deep-enough copy that later writes do not alias. */
  clone(): MemoryLogStorage {
    const copy = new MemoryLogStorage();
    copy.hardState = this.hardState;
    copy.snap = this.snap;
    copy.exported = this.exported;
    copy.log = this.log.slice();
    return copy;
  }
}
