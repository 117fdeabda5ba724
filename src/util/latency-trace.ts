// Latency tracing for the single-write critical path (bench/latency-trace.ts), off unless KEEL_LATENCY_TRACE=1.
// Each mark is a stage name and an absolute time in ms (performance.timeOrigin + now(), so marks of different
// processes on one machine line up on one axis). Marks are kept in memory (bounded) and written to stderr as one
// `LATTRACE [...]` JSON line per second, off the path being measured. Turned off, a mark is one boolean check.
import { performance } from 'node:perf_hooks';

export const latencyTraceEnabled = process.env['KEEL_LATENCY_TRACE'] === '1';

const marksMax = 100_000;
let marks: [string, number][] = [];
let timer: NodeJS.Timeout | null = null;

function flush(): void {
  if (marks.length === 0) return;
  const out = marks;
  marks = [];
  process.stderr.write(`LATTRACE ${JSON.stringify(out)}\n`);
}

/** Records that `stage` happened now (no-op unless tracing is on). */
export function traceMark(stage: string): void {
  if (!latencyTraceEnabled) return;
  if (marks.length >= marksMax) return;
  marks.push([stage, performance.timeOrigin + performance.now()]);
  if (timer === null) {
    timer = setInterval(flush, 1_000);
    timer.unref();
    process.once('exit', flush);
  }
}
