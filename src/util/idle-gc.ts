// Gives memory back when a burst of load is over. Under load V8 promotes many short-lived objects (requests in
// flight survive a few young-generation collections) and grows the old generation to match; that space is
// garbage once the burst ends, but it stays resident until V8's own memory reducer gets to it, which takes
// seconds and may not happen at all while a trickle of requests goes on. Measured on a leader after 10 s of put
// c64 and 10 s of read c64: 108 MiB of V8 heap pages resident, 34 MiB of them live (README, "Memory" under
// Operations).
//
// So, every `checkMs`, if the process was mostly idle since the last check (event-loop utilization below
// `idleUtilization`) and the V8 heap grew by `growthBytes` since the last full collection, run one full
// collection (~10-40 ms on such a heap, only on an idle loop). It needs `gc` exposed (node --expose-gc, as
// `keel cluster up` and the benchmark start their nodes: bin/node-options.ts); without it this does nothing.
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import type { Logger } from './logger.js';

export interface IdleGcOptions {
  readonly checkMs?: number;
  readonly idleUtilization?: number;
  readonly growthBytes?: number;
  readonly logger?: Logger;
}

export const idleGcDefaults = { checkMs: 1_000, idleUtilization: 0.2, growthBytes: 32 * 1024 * 1024 } as const;

export interface IdleGc {
  /** Full collections run so far. */
  readonly runs: number;
  stop(): void;
}

/** Starts the idle collector; null when `gc` is not exposed. */
export function startIdleGc(options: IdleGcOptions = {}): IdleGc | null {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc !== 'function') return null;
  const checkMs = options.checkMs ?? idleGcDefaults.checkMs;
  const idleUtilization = options.idleUtilization ?? idleGcDefaults.idleUtilization;
  const growthBytes = options.growthBytes ?? idleGcDefaults.growthBytes;
  let baseline = getHeapStatistics().total_heap_size;
  let last: EventLoopUtilization = performance.eventLoopUtilization();
  const state = { runs: 0 };
  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    const utilization = performance.eventLoopUtilization(now, last).utilization;
    last = now;
    const heap = getHeapStatistics().total_heap_size;
    if (heap < baseline) baseline = heap; // V8 shrank it on its own
    if (utilization >= idleUtilization || heap - baseline < growthBytes) return;
    const startedAt = performance.now();
    gc();
    baseline = getHeapStatistics().total_heap_size;
    last = performance.eventLoopUtilization();
    state.runs++;
    options.logger?.debug({ heapBefore: heap, heapAfter: baseline, ms: Math.round(performance.now() - startedAt) }, 'idle full GC');
  }, checkMs);
  timer.unref();
  return {
    get runs() {
      return state.runs;
    },
    stop: () => clearInterval(timer),
  };
}
