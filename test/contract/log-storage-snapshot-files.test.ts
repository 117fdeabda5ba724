// Goal: LevelLogStorage keeps its snapshot's data in a file of its own, never in memory, and open() holds that file
// to the same standard as the LevelDB records.
// Method: real LevelDB and real files in a temp dir. Checks the file layout after snapshots are created and
// received (one file, named after the current snapshot, data read back on demand), the leftovers of a crash between
// a file write and its metadata batch (ignored and removed at open), a missing, damaged or mismatched file
// (CorruptLogError, at open and on a later snapshot()), and a log from the previous version, whose 's' record holds
// the data inline (opens, serves the same snapshot, and is moved to a file).
import { ClassicLevel } from 'classic-level';
import { copyFile, mkdtemp, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { decodeSnapshotMetadata, encodeSnapshot } from '../../src/raft/codec.js';
import { LevelLogStorage, levelLogKeys } from '../../src/raft/io/level-log-storage.js';
import { SnapshotFiles } from '../../src/raft/io/snapshot-files.js';
import type { LogWrite } from '../../src/raft/storage.js';
import type { ConfState, Entry, Index, Snapshot } from '../../src/raft/types.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const conf: ConfState = { voters: ['n1', 'n2', 'n3'], learners: [] };
const data = (n: number, bytes = 4): Uint8Array => new Uint8Array(bytes).fill(n & 0xff);
const run = (first: Index, terms: number[]): Entry[] => terms.map((term, i) => ({ type: 'normal', index: first + i, term, data: data(first + i) }));
const write = (parts: Partial<LogWrite>): LogWrite => ({ hardState: null, entries: [], snapshot: null, ...parts });

async function tempDir(t: Pick<Test, 'teardown'>): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'keel-snapfiles-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const snapDir = (dir: string): string => path.join(dir, 'snap');
const listSnap = async (dir: string): Promise<string[]> => (await readdir(snapDir(dir))).sort();

/** A closed log in a fresh dir: entries 1..4, a snapshot at 2 (term 1) with 100 bytes of data. */
async function smallLog(t: Test): Promise<{ dir: string; snapshot: Snapshot }> {
  const dir = await tempDir(t);
  const log = await LevelLogStorage.open(dir);
  await log.save(write({ entries: run(1, [1, 1, 2, 2]), hardState: { term: 2, vote: 'n1', commit: 3 } }), true);
  const snapshot = await log.createSnapshot(2, conf, data(2, 100));
  await log.close();
  return { dir, snapshot };
}

async function withRaw(dir: string, edit: (db: ClassicLevel<Uint8Array, Uint8Array>) => Promise<void>): Promise<void> {
  const raw = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
  await raw.open();
  try {
    await edit(raw);
  } finally {
    await raw.close();
  }
}

void t.test('snapshot data lives in one file named after the current snapshot, read on demand', async (t) => {
  const dir = await tempDir(t);
  const log = await LevelLogStorage.open(dir);
  t.teardown(() => log.close());
  await log.save(write({ entries: run(1, [1, 1, 2, 2, 2]), hardState: { term: 2, vote: null, commit: 5 } }), true);
  const created = await log.createSnapshot(3, conf, data(3, 5000));
  t.same(await listSnap(dir), ['3-2.snap']);
  t.same(log.snapshot(), created);
  t.same(log.snapshotMetadata(), created.metadata);
  t.not(log.snapshot().data, log.snapshot().data, 'each call reads the data afresh: none is held');
  await log.createSnapshot(5, conf, data(5, 5000));
  t.same(await listSnap(dir), ['5-2.snap'], 'the older file is deleted once the newer snapshot is recorded');
  const received: Snapshot = { metadata: { index: 9, term: 3, conf }, data: data(9, 7000) };
  await log.save(write({ snapshot: received, hardState: { term: 3, vote: null, commit: 9 } }), true);
  t.same(await listSnap(dir), ['9-3.snap'], 'a received snapshot takes the same path');
  t.same(log.snapshot(), received);
  await log.save(write({ snapshot: { metadata: received.metadata, data: data(9, 7000) } }), true);
  t.same(await listSnap(dir), ['9-3.snap'], 'the same snapshot received again replaces its file in place');
  t.same(log.snapshot(), received);
  const record = await withValue(log, dir);
  t.same(decodeSnapshotMetadata(record), received.metadata, "'s' holds only the metadata");
});

/** The raw 's' value, read with the log closed (it is reopened afterwards for the teardown). */
async function withValue(log: LevelLogStorage, dir: string): Promise<Uint8Array> {
  await log.close();
  let value = new Uint8Array(0);
  await withRaw(dir, async (db) => {
    value = (await db.get(levelLogKeys.snapshot))!.slice();
  });
  return value;
}

void t.test('a crash between a file write and its batch leaves stray files that open ignores and removes', async (t) => {
  const { dir, snapshot } = await smallLog(t);
  // The file of a snapshot at 4 whose metadata batch never landed, and a half-written temporary file.
  await new SnapshotFiles(snapDir(dir)).write({ metadata: { index: 4, term: 2, conf }, data: data(4, 100) });
  await writeFile(path.join(snapDir(dir), '5-2.snap.tmp'), data(5, 10));
  t.same(await listSnap(dir), ['2-1.snap', '4-2.snap', '5-2.snap.tmp']);
  const log = await LevelLogStorage.open(dir);
  t.teardown(() => log.close());
  t.same(log.snapshot(), snapshot, 'the recorded snapshot is served, not the stray one');
  t.same(await listSnap(dir), ['2-1.snap']);
});

void t.test('a missing, damaged or mismatched snapshot file is a corrupt log', async (t) => {
  const cases: [string, (dir: string) => Promise<void>, RegExp][] = [
    ['missing file', (dir) => unlink(path.join(snapDir(dir), '2-1.snap')), /2-1\.snap cannot be read/],
    ['flipped bit', async (dir) => {
      const file = path.join(snapDir(dir), '2-1.snap');
      const bytes = await readFile(file);
      bytes[bytes.byteLength - 1]! ^= 0x01;
      await writeFile(file, bytes);
    }, /2-1\.snap.*checksum/],
    ['truncated file', async (dir) => {
      const file = path.join(snapDir(dir), '2-1.snap');
      await writeFile(file, (await readFile(file)).subarray(0, 50));
    }, /2-1\.snap/],
    ['another snapshot under its name', async (dir) => {
      await writeFile(path.join(snapDir(dir), '2-1.snap'), encodeSnapshot({ metadata: { index: 2, term: 1, conf: { voters: ['n1'], learners: [] } }, data: data(2, 100) }));
    }, /not the one recorded/],
  ];
  for (const [what, tamper, message] of cases) {
    const { dir } = await smallLog(t);
    await tamper(dir);
    await t.rejects(LevelLogStorage.open(dir), { name: 'CorruptLogError', message }, what);
    await withRaw(dir, async () => undefined); // the database handle was released
  }
  const { dir } = await smallLog(t);
  const log = await LevelLogStorage.open(dir);
  t.teardown(() => log.close());
  await unlink(path.join(snapDir(dir), '2-1.snap'));
  t.throws(() => log.snapshot(), { name: 'CorruptLogError' }, 'a file lost while running is reported, never served stale');
  t.equal(log.snapshotMetadata().index, 2, 'the metadata is still known');
});

void t.test("a log from the previous version (data inline in 's') opens and is moved to a file", async (t) => {
  const { dir, snapshot } = await smallLog(t);
  await withRaw(dir, (db) => db.put(levelLogKeys.snapshot, encodeSnapshot(snapshot)));
  await rm(snapDir(dir), { recursive: true });
  const log = await LevelLogStorage.open(dir);
  t.same(log.snapshot(), snapshot);
  t.same(log.term(2), 1);
  t.same(await listSnap(dir), ['2-1.snap']);
  t.same(decodeSnapshotMetadata(await withValue(log, dir)), snapshot.metadata, "'s' now holds only the metadata");
  const again = await LevelLogStorage.open(dir);
  t.teardown(() => again.close());
  t.same(again.snapshot(), snapshot, 'and it reopens from the file');
  // A copy of the old-format value with the file also present (a crash during the move) opens too.
  await again.close();
  await copyFile(path.join(snapDir(dir), '2-1.snap'), path.join(snapDir(dir), 'x.tmp'));
  await withRaw(dir, (db) => db.put(levelLogKeys.snapshot, encodeSnapshot(snapshot)));
  const third = await LevelLogStorage.open(dir);
  t.teardown(() => third.close());
  t.same(third.snapshot(), snapshot);
  t.same(await listSnap(dir), ['2-1.snap']);
});
