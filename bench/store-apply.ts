// In-process micro-benchmark of the store's apply path: KvStore.apply() of put entries (256-byte values, distinct
// rotating keys, a request id each) in calls of `--batch` entries, as the driver hands them over at put c64.
// Prints entries/s and the CPU per entry (all threads, and the main thread alone). Usage: npx tsx bench/store-apply.ts [--entries N] [--batch B]
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { KvStore, encodeCommand } from '../src/store/index.js';
import type { Entry } from '../src/raft/index.js';

function arg(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  return at < 0 ? fallback : Number(process.argv[at + 1]);
}

const total = arg('entries', 50_000);
const batchSize = arg('batch', 64);
const dir = mkdtempSync(join(tmpdir(), 'keel-store-apply-'));
const store = await KvStore.open(dir);
const value = 'v'.repeat(256);
let index = 0;
/** CPU seconds of this process's main thread (the event loop), from /proc. */
function mainThreadSeconds(): number {
  const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const started = process.hrtime.bigint();
const cpu = process.cpuUsage();
const mainBefore = mainThreadSeconds();
try {
  while (index < total) {
    const entries: Entry[] = [];
    for (let i = 0; i < batchSize && index < total; i++) {
      index++;
      const data = encodeCommand({ requestId: randomUUID(), cmd: { kind: 'put', key: `key-${index % 10_000}`, value, lease: 0, prevKv: false } });
      entries.push({ type: 'normal', term: 1, index, data });
    }
    await store.apply(entries);
  }
} finally {
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const used = process.cpuUsage(cpu);
  const mainUs = (mainThreadSeconds() - mainBefore) * 1e6;
  console.log(`store apply: ${index} entries in calls of ${batchSize}: ${Math.round(index / seconds)} entries/s, ` +
    `${((used.user + used.system) / index).toFixed(1)} µs CPU per entry (all threads), ${(mainUs / index).toFixed(1)} on the main thread`);
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}
