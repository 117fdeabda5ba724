// Goal: a client Watch (the library's, and `keel watch`, which is built on it) delivers every event of every
// matching revision exactly once, in revision order, across any number of broken streams: streams cut between
// revisions or in the middle of one (a txn's events half received, then replayed by the next node, maybe cut again
// during the replay), streams that end, UNAVAILABLE `error` lines (slow consumer, node stopping), and endpoints
// that refuse to open; it starts where the first stream says when no fromRevision is given; it surfaces
// `compacted` (line or 410) as a COMPACTED KeelError and any other error (an `error` line, a 500 at open) with the
// server's code, without retrying; it ends quietly on abort/close; and it gives up with UNAVAILABLE after
// reconnectMs of failures without progress, a time that error lines do not start over but progress lines do.
// Method: the pure WatchCursor on the worked example of its header and on scripted replays, then the Watch loop
// against a fake stream source (no network): scripted streams for the edge cases, and a seeded fuzz where a fake
// server replays a random history from the requested revision, in a random order within each revision, cutting
// streams at random lines; the delivered events are compared with the history.
import t from 'tap';
import { WatchCursor } from '../../../src/client/watch-cursor.js';
import type { KV, WatchEvent, WatchLine } from '../../../src/client/types.js';
import { Watch, type OpenedStream, type ReconnectInfo, type WatchStreamSource, type WatchTimers } from '../../../src/client/watch.js';
import { KeelError } from '../../../src/util/errors.js';
import { SeededPrng } from '../../../src/util/prng.js';

function kv(key: string, revision: number, version = 1): KV {
  return { key, value: `${key}@${revision}`, createRevision: revision, modRevision: revision, version, lease: 0 };
}

function put(key: string, revision: number, version = 1): WatchEvent {
  return { type: 'put', kv: kv(key, revision, version), revision };
}

const label = (e: WatchEvent): string => `${e.revision}:${e.kv.key}`;

/** A transport failure, as undici and sockets report them (an error with a string code). */
function reset(message = 'connection reset'): Error {
  return Object.assign(new Error(message), { code: 'ECONNRESET' });
}

/** Feeds events (revision, key) to the cursor and returns the labels of those it delivers. */
function feed(cursor: WatchCursor, events: readonly [number, string][]): string[] {
  return events.map(([revision, key]) => cursor.accept(put(key, revision))).flatMap((step) => (step.kind === 'deliver' ? [label(step.event)] : []));
}

const errorLine = (code: string, message = code): WatchLine => ({ type: 'error', error: { code, message } });

type Script = (fromRevision: number | undefined) => { startRevision?: number; lines: (WatchLine | Error)[] } | Error;

/** A source whose n-th open() runs the n-th script (the last one repeats); records what was asked. */
function scripted(scripts: Script[], endpointCount = 3): WatchStreamSource & { opens: { endpoint: number; fromRevision: number | undefined }[] } {
  const opens: { endpoint: number; fromRevision: number | undefined }[] = [];
  return {
    endpointCount,
    firstEndpoint: 0,
    opens,
    async open(endpoint, fromRevision): Promise<OpenedStream> {
      const script = scripts[Math.min(opens.length, scripts.length - 1)]!;
      opens.push({ endpoint, fromRevision });
      const result = script(fromRevision);
      if (result instanceof Error) throw result;
      return {
        startRevision: result.startRevision ?? null,
        lines: (async function* () {
          for (const line of result.lines) {
            if (line instanceof Error) throw line;
            yield line;
          }
        })(),
      };
    },
  };
}

async function collect(watch: Watch, count: number): Promise<WatchEvent[]> {
  const out: WatchEvent[] = [];
  for await (const event of watch) {
    out.push(event);
    if (out.length === count) break;
  }
  return out;
}

void t.test('cursor: the worked example (a txn cut in the middle)', async (t) => {
  const cursor = new WatchCursor();
  t.equal(cursor.resumeRevision(), undefined, 'not started: the server picks now');
  t.same(cursor.accept({ type: 'created', revision: 6 }), { kind: 'started', revision: 6 });
  t.equal(cursor.resumeRevision(), 7);
  t.equal(cursor.accept(put('x', 7)).kind, 'deliver');
  t.equal(cursor.accept(put('a', 8)).kind, 'deliver');
  t.equal(cursor.resumeRevision(), 8, 'revision 8 may be incomplete: resume at 8');
  t.equal(cursor.accept(put('a', 8)).kind, 'skip', '8:a again is a duplicate');
  t.equal(cursor.accept(put('b', 8)).kind, 'deliver');
  t.equal(cursor.accept(put('c', 9)).kind, 'deliver');
  t.equal(cursor.resumeRevision(), 9);
  t.same(cursor.accept({ type: 'progress', revision: 12 }), { kind: 'progress' });
  t.equal(cursor.resumeRevision(), 13, 'progress proves 9 complete and nothing up to 12');
  t.equal(cursor.accept(put('old', 10)).kind, 'skip', 'anything at or below a complete revision is a duplicate');
  t.throws(() => cursor.accept({ type: 'compacted', compactRevision: 20 }), { code: 'COMPACTED', details: { compactRevision: 20 } });
  const slow = cursor.accept({ type: 'error', error: { code: 'UNAVAILABLE', message: 'slow', resumeRevision: 13 } });
  t.match(slow, { kind: 'reconnect', error: { code: 'UNAVAILABLE', message: 'slow', details: { resumeRevision: 13 } } });
});

void t.test('cursor: a created line starts a watch once; a later one does not move it', async (t) => {
  const cursor = new WatchCursor();
  t.equal(cursor.start(10), true);
  t.equal(cursor.resumeRevision(), 11);
  t.same(cursor.accept({ type: 'created', revision: 12 }), { kind: 'skip' }, 'a later created line does not move the start');
  t.equal(cursor.start(12), false);
  t.equal(cursor.resumeRevision(), 11);
});

void t.test('cursor: a break between revisions resumes at the last delivered one and drops its replay', async (t) => {
  const cursor = new WatchCursor(5);
  t.same(feed(cursor, [[5, 'a'], [6, 'b']]), ['5:a', '6:b']);
  t.equal(cursor.resumeRevision(), 6, 'revision 6 may be incomplete: ask for it again');
  t.same(feed(cursor, [[6, 'b'], [7, 'c']]), ['7:c'], 'revision 6 replayed by the new node is not delivered twice');
});

void t.test('cursor: a break inside a revision delivers the rest of it, once', async (t) => {
  const cursor = new WatchCursor();
  cursor.start(7);
  t.same(feed(cursor, [[8, 'x'], [9, 'txn-1'], [9, 'txn-2']]), ['8:x', '9:txn-1', '9:txn-2']);
  t.equal(cursor.resumeRevision(), 9);
  t.same(feed(cursor, [[9, 'txn-1'], [9, 'txn-2'], [9, 'txn-3'], [10, 'y']]), ['9:txn-3', '10:y']);
  t.equal(cursor.resumeRevision(), 10);
  t.same(feed(cursor, [[10, 'y'], [11, 'z']]), ['11:z']);
});

void t.test('cursor: progress lines move the resume point past idle revisions, never back', async (t) => {
  const cursor = new WatchCursor(3);
  t.same(feed(cursor, [[3, 'a']]), ['3:a']);
  cursor.accept({ type: 'progress', revision: 20 });
  t.equal(cursor.resumeRevision(), 21, 'resume after the progress revision: nothing up to it was missed');
  cursor.accept({ type: 'progress', revision: 15 });
  t.equal(cursor.resumeRevision(), 21, 'a lagging node reporting older progress does not move it back');
  t.same(feed(cursor, [[21, 'b']]), ['21:b']);
});

void t.test('cursor: a second break during the replay still drops only what was delivered', async (t) => {
  const cursor = new WatchCursor(1);
  t.same(feed(cursor, [[1, 'p'], [1, 'q']]), ['1:p', '1:q']);
  t.equal(cursor.resumeRevision(), 1);
  t.same(feed(cursor, [[1, 'p']]), [], 'the second node dies after replaying one of the two');
  t.equal(cursor.resumeRevision(), 1);
  t.same(feed(cursor, [[1, 'p'], [1, 'q'], [2, 'r']]), ['2:r']);
});

void t.test('cursor: an error line other than UNAVAILABLE throws its own code', async (t) => {
  const cursor = new WatchCursor(1);
  t.throws(() => cursor.accept(errorLine('INTERNAL', 'boom')), { name: 'KeelError', code: 'INTERNAL', message: 'boom' });
  t.throws(() => cursor.accept({ type: 'error', error: { code: 'PERMISSION_DENIED', message: 'no', resumeRevision: 4 } }), {
    code: 'PERMISSION_DENIED',
    details: { resumeRevision: 4 },
  }, 'a resumeRevision does not make another code retriable');
  t.throws(() => cursor.accept(errorLine('COMPACTED')), { code: 'COMPACTED' });
  t.throws(() => cursor.accept(errorLine('SOMETHING_NEW')), { code: 'INTERNAL', details: { serverCode: 'SOMETHING_NEW' } }, 'a code this client does not know');
  t.throws(() => cursor.accept(errorLine('toString')), { code: 'INTERNAL', details: { serverCode: 'toString' } }, 'only own catalog keys are codes');
});

void t.test('cursor: with fromRevision, the same key twice in one revision is two events', async (t) => {
  const cursor = new WatchCursor(5);
  t.equal(cursor.resumeRevision(), 5);
  t.equal(cursor.accept(put('k', 5, 1)).kind, 'deliver');
  t.equal(cursor.accept(put('k', 5, 2)).kind, 'deliver', 'different version: a different event');
  t.equal(cursor.accept(put('k', 5, 2)).kind, 'skip');
  t.equal(cursor.accept(put('z', 4)).kind, 'skip', 'before the start');
  t.equal(cursor.accept(put('y', 7)).kind, 'deliver');
  t.equal(cursor.resumeRevision(), 7, 'revision 7 proves 5 and 6 complete');
  t.equal(cursor.accept(put('q', 6)).kind, 'skip', 'a stream never goes back: anything below is a duplicate');
});

void t.test('watch: reconnects to the next endpoint and resumes mid-revision without gap or duplicate', async (t) => {
  const source = scripted([
    () => ({ startRevision: 5, lines: [{ type: 'created', revision: 5 }, put('a', 6), put('b', 7), put('c', 7), reset('socket hang up')] }),
    (from) => {
      t.equal(from, 7, 'second stream resumes at the partly delivered revision');
      return { lines: [put('c', 7), put('b', 7), put('d', 7), put('e', 8)] }; // ends: node shutting down
    },
    () => new KeelError('UNAVAILABLE', 'connection refused', { transport: true }),
    (from) => {
      t.equal(from, 8);
      return { lines: [put('e', 8), { type: 'progress', revision: 9 }, put('f', 10)] };
    },
  ]);
  const reconnects: ReconnectInfo[] = [];
  const watch = new Watch(source, { onReconnect: (info) => reconnects.push(info) });
  const events = await collect(watch, 6);
  t.same(events.map(label), ['6:a', '7:b', '7:c', '7:d', '8:e', '10:f']);
  t.same(source.opens.map((o) => o.endpoint), [0, 1, 2, 0], 'each failure moves to the next endpoint');
  t.same(reconnects.map((r) => [r.failedEndpoint, r.endpoint, r.fromRevision]), [[0, 1, 7], [1, 2, 8], [2, 0, 8]]);
  t.same(reconnects.map((r) => r.delayMs), [0, 0, 100], 'a stream that delivered starts the back-off over; a refusal then waits');
  t.match(reconnects.map((r) => r.error), [{ code: 'ECONNRESET' }, { code: 'UNAVAILABLE', message: 'the stream ended' }, { code: 'UNAVAILABLE' }]);
  t.equal(watch.lastRevision, 10);
});

void t.test('watch: no fromRevision takes the start from the first stream; the next stream does not move it', async (t) => {
  const source = scripted([
    () => ({ startRevision: 41, lines: [reset('reset before the created line')] }),
    (from) => {
      t.equal(from, 42, 'resumes after the start the first stream announced');
      return { startRevision: 99, lines: [{ type: 'created', revision: 99 }, put('k', 42)] };
    },
  ]);
  const created: number[] = [];
  t.same((await collect(new Watch(source, { onCreated: (revision) => created.push(revision) }), 1)).map(label), ['42:k']);
  t.same(created, [41], 'onCreated is told the start once');
  const byLine = scripted([() => ({ lines: [{ type: 'created', revision: 7 }, put('k', 8)] })]);
  const fromLine: number[] = [];
  t.same((await collect(new Watch(byLine, { onCreated: (revision) => fromLine.push(revision) }), 1)).map(label), ['8:k']);
  t.same(fromLine, [7], 'without X-Keel-Revision, the created line says it');
});

void t.test('watch: a slow-consumer error line reconnects from where the cursor is', async (t) => {
  const source = scripted([
    () => ({ lines: [put('a', 3), { type: 'error', error: { code: 'UNAVAILABLE', message: 'behind', resumeRevision: 4 } }] }),
    (from) => ({ lines: [put('a', from ?? -1), put('b', 4)] }),
  ]);
  const events = await collect(new Watch(source, { fromRevision: 3 }), 2);
  t.same(events.map(label), ['3:a', '4:b']);
  t.same(source.opens.map((o) => o.fromRevision), [3, 3]);
});

void t.test('watch: compacted, as a line or as a 410 at open, is a COMPACTED KeelError', async (t) => {
  const asLine = new Watch(scripted([() => ({ lines: [put('a', 3), { type: 'compacted', compactRevision: 50 }] })]), { fromRevision: 3 });
  const seen: string[] = [];
  await t.rejects(
    (async () => {
      for await (const event of asLine) seen.push(label(event));
    })(),
    { code: 'COMPACTED', details: { compactRevision: 50 } },
  );
  t.same(seen, ['3:a'], 'events before the notice were delivered');
  const at410 = new Watch(scripted([() => new KeelError('COMPACTED', 'gone', { compactRevision: 9 })]), { fromRevision: 2 });
  await t.rejects(collect(at410, 1), { code: 'COMPACTED', details: { compactRevision: 9 } });
  const invalid = new Watch(scripted([() => new KeelError('INVALID_ARGUMENT', 'bad key')]));
  await t.rejects(collect(invalid, 1), { code: 'INVALID_ARGUMENT' }, 'an error a retry cannot fix is not retried');
});

void t.test('watch: an error other than UNAVAILABLE or transport ends it with that code, never retried', async (t) => {
  // The bug this pins: every non-UNAVAILABLE error line became INTERNAL, INTERNAL was retried, and the error line
  // started the give-up time over, so a server answering every stream with an INTERNAL line was retried forever.
  const cases: [string, Script, { code: string; message?: string; details?: object } | { name: string }][] = [
    ['an INTERNAL error line', () => ({ lines: [put('a', 3), errorLine('INTERNAL', 'store fault')] }), { code: 'INTERNAL', message: 'store fault' }],
    ['a PERMISSION_DENIED error line', () => ({ lines: [errorLine('PERMISSION_DENIED')] }), { code: 'PERMISSION_DENIED' }],
    ['an unknown code', () => ({ lines: [errorLine('SOMETHING_NEW')] }), { code: 'INTERNAL', details: { serverCode: 'SOMETHING_NEW' } }],
    ['a 500 at open', () => new KeelError('INTERNAL', 'HTTP 500'), { code: 'INTERNAL' }],
    ['a TIMEOUT at open', () => new KeelError('TIMEOUT', 'slow'), { code: 'TIMEOUT' }],
    ['a bug (an error without a code)', () => ({ lines: [new TypeError('not a transport failure')] }), { name: 'TypeError' }],
    ['a malformed line', () => ({ lines: [{ type: 'bogus' } as unknown as WatchLine] }), { code: 'INTERNAL' }],
  ];
  for (const [what, script, expected] of cases) {
    const source = scripted([script]);
    const watch = new Watch(source, { fromRevision: 3, reconnectMs: 60_000 });
    const watchdog = setTimeout(() => watch.close(), 5_000); // a retry loop ends quietly here, and fails below
    await t.rejects(collect(watch, 2), expected, what);
    clearTimeout(watchdog);
    t.equal(source.opens.length, 1, `${what}: one stream, no reconnect`);
  }
});

void t.test('watch: UNAVAILABLE error lines are retried with a bounded back-off and do not start the give-up time over', async (t) => {
  const source = scripted([() => ({ lines: [put('a', 3), errorLine('UNAVAILABLE', 'node stopping')] })]);
  const delays: number[] = [];
  const watch = new Watch(source, { fromRevision: 3, reconnectMs: 1_000, onReconnect: (info) => delays.push(info.delayMs) });
  const watchdog = setTimeout(() => watch.close(), 8_000);
  const started = performance.now();
  const seen: string[] = [];
  await t.rejects(
    (async () => {
      for await (const event of watch) seen.push(label(event));
    })(),
    { code: 'UNAVAILABLE', message: /no endpoint served the watch for 1000 ms; last: node stopping/ },
  );
  clearTimeout(watchdog);
  const elapsedMs = performance.now() - started;
  t.same(seen, ['3:a'], 'the replayed event is delivered once');
  t.same(delays.slice(0, 4), [0, 100, 200, 400], 'the first stream delivered (no wait); its replays did not: 100 ms doubling');
  t.ok(delays.every((d) => Number.isInteger(d) && d <= 1_000), `each wait is whole milliseconds and bounded: ${delays.join(',')}`);
  t.ok(elapsedMs >= 950 && elapsedMs < 3_000, `gave up after ${Math.round(elapsedMs)} ms and ${source.opens.length} streams`);
});

void t.test('watch: progress lines are progress: streams that each work for a while never make it give up', async (t) => {
  let opens = 0;
  const source: WatchStreamSource = {
    endpointCount: 2,
    firstEndpoint: 0,
    async open(_endpoint, fromRevision) {
      opens++;
      const isLast = opens === 6;
      return {
        startRevision: null,
        lines: (async function* () {
          yield { type: 'progress', revision: (fromRevision ?? 1) - 1 } satisfies WatchLine;
          if (isLast) yield put('k', fromRevision ?? 1);
          await new Promise((resolve) => setTimeout(resolve, 100));
          yield errorLine('UNAVAILABLE', 'restoring');
        })(),
      };
    },
  };
  const started = performance.now();
  const events = await collect(new Watch(source, { fromRevision: 5, reconnectMs: 250 }), 1);
  t.same(events.map(label), ['5:k']);
  t.ok(performance.now() - started > 250, 'the streams together took longer than reconnectMs');
});

void t.test('watch: abort and close end it quietly; reconnectMs bounds the retries', async (t) => {
  const controller = new AbortController();
  const endless: WatchStreamSource = {
    endpointCount: 1,
    firstEndpoint: 0,
    async open(_e, _f, signal) {
      return {
        startRevision: 1,
        lines: (async function* () {
          yield put('a', 2);
          await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
          throw new Error('aborted');
        })(),
      };
    },
  };
  const watch = new Watch(endless, { signal: controller.signal });
  const events: WatchEvent[] = [];
  setTimeout(() => controller.abort(), 50);
  for await (const event of watch) events.push(event);
  t.same(events.map(label), ['2:a'], 'ended without an error');

  const refused = scripted([() => new KeelError('UNAVAILABLE', 'refused', { transport: true })]);
  const started = Date.now();
  await t.rejects(collect(new Watch(refused, { reconnectMs: 300 }), 1), { code: 'UNAVAILABLE', message: /no endpoint served the watch for 300 ms/ });
  t.ok(Date.now() - started < 3_000 && refused.opens.length > 2, `gave up after ${refused.opens.length} attempts`);
  const never = scripted([() => new KeelError('UNAVAILABLE', 'refused', { transport: true })]);
  await t.rejects(collect(new Watch(never, { reconnectMs: 0 }), 1), { code: 'UNAVAILABLE' });
  t.equal(never.opens.length, 1, 'reconnectMs 0: no retry at all');
  t.throws(() => {
    const once = new Watch(refused);
    once[Symbol.asyncIterator]();
    once[Symbol.asyncIterator]();
  }, { code: 'INVALID_ARGUMENT' });
});

/** A fake server over a fixed history: streams from `fromRevision`, in random order per revision, cut at random. */
function fuzzSource(history: Map<number, WatchEvent[]>, head: number, prng: SeededPrng): WatchStreamSource {
  return {
    endpointCount: 3,
    firstEndpoint: 0,
    async open(_endpoint, fromRevision): Promise<OpenedStream> {
      if (prng.next() < 0.1) throw new KeelError('UNAVAILABLE', 'refused', { transport: true });
      const lines: WatchLine[] = [];
      const start = fromRevision ?? 1;
      if (fromRevision === undefined) lines.push({ type: 'created', revision: 0 });
      for (let revision = start; revision <= head; revision++) {
        const events = [...(history.get(revision) ?? [])].sort(() => prng.next() - 0.5);
        lines.push(...events);
        if (prng.next() < 0.05) lines.push({ type: 'progress', revision });
      }
      const cut = prng.int(0, lines.length + 2);
      const ending = prng.next() < 0.2 ? { type: 'error' as const, error: { code: 'UNAVAILABLE', message: 'slow', resumeRevision: 1 } } : null;
      return {
        startRevision: fromRevision === undefined ? 0 : null,
        lines: (async function* () {
          for (const line of lines.slice(0, cut)) yield line;
          if (ending !== null) yield ending;
          if (prng.next() < 0.5) throw reset();
        })(),
      };
    },
  };
}

/** Back-off on virtual time: a wait passes at once (the fuzz checks order, not timing). */
function virtualTimers(): WatchTimers {
  let nowMs = 0;
  return {
    nowMs: () => nowMs,
    sleep: async (ms) => {
      nowMs += ms;
      await new Promise((resolve) => setImmediate(resolve));
    },
  };
}

void t.test('watch fuzz: random cuts, orders and refusals never lose or repeat an event', async (t) => {
  for (let seed = 1; seed <= 40; seed++) {
    const prng = new SeededPrng(seed);
    const history = new Map<number, WatchEvent[]>();
    const expected: string[] = [];
    const head = 150;
    for (let revision = 1; revision <= head; revision++) {
      const count = prng.next() < 0.3 ? 0 : prng.int(1, 4);
      const events = Array.from({ length: count }, (_, i) => put(`k${i}`, revision));
      if (count > 0) history.set(revision, events);
      expected.push(...events.map(label));
    }
    const watch = new Watch(fuzzSource(history, head, prng), { reconnectMs: 60_000 }, virtualTimers());
    const got = await collect(watch, expected.length);
    const byRevision = (labels: string[]): string[] => [...labels].sort((a, b) => Number(a.split(':')[0]) - Number(b.split(':')[0]) || a.localeCompare(b));
    const revisions = got.map((e) => e.revision);
    if (!revisions.every((r, i) => i === 0 || r >= revisions[i - 1]!)) t.fail(`seed ${seed}: revisions out of order`);
    t.same(byRevision(got.map(label)), byRevision(expected), `seed ${seed}: ${expected.length} events, ${watch.reconnects} reconnects`);
  }
});
