// `keel watch`: follows GET /v1/watch/<key> and prints each change, as `PUT key = value (rev N)` /
// `DELETE key (rev N)` lines or as the stream's JSON lines with --json (the `created` line included). It is the
// client library's Watch (src/client/watch.ts): when its node dies, stops or stalls, it resumes on the next
// endpoint from where it stopped printing, so every matching revision is printed exactly once and in order, and
// says so on stderr; it gives up after --retry-ms without progress. A compacted start revision or an error line
// other than UNAVAILABLE ends it with exit code 1; Ctrl-C (or SIGTERM, or a reader that went away) ends it with 0.
import type { HttpClient } from '../src/client.js';
import type { WatchEvent } from '../src/client/types.js';
import { Watch, httpWatchSource, type ReconnectInfo } from '../src/client/watch.js';
import { isKeelError, KeelError } from '../src/util/errors.js';
import { untilStopped, type GlobalOptions } from './client-commands.js';

export interface WatchCommandOptions extends GlobalOptions {
  prefix?: boolean;
  fromRevision?: number;
  prevKv?: boolean;
  retryMs: number;
}

/** The server sends a progress line at least this often when idle; a stream silent for 3 of these is presumed dead. */
const progressMs = 3_000;

function eventText(event: WatchEvent): string {
  const prev = event.prevKv === undefined ? '' : ` [prev: ${event.prevKv.value}]`;
  return event.type === 'put' ? `PUT ${event.kv.key} = ${event.kv.value} (rev ${event.revision})${prev}` : `DELETE ${event.kv.key} (rev ${event.revision})${prev}`;
}

const hostOf = (endpoint: string | undefined): string => (endpoint ?? '?').replace(/^https?:\/\//, '');

/**
 * Why a stream failed, in a few words: a transport failure (refused, reset, idle) names the socket's own error; an
 * UNAVAILABLE answer or error line (node stopping, slow consumer) the server's message.
 */
function reasonText(error: unknown, host: string): string {
  if (isKeelError(error) && error.details.transport !== true) return `${host} ended the watch (${error.message})`;
  const cause = isKeelError(error) ? error.cause : error;
  return `lost ${host} (${cause instanceof Error ? cause.message : String(cause)})`;
}

function reconnectText(info: ReconnectInfo, endpoints: readonly string[]): string {
  const from = info.fromRevision === undefined ? 'now' : `revision ${info.fromRevision}`;
  const wait = info.delayMs > 0 ? ` in ${info.delayMs} ms` : '';
  return `keel: watch: ${reasonText(info.error, hostOf(endpoints[info.failedEndpoint]))}; resuming on ${hostOf(endpoints[info.endpoint])} from ${from}${wait}\n`;
}

/** The start revision is gone (a 410 answer or a `compacted` line): say how to watch again. */
function compactedError(revision: number | undefined, compactRevision: unknown): KeelError {
  const hint = typeof compactRevision === 'number' ? `--from-revision ${compactRevision} or later` : 'a later --from-revision';
  return new KeelError('COMPACTED', `revision ${revision ?? '?'} is compacted: watch again with ${hint}, or without it`, {
    ...(typeof compactRevision === 'number' && { compactRevision }),
  });
}

async function follow(client: HttpClient, options: WatchCommandOptions, key: string, signal: AbortSignal): Promise<void> {
  const asJson = options.json === true;
  const source = httpWatchSource(client, key, { prefix: options.prefix === true, prevKv: options.prevKv === true, progressMs });
  const watch = new Watch(source, {
    ...(options.fromRevision !== undefined && { fromRevision: options.fromRevision }),
    signal,
    reconnectMs: options.retryMs,
    onCreated: (revision) => {
      if (asJson) process.stdout.write(`${JSON.stringify({ type: 'created', revision })}\n`);
    },
    onReconnect: (info) => process.stderr.write(reconnectText(info, client.endpoints)),
  });
  try {
    for await (const event of watch) process.stdout.write(`${asJson ? JSON.stringify(event) : eventText(event)}\n`);
  } catch (err) {
    if (isKeelError(err, 'COMPACTED')) throw compactedError(watch.resumeRevision, err.details.compactRevision);
    throw err;
  }
}

export async function watchCommand(client: HttpClient, options: WatchCommandOptions, key: string): Promise<void> {
  // A reader that went away (`keel watch x | head -1`) ends the watch like Ctrl-C does.
  const readerGone = new AbortController();
  const onStdoutError = (err: NodeJS.ErrnoException): void => {
    if (err.code !== 'EPIPE') throw err;
    readerGone.abort();
  };
  const stop = untilStopped(readerGone.signal);
  process.stdout.on('error', onStdoutError);
  try {
    await follow(client, options, key, stop.signal);
  } finally {
    stop.dispose();
    process.stdout.off('error', onStdoutError);
  }
}
