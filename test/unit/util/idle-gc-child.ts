// Child of idle-gc.test.ts, run with --expose-gc: fills the heap with garbage under a busy loop, goes idle, and
// prints what the idle collector did as one JSON line.
import { getHeapStatistics } from 'node:v8';
import { startIdleGc } from '../../../src/util/idle-gc.js';

const idleGc = startIdleGc({ checkMs: 100, growthBytes: 8 * 1024 * 1024 });
if (idleGc === null) throw new Error('gc is not exposed');
const busyUntil = performance.now() + 400;
let kept: unknown[] = [];
let runsWhileBusy = 0;
// Busy: the loop never idles, so no collection may run, however much garbage piles up.
while (performance.now() < busyUntil) {
  for (let i = 0; i < 100_000; i++) kept.push({ i, s: `garbage-${i}` });
  kept = kept.slice(-1000);
  await new Promise((resolve) => setImmediate(resolve));
  runsWhileBusy = idleGc.runs;
}
const heapBusy = getHeapStatistics().total_heap_size;
await new Promise((resolve) => setTimeout(resolve, 600));
const heapIdle = getHeapStatistics().total_heap_size;
idleGc.stop();
process.stdout.write(`${JSON.stringify({ runsWhileBusy, runsIdle: idleGc.runs, heapBusy, heapIdle, kept: kept.length })}\n`);
