// Raw HTTP for the API acceptance tests: every answer comes back whole (status, headers, text, parsed JSON)
// whatever its status, so tests can check error bodies, headers and exact bytes. Bodies may be objects (sent as
// JSON), strings or buffers (sent as they are, for malformed input). Streams (watch) are opened with openStream.
import http from 'node:http';
import { Agent, request } from 'undici';
import type { TestCluster } from './cluster.js';
import { sleep } from './cluster.js';

export interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
  /** The parsed body, or undefined when it is not JSON. */
  readonly json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** X-Keel-Revision as a number, or null when absent. */
  readonly revision: number | null;
}

export interface CallOptions {
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
  readonly timeoutMs?: number;
}

const agent = new Agent({ connections: 32, keepAliveTimeout: 5_000, connectTimeout: 2_000 });

export async function closeHttp(): Promise<void> {
  await agent.close();
}

/** Sends one request to `address` (host:port) and returns the answer, whatever its status. */
export async function call(address: string, method: string, path: string, options: CallOptions = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...options.headers };
  let body: string | Buffer | null = null;
  if (options.body !== undefined) {
    if (typeof options.body === 'string' || Buffer.isBuffer(options.body)) body = options.body;
    else body = JSON.stringify(options.body);
    headers['content-type'] ??= 'application/json';
  }
  const response = await request(`http://${address}${path}`, {
    method: method as 'GET',
    headers,
    body,
    dispatcher: agent,
    headersTimeout: options.timeoutMs ?? 30_000,
    bodyTimeout: options.timeoutMs ?? 30_000,
  });
  const text = await response.body.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const header = response.headers['x-keel-revision'];
  return {
    status: response.statusCode,
    headers: response.headers,
    text,
    json,
    revision: typeof header === 'string' ? Number(header) : null,
  };
}

/** Percent-encodes each segment of a key for the URL path (slashes stay as they are). */
export function keyPath(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}

/** The leader's id and the ids of the others, once every node agrees (generous: a loaded 2-core machine starts slowly). */
export async function roles(cluster: TestCluster, timeoutMs = 60_000): Promise<{ leader: string; followers: string[] }> {
  const leader = await cluster.waitForLeader(timeoutMs);
  return { leader, followers: cluster.nodes.map((n) => n.id).filter((id) => id !== leader) };
}

/** Waits until every running node has applied everything the leader had committed when this was called. */
export async function waitForApplied(cluster: TestCluster, timeoutMs = 30_000): Promise<void> {
  const leader = await cluster.waitForLeader(timeoutMs);
  const target = (await cluster.status(leader))?.commitIndex ?? Infinity;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const statuses = await Promise.all(cluster.running().map((n) => cluster.status(n.id)));
    if (statuses.every((s) => s !== null && s.appliedIndex >= target)) return;
    if (performance.now() > deadline) {
      throw new Error(`nodes did not apply up to ${target} within ${timeoutMs} ms: ${JSON.stringify(statuses.map((s) => s && { id: s.id, appliedIndex: s.appliedIndex }))}`);
    }
    await sleep(50);
  }
}

/** Every running node's revision and state hash, once all have applied what the leader had committed. */
export async function stateOfEveryNode(cluster: TestCluster): Promise<{ id: string; revision: number; hash: string }[]> {
  await waitForApplied(cluster);
  const out = [];
  for (const node of cluster.running()) {
    const answer = await call(node.client, 'GET', '/v1/debug/hash');
    if (answer.status !== 200) throw new Error(`${node.id}: /v1/debug/hash answered ${answer.status} ${answer.text}`);
    out.push({ id: node.id, revision: answer.json.revision as number, hash: answer.json.hash as string });
  }
  return out;
}

/** The value of one unlabelled or labelled sample in a Prometheus text exposition. */
export function metricValue(text: string, name: string): number | null {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (match !== null && match[1] === name) return Number(match[3]);
  }
  return null;
}

// ---- streams

export interface StreamLine {
  readonly [field: string]: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/**
 * An open watch stream read line by line (NDJSON, or the `data:` lines of SSE). `lines` collects every message
 * in arrival order; `next()` waits for the next one not yet taken; `ended` settles when the server ends it.
 */
export class Stream {
  readonly lines: StreamLine[] = [];
  /** SSE `id:` fields, in order (SSE only). */
  readonly ids: number[] = [];
  /** Raw chunks as they arrived (to check that one revision's events came in one chunk). */
  readonly chunks: string[] = [];
  status = 0;
  headers: http.IncomingHttpHeaders = {};
  readonly ended: Promise<void>;
  private taken = 0;
  private waiters: (() => void)[] = [];
  private buffer = '';
  private request: http.ClientRequest | null = null;
  private response: http.IncomingMessage | null = null;
  private isEnded = false;

  constructor(
    private readonly sse: boolean,
    start: (stream: Stream) => http.ClientRequest,
  ) {
    this.ended = new Promise<void>((resolve) => {
      this.request = start(this);
      this.request.on('response', (response) => {
        this.response = response;
        this.status = response.statusCode ?? 0;
        this.headers = response.headers;
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => this.onChunk(chunk));
        response.on('end', () => this.finish(resolve));
        response.on('close', () => this.finish(resolve));
        response.on('error', () => this.finish(resolve));
        this.wake();
      });
      this.request.on('error', () => this.finish(resolve));
    });
  }

  get isOpen(): boolean {
    return !this.isEnded;
  }

  /** The next message not yet taken; rejects after `timeoutMs` or when the stream ends first. */
  async next(timeoutMs = 30_000): Promise<StreamLine> {
    const deadline = performance.now() + timeoutMs;
    while (this.taken >= this.lines.length) {
      if (this.isEnded) throw new Error(`stream ended after ${this.lines.length} lines`);
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`no stream line within ${timeoutMs} ms (have ${this.lines.length})`);
      await this.waitForChange(left);
    }
    return this.lines[this.taken++]!;
  }

  /** Waits until `predicate` holds over all lines received so far. */
  async until(predicate: (lines: readonly StreamLine[]) => boolean, timeoutMs = 30_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (!predicate(this.lines)) {
      const left = deadline - performance.now();
      if (left <= 0 || (this.isEnded && !predicate(this.lines))) {
        throw new Error(`stream condition not met within ${timeoutMs} ms (${this.lines.length} lines, ended=${this.isEnded}): ${JSON.stringify(this.lines.slice(-3))}`);
      }
      await this.waitForChange(Math.min(left, 200));
    }
  }

  /** Waits until the response head arrived. */
  async opened(timeoutMs = 30_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (this.response === null && !this.isEnded) {
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`no response head within ${timeoutMs} ms`);
      await this.waitForChange(left);
    }
  }

  pause(): void {
    this.response?.pause();
  }

  resume(): void {
    this.response?.resume();
  }

  /** Closes the client side of the connection. */
  close(): void {
    this.request?.destroy();
    this.response?.destroy();
  }

  private onChunk(chunk: string): void {
    this.chunks.push(chunk);
    this.buffer += chunk;
    if (this.sse) {
      let end;
      while ((end = this.buffer.indexOf('\n\n')) >= 0) {
        const block = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end + 2);
        for (const field of block.split('\n')) {
          if (field.startsWith('id: ')) this.ids.push(Number(field.slice(4)));
          else if (field.startsWith('data: ')) this.lines.push(JSON.parse(field.slice(6)));
        }
      }
    } else {
      let end;
      while ((end = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end + 1);
        if (line.trim() !== '') this.lines.push(JSON.parse(line));
      }
    }
    this.wake();
  }

  private finish(resolve: () => void): void {
    if (this.isEnded) return;
    this.isEnded = true;
    this.wake();
    resolve();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter();
  }

  private waitForChange(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.waiters.push(done);
    });
  }
}

/** Opens GET `path` on `address` as a stream (NDJSON unless `sse`), with node:http and the given agent. */
export function openStream(address: string, path: string, options: { sse?: boolean; agent?: http.Agent; headers?: Record<string, string> } = {}): Stream {
  const [host, port] = address.split(':');
  const sse = options.sse ?? false;
  return new Stream(sse, () =>
    http.get({
      host,
      port: Number(port),
      path,
      agent: options.agent ?? false,
      headers: { ...(sse ? { accept: 'text/event-stream' } : {}), ...options.headers },
    }),
  );
}
