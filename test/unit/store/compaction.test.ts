// Goal: compact(c) drops history below c: reads and watches below c answer COMPACTED (with compactRevision),
// reads at c and later are unchanged, the compact takes no revision, bad compacts are failure results, and an
// interrupted compaction is finished on open with the same final bytes.
// Method: build a history, record every read at every revision, compact, compare; count the stored history
// records directly in LevelDB; fake an interrupted compaction by setting the pending marker by hand.
import { ClassicLevel } from 'classic-level';
import t from 'tap';
import type { KvStore } from '../../../src/store/index.js';
import { KvStore as Store } from '../../../src/store/index.js';
import { be8, familyRange, metaKey } from '../../../src/store/keys.js';
import { Applier, deleteCmd, openStore, tempDir } from './helpers.js';

async function history(store: KvStore): Promise<Map<number, string>> {
  const seen = new Map<number, string>();
  for (let revision = 1; revision <= store.revision(); revision++) {
    seen.set(revision, JSON.stringify(await store.range({ key: '', prefix: true, revision })));
  }
  return seen;
}

async function build(apply: Applier): Promise<void> {
  await apply.put('a', '1'); // 1
  await apply.put('b', '1'); // 2
  await apply.put('a', '2'); // 3
  await apply.one(deleteCmd('b')); // 4
  await apply.put('c', '1'); // 5
  await apply.put('a', '3'); // 6
  await apply.put('d', '1'); // 7
  await apply.one(deleteCmd('d')); // 8
}

async function countFamily(dir: string, family: 'history' | 'revision'): Promise<number> {
  const db = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  let count = 0;
  for await (const _ of db.keys(familyRange(family))) count += 1;
  await db.close();
  return count;
}

void t.test('reads below the compact revision are COMPACTED, the rest unchanged', async (t) => {
  const { store } = await openStore(t);
  const apply = new Applier(store);
  await build(apply);
  const before = await history(store);
  t.same(await apply.one({ kind: 'compact', revision: 5 }), { revision: 8, compactRevision: 5 });
  t.equal(store.revision(), 8, 'compaction takes no revision');
  t.equal(store.compactRevision(), 5);
  for (let revision = 1; revision < 5; revision++) {
    await t.rejects(store.range({ key: '', prefix: true, revision }), { code: 'COMPACTED', details: { compactRevision: 5 } });
    await t.rejects(store.get('a', { revision }), { code: 'COMPACTED' });
  }
  for (let revision = 5; revision <= 8; revision++) {
    t.equal(JSON.stringify(await store.range({ key: '', prefix: true, revision })), before.get(revision));
  }
  t.equal((await store.get('a', { revision: 5 })).kv?.value, '2', 'the latest version below c is kept');
  await t.rejects(store.stateHash(2), { code: 'COMPACTED' });
});

void t.test('history below c is physically gone except what reads at c need', async (t) => {
  const { store, dir } = await openStore(t);
  const apply = new Applier(store);
  await build(apply);
  await apply.one({ kind: 'compact', revision: 7 });
  await store.close();
  // Kept: a@6 (a's version at 7), c@5, d@7, d@8 (>= c). Dropped: a@1, a@3, b@2, b@4 (b deleted before c).
  t.equal(await countFamily(dir, 'history'), 4);
  t.equal(await countFamily(dir, 'revision'), 4);
});

void t.test('a watch from below the compact revision gets a compacted notice, from c it replays c', async (t) => {
  const { store } = await openStore(t);
  const apply = new Applier(store);
  await build(apply);
  await apply.one({ kind: 'compact', revision: 4 });
  const old = store.watch({ key: '', prefix: true, fromRevision: 3 });
  const messages = [];
  for await (const message of old) messages.push(message);
  t.same(messages, [{ type: 'compacted', compactRevision: 4 }]);
  const fromC = store.watch({ key: '', prefix: true, fromRevision: 4, prevKv: true });
  const first = await fromC.next();
  t.match(first.value, {
    type: 'events',
    revision: 4,
    events: [{ type: 'delete', kv: { key: 'b' }, prevKv: { key: 'b', value: '1' } }],
  });
  fromC.cancel();
});

void t.test('bad compacts are failure results', async (t) => {
  const { store } = await openStore(t);
  const apply = new Applier(store);
  await build(apply);
  t.match(await apply.one({ kind: 'compact', revision: 9 }), { error: { code: 'INVALID_ARGUMENT' } });
  await apply.one({ kind: 'compact', revision: 3 });
  t.match(await apply.one({ kind: 'compact', revision: 3 }), { error: { code: 'COMPACTED', compactRevision: 3 } });
  t.match(await apply.one({ kind: 'compact', revision: 2 }), { error: { code: 'COMPACTED' } });
  t.equal(store.compactRevision(), 3);
});

void t.test('small compaction batches give the same result as one batch', async (t) => {
  const one = await openStore(t);
  const many = await openStore(t, { compactionBatchOpsMax: 2 });
  for (const { store } of [one, many]) {
    const apply = new Applier(store);
    for (let i = 0; i < 40; i++) await apply.put(`k${i % 6}`, `v${i}`);
    await apply.one({ kind: 'compact', revision: 30 });
  }
  t.same(await one.store.snapshot(), await many.store.snapshot());
});

void t.test('an interrupted compaction is finished on open', async (t) => {
  const dir = tempDir(t);
  const reference = await openStore(t);
  let store = await Store.open(dir);
  for (const target of [store, reference.store]) {
    const apply = new Applier(target);
    await build(apply);
  }
  await new Applier(reference.store).one({ kind: 'compact', revision: 6 });
  await store.close();
  // What a crash right after the compact entry's batch leaves behind: the marker, no deletions yet.
  const db = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  await db.batch([
    { type: 'put', key: metaKey('compactRevision'), value: be8(6) },
    { type: 'put', key: metaKey('compactPending'), value: be8(6) },
    { type: 'put', key: metaKey('appliedIndex'), value: be8(9) },
  ]);
  await db.close();
  store = await Store.open(dir);
  t.teardown(() => store.close());
  t.equal(store.compactRevision(), 6);
  t.same(await store.snapshot(), await reference.store.snapshot());
});
