// A client watch: an async iterator of events that survives the loss of the node it is connected to. When a
// stream fails (node killed, connection reset, no line for 3 progress intervals, node stopping, slow consumer) it
// reconnects to the next endpoint and resumes where the cursor (watch-cursor.ts) says, so no revision is missed or
// delivered twice. Only UNAVAILABLE (a 503, an `error` line, the stream's end) and transport failures are retried,
// with a bounded back-off, and for at most `reconnectMs` without progress: a failure or an `error` line never
// starts that time over, only a delivered event or a `created`/`progress` line does, so a server that answers
// every stream with an error cannot keep the watch reconnecting forever. Any other error ends the iteration with
// the server's code (COMPACTED for a compacted start revision, the error line's code, ...); an abort or close()
// ends it quietly.
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
  /** Give up (UNAVAILABLE) after this long of failed streams with no progress in between. */
  readonly reconnectMs?: number;
  /** Told about every reconnect, before its back-off (diagnostics, the CLI's notes, tests). */
  readonly onReconnect?: (info: ReconnectInfo) => void;
  /** Told once the revision a watch without `fromRevision` starts after (its first stream's `created`). */
  readonly onCreated?: (revision: number) => void;
}

export interface ReconnectInfo {
  /** The endpoint (an index into the client's endpoints) whose stream failed. */
  readonly failedEndpoint: number;
  /** The endpoint the next stream opens on, after `delayMs`. */
  readonly endpoint: number;
  readonly fromRevision: number | undefined;
  readonly delayMs: number;
  /** Why the stream ended: a transport error, or an UNAVAILABLE KeelError (a 503, an `error` line, the end). */
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

export const watchDefaults = { progressMs: 5_000, reconnectMs: 60_000, backoffFirstMs: 100, backoffMaxMs: 1_000 } as const;

/** The time a watch's back-off and give-up run on: real time, or virtual time in tests. */
export interface WatchTimers {
  /** Monotonic milliseconds. */
  nowMs(): number;
  /** Resolves after `ms`, or at once when `signal` aborts. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

const realTimers: WatchTimers = { nowMs: () => performance.now(), sleep: delay };

/**
 * The waits between streams: the first reconnect is immediate (the next endpoint is likely fine), then
 * 100 ms doubling up to backoffMaxMs, never past the give-up time. Only progress starts both over.
 */
class ReconnectBackoff {
  private failingSinceMs: number | null = null;
  private failures = 0;

  constructor(private readonly giveUpMs: number) {}

  progressed(): void {
    this.failingSinceMs = null;
    this.failures = 0;
  }

  /** The wait before the next stream after a failure at `nowMs`, or null when it is time to give up. */
  next(nowMs: number): number | null {
    this.failingSinceMs ??= nowMs;
    const waitedMs = nowMs - this.failingSinceMs;
    if (waitedMs >= this.giveUpMs) return null;
    const backoffMs = this.failures === 0 ? 0 : Math.min(watchDefaults.backoffFirstMs * 2 ** (this.failures - 1), watchDefaults.backoffMaxMs);
    this.failures++;
    return Math.min(backoffMs, Math.ceil(this.giveUpMs - waitedMs));
  }
}

export class Watch implements AsyncIterable<WatchEvent> {
  private readonly controller: AbortController;
  private readonly cursor: WatchCursor;
  private readonly reconnectMs: number;
  private readonly onReconnect: ((info: ReconnectInfo) => void) | undefined;
  private readonly onCreated: ((revision: number) => void) | undefined;
  private isIterated = false;
  private endpointIndex: number | null = null;
  /** Streams opened after the first one. */
  reconnects = 0;

  constructor(
    private readonly source: WatchStreamSource,
    options: Pick<WatchOptions, 'fromRevision' | 'signal' | 'reconnectMs' | 'onReconnect' | 'onCreated'> = {},
    private readonly timers: WatchTimers = realTimers,
  ) {
    this.controller = linkedController(options.signal);
    this.cursor = new WatchCursor(options.fromRevision);
    this.reconnectMs = options.reconnectMs ?? watchDefaults.reconnectMs;
    this.onReconnect = options.onReconnect;
    this.onCreated = options.onCreated;
  }

  /** The newest revision this watch delivered events of (or its start revision before the first event). */
  get lastRevision(): number {
    return this.cursor.lastRevision;
  }

  /** The `fromRevision` the next stream asks for; undefined before a watch without one learned its start. */
  get resumeRevision(): number | undefined {
    return this.cursor.resumeRevision();
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
    const backoff = new ReconnectBackoff(this.reconnectMs);
    let endpoint = this.source.firstEndpoint;
    try {
      while (!signal.aborted) {
        let failure: unknown;
        try {
          failure = yield* this.follow(endpoint, backoff, signal);
        } catch (err) {
          if (signal.aborted) return;
          if (!isRetriable(err)) throw err;
          failure = err;
        }
        const delayMs = backoff.next(this.timers.nowMs());
        if (delayMs === null) {
          throw new KeelError('UNAVAILABLE', `no endpoint served the watch for ${this.reconnectMs} ms; last: ${messageOf(failure)}`, {}, { cause: failure });
        }
        const failedEndpoint = endpoint;
        endpoint = (endpoint + 1) % this.source.endpointCount;
        this.reconnects++;
        this.onReconnect?.({ failedEndpoint, endpoint, fromRevision: this.cursor.resumeRevision(), delayMs, error: failure });
        await this.timers.sleep(delayMs, signal);
      }
    } finally {
      this.controller.abort();
    }
  }

  /** One stream: yields its new events; returns why it ended (UNAVAILABLE), or throws what ended it. */
  private async *follow(endpoint: number, backoff: ReconnectBackoff, signal: AbortSignal): AsyncGenerator<WatchEvent, KeelError> {
    const fromRevision = this.cursor.resumeRevision();
    this.endpointIndex = endpoint;
    const stream = await this.source.open(endpoint, fromRevision, signal);
    if (stream.startRevision !== null && this.cursor.start(stream.startRevision)) this.onCreated?.(stream.startRevision);
    for await (const raw of stream.lines) {
      const step = this.cursor.accept(checkLine(raw));
      switch (step.kind) {
        case 'deliver':
          backoff.progressed();
          yield step.event;
          break;
        case 'started':
          backoff.progressed();
          this.onCreated?.(step.revision);
          break;
        case 'progress':
          backoff.progressed();
          break;
        case 'skip':
          break; // a replayed duplicate is no progress
        case 'reconnect':
          return step.error; // not progress either: the error line must not start the give-up time over
        default: {
          const unknown: never = step;
          throw new KeelError('INTERNAL', `unknown cursor step: ${JSON.stringify(unknown)}`);
        }
      }
    }
    return new KeelError('UNAVAILABLE', 'the stream ended');
  }
}

/**
 * Failures another stream (maybe on another node) can fix: UNAVAILABLE (a 503: no leader, node stopping) and
 * transport failures (refused, reset, idle timeout: undici and socket errors, which carry a string `code`).
 * Anything else, a server fault (INTERNAL) included, would fail the same way again.
 */
function isRetriable(err: unknown): boolean {
  if (isKeelError(err)) return err.code === 'UNAVAILABLE';
  return typeof (err as { code?: unknown } | null)?.code === 'string';
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
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
