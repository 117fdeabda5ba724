// `keel watch`: follows GET /v1/watch/<key> (NDJSON) and prints each change, as `PUT key = value (rev N)` /
// `DELETE key (rev N)` lines or as the stream's raw JSON lines with --json. When its node dies, stops or stalls,
// it resumes on the next endpoint from where it stopped printing (WatchCursor), so every matching revision is
// printed exactly once and in order; it gives up after --retry-ms with no endpoint able to serve it. A compacted
// start revision or a non-retriable error line ends it with exit code 1; Ctrl-C (or SIGTERM) ends it with 0.
import { StringDecoder } from 'node:string_decoder';
import { setTimeout as sleep } from 'node:timers/promises';
import type { HttpClient } from '../src/client.js';
import type { KV } from '../src/store/index.js';
import { errorCatalog, isKeelError, KeelError, type ErrorCode } from '../src/util/errors.js';
import { kvPath, queryOf, type GlobalOptions } from './client-commands.js';

export interface WatchOptions extends GlobalOptions {
  prefix?: boolean;
  fromRevision?: number;
  prevKv?: boolean;
  retryMs: number;
}

type WatchLine =
  | { readonly type: 'created' | 'progress'; readonly revision: number }
  | { readonly type: 'put' | 'delete'; readonly kv: KV; readonly prevKv?: KV; readonly revision: number }
  | { readonly type: 'compacted'; readonly compactRevision: number }
  | { readonly type: 'error'; readonly error: { readonly code: string; readonly message: string; readonly [field: string]: unknown } };

/** The server sends a progress line at least this often when idle... */
const progressMs = 3_000;
/** ...so a stream silent for this long is from a stalled node (SIGSTOP, cut link): go elsewhere. */
const idleMs = 10_000;
/** Reconnection back-off: immediately to the next endpoint, then doubling from 100 ms up to this. */
const backoffMaxMs = 2_000;

/**
 * Where a watch resumes so that nothing is missed or printed twice: every matching event of the revisions
 * below `revision` was printed, and `seen` events of `revision` itself. The server writes a revision's events in
 * one chunk, but a connection can still break inside it (a large txn or prefix delete spans many TCP segments),
 * so a resumed stream asks for `revision` again and drops the first `seen` events of it. That is exact because
 * a revision's events come in the same order from every node: the order of one applied log entry. In the usual
 * case the last revision was complete, and this replays and drops one revision's events.
 */
export class WatchCursor {
  /** null: nothing known yet (a watch without --from-revision, before its `created` line). */
  revision: number | null;
  private seen = 0;
  private skip = 0;

  constructor(fromRevision: number | undefined) {
    this.revision = fromRevision ?? null;
  }

  /** The fromRevision to (re)connect with (undefined: a new watch from now); arms the replay skip. */
  resume(): number | undefined {
    this.skip = this.seen;
    return this.revision ?? undefined;
  }

  /** Returns whether this is the first `created` line (a reconnect without a known revision gets another). */
  created(revision: number): boolean {
    if (this.revision !== null) return false;
    this.revision = revision + 1;
    return true;
  }

  /** Every event up to `revision` was delivered. */
  progress(revision: number): void {
    if (this.revision !== null && revision < this.revision) return;
    this.revision = revision + 1;
    this.seen = 0;
    this.skip = 0;
  }

  /** Whether to print an event of `revision` (false: printed before the reconnection). */
  event(revision: number): boolean {
    if (this.revision !== null && revision < this.revision) return false;
    if (revision === this.revision && this.skip > 0) {
      this.skip--;
      return false;
    }
    if (revision === this.revision) {
      this.seen++;
      return true;
    }
    this.revision = revision;
    this.seen = 1;
    this.skip = 0;
    return true;
  }
}

function eventText(line: { type: 'put' | 'delete'; kv: KV; prevKv?: KV; revision: number }): string {
  const prev = line.prevKv === undefined ? '' : ` [prev: ${line.prevKv.value}]`;
  return line.type === 'put' ? `PUT ${line.kv.key} = ${line.kv.value} (rev ${line.revision})${prev}` : `DELETE ${line.kv.key} (rev ${line.revision})${prev}`;
}

const hostOf = (endpoint: string): string => endpoint.replace(/^https?:\/\//, '');

/** The start revision is gone, whether the server said so with a 410 answer or with a `compacted` line. */
function compactedError(cursor: WatchCursor, compactRevision: unknown): KeelError {
  const hint = typeof compactRevision === 'number' ? `--from-revision ${compactRevision} or later` : 'a later --from-revision';
  return new KeelError('COMPACTED', `revision ${cursor.revision ?? '?'} is compacted: watch again with ${hint}, or without it`, {
    ...(typeof compactRevision === 'number' && { compactRevision }),
  });
}

/** Why a stream failed, in a few words: for a transport failure, the socket's own error. */
function failureText(err: unknown): string {
  const cause = isKeelError(err) && err.details.transport === true ? err.cause : err;
  return cause instanceof Error ? cause.message : String(cause);
}

function parseLine(text: string, endpoint: string): WatchLine {
  try {
    return JSON.parse(text) as WatchLine;
  } catch (err) {
    throw new KeelError('INTERNAL', `${hostOf(endpoint)} sent a watch line that is not JSON: ${text.slice(0, 200)}`, {}, { cause: err });
  }
}

/** Prints what a line says; returns why to reconnect when the server ended the watch with a retriable error. */
function handleLine(line: WatchLine, cursor: WatchCursor, options: WatchOptions, endpoint: string): string | null {
  const asJson = options.json === true;
  switch (line.type) {
    case 'created':
      if (cursor.created(line.revision) && asJson) process.stdout.write(`${JSON.stringify(line)}\n`);
      return null;
    case 'progress':
      cursor.progress(line.revision);
      return null;
    case 'put':
    case 'delete':
      if (cursor.event(line.revision)) process.stdout.write(`${asJson ? JSON.stringify(line) : eventText(line)}\n`);
      return null;
    case 'compacted':
      throw compactedError(cursor, line.compactRevision);
    case 'error': {
      const { code, message, ...details } = line.error;
      if (code === 'UNAVAILABLE') return `${hostOf(endpoint)} ended the watch (${message})`;
      throw new KeelError(code in errorCatalog ? (code as ErrorCode) : 'INTERNAL', `the watch failed on ${hostOf(endpoint)}: ${message}`, details);
    }
    default:
      return null; // a message type this CLI does not know yet: not an event, nothing to print
  }
}

/** Transport trouble (refused, reset, idle timeout, 503): worth trying elsewhere. Anything else is final. */
function isRetriable(err: unknown): boolean {
  if (isKeelError(err)) return err.code === 'UNAVAILABLE';
  return typeof (err as { code?: unknown } | null)?.code === 'string';
}

interface Outcome {
  readonly reason: string;
  /** The stream delivered at least one line: the endpoint worked, the back-off starts over. */
  readonly hasDelivered: boolean;
}

/** Follows the watch on one endpoint until it ends; throws on a final error or when aborted. */
async function streamOnce(client: HttpClient, endpoint: string, key: string, cursor: WatchCursor, options: WatchOptions, signal: AbortSignal): Promise<Outcome> {
  let hasDelivered = false;
  try {
    const query = queryOf({ prefix: options.prefix === true || undefined, fromRevision: cursor.resume(), prevKv: options.prevKv === true || undefined, progressMs });
    const response = await client.stream(endpoint, `${kvPath('/v1/watch', key)}${query}`, { signal, idleMs });
    const decoder = new StringDecoder('utf8');
    let pending = '';
    for await (const chunk of response.body) {
      pending += decoder.write(chunk);
      for (let end = pending.indexOf('\n'); end >= 0; end = pending.indexOf('\n')) {
        const text = pending.slice(0, end).trim();
        pending = pending.slice(end + 1);
        if (text === '') continue;
        hasDelivered = true;
        const reason = handleLine(parseLine(text, endpoint), cursor, options, endpoint);
        if (reason !== null) return { reason, hasDelivered };
      }
    }
    return { reason: `${hostOf(endpoint)} ended the stream`, hasDelivered };
  } catch (err) {
    if (signal.aborted) throw err;
    if (isKeelError(err, 'COMPACTED')) throw compactedError(cursor, err.details.compactRevision);
    if (!isRetriable(err)) throw err;
    return { reason: `lost ${hostOf(endpoint)} (${failureText(err)})`, hasDelivered };
  }
}

async function follow(client: HttpClient, options: WatchOptions, key: string, signal: AbortSignal): Promise<void> {
  const cursor = new WatchCursor(options.fromRevision);
  const endpoints = client.endpoints;
  let failures = 0;
  let downSinceMs: number | null = null;
  for (let index = 0; ; index = (index + 1) % endpoints.length) {
    const outcome = await streamOnce(client, endpoints[index]!, key, cursor, options, signal);
    if (outcome.hasDelivered) {
      failures = 0;
      downSinceMs = null;
    }
    downSinceMs ??= Date.now();
    const waitedMs = Date.now() - downSinceMs;
    if (waitedMs >= options.retryMs) {
      throw new KeelError('UNAVAILABLE', `no endpoint served the watch for ${options.retryMs} ms; last: ${outcome.reason}`);
    }
    const delayMs = Math.min(failures === 0 ? 0 : 100 * 2 ** (failures - 1), backoffMaxMs, options.retryMs - waitedMs);
    failures++;
    const next = hostOf(endpoints[(index + 1) % endpoints.length]!);
    const from = cursor.revision === null ? 'now' : `revision ${cursor.revision}`;
    process.stderr.write(`keel: watch: ${outcome.reason}; resuming on ${next} from ${from}${delayMs > 0 ? ` in ${delayMs} ms` : ''}\n`);
    await sleep(delayMs, undefined, { signal });
  }
}

export async function watchCommand(client: HttpClient, options: WatchOptions, key: string): Promise<void> {
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  // A reader that went away (`keel watch x | head -1`) ends the watch like Ctrl-C does.
  const onStdoutError = (err: NodeJS.ErrnoException): void => {
    if (err.code !== 'EPIPE') throw err;
    stop();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.stdout.on('error', onStdoutError);
  try {
    await follow(client, options, key, controller.signal);
  } catch (err) {
    if (!controller.signal.aborted) throw err;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    process.stdout.off('error', onStdoutError);
  }
}
