// LevelLogStorage: the durable Raft log on LevelDB (classic-level).
//
// Reads are synchronous, as the core needs them: they are served from an in-memory mirror (a MemoryLogStorage)
// of everything on disk since the last compaction, plus the latest snapshot's metadata. The snapshot's data (a copy
// of the whole store, tens of MB) is not held: it lives in its own file (snapshot-files.ts) and snapshot() reads it
// back on demand, which the core does only to send a snapshot to a lagging follower. The driver's periodic
// snapshots have no data at all (recordSnapshot(): the store on disk stands for them); snapshot() then throws
// SnapshotUnavailableError and remembers the request, and the driver exports one (createSnapshot()). Writes are
// asynchronous: each one is ONE LevelDB batch (synced when asked), and the mirror changes only after the batch
// has been written, so the core never reads anything that is not on disk. Reusing MemoryLogStorage as the mirror
// means both implementations share one set of log semantics, which the contract suite
// (test/contract/log-storage.test.ts) pins down.
//
// On-disk layout (one database per node, owned by this class; any other key is a sign of corruption):
//   'e' + 8-byte big-endian index   an entry (fixed width, so LevelDB's key order is index order)
//   'h'                             the hard state
//   's'                             the latest snapshot's metadata; its data is the file
//                                   snap/<index>-<term>.snap inside the log directory, written (and fsynced)
//                                   before this record. Logs written before that hold a whole snapshot record
//                                   here (metadata and data): open() moves its data to a file.
//   'u'                             present when the latest snapshot was recorded WITHOUT data (recordSnapshot():
//                                   the state machine's own synced state stands for it), holding the same
//                                   metadata as 's'; there is no file then. Exporting one, or installing one
//                                   from the leader, deletes it.
//   'c'                             the compaction point: index and term of the last discarded entry, stored
//                                   as an empty normal entry (it becomes the mirror's dummy entry)
// Every value is a codec record with its own checksum. open() reads and verifies all of it before serving
// anything; a record that is corrupt, truncated or out of place makes it throw CorruptLogError (RELIABILITY S18).
import path from 'node:path';
import { ClassicLevel } from 'classic-level';
import { assert, assertIndex } from '../../util/assert.js';
import { systemClock, type Clock } from '../../util/clock.js';
import {
  CodecError, decodeEntry, decodeHardState, decodeSnapshot, decodeSnapshotMetadata, encodeEntry, encodeHardState, encodeSnapshotMetadata,
} from '../codec.js';
import type { DurableLogStorage, InitialState, LogWrite } from '../storage.js';
import { MemoryLogStorage } from '../storage.js';
import type { ConfState, Entry, HardState, Index, Snapshot, SnapshotMetadata, Term } from '../types.js';
import { emptyHardState, emptySnapshot } from '../types.js';
import { writeBatch } from '../../util/level-batch.js';
import { SnapshotFiles } from './snapshot-files.js';

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
const unexportedKey = Uint8Array.of(0x75); // 'u'
/** Deletes per batch in compact(). */
export const compactBatchEntries = 2_048;

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
export const levelLogKeys = {
  entry: entryKey, hardState: hardStateKey, snapshot: snapshotKey, compaction: compactionKey, unexported: unexportedKey,
} as const;

type Db = ClassicLevel<Uint8Array, Uint8Array>;
type BatchOp = { type: 'put'; key: Uint8Array; value: Uint8Array } | { type: 'del'; key: Uint8Array };

const sameKey = (a: Uint8Array, b: Uint8Array): boolean => a.byteLength === b.byteLength && a.every((x, i) => x === b[i]);

/** Everything read back from disk, before it is cross-checked. */
interface Loaded {
  hardState: HardState;
  /** The snapshot record: metadata only, or (a log from an older version) metadata and data. */
  snapshot: SnapshotMetadata | Snapshot | null;
  /** The 'u' record: the snapshot's metadata when it was recorded without data. */
  unexported: SnapshotMetadata | null;
  compaction: Entry | null;
  entries: Entry[];
}

export class LevelLogStorage implements DurableLogStorage {
  private readonly db: Db;
  /** The log as on disk, except that its snapshot carries no data (that stays in `files`). */
  private readonly mirror: MemoryLogStorage;
  private readonly files: SnapshotFiles;
  private readonly clock: Clock;
  private readonly counters = { batches: 0, fsyncs: 0, bytesWritten: 0, lastFsyncMs: 0, fsyncMsTotal: 0 };
  /** Tail of the write chain; every write starts after the previous one settled. */
  private tail: Promise<void> = Promise.resolve();
  private writesPending = 0;
  /** Set by a failed batch: what is on disk is then unknown, so every later write fails too. */
  private failure: unknown = null;
  private isClosed = false;

  private constructor(db: Db, mirror: MemoryLogStorage, files: SnapshotFiles, options: LevelLogStorageOptions) {
    this.db = db;
    this.mirror = mirror;
    this.files = files;
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
      const loaded = await load(db, dir);
      const mirror = buildMirror(loaded, dir);
      const files = new SnapshotFiles(path.join(dir, 'snap'));
      await settleSnapshotFile(db, files, loaded.unexported === null ? loaded.snapshot : null, dir);
      return new LevelLogStorage(db, mirror, files, options);
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

  /**
   * The latest snapshot, its data read from its file now (and not kept). Throws CorruptLogError if unreadable,
   * SnapshotUnavailableError if it was recorded without data (the request is remembered: snapshotRequested()).
   */
  snapshot(): Snapshot {
    const held = this.mirror.snapshot();
    return held.metadata.index === 0 ? held : readSnapshotFile(this.files, held.metadata, 'corrupt Raft log');
  }

  /** The latest snapshot's metadata, without reading its data. */
  snapshotMetadata(): SnapshotMetadata {
    return this.mirror.snapshotMetadata();
  }

  snapshotRequested(): boolean {
    return this.mirror.snapshotRequested();
  }

  /** False while the latest snapshot was recorded without data and none has been exported since. */
  snapshotExported(): boolean {
    return this.mirror.snapshotExported();
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
      // The data first: the batch below is what makes the snapshot current, and it must find its file there.
      if (write.snapshot !== null) await this.writeFile(write.snapshot);
      await this.commit(ops, sync);
      if (write.snapshot !== null) this.mirror.applySnapshot({ metadata: write.snapshot.metadata, data: noData });
      this.mirror.append(write.entries);
      if (write.hardState !== null) this.mirror.setHardState(write.hardState);
      if (write.snapshot !== null) await this.removeOlderFiles();
    });
  }

  /**
   * Records a snapshot of the local state machine at `index` (<= the last applied index), synced. `index` may
   * equal the current snapshot's if that one was recorded without data.
   */
  createSnapshot(index: Index, conf: ConfState, data: Uint8Array): Promise<Snapshot> {
    return this.serialize(async () => {
      this.mirror.checkNewSnapshot(index, !this.mirror.snapshotExported());
      const snapshot: Snapshot = { metadata: { index, term: this.mirror.term(index), conf }, data };
      await this.writeFile(snapshot);
      // Synced: once entries are compacted, this record (and its file) is the only thing standing for them.
      await this.commit(
        [{ type: 'put', key: snapshotKey, value: encodeSnapshotMetadata(snapshot.metadata) }, { type: 'del', key: unexportedKey }],
        true,
      );
      this.mirror.createSnapshot(index, conf, noData);
      await this.removeOlderFiles();
      return snapshot;
    });
  }

  /**
   * Records a snapshot at `index` without its data, synced: the caller made the state machine's state at `index`
   * (or later) durable first. Its data is exported only if a follower needs it (createSnapshot() then).
   */
  recordSnapshot(index: Index, conf: ConfState): Promise<SnapshotMetadata> {
    return this.serialize(async () => {
      this.mirror.checkNewSnapshot(index, true);
      const metadata: SnapshotMetadata = { index, term: this.mirror.term(index), conf };
      const value = encodeSnapshotMetadata(metadata);
      await this.commit([{ type: 'put', key: snapshotKey, value }, { type: 'put', key: unexportedKey, value }], true);
      this.mirror.recordSnapshot(index, conf);
      await this.removeOlderFiles();
      return metadata;
    });
  }

  /**
   * Discards entries up to and including `index`, which the snapshot must cover, in batches of at most
   * `compactBatchEntries` deletes. Each batch is a complete compaction up to its own last index (the compaction
   * point moves with its deletes), and log writes queued meanwhile go between two batches: one batch of 50,000
   * deletes held every append behind it for 80-110 ms, a stall of every commit at each snapshot of a write load.
   * Not synced: LevelDB replays its write-ahead log in order, so if a batch survives a crash the snapshot written
   * before it did too, and if it is lost the entries are simply still there. Closing the log stops it between
   * two batches (a call after close() is a bug, as for every write).
   */
  async compact(index: Index): Promise<void> {
    while (!(await this.serialize(() => this.compactBatch(index)))) {
      if (this.isClosed) return;
    }
  }

  /** One batch of compact(): up to `compactBatchEntries` more entries toward `index`; true once it is reached. */
  private async compactBatch(index: Index): Promise<boolean> {
    const offset = this.mirror.firstIndex() - 1;
    if (index <= offset) return true;
    const snapshotIndex = this.mirror.snapshotMetadata().index;
    assert(index <= snapshotIndex, `compact(${index}) beyond the snapshot at ${snapshotIndex}`);
    assert(index <= this.mirror.lastIndex(), `compact(${index}) beyond last ${this.mirror.lastIndex()}`);
    const to = Math.min(index, offset + compactBatchEntries);
    const ops: BatchOp[] = [{ type: 'put', key: compactionKey, value: encodeEntry(compactionPoint(to, this.mirror.term(to))) }];
    for (let i = offset + 1; i <= to; i++) ops.push({ type: 'del', key: entryKey(i) });
    await this.commit(ops, false);
    this.mirror.compact(to);
    return to === index;
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
      const current = this.mirror.snapshotMetadata().index;
      assert(snapshot.metadata.index >= current, `snapshot at ${snapshot.metadata.index} older than the one at ${current}`);
      ops.push({ type: 'put', key: snapshotKey, value: encodeSnapshotMetadata(snapshot.metadata) });
      ops.push({ type: 'del', key: unexportedKey });
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

  private async writeFile(snapshot: Snapshot): Promise<void> {
    try {
      await this.files.write(snapshot);
    } catch (err) {
      this.failure = err;
      throw new Error('Raft snapshot file write failed', { cause: err });
    }
  }

  /**
   * Deletes the files of snapshots older than the mirror's, once the batch replacing them landed (until then
   * snapshot() may still read them). Best effort: a file left behind is removed at the next open.
   */
  private async removeOlderFiles(): Promise<void> {
    try {
      const exported = this.mirror.snapshotExported();
      await this.files.removeExcept(exported ? SnapshotFiles.nameOf(this.mirror.snapshotMetadata()) : null);
    } catch {
      // Harmless: open() removes stray files.
    }
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
    // No write pending (the tail has settled): start this one now rather than a microtask later, so its batch is
    // issued before whatever the caller does next (the driver starts an apply right after).
    const idle = this.writesPending === 0;
    this.writesPending++;
    const start = async (): Promise<T> => {
      if (this.failure !== null) throw new Error('an earlier Raft log write failed', { cause: this.failure });
      return write();
    };
    const run = idle ? start() : this.tail.then(start);
    this.tail = run.then(
      () => undefined,
      () => undefined,
    );
    return run.finally(() => {
      this.writesPending--;
    });
  }
}

const noData = new Uint8Array(0);

const isSnapshot = (record: SnapshotMetadata | Snapshot): record is Snapshot => 'data' in record;

/**
 * Makes the snapshot directory match the 's' record: its file must be there and hold exactly that snapshot
 * (else CorruptLogError); an older log's inline snapshot is moved to a file; any other file is a leftover of a
 * crash (a snapshot written whose batch never landed, a temporary file, an older snapshot) and is deleted. A
 * snapshot recorded without data is passed as null: it has no file, and every file is a leftover.
 */
async function settleSnapshotFile(db: Db, files: SnapshotFiles, record: SnapshotMetadata | Snapshot | null, dir: string): Promise<void> {
  if (record === null) {
    await files.removeExcept(null);
    return;
  }
  if (isSnapshot(record)) {
    await files.write(record);
    await writeBatch(db, [{ type: 'put', key: snapshotKey, value: encodeSnapshotMetadata(record.metadata) }], true);
  } else {
    readSnapshotFile(files, record, `corrupt Raft log in ${dir}`);
  }
  const metadata = isSnapshot(record) ? record.metadata : record;
  await files.removeExcept(SnapshotFiles.nameOf(metadata));
}

/** Reads the snapshot file for `metadata`; a missing, damaged or foreign file is a corrupt log (`what`: prefix). */
function readSnapshotFile(files: SnapshotFiles, metadata: SnapshotMetadata, what: string): Snapshot {
  try {
    return files.read(metadata);
  } catch (err) {
    if (!(err instanceof CodecError)) throw err;
    throw new CorruptLogError(`${what}: ${err.message}`, { cause: err });
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

const metadataKind = encodeSnapshotMetadata({ index: 0, term: 0, conf: emptySnapshot.metadata.conf })[1];

/** The 's' record: metadata (this version) or a whole snapshot (a log written by an older version). */
function decodeSnapshotRecord(value: Uint8Array): SnapshotMetadata | Snapshot {
  try {
    return decodeSnapshotMetadata(value);
  } catch (err) {
    // Byte 1 is the record kind: a damaged metadata record is reported as such, not as a damaged snapshot record.
    if (!(err instanceof CodecError) || value[1] === metadataKind) throw err;
    return decodeSnapshot(value);
  }
}

/** Reads every record, decoding each one (checksums, shapes); order and consistency are checked afterwards. */
async function load(db: Db, dir: string): Promise<Loaded> {
  const loaded: Loaded = { hardState: emptyHardState, snapshot: null, unexported: null, compaction: null, entries: [] };
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
        loaded.snapshot = decode('snapshot', decodeSnapshotRecord, value);
      } else if (sameKey(key, unexportedKey)) {
        loaded.unexported = decode('unexported snapshot', decodeSnapshotMetadata, value);
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
  const record = loaded.snapshot;
  const snapshot: Snapshot = record === null ? emptySnapshot : { metadata: isSnapshot(record) ? record.metadata : record, data: noData };
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
  const { unexported } = loaded;
  // A snapshot recorded without data: 's' holds its metadata only, and 'u' the same metadata.
  const unexportedMatches = unexported !== null && record !== null && !isSnapshot(record) && snapshotIndex > 0 &&
    unexported.index === snapshotIndex && unexported.term === snapshotTerm;
  if (unexported !== null && !unexportedMatches) {
    throw corrupt(`the unexported-snapshot record (${unexported.index}) does not match the snapshot record (${snapshotIndex})`);
  }

  const mirror = new MemoryLogStorage();
  if (point.index > 0) {
    mirror.applySnapshot({ metadata: { index: point.index, term: point.term, conf: snapshot.metadata.conf }, data: noData });
  }
  mirror.append(entries);
  if (unexported !== null) mirror.recordSnapshot(snapshotIndex, snapshot.metadata.conf);
  else if (snapshotIndex > point.index) mirror.createSnapshot(snapshotIndex, snapshot.metadata.conf, noData);
  mirror.setHardState(hardState);
  return mirror;
}
