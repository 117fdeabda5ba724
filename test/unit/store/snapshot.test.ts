// Goal: snapshot() exports the whole store (history, compaction state, lease index, dedupe table) and
// restore() replaces the whole state with it: the restored store has the same stateHash at every revision,
// the same bytes, answers retries from the dedupe table, and continues applying identically. Damaged snapshots
// are refused before anything is written; watchers are ended by a restore.
// Method: build a store with a varied history, restore its snapshot into a store holding other data, compare.
import t from 'tap';
import type { Snapshot } from '../../../src/raft/index.js';
import type { KvStore } from '../../../src/store/index.js';
import { Applier, commandEntry, deleteCmd, openStore, putCmd } from './helpers.js';

function asSnapshot(index: number, data: Uint8Array): Snapshot {
  return { metadata: { index, term: 1, conf: { voters: ['n1'], learners: [] } }, data };
}

async function build(store: KvStore): Promise<void> {
  let index = store.appliedIndex();
  for (let i = 0; i < 30; i++) {
    const cmd = i % 7 === 6 ? deleteCmd(`k${i % 5}`) : putCmd(`k${i % 5}`, `v${i}`, { lease: i % 3 });
    await store.apply([commandEntry(++index, cmd, `req-${i}`)]);
  }
  await store.apply([commandEntry(++index, { kind: 'compact', revision: 10 })]);
}

async function hashes(store: KvStore): Promise<string[]> {
  const out: string[] = [];
  for (let revision = store.compactRevision(); revision <= store.revision(); revision++) {
    out.push(await store.stateHash(revision));
  }
  return out;
}

void t.test('round trip: same hashes at every revision, same bytes, same dedupe answers', async (t) => {
  const source = (await openStore(t)).store;
  await build(source);
  const { index, data } = await source.snapshotWithIndex();
  t.equal(index, source.appliedIndex());
  const target = (await openStore(t)).store;
  await new Applier(target).put('unrelated', 'x');
  // A version the restore replaces, in the target's cache of current versions (current-cache.ts) until then.
  await new Applier(target).put('k1', 'stale');
  await target.restore(asSnapshot(index, data));
  t.equal(target.appliedIndex(), index);
  t.equal(target.revision(), source.revision());
  t.equal(target.compactRevision(), 10);
  t.equal(target.keyCount(), source.keyCount());
  t.same(await hashes(target), await hashes(source));
  t.same(await target.snapshot(), data);
  t.equal((await target.get('unrelated')).kv, null);
  t.same((await target.leaseKeys(1)).keys, (await source.leaseKeys(1)).keys);
  // Both continue identically, including a retry the source already answered.
  const more = [
    commandEntry(index + 1, putCmd('k1', 'late'), 'req-3'),
    commandEntry(index + 2, putCmd('n', '1'), 'new'),
    commandEntry(index + 3, putCmd('k1', 'after', { prevKv: true }), 'after'),
  ];
  t.same(await target.apply(more), await source.apply(more));
  t.same(await target.snapshot(), await source.snapshot());
});

void t.test('an empty snapshot restores an empty store at its index', async (t) => {
  const { store } = await openStore(t);
  await new Applier(store).put('a', '1');
  await store.restore(asSnapshot(5, new Uint8Array(0)));
  t.equal(store.appliedIndex(), 5);
  t.equal(store.revision(), 0);
  t.equal(store.keyCount(), 0);
  t.same(await store.apply([commandEntry(6, putCmd('b', '1'))]), [{ revision: 1 }]);
});

void t.test('damaged snapshots are refused and the store is left as it was', async (t) => {
  const source = (await openStore(t)).store;
  await build(source);
  const { index, data } = await source.snapshotWithIndex();
  const { store } = await openStore(t);
  await new Applier(store).put('mine', '1');
  const flipped = Uint8Array.from(data);
  flipped[Math.floor(flipped.length / 2)]! ^= 0x01;
  await t.rejects(store.restore(asSnapshot(index, flipped)), { code: 'INVALID_ARGUMENT' });
  await t.rejects(store.restore(asSnapshot(index, data.subarray(0, data.length - 10))), { code: 'INVALID_ARGUMENT' });
  await t.rejects(store.restore(asSnapshot(index, Uint8Array.of(1, 2, 3))), { code: 'INVALID_ARGUMENT' });
  t.equal((await store.get('mine')).kv?.value, '1');
  t.equal(store.appliedIndex(), 1);
});

void t.test('a snapshot whose metadata names another index is a bug', async (t) => {
  const source = (await openStore(t)).store;
  await build(source);
  const { index, data } = await source.snapshotWithIndex();
  const { store } = await openStore(t);
  await t.rejects(store.restore(asSnapshot(index + 1, data)), { name: 'AssertionError' });
});

void t.test('a restore ends every watcher (revisions jump), new watches work after it', async (t) => {
  const source = (await openStore(t)).store;
  await build(source);
  const { index, data } = await source.snapshotWithIndex();
  const { store } = await openStore(t);
  const watcher = store.watch({ key: '', prefix: true });
  const ended = t.rejects(watcher.next(), { code: 'UNAVAILABLE' });
  await store.restore(asSnapshot(index, data));
  await ended;
  const after = store.watch({ key: '', prefix: true, fromRevision: store.revision() });
  const message = await after.next();
  t.match(message.value, { type: 'events', revision: store.revision() });
  after.cancel();
});

void t.test('the hand-packed export: values of every msgpack bin size and more than 65,535 array elements', async (t) => {
  // exportSnapshot writes the msgpack itself (in slices, so it never holds the thread long): bin8, bin16 and bin32
  // values and a pairs array past the 16-bit length must decode and restore to the same state.
  const source = (await openStore(t)).store;
  let index = source.appliedIndex();
  const entries = [];
  for (let i = 0; i < 12_000; i++) entries.push(commandEntry(++index, putCmd(`many/${i}`, `v${i}`), `bulk-${i}`));
  await source.apply(entries);
  await source.apply([
    commandEntry(++index, putCmd('bin16', 'x'.repeat(300))),
    commandEntry(++index, putCmd('bin32', 'y'.repeat(70_000))),
  ]);
  const { index: at, data } = await source.snapshotWithIndex();
  const target = (await openStore(t)).store;
  await target.restore(asSnapshot(at, data));
  t.equal(target.revision(), source.revision());
  t.equal(await target.stateHash(target.revision()), await source.stateHash(source.revision()), 'same state after restore');
  t.equal((await target.get('bin32')).kv?.value, 'y'.repeat(70_000));
  t.equal((await target.get('many/11999')).kv?.value, 'v11999');
});
