// Apply throughput, measured in process: N put entries (with request ids, so the dedupe table is written too)
// applied to a fresh store in calls of `batch` entries, as the Raft driver hands over one Ready's entries.
// Prints, per run, entries/s (wall clock) and the CPU time per entry (all threads: the main loop and LevelDB's
// thread pool), as JSON; CPU time is the steadier number on a busy machine. Not a test (tap runs *.test.ts).
// Usage: npx tsx test/unit/store/apply-throughput.bench.ts [--entries 50000] [--batch 256] [--runs 3]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Entry } from '../../../src/raft/index.js';
import { KvStore } from '../../../src/store/index.js';
import { commandEntry, putCmd } from './helpers.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

async function run(count: number, batch: number, value: string): Promise<{ perSecond: number; cpuUs: number }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'keel-apply-bench-'));
  const store = await KvStore.open(dir);
  try {
    const entries: Entry[] = [];
    for (let i = 1; i <= count; i++) entries.push(commandEntry(i, putCmd(`k/${i % 10_000}`, value), `req-${i}`));
    const [started, cpu] = [performance.now(), process.cpuUsage()];
    for (let at = 0; at < entries.length; at += batch) await store.apply(entries.slice(at, at + batch));
    const used = process.cpuUsage(cpu);
    const perSecond = Math.round(count / ((performance.now() - started) / 1000));
    return { perSecond, cpuUs: Math.round(((used.user + used.system) / count) * 10) / 10 };
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const [count, batch, runs] = [arg('entries', 50_000), arg('batch', 256), arg('runs', 3)];
  const value = 'x'.repeat(arg('valueBytes', 64));
  const results: { perSecond: number; cpuUs: number }[] = [];
  for (let i = 0; i < runs; i++) results.push(await run(count, batch, value));
  const entriesPerSecond = results.map((r) => r.perSecond);
  const cpuMicrosPerEntry = results.map((r) => r.cpuUs);
  process.stdout.write(`${JSON.stringify({ entries: count, batch, entriesPerSecond, cpuMicrosPerEntry })}\n`);
}

await main();
