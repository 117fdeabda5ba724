// A client watch: an async iterator of events that survives the loss of the node it is connected to. When a
// stream fails (node killed, connection reset, no line for 3 progress intervals, node shutting down) it reconnects
// to the next endpoint and resumes where the cursor (watch-cursor.ts) says, so no revision is missed or delivered
// twice. A compacted start revision ends the iteration with a COMPACTED KeelError; other errors that a retry
// cannot fix (bad key, permission) end it at once; an abort or close() ends it quietly.
import type { HttpClient } from '../client.js';
import { KeelError, isKeelError } from '../util/errors.js';
import { delay, linkedController } from './delay.js';
import { ndjsonLines } from './ndjson.js';
import { keyPath, query } from './paths.js';
import type { WatchEvent, WatchLine } from './types.js';
import { WatchCursor } from './watch-cursor.js';

export interface WatchOptions {
  /** Watch every key that starts with `key`. */
  readonly prefix?: boolean;
  /** Deliver events from this revision on (inclusive); without it, changes after the watch was created. */
  readonly fromRevision?: number;
  /** Attach the previous version of each key to its events. */
  readonly prevKv?: boolean;
  /** Ends the watch (quietly) when aborted; close() does the same. */
  readonly signal?: AbortSignal;
  /** How often an idle stream sends a progress line; a stream silent for 3 of these is presumed dead. */
  readonly progressMs?: number;
  /** Give up (UNAVAILABLE) after failing to keep a stream open for this long. */
  readonly reconnectMs?: number;
  /** Told about every reconnect (diagnostics, tests). */
  readonly onReconnect?: (info: ReconnectInfo) => void;
}

export interface ReconnectInfo {
  readonly endpoint: number;
  readonly fromRevision: number | undefined;
  readonly error: unknown;
}

/** Where streams come from: the HTTP endpoints in production, a scripted fake in the unit tests. */
export interface WatchStreamSource {
  readonly endpointCount: number;
  readonly firstEndpoint: number;
  /** A name for an endpoint index (diagnostics). */
  describe?(endpoint: number): string;
  open(endpoint: number, fromRevision: number | undefined, signal: AbortSignal): Promise<OpenedStream>;
}

export interface OpenedStream {
  /** The revision the stream starts after (X-Keel-Revision), when the server said. */
  readonly startRevision: number | null;
  readonly lines: AsyncIterable<unknown>;
}

export const watchDefaults = { progressMs: 5_000, reconnectMs: 60_000, backoffMaxMs: 1_000 } as const;

export class Watch implements AsyncIterable<WatchEvent> {
  private readonly controller: AbortController;
  private readonly cursor: WatchCursor;
  private readonly reconnectMs: number;
  private readonly onReconnect: ((info: ReconnectInfo) => void) | undefined;
  private isIterated = false;
  private endpointIndex: number | null = null;
  /** Streams opened after the first one. */
  reconnects = 0;

  constructor(
    private readonly source: WatchStreamSource,
    options: Pick<WatchOptions, 'fromRevision' | 'signal' | 'reconnectMs' | 'onReconnect'> = {},
  ) {
    this.controller = linkedController(options.signal);
    this.cursor = new WatchCursor(options.fromRevision);
    this.reconnectMs = options.reconnectMs ?? watchDefaults.reconnectMs;
    this.onReconnect = options.onReconnect;
  }

  /** The newest revision this watch delivered events of (or its start revision before the first event). */
  get lastRevision(): number {
    return this.cursor.lastRevision;
  }

  /** The endpoint of the open (or last tried) stream, null before the first. */
  get endpoint(): string | null {
    if (this.endpointIndex === null) return null;
    return this.source.describe?.(this.endpointIndex) ?? String(this.endpointIndex);
  }

  /** Ends the iteration and the open stream. */
  close(): void {
    this.controller.abort();
  }

  [Symbol.asyncIterator](): AsyncIterator<WatchEvent> {
    if (this.isIterated) throw new KeelError('INVALID_ARGUMENT', 'a watch can be iterated once');
    this.isIterated = true;
    return this.run();
  }

  private async *run(): AsyncGenerator<WatchEvent> {
    const signal = this.controller.signal;
    let endpoint = this.source.firstEndpoint;
    let failingSinceMs: number | null = null;
    let backoffMs = 0;
    try {
      while (!signal.aborted) {
        let failure: unknown;
        try {
          const fromRevision = this.cursor.resumeRevision();
          this.endpointIndex = endpoint;
          const stream = await this.source.open(endpoint, fromRevision, signal);
          if (stream.startRevision !== null && fromRevision === undefined) this.cursor.start(stream.startRevision);
          for await (const raw of stream.lines) {
            failingSinceMs = null;
            backoffMs = 0;
            const step = this.cursor.accept(checkLine(raw));
            if (step.kind === 'deliver') yield step.event;
            else if (step.kind === 'reconnect') break;
          }
          failure = new KeelError('UNAVAILABLE', 'the watch stream ended');
        } catch (err) {
          if (signal.aborted) return;
          if (!isRetriable(err)) throw err;
          failure = err;
        }
        failingSinceMs ??= Date.now();
        if (Date.now() - failingSinceMs > this.reconnectMs) {
          throw new KeelError('UNAVAILABLE', `watch could not reconnect within ${this.reconnectMs} ms`, {}, { cause: failure });
        }
        endpoint = (endpoint + 1) % this.source.endpointCount;
        this.reconnects++;
        this.onReconnect?.({ endpoint, fromRevision: this.cursor.resumeRevision(), error: failure });
        await delay(backoffMs, signal);
        backoffMs = Math.min(Math.max(backoffMs * 2, 50), watchDefaults.backoffMaxMs);
      }
    } finally {
      this.controller.abort();
    }
  }
}

/** Failures another stream (maybe on another node) can fix: transport errors, 503, 504, server faults. */
function isRetriable(err: unknown): boolean {
  if (!isKeelError(err)) return true;
  return err.code === 'UNAVAILABLE' || err.code === 'TIMEOUT' || err.code === 'INTERNAL';
}

const lineTypes = new Set(['put', 'delete', 'created', 'progress', 'compacted', 'error']);

/** The minimal shape check before the cursor reads a line; fields are trusted as the contract says. */
function checkLine(raw: unknown): WatchLine {
  const type = (raw as { type?: unknown } | null)?.type;
  if (typeof type !== 'string' || !lineTypes.has(type)) {
    throw new KeelError('INTERNAL', `unexpected watch line: ${JSON.stringify(raw).slice(0, 120)}`);
  }
  return raw as WatchLine;
}

/**
 * Streams from the cluster's endpoints, starting at the first like every other call of the client (so a client
 * given its nearest node first watches there), moving on in list order when a stream fails.
 */
export function httpWatchSource(http: HttpClient, key: string, options: Pick<WatchOptions, 'prefix' | 'prevKv' | 'progressMs'>): WatchStreamSource {
  const progressMs = options.progressMs ?? watchDefaults.progressMs;
  return {
    endpointCount: http.endpoints.length,
    firstEndpoint: 0,
    describe: (endpoint) => http.endpoints[endpoint] ?? String(endpoint),
    async open(endpoint, fromRevision, signal) {
      const path = `${keyPath('/v1/watch', key)}${query({
        prefix: options.prefix === true ? true : undefined,
        fromRevision,
        prevKv: options.prevKv === true ? true : undefined,
        progressMs,
      })}`;
      const response = await http.stream(http.endpoints[endpoint]!, path, { signal, idleMs: progressMs * 3 });
      return { startRevision: response.revision, lines: ndjsonLines(response.body) };
    },
  };
}
