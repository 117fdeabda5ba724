// What every workload shares: per-node undici pools with short timeouts, a unique X-Keel-Request-Id per
// operation, and the history recorder (history.ts) that turns each HTTP answer into ok / fail / info:
//   2xx = ok; 503 = fail (not applied); another 4xx = fail; 504, a reset, a client timeout = info (maybe applied);
//   connection refused = fail (nothing was sent). Any other 5xx is a server bug: recorded as info AND counted.
import { Pool } from 'undici';
import type { HistoryEvent } from '../history.js';

export interface Endpoint {
  readonly id: string;
  readonly address: string;
}

export interface HttpAnswer {
  readonly status: number;
  readonly body: unknown;
  readonly revision: number | undefined;
}

export class ChaosHttp {
  private readonly pools = new Map<string, Pool>();
  constructor(readonly endpoints: readonly Endpoint[], private readonly timeoutMs: number) {
    for (const e of endpoints) {
      this.pools.set(e.id, new Pool(`http://${e.address}`, { connections: 16, connectTimeout: 1000, keepAliveTimeout: 4000, pipelining: 1 }));
    }
  }

  /** One request; throws the transport error (with .code) when there is no HTTP answer. */
  async send(node: string, method: 'GET' | 'PUT' | 'POST' | 'DELETE', path: string, body: unknown, requestId: string, timeoutMs = this.timeoutMs): Promise<HttpAnswer> {
    const pool = this.pools.get(node);
    if (pool === undefined) throw new Error(`no node ${node}`);
    const response = await pool.request({
      method,
      path,
      headers: { 'x-keel-request-id': requestId, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    const text = await response.body.text();
    let parsed: unknown = null;
    try {
      parsed = text === '' ? null : JSON.parse(text);
    } catch {
      parsed = text;
    }
    const header = response.headers['x-keel-revision'];
    const revision = typeof header === 'string' ? Number(header) : undefined;
    return { status: response.statusCode, body: parsed, revision };
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.destroy()));
  }
}

export type Completion =
  | { readonly type: 'ok'; readonly value: unknown; readonly revision?: number }
  | { readonly type: 'fail' | 'info'; readonly error: string; readonly value?: unknown };

export function errorCodeOf(answer: HttpAnswer): string {
  const code = (answer.body as { error?: { code?: unknown } } | null)?.error?.code;
  return typeof code === 'string' ? code : `HTTP${answer.status}`;
}

/** The completion an HTTP error answer means (see the top of the file). */
export function classifyAnswer(answer: HttpAnswer): Completion {
  const error = errorCodeOf(answer);
  if (answer.status === 503) return { type: 'fail', error };
  if (answer.status === 504) return { type: 'info', error };
  if (answer.status >= 400 && answer.status < 500) return { type: 'fail', error, value: answer.body };
  return { type: 'info', error };
}

export function classifyThrown(err: unknown): Completion {
  const code = (err as { code?: unknown }).code;
  const error = typeof code === 'string' ? code : String(err);
  if (code === 'ECONNREFUSED') return { type: 'fail', error };
  return { type: 'info', error };
}

let requestSeq = 0;
export function nextRequestId(prefix: string): string {
  requestSeq += 1;
  return `chaos-${prefix}-${process.pid}-${requestSeq}`;
}

export class Recorder {
  readonly events: HistoryEvent[] = [];
  /** 5xx answers other than 503/504: server bugs. */
  readonly serverErrors: { node: string; f: string; status: number; body: unknown }[] = [];

  /** Runs one operation and records its invoke and completion. `run` maps the HTTP answer to a completion. */
  async op(process: number, f: string, args: unknown, node: string, prefix: string, run: (requestId: string) => Promise<Completion>): Promise<Completion> {
    const requestId = nextRequestId(prefix);
    this.events.push({ process, type: 'invoke', f, value: args, timeMs: performance.now(), requestId, node });
    let completion: Completion;
    try {
      completion = await run(requestId);
    } catch (err) {
      completion = classifyThrown(err);
    }
    const timeMs = performance.now();
    if (completion.type === 'ok') {
      this.events.push({ process, type: 'ok', f, value: completion.value, timeMs, requestId, node, ...(completion.revision === undefined ? {} : { revision: completion.revision }) });
    } else {
      this.events.push({ process, type: completion.type, f, value: completion.value, timeMs, requestId, node, error: completion.error });
    }
    return completion;
  }

  noteServerError(node: string, f: string, answer: HttpAnswer): void {
    if (answer.status >= 500 && answer.status !== 503 && answer.status !== 504) {
      this.serverErrors.push({ node, f, status: answer.status, body: answer.body });
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
