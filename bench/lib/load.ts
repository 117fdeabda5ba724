// Closed-loop load with autocannon: `connections` keep-alive connections, each with one request outstanding,
// for `seconds`. Every request is built by `build(n)` (n counts up across the step), so bodies and paths can
// rotate. Latencies are taken from autocannon's per-response event at full (sub-millisecond) precision, 2xx only,
// since its own histogram rounds to whole milliseconds.
import type { EventEmitter } from 'node:events';
import autocannon from 'autocannon';
import type { HttpRequest } from './http.js';

export interface Measurement {
  /** Successful (2xx) operations per second. */
  readonly rps: number | null;
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  /** Successful operations measured. */
  readonly count: number;
  readonly seconds: number;
  readonly non2xx: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly connections?: number;
  readonly note?: string;
}

export interface LoadStep {
  readonly url: string;
  readonly connections: number;
  readonly seconds: number;
  readonly build: (n: number) => HttpRequest;
  /** Requests per second over all connections (absent: closed loop, as fast as answers come back). */
  readonly overallRate?: number;
}

export function percentile(sorted: Float64Array | readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] ?? null;
}

export async function runLoad(step: LoadStep): Promise<Measurement> {
  let counter = 0;
  let latencies = new Float64Array(1 << 16);
  let count = 0;
  let non2xx = 0;
  const first = step.build(counter);
  let settle: (err: unknown, result: autocannon.Result) => void = () => undefined;
  const finished = new Promise<autocannon.Result>((resolve, reject) => {
    settle = (err, result) => (err === null || err === undefined ? resolve(result) : reject(err as Error));
  });
  const instance = autocannon(
    {
      url: step.url,
      connections: step.connections,
      duration: step.seconds,
      timeout: 10,
      ...(step.overallRate !== undefined && { overallRate: step.overallRate }),
      requests: [
        {
          method: first.method,
          path: first.path,
          headers: { ...first.headers },
          ...(first.body !== undefined && { body: first.body }),
          setupRequest: (request) => {
            const next = step.build(counter++);
            return { ...request, method: next.method, path: next.path, headers: { ...next.headers }, body: next.body ?? '' };
          },
        },
      ],
    },
    (err, result) => settle(err, result),
  );
  // The typings omit the first argument autocannon really passes (the client).
  (instance as unknown as EventEmitter).on('response', (_client: unknown, statusCode: number, _bytes: number, responseTimeMs: number) => {
    if (statusCode < 200 || statusCode > 299) {
      non2xx++;
      return;
    }
    if (count === latencies.length) {
      const grown = new Float64Array(latencies.length * 2);
      grown.set(latencies);
      latencies = grown;
    }
    latencies[count++] = responseTimeMs;
  });
  const result = await finished;
  const sorted = latencies.subarray(0, count).sort();
  const seconds = result.duration;
  return {
    rps: seconds > 0 ? count / seconds : null,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    count,
    seconds,
    non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    connections: step.connections,
  };
}

/** A latency-only measurement (sequential scenarios): percentiles of the samples, no throughput. */
export function latencyMeasurement(samplesMs: readonly number[], seconds: number, note?: string): Measurement {
  const sorted = Float64Array.from(samplesMs).sort();
  return {
    rps: null,
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    count: samplesMs.length,
    seconds,
    non2xx: 0,
    errors: 0,
    timeouts: 0,
    ...(note !== undefined && { note }),
  };
}
