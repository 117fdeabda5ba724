// Goal: the idle collector (src/util/idle-gc.ts) runs a full GC once the loop goes idle after the heap grew, never
// while the loop is busy, and is off when gc is not exposed.
// Method: a child with --expose-gc piles up garbage on a busy loop, then idles; the test reads what it did.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { startIdleGc } from '../../../src/util/idle-gc.js';

const here = path.dirname(fileURLToPath(import.meta.url));

void t.test('without --expose-gc there is no idle collector', async (t) => {
  t.equal(startIdleGc(), null);
});

void t.test('a full GC runs when the loop goes idle after the heap grew, none while it is busy', async (t) => {
  const out = execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', path.join(here, 'idle-gc-child.ts')], {
    encoding: 'utf8',
    timeout: 30_000,
  });
  const result = JSON.parse(out.trim().split('\n').pop()!) as { runsWhileBusy: number; runsIdle: number; heapBusy: number; heapIdle: number };
  t.equal(result.runsWhileBusy, 0, 'no collection while the loop was busy');
  t.ok(result.runsIdle >= 1, `collected once idle (${result.runsIdle} runs)`);
  t.ok(result.heapIdle < result.heapBusy, `the heap shrank: ${result.heapBusy} -> ${result.heapIdle} bytes`);
});
