// Goal: a watcher never holds more than watchBufferMax undelivered events: a live consumer slower than that is
// ended with UNAVAILABLE (after the messages already buffered, with the revision to resume from), never fed a
// gap and never buffered without bound; a replay is paced by its consumer instead (no error however slow);
// one revision larger than the bound still gets through; and the replay/live seam is exact in the two races
// the hub must handle (a revision written but not yet published; a publish during a history read).
// Method: real stores with tiny bounds and consumers that stop pulling; a WatchHub over a scripted history
// source to force each seam race deterministically.
import t from 'tap';
import type { StoreEvent, WatchMessage, Watcher } from '../../../src/store/index.js';
import type { HistorySource } from '../../../src/store/watch-hub.js';
import { WatchHub } from '../../../src/store/watch-hub.js';
import type { ChangeGroup } from '../../../src/store/mvcc.js';
import { Applier, openStore } from './helpers.js';

function revisions(messages: readonly WatchMessage[]): number[] {
  return messages.map((m) => (m.type === 'events' ? m.revision : -m.compactRevision));
}

async function drainAll(watcher: Watcher): Promise<{ messages: WatchMessage[]; error: unknown }> {
  const messages: WatchMessage[] = [];
  try {
    for await (const message of watcher) messages.push(message);
    return { messages, error: null };
  } catch (error) {
    return { messages, error };
  }
}

void t.test('a live consumer that falls behind the bound is ended, with where to resume', async (t) => {
  const { store } = await openStore(t, { watchBufferMax: 5 });
  const apply = new Applier(store);
  const watcher = store.watch({ key: 'k' });
  for (let i = 0; i < 10; i++) await apply.put('k', `v${i}`);
  t.equal(store.watchHub.size(), 0, 'ended and unregistered as soon as the bound was passed');
  const { messages, error } = await drainAll(watcher);
  t.same(revisions(messages), [1, 2, 3, 4, 5], 'the buffered messages are still delivered');
  t.match(error, { code: 'UNAVAILABLE', details: { reason: 'slowConsumer', resumeRevision: 6 } });
  // Reconnecting from resumeRevision misses nothing.
  const resumed = store.watch({ key: 'k', fromRevision: 6 });
  const rest: number[] = [];
  for await (const message of resumed) {
    rest.push(...revisions([message]));
    if (rest.length === 5) break;
  }
  t.same(rest, [6, 7, 8, 9, 10]);
});

void t.test('a consumer that keeps up is never ended', async (t) => {
  const { store } = await openStore(t, { watchBufferMax: 2 });
  const apply = new Applier(store);
  const watcher = store.watch({ key: 'k' });
  const got: number[] = [];
  for (let i = 0; i < 50; i++) {
    await apply.put('k', `v${i}`);
    const next = await watcher.next();
    if (next.done !== true) got.push(...revisions([next.value]));
  }
  t.equal(got.length, 50);
  watcher.cancel();
});

void t.test('one revision larger than the bound gets through when the buffer is empty', async (t) => {
  const { store } = await openStore(t, { watchBufferMax: 3 });
  const apply = new Applier(store);
  const watcher = store.watch({ key: '', prefix: true });
  const success = Array.from({ length: 20 }, (_, i) => ({ put: { key: `k${i}`, value: 'v' } }));
  await apply.one({ kind: 'txn', compare: [], success, failure: [] });
  const first = await watcher.next();
  t.match(first.value, { type: 'events', revision: 1 });
  t.equal((first.value as { events: StoreEvent[] }).events.length, 20);
  // A replay of it works the same way.
  const replay = store.watch({ key: '', prefix: true, fromRevision: 1 });
  const again = await replay.next();
  t.equal((again.value as { events: StoreEvent[] }).events.length, 20);
  watcher.cancel();
  replay.cancel();
});

void t.test('a replay is paced by a slow consumer, never ended for it', async (t) => {
  const { store } = await openStore(t, { watchBufferMax: 4, catchUpRecordsMax: 2 });
  const apply = new Applier(store);
  for (let i = 0; i < 60; i++) await apply.put(`k${i % 3}`, `v${i}`);
  const watcher = store.watch({ key: 'k', prefix: true, fromRevision: 1 });
  const got: number[] = [];
  for await (const message of watcher) {
    got.push(...revisions([message]));
    await new Promise((resolve) => setTimeout(resolve, 1));
    if (got.length === 10) await apply.put('k1', 'live'); // 61 arrives while the replay is far behind
    if (got.length === 61) break;
  }
  t.same(got, Array.from({ length: 61 }, (_, i) => i + 1));
});

/** A history source that serves a fixed list of revisions (each changing key k) and can pause a read. */
class ScriptedHistory implements HistorySource {
  /** Revisions "written"; the snapshot of a read sees all of them. */
  written = 0;
  gate: Promise<void> | null = null;

  async readChanges(from: number): Promise<{ compactRevision: number; groups: ChangeGroup[]; scannedThrough: number }> {
    const through = this.written;
    if (this.gate !== null) await this.gate;
    const groups: ChangeGroup[] = [];
    for (let revision = from; revision <= through; revision++) groups.push({ revision, events: [event(revision)] });
    return { compactRevision: 0, groups, scannedThrough: through };
  }
}

function event(revision: number): StoreEvent {
  return {
    type: 'put',
    kv: { key: 'k', value: `${revision}`, createRevision: 1, modRevision: revision, version: revision, lease: 0 },
    revision,
  };
}

async function next(watcher: Watcher): Promise<number[]> {
  const result = await watcher.next();
  return result.done === true ? [] : revisions([result.value]);
}

void t.test('seam: a revision in the snapshot but not yet published is delivered once', async (t) => {
  const history = new ScriptedHistory();
  const hub = new WatchHub(history, 0);
  for (let r = 1; r <= 7; r++) {
    history.written = r;
    hub.publish(r, [event(r)]);
  }
  history.written = 8; // batch 8 is in LevelDB, its publish has not run yet
  const watcher = hub.watch({ key: 'k', fromRevision: 5 });
  const got = [...(await next(watcher)), ...(await next(watcher)), ...(await next(watcher)), ...(await next(watcher))];
  t.same(got, [5, 6, 7, 8]);
  hub.publish(8, [event(8)]); // the late publish of 8 is skipped
  history.written = 9;
  hub.publish(9, [event(9)]);
  t.same(await next(watcher), [9]);
  watcher.cancel();
  await hub.close();
});

void t.test('seam: revisions published during a history read are read again, not lost', async (t) => {
  const history = new ScriptedHistory();
  const hub = new WatchHub(history, 0);
  for (let r = 1; r <= 3; r++) {
    history.written = r;
    hub.publish(r, [event(r)]);
  }
  let open: () => void = () => {};
  history.gate = new Promise((resolve) => {
    open = resolve;
  });
  const watcher = hub.watch({ key: 'k', fromRevision: 1 });
  await new Promise((resolve) => setImmediate(resolve)); // the read of 1..3 is now in flight
  history.gate = null;
  for (const r of [4, 5]) {
    history.written = r;
    hub.publish(r, [event(r)]); // not live yet: not offered; the next round reads them
  }
  open();
  const got: number[] = [];
  while (got.length < 5) got.push(...(await next(watcher)));
  t.same(got, [1, 2, 3, 4, 5]);
  history.written = 6;
  hub.publish(6, [event(6)]);
  t.same(await next(watcher), [6]);
  watcher.cancel();
  await hub.close();
});
