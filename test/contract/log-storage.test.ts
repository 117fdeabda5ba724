// Goal: MemoryLogStorage and LevelLogStorage implement the same log semantics, and the LevelDB one is durable and
// refuses to serve a damaged log.
// Method: one contract suite runs against both through a tiny async adapter (Memory's writes are synchronous,
// Level's are not): append, conflicting-suffix truncation, term/entries/firstIndex/lastIndex, maxBytes, snapshot
// install and creation, snapshots recorded without data (SnapshotUnavailableError until one is exported),
// compaction, and the LogCompactedError/LogUnavailableError edges. LevelDB-only cases close and
// reopen the database and compare everything the core can read, and tamper with the files through classic-level
// directly (garbage, truncated and bit-flipped values, a missing entry, a stray key) to check open() throws
// CorruptLogError and releases the database.
import { ClassicLevel } from 'classic-level';
import { readdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { CorruptLogError, LevelLogStorage, compactBatchEntries, levelLogKeys } from '../../src/raft/io/level-log-storage.js';
import type { LogWrite } from '../../src/raft/storage.js';
import { LogCompactedError, LogUnavailableError, MemoryLogStorage, SnapshotUnavailableError, type LogStorage } from '../../src/raft/storage.js';
import { emptySnapshot, entryBytes, type ConfState, type Entry, type HardState, type Index, type Snapshot, type SnapshotMetadata } from '../../src/raft/types.js';
import { encodeEntry, encodeSnapshotMetadata } from '../../src/raft/codec.js';

/** The write side both implementations offer the driver, asynchronous. */
interface DurableLog extends LogStorage {
  save(write: LogWrite, sync: boolean): Promise<void>;
  createSnapshot(index: Index, conf: ConfState, data: Uint8Array): Promise<Snapshot>;
  recordSnapshot(index: Index, conf: ConfState): Promise<SnapshotMetadata>;
  compact(index: Index): Promise<void>;
  close(): Promise<void>;
}

/** MemoryLogStorage behind the asynchronous write interface (snapshot, then entries, then hard state). */
class MemoryAdapter implements DurableLog {
  private readonly log = new MemoryLogStorage();
  initialState = () => this.log.initialState();
  entries = (lo: Index, hi: Index, maxBytes: number) => this.log.entries(lo, hi, maxBytes);
  term = (index: Index) => this.log.term(index);
  firstIndex = () => this.log.firstIndex();
  lastIndex = () => this.log.lastIndex();
  snapshot = () => this.log.snapshot();
  snapshotMetadata = () => this.log.snapshotMetadata();
  snapshotRequested = () => this.log.snapshotRequested();
  async save(write: LogWrite): Promise<void> {
    if (write.snapshot !== null) this.log.applySnapshot(write.snapshot);
    this.log.append(write.entries);
    if (write.hardState !== null) this.log.setHardState(write.hardState);
  }
  async createSnapshot(index: Index, conf: ConfState, data: Uint8Array): Promise<Snapshot> {
    return this.log.createSnapshot(index, conf, data);
  }
  async recordSnapshot(index: Index, conf: ConfState): Promise<SnapshotMetadata> {
    this.log.recordSnapshot(index, conf);
    return this.log.snapshotMetadata();
  }
  async compact(index: Index): Promise<void> {
    this.log.compact(index);
  }
  async close(): Promise<void> {}
}

async function tempDir(t: Pick<Test, 'teardown'>): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'keel-log-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

interface Implementation {
  readonly name: string;
  open(t: Pick<Test, 'teardown'>): Promise<DurableLog>;
}

const implementations: Implementation[] = [
  { name: 'MemoryLogStorage', open: async () => new MemoryAdapter() },
  {
    name: 'LevelLogStorage',
    open: async (t) => {
      const log = await LevelLogStorage.open(await tempDir(t));
      t.teardown(() => log.close());
      return log;
    },
  },
];

const conf: ConfState = { voters: ['n1', 'n2', 'n3'], learners: [] };
const data = (n: number, bytes = 4): Uint8Array => new Uint8Array(bytes).fill(n & 0xff);
const entry = (index: Index, term: number, bytes = 4): Entry => ({ type: 'normal', index, term, data: data(index, bytes) });
/** Entries first..first+terms.length-1 with the given terms. */
const run = (first: Index, terms: number[], bytes = 4): Entry[] => terms.map((term, i) => entry(first + i, term, bytes));
const write = (parts: Partial<LogWrite>): LogWrite => ({ hardState: null, entries: [], snapshot: null, ...parts });
const all = Number.MAX_SAFE_INTEGER;
/** The type of a tap subtest (the last overload of t.test takes only the callback). */
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

/** Everything the core can read from a log, for comparisons. */
function view(log: LogStorage): object {
  const first = log.firstIndex();
  const last = log.lastIndex();
  const terms: number[] = [];
  for (let i = first - 1; i <= last; i++) terms.push(log.term(i));
  const metadata = log.snapshotMetadata();
  let snapshot: Snapshot | 'not exported';
  try {
    snapshot = log.snapshot();
  } catch (err) {
    if (!(err instanceof SnapshotUnavailableError)) throw err;
    snapshot = 'not exported';
  }
  return { first, last, terms, initial: log.initialState(), metadata, snapshot, entries: log.entries(first, last + 1, all) };
}

for (const impl of implementations) {
  void t.test(impl.name, async (t) => {
    void t.test('an empty log', async (t) => {
      const log = await impl.open(t);
      t.equal(log.firstIndex(), 1);
      t.equal(log.lastIndex(), 0);
      t.equal(log.term(0), 0);
      t.same(log.entries(1, 1, all), []);
      t.same(log.snapshot(), emptySnapshot);
      t.same(log.initialState(), { hardState: { term: 0, vote: null, commit: 0 }, confState: { voters: [], learners: [] } });
      t.throws(() => log.term(1), LogUnavailableError);
    });

    void t.test('append and read back: entries, terms, bounds and hard state', async (t) => {
      const log = await impl.open(t);
      const hardState: HardState = { term: 3, vote: 'n2', commit: 2 };
      await log.save(write({ entries: run(1, [1, 1, 2, 2, 3]), hardState }), true);
      t.equal(log.firstIndex(), 1);
      t.equal(log.lastIndex(), 5);
      t.same([0, 1, 2, 3, 4, 5].map((i) => log.term(i)), [0, 1, 1, 2, 2, 3]);
      t.same(log.entries(1, 6, all), run(1, [1, 1, 2, 2, 3]));
      t.same(log.entries(2, 4, all), run(2, [1, 2]));
      t.same(log.initialState().hardState, hardState);
      await log.save(write({ entries: run(6, [3]) }), false);
      t.equal(log.lastIndex(), 6, 'an unsynced append is readable too');
      t.same(log.initialState().hardState, hardState, 'a write without hard state keeps it');
      t.throws(() => log.term(7), LogUnavailableError);
    });

    void t.test('entries that are views into a larger buffer are held without pinning that buffer', async (t) => {
      const log = await impl.open(t);
      const shared = new Uint8Array(1 << 20).map((_, i) => i & 0xff);
      type NormalEntry = Extract<Entry, { type: 'normal' }>;
      const views = [1, 2, 3].map((index): NormalEntry => ({ type: 'normal', index, term: 1, data: shared.subarray(index * 1000, index * 1000 + 300) }));
      const big: NormalEntry = { type: 'normal', index: 4, term: 1, data: shared.subarray(0, 200_000) };
      const expected = [...views, big].map((e) => ({ ...e, data: e.data.slice() }));
      await log.save(write({ entries: [...views, big] }), true);
      const held = log.entries(1, 5, all);
      t.same(held, expected, 'same bytes');
      for (const e of held) {
        if (e.type !== 'normal') continue;
        t.ok(e.data.buffer !== shared.buffer && e.data.buffer.byteLength <= 256 * 1024, `entry ${e.index} holds ${e.data.buffer.byteLength} bytes, not the 1 MiB buffer`);
      }
      shared.fill(0);
      t.same(log.entries(1, 5, all), expected, 'a later change to the shared buffer does not reach the log');
    });

    void t.test('a conflicting suffix is truncated', async (t) => {
      const log = await impl.open(t);
      await log.save(write({ entries: run(1, [1, 1, 2, 2, 2]) }), true);
      await log.save(write({ entries: run(4, [3]) }), true);
      t.equal(log.lastIndex(), 4, 'entries after the new one are gone');
      t.same(log.entries(1, 5, all), [...run(1, [1, 1, 2]), entry(4, 3)]);
      await log.save(write({ entries: run(2, [4, 4, 4, 4, 4, 4]) }), true);
      t.equal(log.lastIndex(), 7, 'a longer replacement extends the log');
      t.same(log.entries(1, 8, all), [entry(1, 1), ...run(2, [4, 4, 4, 4, 4, 4])]);
      await log.save(write({ entries: run(1, [5]) }), true);
      t.equal(log.lastIndex(), 1, 'replacing from the first index keeps only the new entry');
      t.equal(log.term(1), 5);
      await t.rejects(log.save(write({ entries: run(3, [5]) }), true), { name: 'AssertionError' }, 'a gap is a bug');
      await t.rejects(log.save(write({ entries: [entry(2, 5), entry(4, 5)] }), true), { name: 'AssertionError' });
      t.equal(log.lastIndex(), 1, 'a rejected write changes nothing');
    });

    void t.test('maxBytes bounds entries() but always returns at least one', async (t) => {
      const log = await impl.open(t);
      await log.save(write({ entries: run(1, [1, 1, 1, 1, 1], 100) }), true);
      const size = entryBytes(entry(1, 1, 100));
      t.equal(log.entries(1, 6, 0).length, 1);
      t.equal(log.entries(1, 6, size).length, 1);
      t.equal(log.entries(1, 6, 2 * size).length, 2);
      t.equal(log.entries(1, 6, 2 * size + 1).length, 2);
      t.equal(log.entries(1, 6, all).length, 5);
      t.same(log.entries(3, 6, 2 * size), run(3, [1, 1], 100));
    });

    void t.test('create a snapshot, then compact up to it', async (t) => {
      const log = await impl.open(t);
      await log.save(write({ entries: run(1, [1, 1, 2, 2, 3, 3]) }), true);
      const snapshot = await log.createSnapshot(4, conf, data(9, 16));
      t.same(snapshot, { metadata: { index: 4, term: 2, conf }, data: data(9, 16) });
      t.same(log.snapshot(), snapshot);
      t.same(log.initialState().confState, conf);
      t.equal(log.firstIndex(), 1, 'creating a snapshot does not compact');
      await t.rejects(log.createSnapshot(4, conf, data(1)), { name: 'AssertionError' }, 'not newer');
      await t.rejects(log.createSnapshot(7, conf, data(1)), { name: 'AssertionError' }, 'beyond the last entry');
      await t.rejects(log.compact(5), { name: 'AssertionError' }, 'beyond the snapshot');

      await log.compact(3);
      t.equal(log.firstIndex(), 4);
      t.equal(log.term(3), 2, 'the compaction point keeps its term');
      t.throws(() => log.term(2), LogCompactedError);
      t.throws(() => log.entries(3, 5, all), LogCompactedError);
      t.same(log.entries(4, 7, all), run(4, [2, 3, 3]));
      await log.compact(4);
      t.equal(log.firstIndex(), 5);
      t.equal(log.term(4), 2);
      await log.compact(2);
      t.equal(log.firstIndex(), 5, 'compacting below the compaction point does nothing');
      t.equal(log.lastIndex(), 6);
      await log.save(write({ entries: run(3, [1, 2, 2, 4]) }), true);
      t.same(log.entries(5, 7, all), run(5, [2, 4]), 'entries at or below the compaction point are skipped');
    });

    void t.test('a snapshot recorded without data: refused until one is exported', async (t) => {
      const log = await impl.open(t);
      await log.save(write({ entries: run(1, [1, 1, 2, 2, 3, 3]) }), true);
      t.equal(log.snapshotRequested(), false);
      const metadata = await log.recordSnapshot(4, conf);
      t.same(metadata, { index: 4, term: 2, conf });
      t.same(log.snapshotMetadata(), metadata);
      t.same(log.initialState().confState, conf);
      t.equal(log.snapshotRequested(), false, 'nobody asked yet');
      t.throws(() => log.snapshot(), SnapshotUnavailableError);
      t.equal(log.snapshotRequested(), true, 'the refusal is remembered');
      await log.compact(4);
      t.equal(log.firstIndex(), 5, 'compaction up to it works as with data');
      t.equal(log.term(4), 2);
      await t.rejects(log.recordSnapshot(3, conf), { name: 'AssertionError' }, 'older');
      await t.rejects(log.recordSnapshot(7, conf), { name: 'AssertionError' }, 'beyond the last entry');
      const exported = await log.createSnapshot(4, conf, data(4, 32));
      t.same(log.snapshot(), exported, 'exported at the same index');
      t.equal(log.snapshotRequested(), false, 'the request is answered');
      await t.rejects(log.createSnapshot(4, conf, data(1)), { name: 'AssertionError' }, 'an exported one is not exported again');
      await log.recordSnapshot(6, conf);
      t.throws(() => log.snapshot(), SnapshotUnavailableError, 'a newer one recorded without data replaces it');
      const installed: Snapshot = { metadata: { index: 9, term: 4, conf }, data: data(9, 8) };
      await log.save(write({ snapshot: installed }), true);
      t.equal(log.snapshotRequested(), false, 'a snapshot from the leader answers the request too');
      t.same(log.snapshot(), installed);
    });

    void t.test('install a snapshot from the leader', async (t) => {
      const log = await impl.open(t);
      await log.save(write({ entries: run(1, [1, 1, 2]) }), true);
      const snapshot: Snapshot = { metadata: { index: 10, term: 4, conf }, data: data(7, 32) };
      const hardState = { term: 5, vote: null, commit: 10 };
      await log.save(write({ snapshot, entries: run(11, [5, 5]), hardState }), true);
      t.same(log.snapshot(), snapshot);
      t.equal(log.firstIndex(), 11);
      t.equal(log.lastIndex(), 12);
      t.equal(log.term(10), 4);
      t.throws(() => log.term(9), LogCompactedError);
      t.same(log.entries(11, 13, all), run(11, [5, 5]));
      t.same(log.initialState(), { hardState, confState: conf });
      const older: Snapshot = { metadata: { index: 5, term: 2, conf }, data: data(1) };
      await t.rejects(log.save(write({ snapshot: older }), true), { name: 'AssertionError' }, 'an older snapshot is a bug');
      await log.save(write({ snapshot: { metadata: { index: 12, term: 5, conf }, data: data(2) } }), true);
      t.equal(log.firstIndex(), 13, 'a snapshot replaces the whole log, even entries it covers');
      t.equal(log.lastIndex(), 12);
    });
  });
}

void t.test('LevelLogStorage only', async (t) => {
  void t.test('reopen restores the log, hard state and snapshot exactly, at every stage', async (t) => {
    const dir = await tempDir(t);
    let log = await LevelLogStorage.open(dir);
    t.teardown(() => log.close());
    const reopen = async (what: string): Promise<void> => {
      const before = view(log);
      await log.close();
      log = await LevelLogStorage.open(dir);
      t.same(view(log), before, what);
    };
    await reopen('empty');
    await log.save(write({ entries: run(1, [1, 1, 2, 2, 2, 3, 3, 3]), hardState: { term: 3, vote: 'n1', commit: 5 } }), true);
    await reopen('entries and hard state');
    await log.save(write({ entries: run(7, [4]), hardState: { term: 4, vote: null, commit: 6 } }), true);
    await reopen('after a truncation');
    await log.createSnapshot(6, conf, data(6, 1000));
    await reopen('snapshot, not compacted');
    await log.compact(4);
    await reopen('compacted below the snapshot');
    await log.compact(6);
    await reopen('compacted up to the snapshot');
    await log.save(write({ snapshot: { metadata: { index: 20, term: 6, conf }, data: data(20, 64) }, hardState: { term: 6, vote: null, commit: 20 } }), true);
    await reopen('snapshot installed from a leader');
    await log.save(write({ entries: run(21, [6, 6, 7]) }), false);
    await reopen('unsynced append after a snapshot');
    await log.recordSnapshot(22, conf);
    await reopen('a snapshot recorded without data');
    await log.compact(22);
    await reopen('compacted up to a snapshot without data');
    await log.createSnapshot(22, conf, data(22, 200));
    await reopen('that snapshot exported');
    t.same(readdirSync(path.join(dir, 'snap')), ['22-6.snap']);
    await log.save(write({ entries: run(24, [7, 7]) }), true);
    await log.recordSnapshot(25, conf);
    await reopen('a newer one without data');
    t.same(readdirSync(path.join(dir, 'snap')), [], 'the older file is deleted');
  });

  void t.test('writes are serialized in call order', async (t) => {
    const log = await LevelLogStorage.open(await tempDir(t));
    t.teardown(() => log.close());
    await Promise.all(run(1, [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]).map((e) => log.save(write({ entries: [e] }), false)));
    t.equal(log.lastIndex(), 10);
    await Promise.all([log.createSnapshot(5, conf, data(5)), log.compact(5), log.save(write({ entries: run(11, [2]) }), true)]);
    t.same([log.firstIndex(), log.lastIndex(), log.snapshot().metadata.index], [6, 11, 5]);
  });

  void t.test('a long compaction runs in batches, and writes queued meanwhile go between them', async (t) => {
    const dir = await tempDir(t);
    let log = await LevelLogStorage.open(dir);
    t.teardown(() => log.close());
    const count = 2 * compactBatchEntries + 100;
    await log.save(write({ entries: run(1, new Array<number>(count).fill(1)), hardState: { term: 1, vote: null, commit: count } }), true);
    await log.recordSnapshot(count - 50, conf);
    const batchesBefore = log.stats().batches;
    const order: string[] = [];
    const compacting = log.compact(count - 50).then(() => order.push('compact'));
    const appending = log.save(write({ entries: run(count + 1, [1]) }), true).then(() => order.push('append'));
    await Promise.all([compacting, appending]);
    t.same(order, ['append', 'compact'], 'the append queued after the compaction started did not wait for all of it');
    t.equal(log.stats().batches - batchesBefore, 4, 'three compaction batches and the append');
    t.same([log.firstIndex(), log.lastIndex(), log.term(count - 50)], [count - 49, count + 1, 1]);
    const before = view(log);
    await log.close();
    log = await LevelLogStorage.open(dir);
    t.same(view(log), before, 'reopened: the same log');
    const raw = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
    await log.close();
    await raw.open();
    let entries = 0;
    for await (const key of raw.keys()) if (key.length > 1) entries++;
    await raw.close();
    t.equal(entries, 51, 'every compacted entry is gone from LevelDB');
  });

  void t.test('closing the log stops a compaction between two batches', async (t) => {
    const dir = await tempDir(t);
    let log = await LevelLogStorage.open(dir);
    const count = 3 * compactBatchEntries;
    await log.save(write({ entries: run(1, new Array<number>(count).fill(1)) }), true);
    await log.recordSnapshot(count, conf);
    const compacting = log.compact(count);
    await log.close();
    await compacting;
    log = await LevelLogStorage.open(dir);
    t.teardown(() => log.close());
    t.equal(log.firstIndex(), compactBatchEntries + 1, 'the first batch landed, the rest did not start');
    t.equal(log.lastIndex(), count, 'the entries not compacted are all there');
    t.equal(log.snapshotMetadata().index, count);
  });

  void t.test('counters for metrics', async (t) => {
    const log = await LevelLogStorage.open(await tempDir(t));
    t.teardown(() => log.close());
    t.same(log.stats(), { batches: 0, fsyncs: 0, bytesWritten: 0, lastFsyncMs: 0, fsyncMsTotal: 0 });
    await log.save(write({ entries: run(1, [1], 1000) }), true);
    await log.save(write({ entries: run(2, [1], 1000) }), false);
    await log.save(write({}), true);
    const stats = log.stats();
    t.equal(stats.batches, 2, 'an empty write writes nothing');
    t.equal(stats.fsyncs, 1);
    t.ok(stats.bytesWritten > 2000);
    t.ok(stats.lastFsyncMs >= 0 && stats.fsyncMsTotal >= stats.lastFsyncMs);
  });

  void t.test('close is idempotent and later writes are bugs', async (t) => {
    const log = await LevelLogStorage.open(await tempDir(t));
    await log.close();
    await log.close();
    t.throws(() => log.save(write({ entries: run(1, [1]) }), true), { name: 'AssertionError' });
  });

  /** Builds a small log, closes it, lets `tamper` edit the raw database, and expects open() to refuse it. */
  async function expectCorrupt(t: Test, what: string, tamper: (db: ClassicLevel<Uint8Array, Uint8Array>) => Promise<void>, message: RegExp): Promise<void> {
    const dir = await tempDir(t);
    const log = await LevelLogStorage.open(dir);
    await log.save(write({ entries: run(1, [1, 1, 2, 2]), hardState: { term: 2, vote: 'n1', commit: 3 } }), true);
    await log.createSnapshot(2, conf, data(2, 100));
    await log.close();
    const raw = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
    await raw.open();
    await tamper(raw);
    await raw.close();
    await t.rejects(LevelLogStorage.open(dir), { name: 'CorruptLogError', message }, what);
    const after = new ClassicLevel(dir);
    await after.open();
    t.pass(`${what}: the database handle was released`);
    await after.close();
  }

  void t.test('a damaged log is never served', async (t) => {
    const key = levelLogKeys.entry(2);
    await expectCorrupt(t, 'garbage under an entry key', (db) => db.put(key, new TextEncoder().encode('garbage!')), /entry 2/);
    await expectCorrupt(t, 'truncated entry', async (db) => {
      const value = (await db.get(key))!;
      await db.put(key, value.subarray(0, value.byteLength - 3));
    }, /entry 2.*(checksum|truncated)/);
    await expectCorrupt(t, 'a flipped bit in an entry', async (db) => {
      const value = (await db.get(key))!.slice();
      value[value.byteLength - 1]! ^= 0x10;
      await db.put(key, value);
    }, /entry 2.*checksum/);
    await expectCorrupt(t, 'an entry stored under the wrong key', (db) => db.put(key, encodeEntry(entry(3, 2))), /key 2 holds entry 3/);
    await expectCorrupt(t, 'a missing entry', (db) => db.del(levelLogKeys.entry(3)), /entry 4 follows 2/);
    await expectCorrupt(t, 'a corrupt snapshot', async (db) => {
      const value = (await db.get(levelLogKeys.snapshot))!.slice();
      value[20]! ^= 1;
      await db.put(levelLogKeys.snapshot, value);
    }, /snapshot/);
    await expectCorrupt(t, 'a corrupt hard state', (db) => db.put(levelLogKeys.hardState, new Uint8Array([1, 2, 3])), /hard state/);
    await expectCorrupt(t, 'a stray key', (db) => db.put(new Uint8Array([0x7a]), new Uint8Array([1])), /unexpected key 7a/);
    await expectCorrupt(t, 'entries compacted without a snapshot', async (db) => {
      await db.del(levelLogKeys.snapshot);
      await db.batch([
        { type: 'put', key: levelLogKeys.compaction, value: encodeEntry(entry(1, 1, 0)) },
        { type: 'del', key: levelLogKeys.entry(1) },
      ]);
    }, /no snapshot/);
    const lazy = encodeSnapshotMetadata({ index: 3, term: 2, conf });
    await expectCorrupt(t, 'an unexported-snapshot record for another snapshot', (db) => db.put(levelLogKeys.unexported, lazy), /unexported-snapshot record \(3\)/);
    await expectCorrupt(t, 'a snapshot without its unexported record and without a file', (db) => db.put(levelLogKeys.snapshot, lazy), /snapshot/);
  });

  void t.test('CorruptLogError is a typed error', async (t) => {
    t.ok(new CorruptLogError('x') instanceof Error);
    t.equal(new CorruptLogError('x').name, 'CorruptLogError');
  });
});
