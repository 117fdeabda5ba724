// Goal: a retried command (same requestId) is applied once and answered with the original result, also after
// a restart and for refused commands; the table keeps exactly the last `dedupeWindowMax` ids, deterministically.
// Method: apply entries that repeat request ids (as a client retrying after a timeout would), reopen the store
// between attempts, and check results, revisions and the window's edge.
import t from 'tap';
import { KvStore } from '../../../src/store/index.js';
import { commandEntry, openStore, putCmd, tempDir } from './helpers.js';

void t.test('a retried put is applied once and gets the original answer', async (t) => {
  const { store } = await openStore(t);
  const [first] = await store.apply([commandEntry(1, putCmd('k', 'v1', { prevKv: true }), 'req-1')]);
  await store.apply([commandEntry(2, putCmd('k', 'other'), 'req-2')]);
  // The retry carries the same id; whatever the command says, the first outcome stands.
  const [retry] = await store.apply([commandEntry(3, putCmd('k', 'v1', { prevKv: true }), 'req-1')]);
  t.same(retry, first);
  t.same(first, { revision: 1 });
  t.equal(store.revision(), 2);
  t.equal((await store.get('k')).kv?.value, 'other');
  t.equal(store.appliedIndex(), 3);
});

void t.test('refused commands are deduplicated too', async (t) => {
  const { store } = await openStore(t);
  await store.apply([commandEntry(1, putCmd('k', 'a'))]);
  const [refused] = await store.apply([commandEntry(2, putCmd('k', 'b', { ifModRevision: 0 }), 'cas')]);
  await store.apply([commandEntry(3, { kind: 'deleteRange', key: 'k', prefix: false, prevKv: false })]);
  // The key is gone now, so the same command would succeed; the retry must still answer the refusal.
  const [retry] = await store.apply([commandEntry(4, putCmd('k', 'b', { ifModRevision: 0 }), 'cas')]);
  t.same(retry, refused);
  t.match(retry, { error: { code: 'PRECONDITION_FAILED' } });
  t.equal((await store.get('k')).kv, null);
});

void t.test('the dedupe table survives a restart', async (t) => {
  const dir = tempDir(t);
  let store = await KvStore.open(dir);
  const [first] = await store.apply([commandEntry(1, putCmd('k', 'v'), 'req')]);
  await store.close();
  store = await KvStore.open(dir);
  t.teardown(() => store.close());
  const [retry] = await store.apply([commandEntry(2, putCmd('k', 'v'), 'req')]);
  t.same(retry, first);
  t.equal(store.revision(), 1);
});

void t.test('the window keeps exactly the last dedupeWindowMax ids', async (t) => {
  const { store } = await openStore(t, { dedupeWindowMax: 3 });
  let index = 0;
  for (const id of ['r1', 'r2', 'r3', 'r4']) await store.apply([commandEntry(++index, putCmd(id, 'v'), id)]);
  t.equal(store.revision(), 4);
  // r2..r4 are in the window: retries change nothing.
  for (const id of ['r2', 'r3', 'r4']) await store.apply([commandEntry(++index, putCmd(id, 'v'), id)]);
  t.equal(store.revision(), 4);
  // r1 was evicted: a very late retry is applied again (documented bound of the window).
  await store.apply([commandEntry(++index, putCmd('r1', 'v'), 'r1')]);
  t.equal(store.revision(), 5);
  t.equal((await store.get('r1')).kv?.version, 2);
});

void t.test('changing the window between runs keeps the table at the new size', async (t) => {
  const dir = tempDir(t);
  let store = await KvStore.open(dir, { dedupeWindowMax: 5 });
  let index = 0;
  for (let i = 1; i <= 5; i++) await store.apply([commandEntry(++index, putCmd(`k${i}`, 'v'), `r${i}`)]);
  await store.close();
  store = await KvStore.open(dir, { dedupeWindowMax: 2 });
  t.teardown(() => store.close());
  await store.apply([commandEntry(++index, putCmd('k6', 'v'), 'r6')]);
  // Window 2 after r6: r5 and r6 remain; r1..r4 are gone.
  const revision = store.revision();
  await store.apply([commandEntry(++index, putCmd('k5', 'v'), 'r5')]);
  t.equal(store.revision(), revision, 'r5 is still remembered');
  await store.apply([commandEntry(++index, putCmd('k4', 'v'), 'r4')]);
  t.equal(store.revision(), revision + 1, 'r4 was evicted');
});

void t.test('an empty request id opts out of dedupe', async (t) => {
  const { store } = await openStore(t);
  await store.apply([commandEntry(1, putCmd('k', 'v'), ''), commandEntry(2, putCmd('k', 'v'), '')]);
  t.equal(store.revision(), 2);
});

// The ids in the window are also indexed in memory (dedupe.ts): the index must follow records and evictions made
// earlier in the same apply() call, and be rebuilt from the database after a snapshot restore.
void t.test('a retry within the same apply call and an eviction within it are both seen', async (t) => {
  const { store } = await openStore(t, { dedupeWindowMax: 2 });
  const results = await store.apply([
    commandEntry(1, putCmd('a', 'v'), 'r1'),
    commandEntry(2, putCmd('a', 'v'), 'r1'),
    commandEntry(3, putCmd('b', 'v'), 'r2'),
    commandEntry(4, putCmd('c', 'v'), 'r3'),
    commandEntry(5, putCmd('a', 'v'), 'r1'),
  ]);
  t.same(results[1], results[0], 'the retry in the same call answers the first result');
  t.equal(store.revision(), 4, 'r1 left the window when r3 came in, so its last retry was applied again');
  t.equal((await store.get('a')).kv?.version, 2);
});

void t.test('a store restored from a snapshot remembers exactly the snapshot ids', async (t) => {
  const { store: source } = await openStore(t, { dedupeWindowMax: 3 });
  let index = 0;
  for (const id of ['s1', 's2', 's3', 's4']) await source.apply([commandEntry(++index, putCmd(id, 'v'), id)]);
  const { index: snapIndex, data } = await source.snapshotWithIndex();
  const { store: target } = await openStore(t, { dedupeWindowMax: 3 });
  // The target had its own ids before the restore; none of them may survive it.
  await target.apply([commandEntry(1, putCmd('x', 'v'), 'mine')]);
  await target.restore({ metadata: { index: snapIndex, term: 1, conf: { voters: ['n1'], learners: [] } }, data });
  const revision = target.revision();
  await target.apply([commandEntry(snapIndex + 1, putCmd('s4', 'v'), 's4')]);
  t.equal(target.revision(), revision, 's4 is remembered after the restore');
  await target.apply([commandEntry(snapIndex + 2, putCmd('x', 'v'), 'mine')]);
  t.equal(target.revision(), revision + 1, "the target's own id did not survive the restore");
  await target.apply([commandEntry(snapIndex + 3, putCmd('s1', 'v'), 's1')]);
  t.equal(target.revision(), revision + 2, 's1 had left the window before the snapshot');
});
