// Goal: the store follows etcd's revision model: one revision per write request that changes something; per
// key createRevision, modRevision, version (1 on create, +1 per put, reset by delete) and lease; no-op and conf
// entries only move appliedIndex; entries at or below appliedIndex are skipped; a bad entry is a failure result.
// Method: apply commands to a fresh store one entry at a time and check every field of results and reads.
import t from 'tap';
import type { Entry } from '../../../src/raft/index.js';
import type { DeleteResult, TxnResult } from '../../../src/store/index.js';
import { isApplyFailure } from '../../../src/store/index.js';
import { Applier, commandEntry, deleteCmd, noopEntry, openStore, putCmd } from './helpers.js';

void t.test('put creates, then bumps version and modRevision; delete resets version', async (t) => {
  const { store } = await openStore(t);
  const apply = new Applier(store);
  t.same(await apply.put('a', '1'), { revision: 1 });
  t.same(await apply.put('b', 'x'), { revision: 2 });
  t.same(await apply.put('a', '2', { prevKv: true }), {
    revision: 3,
    prevKv: { key: 'a', value: '1', createRevision: 1, modRevision: 1, version: 1, lease: 0 },
  });
  t.same((await store.get('a')).kv, { key: 'a', value: '2', createRevision: 1, modRevision: 3, version: 2, lease: 0 });
  const deleted = (await apply.one(deleteCmd('a'))) as DeleteResult;
  t.same(deleted, { revision: 4, deleted: 1 });
  t.equal((await store.get('a')).kv, null);
  await apply.put('a', '3');
  t.same((await store.get('a')).kv, { key: 'a', value: '3', createRevision: 5, modRevision: 5, version: 1, lease: 0 });
  t.equal(store.revision(), 5);
  t.equal(store.keyCount(), 2);
});

void t.test('a put always bumps the revision, even with the same value', async (t) => {
  const { store } = await openStore(t);
  const apply = new Applier(store);
  await apply.put('k', 'v');
  await apply.put('k', 'v');
  t.equal(store.revision(), 2);
  t.equal((await store.get('k')).kv?.version, 2);
});

void t.test('a delete of nothing and a read-only txn do not bump the revision', async (t) => {
  const { store } = await openStore(t);
  const apply = new Applier(store);
  await apply.put('k', 'v');
  t.same(await apply.one(deleteCmd('missing')), { revision: 1, deleted: 0 });
  t.same(await apply.one(deleteCmd('zzz', { prefix: true })), { revision: 1, deleted: 0 });
  const txn = (await apply.one({
    kind: 'txn',
    compare: [],
    success: [{ get: { key: 'k' } }, { delete: { key: 'nope' } }],
    failure: [],
  })) as TxnResult;
  t.equal(txn.revision, 1);
  t.equal(store.revision(), 1);
  t.equal(store.appliedIndex(), 4);
});

void t.test('a txn is one revision: every change in it shares it, in order', async (t) => {
  const { store } = await openStore(t);
  const apply = new Applier(store);
  await apply.put('a', '0');
  const result = (await apply.one({
    kind: 'txn',
    compare: [],
    success: [
      { put: { key: 'a', value: '1' } },
      { put: { key: 'b', value: '1' } },
      { delete: { key: 'a' } },
      { put: { key: 'a', value: '2' } },
      { get: { key: 'a' } },
    ],
    failure: [],
  })) as TxnResult;
  t.equal(result.revision, 2);
  t.equal(result.succeeded, true);
  t.same(result.results.slice(0, 3), [{ put: { revision: 2 } }, { put: { revision: 2 } }, { delete: { deleted: 1 } }]);
  // The get sees the earlier ops of the same txn: a was deleted and created again at revision 2.
  const expectedA = { key: 'a', value: '2', createRevision: 2, modRevision: 2, version: 1, lease: 0 };
  t.same(result.results[4], { get: { kvs: [expectedA], count: 1, more: false } });
  t.equal(store.revision(), 2);
  t.same((await store.get('a')).kv, expectedA);
  t.same((await store.get('a', { revision: 1 })).kv?.value, '0');
});

void t.test('no-op and conf entries only advance appliedIndex; old entries are skipped', async (t) => {
  const { store } = await openStore(t);
  const conf: Entry = { type: 'conf', term: 1, index: 2, change: { type: 'init', voters: ['n1'] } };
  const results = await store.apply([noopEntry(1), conf, commandEntry(3, putCmd('a', '1'))]);
  t.same(results, [undefined, undefined, { revision: 1 }]);
  t.equal(store.appliedIndex(), 3);
  // Replaying what was applied (a restart, or a duplicated apply) changes nothing and answers undefined.
  const replay = await store.apply([commandEntry(2, putCmd('a', 'x')), commandEntry(3, putCmd('a', 'y'))]);
  t.same(replay, [undefined, undefined]);
  t.equal((await store.get('a')).kv?.value, '1');
  t.equal(store.revision(), 1);
});

void t.test('a gap in entry indexes is a bug (assertion), not a silent skip', async (t) => {
  const { store } = await openStore(t);
  await t.rejects(store.apply([commandEntry(2, putCmd('a', '1'))]), { name: 'AssertionError' });
  t.equal(store.appliedIndex(), 0);
});

void t.test('an undecodable entry is a deterministic failure result, and appliedIndex moves on', async (t) => {
  const { store } = await openStore(t);
  const garbage: Entry = { type: 'normal', term: 1, index: 1, data: Uint8Array.of(0x93, 1, 2, 3) };
  const [result] = await store.apply([garbage]);
  t.ok(isApplyFailure(result));
  t.match(result, { revision: 0, error: { code: 'INVALID_ARGUMENT' } });
  t.equal(store.appliedIndex(), 1);
  t.equal(store.revision(), 0);
});

void t.test('leases are recorded per key and indexed', async (t) => {
  const { store } = await openStore(t);
  const apply = new Applier(store);
  await apply.put('a', '1', { lease: 7 });
  await apply.put('b', '1', { lease: 7 });
  await apply.put('c', '1', { lease: 8 });
  t.same((await store.leaseKeys(7)).keys, ['a', 'b']);
  await apply.put('b', '2', { lease: 8 });
  await apply.one(deleteCmd('a'));
  t.same((await store.leaseKeys(7)).keys, []);
  t.same((await store.leaseKeys(8)).keys, ['b', 'c']);
  t.equal((await store.get('b')).kv?.lease, 8);
});

void t.test('keys are UTF-8 and binary-safe, including NUL bytes', async (t) => {
  const { store } = await openStore(t);
  const apply = new Applier(store);
  for (const key of ['a', 'a\u0000', 'a\u0000b', 'a\u0001', 'é', '日本', '\u{1F600}']) await apply.put(key, key);
  const all = await store.range({ key: '', prefix: true });
  t.same(
    all.kvs.map((kv) => kv.key),
    ['a', 'a\u0000', 'a\u0000b', 'a\u0001', 'é', '日本', '\u{1F600}'],
  );
  t.same((await store.range({ key: 'a\u0000', prefix: true })).count, 2);
  t.same((await store.get('a\u0000', { revision: 2 })).kv?.value, 'a\u0000');
  t.same((await store.range({ key: 'a', prefix: true, revision: 3 })).kvs.map((kv) => kv.key), ['a', 'a\u0000', 'a\u0000b']);
});
