// Watch streams (shared/API.md "Watch"): GET /v1/watch/<key> as NDJSON (default) or SSE (Accept:
// text/event-stream). Every matching revision exactly once, in order; all events of one revision are written in
// one chunk; `progress` lines when idle; 410 COMPACTED when fromRevision is already compacted at open, and
// `compacted` then the end when a compaction overtakes the catch-up of an open stream. The socket's own
// backpressure paces the watcher (we pull the next message only after the last one was flushed); a consumer too
// slow for the watcher's bounded buffer gets an `error` line with `resumeRevision` and the stream ends.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { ServerResponse } from 'node:http';
import type { KvStore, StoreEvent, WatchMessage, Watcher } from '../../store/index.js';
import { checkKey } from '../../store/index.js';
import { isKeelError, KeelError } from '../../util/errors.js';
import { watchQuerySchema, type WatchQuery } from '../schemas/kv.js';
import { isHiddenKey } from '../auth-hook.js';
import { keyOf } from './kv.js';
import { traceMark } from '../../util/latency-trace.js';

const progressMsDefault = 10_000;
/** A consumer that does not read for this long is cut off (every wait has a bound). */
const drainTimeoutMs = 60_000;

export interface WatchBackend {
  readonly store: KvStore;
  /** Called with +1/-1 as streams open and close (metrics). */
  onStreamCountChange?(delta: number): void;
}

type Line = Record<string, unknown>;

class StreamWriter {
  private readonly sse: boolean;
  private readonly raw: ServerResponse;
  lastWriteMs = performance.now();
  /** A write is waiting for the socket to drain: nothing else may be written before it (order). */
  isBusy = false;

  constructor(raw: ServerResponse, sse: boolean) {
    this.raw = raw;
    this.sse = sse;
  }

  /** Writes lines as one chunk; resolves once the socket accepted it (false if the stream is gone). */
  async write(lines: readonly Line[], id?: number): Promise<boolean> {
    return this.send(lines, id);
  }

  /**
   * Writes lines as one chunk, synchronously: true if the socket took it, false if the stream is gone, or a
   * promise of either when the write has to wait for the socket to drain (isBusy until then).
   */
  send(lines: readonly Line[], id?: number): boolean | Promise<boolean> {
    if (this.raw.destroyed || this.raw.writableEnded) return false;
    const text = this.sse
      ? lines.map((line) => `${id === undefined ? '' : `id: ${id}\n`}data: ${JSON.stringify(line)}\n\n`).join('')
      : lines.map((line) => `${JSON.stringify(line)}\n`).join('');
    this.lastWriteMs = performance.now();
    traceMark('watch.write');
    if (this.raw.write(text)) return true;
    this.isBusy = true;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        cleanup();
        this.raw.destroy();
        resolve(false);
      }, drainTimeoutMs);
      const onDrain = (): void => {
        cleanup();
        resolve(true);
      };
      const onClose = (): void => {
        cleanup();
        resolve(false);
      };
      const cleanup = (): void => {
        this.isBusy = false;
        clearTimeout(timer);
        this.raw.off('drain', onDrain);
        this.raw.off('close', onClose);
      };
      this.raw.on('drain', onDrain);
      this.raw.on('close', onClose);
    });
  }

  /** Holds writes until uncork(), to send them in one socket write. */
  cork(): void {
    this.raw.cork();
  }

  uncork(): void {
    this.raw.uncork();
  }

  end(): void {
    if (!this.raw.writableEnded) this.raw.end();
  }
}

function eventLines(revision: number, events: readonly StoreEvent[]): Line[] {
  return events.map((event) => ({
    type: event.type,
    kv: event.kv,
    ...(event.prevKv !== undefined && { prevKv: event.prevKv }),
    revision,
  }));
}

/**
 * Writes the watcher's messages to the stream, in order, until the watcher ends or the stream is gone. While the
 * writer is idle, the revisions of an apply batch are written at once, in one socket write, at the end of the
 * store's publish (watch-hub.ts publishBatch): a put's event leaves before the put's own answer, which the store
 * hands out right after (etcd's order too). While a write waits for the socket to drain, messages wait in the
 * watcher's bounded buffer, as with any slow consumer.
 */
function pump(watcher: Watcher, writer: StreamWriter): Promise<void> {
  return new Promise((resolve) => {
    let running = false;
    let draining = false;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      watcher.listen(null);
      resolve();
    };
    // After a write that had to wait: go on, or stop if the stream is gone.
    const resume = (ok: boolean): void => {
      draining = false;
      if (ok) run();
      else finish();
    };
    const run = (): void => {
      if (running || draining || done) return;
      running = true;
      try {
        // Everything taken in this run (an apply batch's revisions) goes out in one socket write.
        writer.cork();
        for (;;) {
          const message = watcher.takeNow();
          if (message === null) {
            if (watcher.isEnded) endWith(watcher.takeEndError());
            return;
          }
          if (message.type === 'compacted') {
            // The last line: nothing follows it (draining keeps the end from overtaking it).
            draining = true;
            void Promise.resolve(writer.send([{ type: 'compacted', compactRevision: message.compactRevision }])).then(finish);
            return;
          }
          const written = writeEvents(message, writer);
          if (written === false) return finish();
          if (written instanceof Promise) {
            draining = true;
            void written.then(resume);
            return;
          }
        }
      } catch (err) {
        endWith(err);
      } finally {
        running = false;
        writer.uncork();
      }
    };
    const endWith = (err: unknown): void => {
      if (err === null) return finish();
      draining = true; // the error line is the last: nothing runs again before finish()
      const error = isKeelError(err) ? err : new KeelError('INTERNAL', 'watch failed', {}, { cause: err });
      const line = { type: 'error', error: { code: error.code, message: error.message, ...error.details } };
      void writer.write([line]).catch(() => undefined).finally(finish);
    };
    watcher.listen(run);
    run();
  });
}

/** Writes one revision's events (see StreamWriter.send). */
function writeEvents(message: Extract<WatchMessage, { type: 'events' }>, writer: StreamWriter): boolean | Promise<boolean> {
  // _keel/auth/ is hidden from watches (auth-hook.ts): a revision that only changed auth state writes nothing.
  const lines = eventLines(message.revision, message.events.filter((event) => !isHiddenKey(event.kv.key)));
  return lines.length === 0 ? true : writer.send(lines, message.revision);
}

export const watchRoutes: FastifyPluginAsync<{ backend: WatchBackend }> = async (app, { backend }) => {
  const handler = async (request: FastifyRequest<{ Querystring: WatchQuery }>, reply: FastifyReply, key: string): Promise<void> => {
    const query = request.query;
    const prefix = query.prefix === true;
    checkKey(key, 'key', prefix);
    const sse = (request.headers.accept ?? '').includes('text/event-stream');
    const lastEventId = Number(request.headers['last-event-id']);
    // fromRevision=0 means "from now", exactly like no fromRevision (etcd's start revision 0): `created` comes first.
    const fromQuery = query.fromRevision === 0 ? undefined : query.fromRevision;
    const fromRevision = fromQuery ?? (sse && Number.isSafeInteger(lastEventId) && lastEventId > 0 ? lastEventId + 1 : undefined);
    // A start revision that is already compacted is refused before the stream opens, with the 410 every read
    // below the compact revision gets (API.md: "reads or watches below it get 410"). A compaction that overtakes
    // a watch still catching up after it opened is reported in the stream: a `compacted` line, then the end.
    const compactRevision = backend.store.compactRevision();
    if (fromRevision !== undefined && fromRevision < compactRevision) {
      throw new KeelError('COMPACTED', `revision ${fromRevision} is compacted`, { compactRevision });
    }
    const watcher = backend.store.watch({ key, prefix, fromRevision, prevKv: query.prevKv === true });
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, {
      'content-type': sse ? 'text/event-stream; charset=utf-8' : 'application/x-ndjson; charset=utf-8',
      'cache-control': 'no-cache',
      'x-keel-revision': String(watcher.startRevision),
    });
    raw.flushHeaders();
    const writer = new StreamWriter(raw, sse);
    backend.onStreamCountChange?.(1);
    const progressMs = query.progressMs ?? progressMsDefault;
    const checkMs = Math.max(10, Math.floor(progressMs / 5));
    const progress = setInterval(() => {
      // Only when idle and nothing is half-written: a progress line must never overtake an event line.
      if (performance.now() - writer.lastWriteMs < progressMs - checkMs || !watcher.isLive || writer.isBusy) return;
      void writer.write([{ type: 'progress', revision: watcher.progressRevision(backend.store.watchHub.publishedRevision) }]);
    }, checkMs);
    raw.on('close', () => watcher.cancel());
    try {
      if (fromRevision === undefined) await writer.write([{ type: 'created', revision: watcher.startRevision }]);
      await pump(watcher, writer);
    } finally {
      clearInterval(progress);
      watcher.cancel();
      writer.end();
      backend.onStreamCountChange?.(-1);
    }
  };
  app.get<{ Querystring: WatchQuery }>('/v1/watch', { schema: { querystring: watchQuerySchema } }, (request, reply) => handler(request, reply, ''));
  app.get<{ Querystring: WatchQuery }>('/v1/watch/*', { schema: { querystring: watchQuerySchema } }, (request, reply) =>
    handler(request, reply, keyOf(request)),
  );
};
