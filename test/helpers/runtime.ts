// Small helpers for the real-process runtime tests (test/cluster/): polling with a deadline, raw HTTP reads of
// /health and /metrics, Prometheus text parsing, and process liveness by PID.
import { readFileSync } from 'node:fs';
import { sleep } from './cluster.js';

/**
 * How long setup steps (a cluster's first leader, a restart) may take. Not a bound under test: on a shared 2-core
 * machine under heavy load, three Node processes loading the server can take many seconds of wall time. The
 * bounds the tests check (election after spawn or kill, graceful stop) are asserted separately and tightly.
 */
export const setupWaitMs = 30_000;

/** Polls `check` every `everyMs` until it returns a non-null value; throws with `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | null> | T | null, everyMs = 50): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let lastError: unknown = null;
  for (;;) {
    try {
      const value = await check();
      if (value !== null) return value;
    } catch (err) {
      lastError = err;
    }
    if (performance.now() > deadline) {
      const why = lastError === null ? '' : ` (last error: ${(lastError as Error).message})`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await sleep(everyMs);
  }
}

/** GET http://<address><path> as text, with a deadline; never throws for a non-2xx status. */
export async function getText(address: string, path: string, timeoutMs = 2_000): Promise<{ status: number; text: string }> {
  const response = await fetch(`http://${address}${path}`, { signal: AbortSignal.timeout(timeoutMs) });
  return { status: response.status, text: await response.text() };
}

/**
 * The value of one sample in Prometheus text: `name` with any labels (null when absent). With several label sets
 * (histogram series per peer, say) the values are summed.
 */
export function metricValue(text: string, name: string): number | null {
  let total: number | null = null;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (match === null || match[1] !== name) continue;
    total = (total ?? 0) + Number(match[3]);
  }
  return total;
}

/** True while a process with this PID exists and is not a zombie. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // Field 3 of /proc/<pid>/stat is the state; Z = exited but not yet reaped by its parent.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Resolves true once no process with this PID is alive, false after `timeoutMs`. */
export async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (isAlive(pid)) {
    if (performance.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}
