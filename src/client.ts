// One small HTTP client, shared by the CLI, tests and benchmarks. It talks to a list of endpoints and fails over
// to the next one when a node cannot be reached or answers 503 (no leader yet, shutting down). Errors carry the
// server's stable `code`; callers branch on it, never on message text.
import { randomUUID } from 'node:crypto';
import { Agent, request } from 'undici';
import { delay } from './client/delay.js';
import { keelErrorOf } from './client/wire-error.js';
import { KeelError, isKeelError } from './util/errors.js';

export interface ClientOptions {
  /** host:port or http://host:port, tried in order. */
  readonly endpoints: readonly string[];
  readonly timeoutMs?: number;
  /** How long to keep retrying on unreachable endpoints / 503 before giving up. */
  readonly retryMs?: number;
  readonly token?: string;
  /**
   * TLS for https:// endpoints (and endpoints given as bare host:port, which then default to https): `ca` is the
   * PEM bundle to verify the servers with (default: the system roots); `cert`/`key` a client certificate for
   * servers that demand one (tls.client.requireClientCert).
   */
  readonly tls?: ClientTlsOptions;
}

export interface ClientTlsOptions {
  readonly ca?: string | Buffer;
  readonly cert?: string | Buffer;
  readonly key?: string | Buffer;
}

export interface RawResponse<T> {
  readonly status: number;
  readonly body: T;
  readonly revision: number | null;
  readonly endpoint: string;
}

/** Per-call overrides of the client's defaults. */
export interface CallOptions {
  /** Aborts the request (and any fail-over retry); the call rejects with the signal's reason. */
  readonly signal?: AbortSignal;
  /** Overrides `timeoutMs` for this call; 0 = no limit, for blocking waits the server bounds itself (`waitMs`). */
  readonly timeoutMs?: number;
  /** Overrides `retryMs` for this call (a keepalive must not retry past its lease's TTL). */
  readonly retryMs?: number;
}

/** An open streaming answer (a watch): the body is read as it arrives. */
export interface StreamResponse {
  readonly status: number;
  readonly body: AsyncIterable<Buffer>;
  readonly revision: number | null;
  readonly endpoint: string;
}

export class HttpClient {
  readonly endpoints: readonly string[];
  private readonly agent: Agent;
  private readonly timeoutMs: number;
  private readonly retryMs: number;
  private readonly token: string | undefined;
  private preferred = 0;

  constructor(options: ClientOptions) {
    if (options.endpoints.length === 0) throw new KeelError('INVALID_ARGUMENT', 'no endpoints given');
    const scheme = options.tls === undefined ? 'http' : 'https';
    this.endpoints = options.endpoints.map((e) => (/^https?:\/\//.test(e) ? e.replace(/\/$/, '') : `${scheme}://${e}`));
    this.timeoutMs = options.timeoutMs ?? 10_000;
    this.retryMs = options.retryMs ?? 5_000;
    this.token = options.token;
    const tls = options.tls;
    this.agent = new Agent({
      connections: 64, pipelining: 1, keepAliveTimeout: 10_000, connectTimeout: 2_000,
      ...(tls === undefined ? {} : {
        connect: { ...(tls.ca === undefined ? {} : { ca: tls.ca }), ...(tls.cert === undefined ? {} : { cert: tls.cert }), ...(tls.key === undefined ? {} : { key: tls.key }) },
      }),
    });
  }

  /** Sends one request, failing over between endpoints; throws KeelError for any non-2xx answer. */
  async call<T>(method: string, path: string, body?: unknown, options: CallOptions = {}): Promise<RawResponse<T>> {
    const deadline = Date.now() + (options.retryMs ?? this.retryMs);
    // A write retried after a transport error may already have been applied: every attempt carries the same
    // request id, so the store answers the first result instead of applying it twice.
    const requestId = method === 'GET' ? undefined : randomUUID();
    let lastError: unknown = null;
    for (let attempt = 0; ; attempt++) {
      const index = (this.preferred + attempt) % this.endpoints.length;
      const endpoint = this.endpoints[index]!;
      try {
        const response = await this.once<T>(endpoint, method, path, body, requestId, options);
        this.preferred = index;
        return response;
      } catch (err) {
        lastError = err;
        if (options.signal?.aborted === true) throw options.signal.reason;
        const retriable = !isKeelError(err) || err.details.transport === true;
        const unavailable = isKeelError(err, 'UNAVAILABLE');
        if (!(retriable || unavailable) || Date.now() >= deadline) throw err;
        if ((attempt + 1) % this.endpoints.length === 0) await delay(100, options.signal);
      }
    }
    throw lastError;
  }

  async once<T>(endpoint: string, method: string, path: string, body?: unknown, requestId?: string, options: CallOptions = {}): Promise<RawResponse<T>> {
    const headers = this.headers(body !== undefined, requestId);
    let response;
    try {
      response = await request(`${endpoint}${path}`, {
        method: method as 'GET',
        headers,
        body: body === undefined ? null : JSON.stringify(body),
        dispatcher: this.agent,
        headersTimeout: options.timeoutMs ?? this.timeoutMs,
        bodyTimeout: options.timeoutMs ?? this.timeoutMs,
        signal: options.signal ?? null,
      });
    } catch (err) {
      if (options.signal?.aborted === true) throw options.signal.reason;
      throw transportError(endpoint, method, err);
    }
    const text = await response.body.text();
    const parsed = parseJson(text);
    const revision = revisionOf(response.headers);
    if (response.statusCode >= 200 && response.statusCode < 300) {
      return { status: response.statusCode, body: parsed as T, revision, endpoint };
    }
    throw errorFromBody(response.statusCode, parsed, text);
  }

  /**
   * Opens a streaming GET on one endpoint, without fail-over: the caller knows where to resume and where to go.
   * `idleMs` bounds the wait between two body chunks (a watch asks for progress lines more often than that).
   */
  async stream(endpoint: string, path: string, options: { signal?: AbortSignal; idleMs?: number } = {}): Promise<StreamResponse> {
    let response;
    try {
      response = await request(`${endpoint}${path}`, {
        method: 'GET',
        headers: this.headers(false),
        dispatcher: this.agent,
        headersTimeout: this.timeoutMs,
        bodyTimeout: options.idleMs ?? this.timeoutMs,
        signal: options.signal ?? null,
      });
    } catch (err) {
      if (options.signal?.aborted === true) throw err;
      throw transportError(endpoint, 'GET', err);
    }
    const revision = revisionOf(response.headers);
    if (response.statusCode >= 200 && response.statusCode < 300) {
      return { status: response.statusCode, body: response.body, revision, endpoint };
    }
    const text = await response.body.text();
    throw errorFromBody(response.statusCode, parseJson(text), text);
  }

  private headers(hasBody: boolean, requestId?: string): Record<string, string> {
    const headers: Record<string, string> = {};
    if (hasBody) headers['content-type'] = 'application/json';
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    if (requestId !== undefined) headers['x-keel-request-id'] = requestId;
    return headers;
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}

const notSentCodes = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH']);

/**
 * A TLS handshake that failed (a certificate not trusted, expired or for another name; our client certificate
 * refused): the server never read a request on that connection.
 */
function isTlsRefusal(code: string): boolean {
  return /^ERR_SSL_|^ERR_TLS_|CERT|^UNABLE_TO_(GET|VERIFY)_/.test(code);
}

/**
 * A request that failed in transport. If the connection was never made, nothing was sent (UNAVAILABLE: not
 * applied). Otherwise a write may have reached the server and been applied (TIMEOUT); retrying it with the same
 * request id is still safe, and `call()` does.
 */
function transportError(endpoint: string, method: string, err: unknown): KeelError {
  const code = (err as { code?: string }).code ?? '';
  const message = `cannot reach ${endpoint}: ${(err as Error).message}`;
  if (method === 'GET' || notSentCodes.has(code) || isTlsRefusal(code)) return new KeelError('UNAVAILABLE', message, { transport: true }, { cause: err });
  return new KeelError('TIMEOUT', `${message} (the write may have been applied)`, { transport: true }, { cause: err });
}

/** The store revision an answer reflects (X-Keel-Revision), when the server said. */
function revisionOf(headers: Record<string, string | string[] | undefined>): number | null {
  const header = headers['x-keel-revision'];
  return typeof header === 'string' ? Number(header) : null;
}

function parseJson(text: string): unknown {
  if (text === '') return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function errorFromBody(status: number, parsed: unknown, text: string): KeelError {
  const error = keelErrorOf((parsed as { error?: unknown } | null)?.error);
  if (error !== null) return error;
  return new KeelError(status >= 500 ? 'INTERNAL' : 'INVALID_ARGUMENT', `HTTP ${status}: ${text.slice(0, 200)}`);
}
