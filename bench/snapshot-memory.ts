// In-process measurement of what the durable Raft log keeps resident for its latest snapshot: opens a
// LevelLogStorage in a temp dir, appends entries, records a snapshot of `--mib` MiB (as the driver does every
// snapshotEntries entries) and compacts up to it, drops every reference the caller holds, collects garbage and prints
// RSS, external and ArrayBuffer memory: after the snapshot, after one snapshot() read (as when catching a follower
// up) and after a close and reopen. `--root DIR` loads LevelLogStorage from another build's dist (A/B comparisons).
// Usage: node --expose-gc dist/bench/snapshot-memory.js [--mib 40] [--root /other/checkout/dist]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { LevelLogStorage as LevelLogStorageType } from '../src/raft/io/level-log-storage.js';
import type { Entry } from '../src/raft/index.js';

function arg(name: string): string | undefined {
  const at = process.argv.indexOf(`--${name}`);
  return at < 0 ? undefined : process.argv[at + 1];
}

const mib = Number(arg('mib') ?? 40);
const root = arg('root');
const modulePath = root === undefined ? '../src/raft/io/level-log-storage.js' : pathToFileURL(path.join(root, 'src/raft/io/level-log-storage.js')).href;
const { LevelLogStorage } = (await import(modulePath)) as { LevelLogStorage: typeof LevelLogStorageType };
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');

async function settle(): Promise<Record<string, number>> {
  for (let i = 0; i < 3; i++) {
    gc!();
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const m = process.memoryUsage();
  const toMiB = (n: number): number => Math.round((n / 2 ** 20) * 10) / 10;
  return { rssMiB: toMiB(m.rss), externalMiB: toMiB(m.external), arrayBuffersMiB: toMiB(m.arrayBuffers), heapUsedMiB: toMiB(m.heapUsed) };
}

// In functions of their own, so no suspended async frame of the caller keeps the data alive.
async function takeSnapshot(log: LevelLogStorageType): Promise<void> {
  const data = new Uint8Array(mib * 2 ** 20);
  for (let i = 0; i < data.byteLength; i += 4096) data[i] = i & 0xff;
  await log.createSnapshot(1000, conf, data);
  await log.compact(1000);
}

function readSnapshot(log: LevelLogStorageType): void {
  if (log.snapshot().data.byteLength !== mib * 2 ** 20) throw new Error('snapshot data read back has the wrong size');
}

const conf = { voters: ['n1', 'n2', 'n3'], learners: [] };
const dir = mkdtempSync(path.join(tmpdir(), 'keel-snapshot-memory-'));
try {
  let log = await LevelLogStorage.open(dir);
  const entries: Entry[] = [];
  for (let index = 1; index <= 1000; index++) entries.push({ type: 'normal', term: 1, index, data: new Uint8Array(100).fill(index & 0xff) });
  await log.save({ hardState: { term: 1, vote: null, commit: 1000 }, entries, snapshot: null }, true);
  const before = await settle();
  await takeSnapshot(log);
  const afterSnapshot = await settle();
  readSnapshot(log);
  const afterRead = await settle();
  await log.close();
  log = await LevelLogStorage.open(dir);
  const afterReopen = await settle();
  await log.close();
  console.log(JSON.stringify({ build: root ?? 'this', mib, before, afterSnapshot, afterRead, afterReopen }));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
