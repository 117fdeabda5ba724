// Goal: each apply() call's changes, revision and appliedIndex are persisted together (one atomic batch), so
// after a restart or a crash appliedIndex and data agree and sit at a call boundary, and replaying the log from
// any point rebuilds the same state without applying anything twice; a restore cut short is detected and
// discarded on open.
// Method: apply, close, reopen and compare appliedIndex/revision/stateHash; replay overlapping entry ranges into
// a reopened store; SIGKILL a child process that is applying calls, at random points, reopen and compare with a
// reference; forge an interrupted restore and an unsupported format directly in LevelDB.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClassicLevel } from 'classic-level';
import t from 'tap';
import type { Entry } from '../../../src/raft/index.js';
import { KvStore } from '../../../src/store/index.js';
import { be8, metaKey } from '../../../src/store/keys.js';
import { SeededPrng } from '../../../src/util/prng.js';
import { commandEntry, deleteCmd, killCallSize, killLog, noopEntry, putCmd, tempDir } from './helpers.js';

function entries(count: number): Entry[] {
  const prng = new SeededPrng(7);
  const out: Entry[] = [];
  for (let index = 1; index <= count; index++) {
    const key = `k${prng.int(0, 9)}`;
    const roll = prng.int(0, 9);
    if (roll === 0) out.push(noopEntry(index));
    else if (roll === 1) out.push(commandEntry(index, deleteCmd(key), `r${index}`));
    else out.push(commandEntry(index, putCmd(key, `v${index}`), `r${index}`));
  }
  return out;
}

void t.test('reopen: appliedIndex, revision and data are as applied', async (t) => {
  const dir = tempDir(t);
  let store = await KvStore.open(dir);
  const log = entries(60);
  await store.apply(log);
  const expected = { applied: store.appliedIndex(), revision: store.revision(), hash: await store.stateHash() };
  const keyCount = store.keyCount();
  await store.close();
  store = await KvStore.open(dir);
  t.teardown(() => store.close());
  t.same({ applied: store.appliedIndex(), revision: store.revision(), hash: await store.stateHash() }, expected);
  t.equal(store.keyCount(), keyCount);
  t.equal(store.appliedIndex(), 60);
});

void t.test('a restart at any point then a replay of the whole log gives the same state', async (t) => {
  const log = entries(40);
  const referenceDir = tempDir(t);
  const reference = await KvStore.open(referenceDir);
  t.teardown(() => reference.close());
  await reference.apply(log);
  const expected = await reference.snapshot();
  for (const stop of [0, 1, 13, 39, 40]) {
    const dir = tempDir(t);
    let store = await KvStore.open(dir);
    await store.apply(log.slice(0, stop));
    await store.close();
    // After the "crash", Raft replays from its own applied point, which may be older: all of the log here.
    store = await KvStore.open(dir);
    const results = await store.apply(log);
    t.ok(
      results.slice(0, stop).every((r) => r === undefined),
      `entries up to ${stop} are skipped`,
    );
    t.same(await store.snapshot(), expected, `same bytes after a stop at ${stop}`);
    await store.close();
  }
});

void t.test('an interrupted restore is discarded on open', async (t) => {
  const dir = tempDir(t);
  let store = await KvStore.open(dir);
  await store.apply(entries(10));
  await store.close();
  const db = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  await db.put(metaKey('restoring'), Uint8Array.of(1));
  await db.close();
  store = await KvStore.open(dir);
  t.teardown(() => store.close());
  t.equal(store.appliedIndex(), 0);
  t.equal(store.revision(), 0);
  t.equal((await store.range({ key: '', prefix: true })).count, 0);
});

void t.test('a store of an unknown format is refused', async (t) => {
  const dir = tempDir(t);
  const store = await KvStore.open(dir);
  await store.close();
  const db = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  await db.put(metaKey('format'), be8(99));
  await db.close();
  await t.rejects(KvStore.open(dir), { name: 'AssertionError' });
});

void t.test('close() during an apply waits for it, so what apply answered is what the disk holds', async (t) => {
  const dir = tempDir(t);
  let store = await KvStore.open(dir);
  const applying = store.apply(entries(50));
  const closing = store.close();
  const results = await applying;
  await closing;
  t.equal(results.length, 50);
  store = await KvStore.open(dir);
  t.teardown(() => store.close());
  t.equal(store.appliedIndex(), 50);
});

/**
 * Runs kill-child.ts on `dir` and SIGKILLs it `delayMs` after it has reported `calls` more written calls (so
 * somewhere in a later call: building its batch or writing it); returns the last appliedIndex it reported.
 */
async function runAndKill(dir: string, calls: number, delayMs: number): Promise<number> {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(here, 'kill-child.ts'), dir], {
    cwd: path.resolve(here, '../../..'),
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let reported = 0;
  let seen = 0;
  let buffered = '';
  child.stdout.on('data', (chunk: Buffer) => {
    buffered += chunk.toString('utf8');
    const lines = buffered.split('\n');
    buffered = lines.pop()!;
    for (const line of lines) {
      reported = Number(line);
      if (++seen === calls) setTimeout(() => child.kill('SIGKILL'), delayMs);
    }
  });
  const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => {
    child.on('exit', (c, s) => resolve([c, s]));
  });
  if (signal !== 'SIGKILL') throw new Error(`the child ended on its own (code ${code}) before it was killed`);
  return reported;
}

void t.test('SIGKILL while applying: the store reopens at a call boundary, with the state of that point', async (t) => {
  const dir = tempDir(t);
  const log = killLog();
  const prng = new SeededPrng(11);
  for (let round = 0; round < 3; round++) {
    const reported = await runAndKill(dir, prng.int(2, 12), prng.int(0, 5));
    const store = await KvStore.open(dir);
    const applied = store.appliedIndex();
    t.ok(applied >= reported, `round ${round}: applied ${applied} includes every reported call (last ${reported})`);
    t.equal(applied % killCallSize, 0, `round ${round}: applied ${applied} is a call boundary`);
    const reference = await KvStore.open(tempDir(t));
    await reference.apply(log.slice(0, applied));
    t.same(await store.snapshot(), await reference.snapshot(), `round ${round}: the state of entry ${applied}`);
    await Promise.all([store.close(), reference.close()]);
  }
});
