// Goal: watches deliver every matching revision exactly once, in order, one message per revision (a txn's
// events together), filtered by key/prefix, with prevKv only when asked; a watch from a past revision replays
// history and then switches to live with no gap and no duplicate at the seam, even while entries are applied
// concurrently; cancel() frees the watcher at once.
// Method: live checks on small scenarios; then a stress run: a background loop applies entries (some of them
// txns touching several keys) while watchers start from random past, current and future revisions with tiny
// catch-up rounds, and each watcher's received revisions are compared with the exact expected sequence.
import t from 'tap';
import type { KvStore, StoreEvent, WatchMessage, Watcher } from '../../../src/store/index.js';
import { SeededPrng } from '../../../src/util/prng.js';
import { Applier, commandEntry, deleteCmd, openStore, putCmd } from './helpers.js';

async function take(watcher: Watcher, count: number): Promise<WatchMessage[]> {
  const out: WatchMessage[] = [];
  while (out.length < count) {
    const next = await watcher.next();
    if (next.done === true) break;
    out.push(next.value);
  }
  return out;
}

function summary(messages: readonly WatchMessage[]): string[] {
  return messages.map((m) =>
    m.type === 'events' ? `${m.revision}:${m.events.map((e) => `${e.type[0]}${e.kv.key}`).join(',')}` : `c${m.compactRevision}`,
  );
}

void t.test('live: key and prefix filters, one message per revision, prevKv on request', async (t) => {
  const { store } = await openStore(t);
  const apply = new Applier(store);
  await apply.put('a/0', 'x'); // 1: before the watches
  const single = store.watch({ key: 'a/1' });
  const prefix = store.watch({ key: 'a/', prefix: true, prevKv: true });
  const everything = store.watch({ key: '', prefix: true });
  t.equal(single.startRevision, 1);
  await apply.put('a/1', 'v1'); // 2
  await apply.put('b', 'v'); // 3
  await apply.one({
    kind: 'txn',
    compare: [],
    success: [{ put: { key: 'a/1', value: 'v2' } }, { put: { key: 'a/2', value: 'v' } }, { put: { key: 'b', value: 'w' } }],
    failure: [],
  }); // 4
  await apply.one(deleteCmd('a/', { prefix: true })); // 5
  t.same(summary(await take(single, 3)), ['2:pa/1', '4:pa/1', '5:da/1']);
  t.same(summary(await take(prefix, 3)), ['2:pa/1', '4:pa/1,pa/2', '5:da/0,da/1,da/2']);
  t.same(summary(await take(everything, 4)), ['2:pa/1', '3:pb', '4:pa/1,pa/2,pb', '5:da/0,da/1,da/2']);
  t.equal(await firstPrevKv(store), undefined, 'a watch without prevKv gets none, replayed or live');
  single.cancel();
  everything.cancel();
  // prevKv: asked for by `prefix`, absent for the others.
  const replay = store.watch({ key: 'a/', prefix: true, prevKv: true, fromRevision: 4 });
  const [four] = await take(replay, 1);
  const events = four?.type === 'events' ? four.events : [];
  t.same(events[0]?.prevKv, { key: 'a/1', value: 'v1', createRevision: 2, modRevision: 2, version: 1, lease: 0 });
  t.equal(events[1]?.prevKv, undefined, 'a/2 did not exist before');
  replay.cancel();
  prefix.cancel();
  t.equal(store.watchHub.size(), 0);
});

async function firstPrevKv(store: KvStore): Promise<StoreEvent | undefined> {
  const watcher = store.watch({ key: '', prefix: true, fromRevision: 1 });
  const messages = await take(watcher, store.revision());
  watcher.cancel();
  return messages.flatMap((m) => (m.type === 'events' ? m.events : [])).find((e) => e.prevKv !== undefined);
}

void t.test('a watch from a future revision starts there', async (t) => {
  const { store } = await openStore(t);
  const apply = new Applier(store);
  const watcher = store.watch({ key: 'k', fromRevision: 3 });
  for (let i = 0; i < 4; i++) await apply.put('k', `v${i}`);
  t.same(summary(await take(watcher, 2)), ['3:pk', '4:pk']);
  watcher.cancel();
});

void t.test('cancel ends the iterator and frees the watcher at once', async (t) => {
  const { store } = await openStore(t);
  const apply = new Applier(store);
  const watcher = store.watch({ key: 'k' });
  await apply.put('k', 'v');
  t.equal(store.watchHub.size(), 1);
  watcher.cancel();
  t.equal(store.watchHub.size(), 0);
  t.same(await watcher.next(), { done: true, value: undefined });
  const waiting = store.watch({ key: 'k' });
  const pending = waiting.next();
  waiting.cancel();
  t.same(await pending, { done: true, value: undefined });
});

void t.test('progressRevision tells how far an idle watcher is complete', async (t) => {
  const { store } = await openStore(t);
  const apply = new Applier(store);
  const watcher = store.watch({ key: 'mine' });
  await apply.put('other', 'v');
  await apply.put('other', 'v');
  t.equal(watcher.progressRevision(store.watchHub.publishedRevision), 2);
  await apply.put('mine', 'v');
  t.equal(watcher.progressRevision(store.watchHub.publishedRevision), 2, 'revision 3 is buffered, not delivered');
  await take(watcher, 1);
  t.equal(watcher.progressRevision(store.watchHub.publishedRevision), 3);
  watcher.cancel();
});

void t.test('watchersMax bounds the watchers of a store', async (t) => {
  const { store } = await openStore(t, { watchersMax: 2 });
  const first = store.watch({ key: 'a' });
  store.watch({ key: 'b' });
  t.throws(() => store.watch({ key: 'c' }), { code: 'UNAVAILABLE' });
  first.cancel();
  t.doesNotThrow(() => store.watch({ key: 'c' }).cancel());
  t.throws(() => store.watch({ key: '' }), { code: 'INVALID_ARGUMENT' });
});

void t.test('catch-up then live under concurrent applies: no gap, no duplicate, in order', async (t) => {
  const { store } = await openStore(t, { catchUpRecordsMax: 3, watchBufferMax: 10_000 });
  const apply = new Applier(store);
  const prng = new SeededPrng(5);
  /** Keys changed at each revision, to build each watcher's expected sequence. */
  const changed = new Map<number, string[]>();
  const writer = (async () => {
    for (let i = 0; i < 300; i++) {
      const key = `k${prng.int(0, 5)}`;
      if (i % 10 === 9) {
        await apply.one({
          kind: 'txn',
          compare: [],
          success: [{ put: { key, value: `${i}` } }, { put: { key: 'k0', value: `${i}` } }],
          failure: [],
        });
        changed.set(store.revision(), [key, 'k0']);
      } else {
        await apply.one(putCmd(key, `${i}`));
        changed.set(store.revision(), [key]);
      }
      if (i % 7 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
  })();
  const collectors: { from: number; key: string | null; collector: Collector }[] = [];
  for (let w = 0; w < 24; w++) {
    // Spread the watches over the whole write period, so replays of every length race with live applies.
    while (store.revision() < w * 12) await new Promise((resolve) => setImmediate(resolve));
    const from = w % 4 === 3 ? 0 : prng.int(1, store.revision() + 5);
    const key = w % 3 === 0 ? 'k0' : null;
    const watcher = store.watch(key === null ? { key: 'k', prefix: true, fromRevision: from } : { key, fromRevision: from });
    collectors.push({ from: from === 0 ? watcher.startRevision + 1 : from, key, collector: new Collector(watcher) });
  }
  await writer;
  t.ok(collectors.some((c) => c.from < store.revision() - 100), 'some watchers replayed a long history');
  for (const { from, key, collector } of collectors) {
    const expected: string[] = [];
    for (let revision = from; revision <= store.revision(); revision++) {
      const keys = (changed.get(revision) ?? []).filter((k) => key === null || k === key);
      if (keys.length > 0) expected.push(`${revision}:${keys.map((k) => `p${k}`).join(',')}`);
    }
    const lastExpected = Number((expected[expected.length - 1] ?? '0:').split(':')[0]);
    t.same(await collector.until(lastExpected), expected, `watcher from ${from} on ${key ?? 'k*'}`);
  }
});

/** Consumes a watcher as fast as it can, keeping what it received. */
class Collector {
  readonly received: string[] = [];
  private lastRevision = 0;
  private readonly done: Promise<void>;

  constructor(private readonly watcher: Watcher) {
    this.done = (async () => {
      for await (const message of watcher) {
        this.received.push(...summary([message]));
        if (message.type === 'events') this.lastRevision = message.revision;
      }
    })();
  }

  /** Waits (bounded) until `revision` was received, then cancels the watcher and answers what it got. */
  async until(revision: number): Promise<string[]> {
    for (let waited = 0; this.lastRevision < revision && waited < 5000; waited += 5) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    this.watcher.cancel();
    await this.done;
    return this.received;
  }
}

void t.test('a listening consumer is told once per apply batch, with every revision of it, before the answers', async (t) => {
  const { store } = await openStore(t);
  const watcher = store.watch({ key: 'l/', prefix: true });
  const order: string[] = [];
  watcher.listen(() => {
    const revisions: number[] = [];
    for (let m = watcher.takeNow(); m !== null; m = watcher.takeNow()) revisions.push(m.type === 'events' ? m.revision : -1);
    order.push(`told ${revisions.join(',')}`);
  });
  const entries = [1, 2, 3].map((i) => commandEntry(i, putCmd(`l/${i}`, `v${i}`)));
  const results = await store.apply(entries, () => order.push('answered'));
  t.same(results, [{ revision: 1 }, { revision: 2 }, { revision: 3 }]);
  t.same(order, ['told 1,2,3', 'answered'], 'one notification for the batch, before the answer');
  // A batch where only some revisions match: told once, with those.
  await store.apply([commandEntry(4, putCmd('other', 'x')), commandEntry(5, putCmd('l/5', 'v5'))], () => order.push('answered'));
  t.same(order.slice(2), ['told 5', 'answered']);
  watcher.cancel();
  t.equal(order.length, 5, 'the end tells the listener too (nothing left to take)');
  t.ok(watcher.isEnded);
  t.equal(watcher.takeNow(), null);
  t.equal(watcher.takeEndError(), null, 'a cancel is a plain end');
});

void t.test('a listening consumer that stops taking holds the batch in the bounded buffer, then is cut off', async (t) => {
  const { store } = await openStore(t, { watchBufferMax: 4 });
  const watcher = store.watch({ key: 's/', prefix: true });
  let told = 0;
  watcher.listen(() => told++);
  for (let i = 1; i <= 4; i++) await store.apply([commandEntry(i, putCmd(`s/${i}`, 'x'))]);
  t.equal(told, 4);
  await store.apply([commandEntry(5, putCmd('s/5', 'x'))]);
  t.ok(watcher.isEnded, 'the fifth event does not fit');
  const revisions: number[] = [];
  for (let m = watcher.takeNow(); m !== null; m = watcher.takeNow()) revisions.push(m.type === 'events' ? m.revision : -1);
  t.same(revisions, [1, 2, 3, 4], 'what was buffered is still delivered');
  t.match(watcher.takeEndError(), { code: 'UNAVAILABLE', details: { reason: 'slowConsumer', resumeRevision: 5 } });
});
