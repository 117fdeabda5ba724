// Goal: range reads honour etcd's options: prefix, rangeEnd, limit with `more` and a `count` of the whole range,
// keysOnly, countOnly, sort by key/createRevision/modRevision in both orders, reads at a past revision, and they
// refuse future revisions and bad arguments with INVALID_ARGUMENT.
// Method: build a small known history, then compare every option combination with the expected key lists,
// at the current revision (k/ path) and at past revisions (history path), which must agree.
import t from 'tap';
import type { KvStore, RangeRequest } from '../../../src/store/index.js';
import type { TapLike } from './helpers.js';
import { Applier, deleteCmd, openStore } from './helpers.js';
import { prefixEnd, utf8 } from '../../../src/store/keys.js';
import { keyRange } from '../../../src/store/range.js';

async function keys(store: KvStore, req: RangeRequest): Promise<string[]> {
  return (await store.range(req)).kvs.map((kv) => kv.key);
}

async function fixture(t: TapLike): Promise<KvStore> {
  const { store } = await openStore(t);
  const apply = new Applier(store);
  await apply.put('p/c', '1'); // 1
  await apply.put('p/a', '1'); // 2
  await apply.put('p/b', '1'); // 3
  await apply.put('q', '1'); // 4
  await apply.put('p/c', '2'); // 5
  await apply.put('p', '1'); // 6
  await apply.one(deleteCmd('p/b')); // 7
  return store;
}

void t.test('prefix, single key, rangeEnd and everything', async (t) => {
  const store = await fixture(t);
  t.same(await keys(store, { key: 'p/', prefix: true }), ['p/a', 'p/c']);
  t.same(await keys(store, { key: 'p', prefix: true }), ['p', 'p/a', 'p/c']);
  t.same(await keys(store, { key: '', prefix: true }), ['p', 'p/a', 'p/c', 'q']);
  t.same(await keys(store, { key: 'p/a' }), ['p/a']);
  t.same(await keys(store, { key: 'p/' }), []);
  t.same(await keys(store, { key: 'p/a', rangeEnd: 'q' }), ['p/a', 'p/c']);
  t.same(await keys(store, { key: 'p/b', rangeEnd: '\u0000' }), ['p/c', 'q']);
});

void t.test('limit, more and count', async (t) => {
  const store = await fixture(t);
  const limited = await store.range({ key: '', prefix: true, limit: 2 });
  t.same(limited.kvs.map((kv) => kv.key), ['p', 'p/a']);
  t.equal(limited.count, 4);
  t.equal(limited.more, true);
  const exact = await store.range({ key: '', prefix: true, limit: 4 });
  t.equal(exact.more, false);
  t.equal(exact.count, 4);
  const desc = await store.range({ key: '', prefix: true, limit: 1, order: 'desc' });
  t.same(desc.kvs.map((kv) => kv.key), ['q']);
  t.equal(desc.count, 4);
  t.equal(desc.revision, 7);
});

void t.test('keysOnly and countOnly', async (t) => {
  const store = await fixture(t);
  const keysOnly = await store.range({ key: 'p/', prefix: true, keysOnly: true });
  t.same(keysOnly.kvs.map((kv) => [kv.key, kv.value, kv.version]), [['p/a', '', 1], ['p/c', '', 2]]);
  const countOnly = await store.range({ key: '', prefix: true, countOnly: true });
  t.same(countOnly, { kvs: [], count: 4, more: false, revision: 7 });
  t.equal((await store.range({ key: '', prefix: true, countOnly: true, revision: 3 })).count, 3);
});

void t.test('sort by createRevision and modRevision, both orders', async (t) => {
  const store = await fixture(t);
  const all = { key: '', prefix: true } as const;
  t.same(await keys(store, { ...all, sort: 'createRevision' }), ['p/c', 'p/a', 'q', 'p']);
  t.same(await keys(store, { ...all, sort: 'createRevision', order: 'desc' }), ['p', 'q', 'p/a', 'p/c']);
  t.same(await keys(store, { ...all, sort: 'modRevision' }), ['p/a', 'q', 'p/c', 'p']);
  t.same(await keys(store, { ...all, sort: 'modRevision', order: 'desc', limit: 2 }), ['p', 'p/c']);
  t.same(await keys(store, { ...all, sort: 'key', order: 'desc' }), ['q', 'p/c', 'p/a', 'p']);
});

void t.test('reads at past revisions see the keys and versions of then', async (t) => {
  const store = await fixture(t);
  t.same(await keys(store, { key: 'p/', prefix: true, revision: 3 }), ['p/a', 'p/b', 'p/c']);
  t.same(await keys(store, { key: 'p/', prefix: true, revision: 6 }), ['p/a', 'p/b', 'p/c']);
  t.same(await keys(store, { key: 'p/', prefix: true, revision: 7 }), ['p/a', 'p/c']);
  const atFour = await store.range({ key: 'p/c', revision: 4 });
  t.same(atFour.kvs, [{ key: 'p/c', value: '1', createRevision: 1, modRevision: 1, version: 1, lease: 0 }]);
  t.equal(atFour.revision, 7, 'the answer carries the current store revision');
  const sorted = await store.range({ key: '', prefix: true, revision: 5, sort: 'modRevision', order: 'desc', limit: 2 });
  t.same(sorted.kvs.map((kv) => kv.key), ['p/c', 'q']);
  t.equal(sorted.count, 4);
  t.equal(sorted.more, true);
  const limited = await store.range({ key: '', prefix: true, revision: 5, limit: 1, order: 'desc' });
  t.same(limited.kvs.map((kv) => kv.key), ['q']);
  t.equal((await store.get('p', { revision: 5 })).kv, null);
  t.equal((await store.get('p/b', { revision: 6 })).kv?.value, '1');
});

void t.test('a past read at every revision equals what a current read said at that revision', async (t) => {
  const { store } = await openStore(t);
  const apply = new Applier(store);
  const seen: string[] = [];
  for (let i = 0; i < 30; i++) {
    const key = `k${i % 7}`;
    if (i % 5 === 4) await apply.one(deleteCmd(key));
    else await apply.put(key, `v${i}`);
    seen[store.revision()] = JSON.stringify((await store.range({ key: '', prefix: true })).kvs);
  }
  for (let revision = 1; revision <= store.revision(); revision++) {
    if (seen[revision] === undefined) continue;
    t.equal(JSON.stringify((await store.range({ key: '', prefix: true, revision })).kvs), seen[revision]);
  }
});

void t.test('future revisions and bad arguments are INVALID_ARGUMENT', async (t) => {
  const store = await fixture(t);
  await t.rejects(store.get('p', { revision: 8 }), { code: 'INVALID_ARGUMENT' });
  await t.rejects(store.range({ key: '', prefix: true, revision: 100 }), { code: 'INVALID_ARGUMENT' });
  await t.rejects(store.range({ key: '' }), { code: 'INVALID_ARGUMENT' });
  await t.rejects(store.range({ key: 'a', prefix: true, rangeEnd: 'b' }), { code: 'INVALID_ARGUMENT' });
  await t.rejects(store.range({ key: 'a', limit: -1 }), { code: 'INVALID_ARGUMENT' });
  await t.rejects(store.range({ key: 'a', sort: 'value' as never }), { code: 'INVALID_ARGUMENT' });
  await t.rejects(store.get('x'.repeat(5000)), { code: 'TOO_LARGE' });
});

void t.test('range bounds own their bytes, and prefixEnd never changes its input', async (t) => {
  // utf8() hands out views into Node's shared buffer pool, whose slice() is a view too: prefixEnd must copy.
  const pooled = Buffer.from([0x70, 0x2f, 0xff]);
  t.ok(pooled.byteLength < pooled.buffer.byteLength && utf8('k').byteLength < utf8('k').buffer.byteLength, 'pooled views, as utf8() gives');
  const end = prefixEnd(pooled);
  t.same([...pooled], [0x70, 0x2f, 0xff], 'the prefix is unchanged');
  t.same(end === null ? null : [...end], [0x70, 0x30], 'the end is the prefix up to its last byte below 0xff, raised');
  t.equal(prefixEnd(Buffer.from([0xff, 0xff])), null, 'a prefix of 0xff bytes only has no end');
  // A watcher keeps its range: its bytes must not pin a pool slab.
  for (const range of [keyRange('k', false), keyRange('k/', true), keyRange('a', false, 'b')]) {
    for (const bytes of [range.start, range.end!]) t.equal(bytes.byteLength, bytes.buffer.byteLength, 'a buffer of its own');
  }
});
