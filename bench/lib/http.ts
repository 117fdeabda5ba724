// The benchmark's own small HTTP layer (undici), independent of src/: it talks to Keel and to etcd's JSON
// gateway alike. Load steps use autocannon (load.ts); this is for setup, polling and the sequential scenarios.
import net from 'node:net';
import { Agent, request } from 'undici';

export interface HttpRequest {
  readonly method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body?: string;
}

export interface HttpAnswer {
  readonly status: number;
  readonly text: string;
  json<T = unknown>(): T;
}

const agent = new Agent({ connections: 32, pipelining: 1, keepAliveTimeout: 30_000, connectTimeout: 2_000 });

export async function send(origin: string, req: HttpRequest, timeoutMs = 10_000): Promise<HttpAnswer> {
  const answer = await request(`${origin}${req.path}`, {
    method: req.method,
    headers: { ...req.headers },
    ...(req.body !== undefined && { body: req.body }),
    dispatcher: agent,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
  const text = await answer.body.text();
  return {
    status: answer.statusCode,
    text,
    json: <T>() => JSON.parse(text) as T,
  };
}

/** Sends and insists on a 2xx answer. */
export async function sendOk(origin: string, req: HttpRequest, timeoutMs = 10_000): Promise<HttpAnswer> {
  const answer = await send(origin, req, timeoutMs);
  if (answer.status < 200 || answer.status > 299) {
    throw new Error(`${req.method} ${origin}${req.path} answered ${answer.status}: ${answer.text.slice(0, 300)}`);
  }
  return answer;
}

/**
 * Opens a streaming answer and calls `onLine` with every complete line (NDJSON, or etcd's gateway stream of
 * newline-delimited JSON), stamped with the time its chunk arrived. Resolves once the answer's headers arrived.
 */
export async function openLineStream(
  origin: string,
  req: HttpRequest,
  onLine: (line: string, atMs: number) => void,
): Promise<{ status: number; close: () => void; done: Promise<void> }> {
  const controller = new AbortController();
  const answer = await request(`${origin}${req.path}`, {
    method: req.method,
    headers: { ...req.headers },
    ...(req.body !== undefined && { body: req.body }),
    dispatcher: agent,
    signal: controller.signal,
    headersTimeout: 10_000,
    bodyTimeout: 0,
  });
  const done = (async () => {
    let pending = '';
    try {
      for await (const chunk of answer.body) {
        const atMs = performance.now();
        pending += (chunk as Buffer).toString('utf8');
        let newline = pending.indexOf('\n');
        while (newline >= 0) {
          const line = pending.slice(0, newline).trim();
          pending = pending.slice(newline + 1);
          if (line !== '') onLine(line, atMs);
          newline = pending.indexOf('\n');
        }
      }
    } catch (err) {
      if (!controller.signal.aborted) throw err;
    }
  })();
  return { status: answer.statusCode, close: () => controller.abort(), done };
}

export async function closeHttp(): Promise<void> {
  await agent.close();
}

/** A free TCP port on 127.0.0.1 (bound and released), never one handed out before in this run. */
const handedOut = new Set<number>();
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = net.createServer();
      server.unref();
      server.on('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const { port: p } = server.address() as net.AddressInfo;
        server.close(() => resolve(p));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
