// One health probe: an HTTP GET (any 2xx passes) or a TCP connect (a completed handshake passes), bounded by the
// check's timeoutMs and abortable (the checker aborts its probes when this node stops being the leader). A probe
// never throws: every failure (refused, reset, timed out, non-2xx, aborted) is a failing result with a reason.
import net from 'node:net';
import { Agent, request } from 'undici';
import type { HealthCheck } from './registry.js';
import { splitTcpTarget } from './registry.js';

export interface ProbeResult {
  readonly isPassing: boolean;
  /** Why it failed (or the HTTP status that passed), for logs. */
  readonly detail: string;
}

/** Runs one probe of `check`; resolves (never rejects) within about timeoutMs, or soon after `signal` aborts. */
export type Prober = (check: HealthCheck, signal: AbortSignal) => Promise<ProbeResult>;

export class NetworkProber {
  // Probes reuse connections per target (a probe every intervalMs to the same origin); idle ones close quickly.
  private readonly agent = new Agent({ keepAliveTimeout: 2_000, keepAliveMaxTimeout: 10_000, connections: 4 });

  readonly probe: Prober = async (check, signal) => {
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(new Error(`timed out after ${check.timeoutMs} ms`)), check.timeoutMs);
    const onAbort = (): void => timeout.abort(new Error('probe cancelled'));
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) onAbort();
    try {
      if (check.http !== undefined) return await this.probeHttp(check.http, check.timeoutMs, timeout.signal);
      if (check.tcp !== undefined) return await probeTcp(check.tcp, timeout.signal);
      return { isPassing: false, detail: 'check has no target' };
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }
  };

  private async probeHttp(url: string, timeoutMs: number, signal: AbortSignal): Promise<ProbeResult> {
    try {
      const response = await request(url, {
        method: 'GET',
        dispatcher: this.agent,
        signal,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        headers: { 'user-agent': 'keel-health-check' },
      });
      // The body is not needed; a short one is read so the connection can be reused, a long one closes it.
      await response.body.dump({ limit: 64 * 1024, signal });
      const ok = response.statusCode >= 200 && response.statusCode < 300;
      return { isPassing: ok, detail: `HTTP ${response.statusCode}` };
    } catch (err) {
      return { isPassing: false, detail: reason(err, signal) };
    }
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

function probeTcp(target: string, signal: AbortSignal): Promise<ProbeResult> {
  const address = splitTcpTarget(target);
  if (address === null) return Promise.resolve({ isPassing: false, detail: `bad tcp target ${target}` });
  return new Promise((resolve) => {
    const socket = net.connect({ host: address.host, port: address.port });
    const finish = (result: ProbeResult): void => {
      signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve(result);
    };
    const onAbort = (): void => finish({ isPassing: false, detail: reason(signal.reason, signal) });
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) onAbort();
    socket.once('connect', () => finish({ isPassing: true, detail: 'connected' }));
    socket.once('error', (err) => finish({ isPassing: false, detail: reason(err, signal) }));
  });
}

function reason(err: unknown, signal: AbortSignal): string {
  if (signal.aborted && signal.reason instanceof Error) return signal.reason.message;
  if (err instanceof Error) return (err as NodeJS.ErrnoException).code ?? err.message;
  return String(err);
}
