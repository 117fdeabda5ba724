// Goal: reads share one LevelDB snapshot between two writes (read-snapshot.ts) without ever serving a state older
// than the last completed write, and a read in progress keeps its own consistent view across a write.
// Method: interleave reads, watches and apply() calls on one store and check what each read sees.
import t from 'tap';
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
