// Goal: a client Watch delivers every event of every matching revision exactly once, in revision order, across
// any number of broken streams: streams cut between revisions or in the middle of one (a txn's events half
// received), streams that end, slow-consumer `error` lines, and endpoints that refuse to open; it starts where
// the first stream says when no fromRevision is given, surfaces `compacted` (line or 410) as a COMPACTED
// KeelError, ends quietly on abort/close, and gives up with UNAVAILABLE after reconnectMs of failures.
// Method: the pure WatchCursor on the worked example of its header, then the Watch loop against a fake stream
// source (no network): scripted streams for the edge cases, and a seeded fuzz where a fake server replays a
// random history from the requested revision, in a random order within each revision, cutting streams at random
// lines; the delivered events are compared with the history.
import t from 'tap';
import { WatchCursor } from '../../../src/client/watch-cursor.js';
import type { KV, WatchEvent, WatchLine } from '../../../src/client/types.js';
import { Watch, type OpenedStream, type WatchStreamSource } from '../../../src/client/watch.js';
import { KeelError } from '../../../src/util/errors.js';
import { SeededPrng } from '../../../src/util/prng.js';

function kv(key: string, revision: number, version = 1): KV {
  return { key, value: `${key}@${revision}`, createRevision: revision, modRevision: revision, version, lease: 0 };
}

function put(key: string, revision: number, version = 1): WatchEvent {
  return { type: 'put', kv: kv(key, revision, version), revision };
}

const label = (e: WatchEvent): string => `${e.revision}:${e.kv.key}`;

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
  cursor.accept({ type: 'created', revision: 6 });
  t.equal(cursor.resumeRevision(), 7);
  t.equal(cursor.accept(put('x', 7)).kind, 'deliver');
  t.equal(cursor.accept(put('a', 8)).kind, 'deliver');
  t.equal(cursor.resumeRevision(), 8, 'revision 8 may be incomplete: resume at 8');
  t.equal(cursor.accept(put('a', 8)).kind, 'skip', '8:a again is a duplicate');
  t.equal(cursor.accept(put('b', 8)).kind, 'deliver');
  t.equal(cursor.accept(put('c', 9)).kind, 'deliver');
  t.equal(cursor.resumeRevision(), 9);
  cursor.accept({ type: 'progress', revision: 12 });
  t.equal(cursor.resumeRevision(), 13, 'progress proves 9 complete and nothing up to 12');
  t.equal(cursor.accept(put('old', 10)).kind, 'skip', 'anything at or below a complete revision is a duplicate');
  t.throws(() => cursor.accept({ type: 'compacted', compactRevision: 20 }), { code: 'COMPACTED', details: { compactRevision: 20 } });
  t.same(cursor.accept({ type: 'error', error: { code: 'UNAVAILABLE', message: 'slow', resumeRevision: 13 } }), { kind: 'reconnect' });
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
  const reset = new Error('socket hang up');
  const source = scripted([
    () => ({ startRevision: 5, lines: [{ type: 'created', revision: 5 }, put('a', 6), put('b', 7), put('c', 7), reset] }),
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
  const reconnects: (number | undefined)[] = [];
  const watch = new Watch(source, { onReconnect: (info) => reconnects.push(info.fromRevision) });
  const events = await collect(watch, 6);
  t.same(events.map(label), ['6:a', '7:b', '7:c', '7:d', '8:e', '10:f']);
  t.same(source.opens.map((o) => o.endpoint), [0, 1, 2, 0], 'each failure moves to the next endpoint');
  t.same(reconnects, [7, 8, 8]);
  t.equal(watch.lastRevision, 10);
});

void t.test('watch: no fromRevision takes the start from the first stream; the next stream does not move it', async (t) => {
  const source = scripted([
    () => ({ startRevision: 41, lines: [new Error('reset before the created line')] }),
    (from) => {
      t.equal(from, 42, 'resumes after the start the first stream announced');
      return { startRevision: 99, lines: [put('k', 42)] };
    },
  ]);
  t.same((await collect(new Watch(source), 1)).map(label), ['42:k']);
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
  await t.rejects(collect(new Watch(refused, { reconnectMs: 300 }), 1), { code: 'UNAVAILABLE' });
  t.ok(Date.now() - started < 3_000 && refused.opens.length > 2, `gave up after ${refused.opens.length} attempts`);
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
          if (prng.next() < 0.5) throw new Error('connection reset');
        })(),
      };
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
    const watch = new Watch(fuzzSource(history, head, prng), { reconnectMs: 60_000 });
    const got = await collect(watch, expected.length);
    const byRevision = (labels: string[]): string[] => [...labels].sort((a, b) => Number(a.split(':')[0]) - Number(b.split(':')[0]) || a.localeCompare(b));
    const revisions = got.map((e) => e.revision);
    if (!revisions.every((r, i) => i === 0 || r >= revisions[i - 1]!)) t.fail(`seed ${seed}: revisions out of order`);
    t.same(byRevision(got.map(label)), byRevision(expected), `seed ${seed}: ${expected.length} events, ${watch.reconnects} reconnects`);
  }
});
