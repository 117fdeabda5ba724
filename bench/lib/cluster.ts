// What a scenario needs from a running three-node cluster, whichever system it is.
import type { Api } from './apis.js';
import type { Child } from './supervisor.js';

export interface BenchNode {
  readonly id: string;
  /** http://127.0.0.1:<port> */
  readonly clientUrl: string;
  readonly child: Child;
}

export interface BenchCluster {
  readonly api: Api;
  readonly nodes: readonly BenchNode[];
  /** Human text, e.g. "etcd 3.4.23" or "keel 0.1.0 (node v20.20.2)". */
  readonly version: string;
  /** Waits until the nodes agree on one leader; returns it. */
  leader(timeoutMs?: number): Promise<BenchNode>;
  /** Graceful stop of every node (SIGTERM, then SIGKILL after a grace period). */
  stop(): Promise<void>;
}

export async function pollUntil<T>(what: string, timeoutMs: number, probe: () => Promise<T | null>): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let lastError: unknown = null;
  for (;;) {
    try {
      const value = await probe();
      if (value !== null) return value;
    } catch (err) {
      lastError = err;
    }
    if (performance.now() > deadline) {
      const detail = lastError === null ? '' : `: ${(lastError as Error).message}`;
      throw new Error(`${what} not within ${timeoutMs} ms${detail}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
