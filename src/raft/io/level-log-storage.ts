// LevelLogStorage: the durable Raft log on LevelDB (classic-level).
//
// Reads are synchronous, as the core needs them: they are served from an in-memory mirror (a MemoryLogStorage)
// of everything on disk since the last compaction, plus the latest snapshot. Writes are asynchronous: each one is
// ONE LevelDB batch (synced when asked), and the mirror changes only after the batch has been written, so the core
// never reads anything that is not on disk. Reusing MemoryLogStorage as the mirror means both implementations share
// one set of log semantics, which the contract suite (test/contract/log-storage.test.ts) pins down.
//
// On-disk layout (one database per node, owned by this class; any other key is a sign of corruption):
//   'e' + 8-byte big-endian index   an entry (fixed width, so LevelDB's key order is index order)
//   'h'                             the hard state
//   's'                             the latest snapshot (metadata and data)
//   'c'                             the compaction point: index and term of the last discarded entry, stored
//                                   as an empty normal entry (it becomes the mirror's dummy entry)
// Every value is a codec record with its own checksum. open() reads and verifies all of it before serving
// anything; a record that is corrupt, truncated or out of place makes it throw CorruptLogError (RELIABILITY S18).
import { ClassicLevel } from 'classic-level';
import { assert, assertIndex } from '../../util/assert.js';
import { systemClock, type Clock } from '../../util/clock.js';
import { CodecError, decodeEntry, decodeHardState, decodeSnapshot, encodeEntry, encodeHardState, encodeSnapshot } from '../codec.js';
import type { DurableLogStorage, InitialState, LogWrite } from '../storage.js';
import { MemoryLogStorage } from '../storage.js';
import type { ConfState, Entry, HardState, Index, Snapshot, Term } from '../types.js';
import { emptyHardState, emptySnapshot } from '../types.js';
import { writeBatch } from '../../util/level-batch.js';

/** The log on disk cannot be trusted: the node must not start from it. */
export class CorruptLogError extends Error {
  override readonly name = 'CorruptLogError';
}

export interface LevelLogStorageOptions {
  /** Measures write durations for the counters (monotonic). */
  readonly clock?: Clock;
}

/** Counters for metrics; totals since open(). */
export interface LogStorageStats {
  readonly batches: number;
  readonly fsyncs: number;
  readonly bytesWritten: number;
  /** Duration of the most recent synced batch (0 before the first). */
  readonly lastFsyncMs: number;
  readonly fsyncMsTotal: number;
}

/**
 * Writes are serialized (each computes its batch from the mirror as the previous one left it). The driver awaits
 * every write, so only a handful can ever be waiting; more than this many is a bug.
 */
const writesPendingMax = 64;

const entryPrefix = 0x65; // 'e'
const entryKeyBytes = 9;
const hardStateKey = Uint8Array.of(0x68); // 'h'
const snapshotKey = Uint8Array.of(0x73); // 's'
const compactionKey = Uint8Array.of(0x63); // 'c'

export function entryKey(index: Index): Uint8Array {
  assertIndex(index, 'entry index');
  const key = new Uint8Array(entryKeyBytes);
  key[0] = entryPrefix;
  // Two 32-bit halves: a safe integer fits in 53 bits, and DataView has no setUint64 for numbers.
  const view = new DataView(key.buffer);
  view.setUint32(1, Math.floor(index / 2 ** 32));
  view.setUint32(5, index >>> 0);
  return key;
}

function entryIndexOf(key: Uint8Array): Index | null {
  if (key.byteLength !== entryKeyBytes || key[0] !== entryPrefix) return null;
  const view = new DataView(key.buffer, key.byteOffset, key.byteLength);
  return view.getUint32(1) * 2 ** 32 + view.getUint32(5);
}

/** The keys of the layout above, for tests that tamper with the files. */
export const levelLogKeys = { entry: entryKey, hardState: hardStateKey, snapshot: snapshotKey, compaction: compactionKey } as const;

type Db = ClassicLevel<Uint8Array, Uint8Array>;
type BatchOp = { type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array };

const sameKey = (a: Uint8Array, b: Uint8Array): boolean => a.byteLength === b.byteLength && a.every((x, i) => x === b[i]);

/** Everything read back from disk, before it is cross-checked. */
interface Loaded {
  hardState: HardState;
  snapshot: Snapshot | null;
  compaction: Entry | null;
  entries: Entry[];
}

export class LevelLogStorage implements DurableLogStorage {
  private readonly db: Db;
  private readonly mirror: MemoryLogStorage;
  private readonly clock: Clock;
  private readonly counters = { batches: 0, fsyncs: 0, bytesWritten: 0, lastFsyncMs: 0, fsyncMsTotal: 0 };
  /** Tail of the write chain; every write starts after the previous one settled. */
  private tail: Promise<void> = Promise.resolve();
  private writesPending = 0;
  /** Set by a failed batch: what is on disk is then unknown, so every later write fails too. */
  private failure: unknown = null;
  private isClosed = false;

  private constructor(db: Db, mirror: MemoryLogStorage, options: LevelLogStorageOptions) {
    this.db = db;
    this.mirror = mirror;
    this.clock = options.clock ?? systemClock;
  }

  /** Opens (or creates) the log in `dir`, reading and verifying every record. Throws CorruptLogError. */
  static async open(dir: string, options: LevelLogStorageOptions = {}): Promise<LevelLogStorage> {
    const db: Db = new ClassicLevel<Uint8Array, Uint8Array>(dir, {
      keyEncoding: 'view',
      valueEncoding: 'view',
      createIfMissing: true,
      errorIfExists: false,
    });
    try {
      await db.open();
    } catch (err) {
      if (levelErrorCode(err) === 'LEVEL_CORRUPTION') throw new CorruptLogError(`LevelDB in ${dir} is corrupt`, { cause: err });
      throw new Error(`cannot open the Raft log in ${dir}`, { cause: err });
    }
    try {
      const mirror = buildMirror(await load(db, dir), dir);
      return new LevelLogStorage(db, mirror, options);
    } catch (err) {
      await db.close();
      throw err;
    }
  }

  // ---- LogStorage: synchronous reads from the mirror ---------------------------------------------------------

  initialState(): InitialState {
    return this.mirror.initialState();
  }

  entries(lo: Index, hi: Index, maxBytes: number): Entry[] {
    return this.mirror.entries(lo, hi, maxBytes);
  }

  term(index: Index): Term {
    return this.mirror.term(index);
  }

  firstIndex(): Index {
    return this.mirror.firstIndex();
  }

  lastIndex(): Index {
    return this.mirror.lastIndex();
  }

  snapshot(): Snapshot {
    return this.mirror.snapshot();
  }

  // ---- writes ------------------------------------------------------------------------------------------------

  /**
   * Persists one Ready: installs `snapshot` (discarding the whole log), appends `entries` (truncating any
   * conflicting suffix) and writes `hardState`, in one batch, fsynced when `sync`. The mirror follows only after.
   */
  save(write: LogWrite, sync: boolean): Promise<void> {
    return this.serialize(async () => {
      const ops = this.planSave(write);
      if (ops.length === 0) return;
      await this.commit(ops, sync);
      if (write.snapshot !== null) this.mirror.applySnapshot(write.snapshot);
      this.mirror.append(write.entries);
      if (write.hardState !== null) this.mirror.setHardState(write.hardState);
    });
  }

  /** Records a snapshot of the local state machine at `index` (<= the last applied index), synced. */
  createSnapshot(index: Index, conf: ConfState, data: Uint8Array): Promise<Snapshot> {
    return this.serialize(async () => {
      const current = this.mirror.snapshot().metadata.index;
      assert(index > current, `snapshot at ${index} is not newer than ${current}`);
      assert(index <= this.mirror.lastIndex(), `snapshot at ${index} beyond last ${this.mirror.lastIndex()}`);
      const snapshot: Snapshot = { metadata: { index, term: this.mirror.term(index), conf }, data };
      // Synced: once entries are compacted, this record is the only thing standing for them.
      await this.commit([{ type: 'put', key: snapshotKey, value: encodeSnapshot(snapshot) }], true);
      return this.mirror.createSnapshot(index, conf, data);
    });
  }

  /**
   * Discards entries up to and including `index`, which the snapshot must cover. Not synced: LevelDB replays its
   * write-ahead log in order, so if this batch survives a crash the snapshot written before it did too, and if it
   * is lost the entries are simply still there.
   */
  compact(index: Index): Promise<void> {
    return this.serialize(async () => {
      const offset = this.mirror.firstIndex() - 1;
      if (index <= offset) return;
      const snapshotIndex = this.mirror.snapshot().metadata.index;
      assert(index <= snapshotIndex, `compact(${index}) beyond the snapshot at ${snapshotIndex}`);
      assert(index <= this.mirror.lastIndex(), `compact(${index}) beyond last ${this.mirror.lastIndex()}`);
      const ops: BatchOp[] = [{ type: 'put', key: compactionKey, value: encodeEntry(compactionPoint(index, this.mirror.term(index))) }];
      for (let i = offset + 1; i <= index; i++) ops.push({ type: 'del', key: entryKey(i) });
      await this.commit(ops, false);
      this.mirror.compact(index);
    });
  }

  /** Waits for writes in flight, then releases the LevelDB handle. Idempotent. */
  async close(): Promise<void> {
    if (this.isClosed) return;
    this.isClosed = true;
    await this.tail;
    await this.db.close();
  }

  stats(): LogStorageStats {
    return { ...this.counters };
  }

  // ---- internals ---------------------------------------------------------------------------------------------

  /** The batch for one save(), computed against the mirror exactly as MemoryLogStorage would apply it. */
  private planSave(write: LogWrite): BatchOp[] {
    const ops: BatchOp[] = [];
    let offset = this.mirror.firstIndex() - 1;
    let last = this.mirror.lastIndex();
    const { snapshot, entries, hardState } = write;
    if (snapshot !== null) {
      const current = this.mirror.snapshot().metadata.index;
      assert(snapshot.metadata.index >= current, `snapshot at ${snapshot.metadata.index} older than the one at ${current}`);
      ops.push({ type: 'put', key: snapshotKey, value: encodeSnapshot(snapshot) });
      const point = compactionPoint(snapshot.metadata.index, snapshot.metadata.term);
      ops.push({ type: 'put', key: compactionKey, value: encodeEntry(point) });
      for (let i = offset + 1; i <= last; i++) ops.push({ type: 'del', key: entryKey(i) });
      offset = snapshot.metadata.index;
      last = offset;
    }
    const first = entries[0];
    if (first !== undefined) {
      entries.forEach((entry, i) => assert(entry.index === first.index + i, 'appended entries must be contiguous'));
      // Entries below the compaction point are already covered by the snapshot.
      const kept = entries.filter((entry) => entry.index > offset);
      const head = kept[0];
      if (head !== undefined) {
        assert(head.index <= last + 1, `gap: appending ${head.index} after ${last}`);
        for (const entry of kept) ops.push({ type: 'put', key: entryKey(entry.index), value: encodeEntry(entry) });
        // A conflicting suffix: whatever lies beyond the new last entry is truncated.
        for (let i = head.index + kept.length; i <= last; i++) ops.push({ type: 'del', key: entryKey(i) });
      }
    }
    if (hardState !== null) {
      assertIndex(hardState.term, 'term');
      assertIndex(hardState.commit, 'commit');
      ops.push({ type: 'put', key: hardStateKey, value: encodeHardState(hardState) });
    }
    return ops;
  }

  private async commit(ops: BatchOp[], sync: boolean): Promise<void> {
    const startedMs = this.clock.nowMs();
    try {
      await writeBatch(this.db, ops, sync);
    } catch (err) {
      this.failure = err;
      throw new Error('Raft log write failed; the log on disk is now in an unknown state', { cause: err });
    }
    const elapsedMs = this.clock.nowMs() - startedMs;
    this.counters.batches++;
    for (const op of ops) this.counters.bytesWritten += op.key.byteLength + (op.type === 'put' ? op.value.byteLength : 0);
    if (sync) {
      this.counters.fsyncs++;
      this.counters.lastFsyncMs = elapsedMs;
      this.counters.fsyncMsTotal += elapsedMs;
    }
  }

  private serialize<T>(write: () => Promise<T>): Promise<T> {
    assert(!this.isClosed, 'write to a closed LevelLogStorage');
    assert(this.writesPending < writesPendingMax, `more than ${writesPendingMax} log writes pending`);
    this.writesPending++;
    const run = this.tail.then(() => {
      if (this.failure !== null) throw new Error('an earlier Raft log write failed', { cause: this.failure });
      return write();
    });
    this.tail = run.then(
      () => undefined,
      () => undefined,
    );
    return run.finally(() => {
      this.writesPending--;
    });
  }
}

function compactionPoint(index: Index, term: Term): Entry {
  return { type: 'normal', term, index, data: new Uint8Array(0) };
}

function levelErrorCode(err: unknown): string | undefined {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    const code = (e as { code?: unknown }).code;
    if (code === 'LEVEL_CORRUPTION') return code;
  }
  return undefined;
}

/** Reads every record, decoding each one (checksums, shapes); order and consistency are checked afterwards. */
async function load(db: Db, dir: string): Promise<Loaded> {
  const loaded: Loaded = { hardState: emptyHardState, snapshot: null, compaction: null, entries: [] };
  const decode = <T>(what: string, decoder: (bytes: Uint8Array) => T, value: Uint8Array): T => {
    try {
      return decoder(value);
    } catch (err) {
      if (!(err instanceof CodecError)) throw err;
      throw new CorruptLogError(`corrupt Raft log in ${dir}: ${what}: ${err.message}`, { cause: err });
    }
  };
  try {
    for await (const [key, value] of db.iterator()) {
      const index = entryIndexOf(key);
      if (index !== null) {
        const entry = decode(`entry ${index}`, decodeEntry, value);
        if (entry.index !== index) throw new CorruptLogError(`corrupt Raft log in ${dir}: key ${index} holds entry ${entry.index}`);
        loaded.entries.push(entry);
      } else if (sameKey(key, hardStateKey)) {
        loaded.hardState = decode('hard state', decodeHardState, value);
      } else if (sameKey(key, snapshotKey)) {
        loaded.snapshot = decode('snapshot', decodeSnapshot, value);
      } else if (sameKey(key, compactionKey)) {
        loaded.compaction = decode('compaction point', decodeEntry, value);
      } else {
        throw new CorruptLogError(`corrupt Raft log in ${dir}: unexpected key ${Buffer.from(key).toString('hex')}`);
      }
    }
  } catch (err) {
    if (err instanceof CorruptLogError || levelErrorCode(err) === undefined) throw err;
    throw new CorruptLogError(`LevelDB in ${dir} is corrupt`, { cause: err });
  }
  return loaded;
}

/**
 * Cross-checks what was loaded and rebuilds the mirror through MemoryLogStorage's own operations:
 * the compaction point (as a snapshot), then the entries, then the real snapshot if it is newer, then the hard
 * state. Everything that must hold for a log this class wrote is checked first, so no assertion can fire here.
 */
function buildMirror(loaded: Loaded, dir: string): MemoryLogStorage {
  const corrupt = (why: string): CorruptLogError => new CorruptLogError(`corrupt Raft log in ${dir}: ${why}`);
  const { hardState, entries } = loaded;
  const snapshot = loaded.snapshot ?? emptySnapshot;
  const point = loaded.compaction ?? compactionPoint(0, 0);
  if (loaded.snapshot === null && point.index > 0) throw corrupt(`entries up to ${point.index} were compacted but no snapshot is stored`);
  if (point.index > snapshot.metadata.index) throw corrupt(`compaction point ${point.index} beyond the snapshot at ${snapshot.metadata.index}`);
  let previous = point;
  for (const entry of entries) {
    if (entry.index !== previous.index + 1) throw corrupt(`entry ${entry.index} follows ${previous.index} (missing or stray entries)`);
    if (entry.term < previous.term) throw corrupt(`entry ${entry.index} has term ${entry.term} below ${previous.term} of the entry before`);
    previous = entry;
  }
  const lastIndex = previous.index;
  const { index: snapshotIndex, term: snapshotTerm } = snapshot.metadata;
  if (snapshotIndex > point.index) {
    const covered = entries[snapshotIndex - point.index - 1];
    if (covered === undefined) throw corrupt(`snapshot at ${snapshotIndex} beyond the last entry ${lastIndex}`);
    if (covered.term !== snapshotTerm) throw corrupt(`snapshot term ${snapshotTerm} differs from entry ${snapshotIndex}'s term ${covered.term}`);
  } else if (point.index > 0 && point.term !== snapshotTerm) {
    throw corrupt(`compaction point term ${point.term} differs from the snapshot term ${snapshotTerm} at ${snapshotIndex}`);
  }
  if (hardState.commit > lastIndex) throw corrupt(`hard state commit ${hardState.commit} beyond the last entry ${lastIndex}`);

  const mirror = new MemoryLogStorage();
  if (point.index > 0) {
    const data = point.index === snapshotIndex ? snapshot.data : new Uint8Array(0);
    mirror.applySnapshot({ metadata: { index: point.index, term: point.term, conf: snapshot.metadata.conf }, data });
  }
  mirror.append(entries);
  if (snapshotIndex > point.index) mirror.createSnapshot(snapshotIndex, snapshot.metadata.conf, snapshot.data);
  mirror.setHardState(hardState);
  return mirror;
}
