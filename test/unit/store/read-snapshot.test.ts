// Goal: reads share one LevelDB snapshot between two writes (read-snapshot.ts) without ever serving a state older
// than the last completed write, and a read in progress keeps its own consistent view across a write.
// Method: interleave reads, watches and apply() calls on one store and check what each read sees.
import t from 'tap';
import type { KvStore } from '../../../src/store/index.js';
import { commandEntry, openStore, putCmd } from './helpers.js';

void t.test('every read after a write sees it, also when reads before it shared a snapshot', async (t) => {
  const { store } = await openStore(t);
  let index = 0;
  for (let i = 1; i <= 20; i++) {
    await store.apply([commandEntry(++index, putCmd('k', `v${i}`))]);
    const [a, b] = await Promise.all([store.get('k'), store.get('k')]);
    t.equal(a.kv?.value, `v${i}`);
    t.equal(b.revision, i);
    t.equal((await store.range({ key: 'k', prefix: true })).kvs[0]?.value, `v${i}`);
  }
});

void t.test('a read that started before a write keeps one view (metadata and data) to its end', async (t) => {
  const { store } = await openStore(t);
  let index = 0;
  for (let i = 0; i < 50; i++) await store.apply([commandEntry(++index, putCmd(`p/${String(i).padStart(2, '0')}`, 'old'))]);
  // Started, not awaited: the write below lands while the range may still be running.
  const before = store.range({ key: 'p/', prefix: true });
  await store.apply([commandEntry(++index, { kind: 'deleteRange', key: 'p/', prefix: true, prevKv: false })]);
  const seen = await before;
  const after = await store.range({ key: 'p/', prefix: true });
  t.equal(after.kvs.length, 0, 'the read after the write sees the delete');
  t.equal(after.revision, 51);
  // The earlier read saw either state, but a whole one: its revision matches its keys.
  if (seen.revision === 50) t.equal(seen.kvs.length, 50);
  else t.same([seen.revision, seen.kvs.length], [51, 0]);
});

void t.test('a snapshot export holds exactly the applied index of the moment it was asked for', async (t) => {
  const { store } = await openStore(t);
  await store.apply([commandEntry(1, putCmd('a', '1'))]);
  await store.get('a'); // a shared snapshot now exists
  await store.apply([commandEntry(2, putCmd('a', '2'))]);
  const { index } = await store.snapshotWithIndex();
  t.equal(index, 2);
});

void t.test('apply answers before its write lands, and reads started from the answer or an event see the write', async (t) => {
  const { store } = await openStore(t);
  await store.apply([commandEntry(1, putCmd('seed', 's'))]);
  const watcher = store.watch({ key: 'w/', prefix: true });
  let answersFirst = 0;
  let eventsFirst = 0;
  for (let i = 2; i <= 40; i++) {
    let returned = false;
    let readFromAnswer: Promise<[Awaited<ReturnType<KvStore['get']>>, Awaited<ReturnType<KvStore['range']>>]> | null = null;
    const applying = store
      .apply([commandEntry(i, putCmd(`w/${i}`, `v${i}`))], (results) => {
        if (!returned) answersFirst++;
        t.same(results, [{ revision: i }], 'the answer holds the final results');
        // Issued at the answer, while the write may still be in flight: must see it anyway.
        readFromAnswer = Promise.all([store.get(`w/${i}`), store.range({ key: 'w/', prefix: true, countOnly: true })]);
      })
      .then((results) => {
        returned = true;
        return results;
      });
    const event = await watcher.next();
    if (!returned) eventsFirst++;
    const readFromEvent = store.get(`w/${i}`);
    t.same(await applying, [{ revision: i }]);
    t.not(readFromAnswer, null, `put ${i}: answered`);
    const [got, counted] = await readFromAnswer!;
    t.equal(got.kv?.value, `v${i}`, `put ${i}: a read issued at the answer sees the value`);
    t.equal(got.revision, i);
    t.equal(counted.count, i - 1);
    t.equal((await readFromEvent).kv?.value, `v${i}`, `put ${i}: a read issued at the event sees the value`);
    t.equal(event.done, false);
    t.equal(event.done === false && event.value.type === 'events' ? event.value.revision : 0, i);
  }
  // The point of the change: answers and events no longer wait for the write (each one did before).
  t.equal(answersFirst, 39, 'every answer came before apply() returned');
  t.equal(eventsFirst, 39, 'every event came before apply() returned');
  watcher.cancel();
});
