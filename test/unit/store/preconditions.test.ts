// Goal: conditional writes behave as API.md says: `ifModRevision: 0` = only if the key does not exist,
// `ifModRevision: n` / `ifVersion: n` = only if it matches; a failure is a result (not an exception) carrying
// PRECONDITION_FAILED and the current kv, changes nothing and takes no revision; fences and leases are checked
// through the hooks the lease layer plugs in (FENCE_REJECTED, LEASE_NOT_FOUND).
// Method: apply conditional puts and deletes against known keys and inspect results, reads and revisions.
import t from 'tap';
import type { ApplyFailure, StoreHooks } from '../../../src/store/index.js';
import { failureToError, isApplyFailure } from '../../../src/store/index.js';
import { Applier, deleteCmd, openStore, putCmd } from './helpers.js';

void t.test('ifModRevision: 0 creates only when the key does not exist', async (t) => {
  const { store } = await openStore(t);
  const apply = new Applier(store);
  t.same(await apply.one(putCmd('k', 'first', { ifModRevision: 0 })), { revision: 1 });
  const second = await apply.one(putCmd('k', 'second', { ifModRevision: 0 }));
  t.ok(isApplyFailure(second));
  t.same(second, {
    revision: 1,
    error: {
      code: 'PRECONDITION_FAILED',
      message: 'ifModRevision does not match',
      kv: { key: 'k', value: 'first', createRevision: 1, modRevision: 1, version: 1, lease: 0 },
    },
  });
  t.equal((await store.get('k')).kv?.value, 'first');
  t.equal(store.revision(), 1);
  t.equal(store.appliedIndex(), 2, 'a refused command still moves appliedIndex');
  // After a delete the key does not exist again, so ifModRevision: 0 succeeds.
  await apply.one(deleteCmd('k'));
  t.same(await apply.one(putCmd('k', 'third', { ifModRevision: 0 })), { revision: 3 });
});

void t.test('ifModRevision: n and ifVersion: n compare with the current key', async (t) => {
  const { store } = await openStore(t);
  const apply = new Applier(store);
  await apply.put('k', 'a'); // 1
  await apply.put('k', 'b'); // 2, version 2
  t.ok(isApplyFailure(await apply.one(putCmd('k', 'x', { ifModRevision: 1 }))));
  t.same(await apply.one(putCmd('k', 'c', { ifModRevision: 2 })), { revision: 3 });
  t.ok(isApplyFailure(await apply.one(putCmd('k', 'x', { ifVersion: 2 }))));
  t.same(await apply.one(putCmd('k', 'd', { ifVersion: 3 })), { revision: 4 });
  t.ok(isApplyFailure(await apply.one(putCmd('missing', 'x', { ifModRevision: 4 }))));
  const missing = (await apply.one(putCmd('missing', 'x', { ifVersion: 1 }))) as ApplyFailure;
  t.equal(missing.error.code, 'PRECONDITION_FAILED');
  t.notOk('kv' in missing.error, 'no kv when the key does not exist');
  t.same(await apply.one(putCmd('missing', 'x', { ifVersion: 0 })), { revision: 5 });
});

void t.test('a conditional delete', async (t) => {
  const { store } = await openStore(t);
  const apply = new Applier(store);
  await apply.put('k', 'a');
  const refused = await apply.one(deleteCmd('k', { ifModRevision: 7 }));
  t.match(refused, { revision: 1, error: { code: 'PRECONDITION_FAILED', kv: { key: 'k', modRevision: 1 } } });
  t.same(await apply.one(deleteCmd('k', { ifModRevision: 1, prevKv: true })), {
    revision: 2,
    deleted: 1,
    prevKvs: [{ key: 'k', value: 'a', createRevision: 1, modRevision: 1, version: 1, lease: 0 }],
  });
});

void t.test('failureToError makes the KeelError the API renders', async (t) => {
  const { store } = await openStore(t);
  const apply = new Applier(store);
  await apply.put('k', 'a');
  const failure = (await apply.one(putCmd('k', 'b', { ifModRevision: 0 }))) as ApplyFailure;
  const err = failureToError(failure);
  t.equal(err.code, 'PRECONDITION_FAILED');
  t.equal(err.status, 412);
  t.match(err.details, { kv: { key: 'k' }, revision: 1 });
});

void t.test('fenced puts are checked against the lock holder through the hook', async (t) => {
  const holders = new Map<string, number>([['job', 12]]);
  const hooks: StoreHooks = { lockFence: async (lock) => holders.get(lock) ?? null };
  const { store } = await openStore(t, { hooks });
  const apply = new Applier(store);
  t.same(await apply.one(putCmd('data', '1', { fence: { lock: 'job', token: 12 } })), { revision: 1 });
  t.match(await apply.one(putCmd('data', '2', { fence: { lock: 'job', token: 11 } })), {
    revision: 1,
    error: { code: 'FENCE_REJECTED' },
  });
  t.match(await apply.one(putCmd('data', '2', { fence: { lock: 'other', token: 1 } })), {
    error: { code: 'FENCE_REJECTED' },
  });
  t.equal((await store.get('data')).kv?.value, '1');
});

void t.test('without a lock hook every fenced put is rejected', async (t) => {
  const { store } = await openStore(t);
  const apply = new Applier(store);
  t.match(await apply.one(putCmd('data', '1', { fence: { lock: 'job', token: 1 } })), {
    error: { code: 'FENCE_REJECTED' },
  });
});

void t.test('a put with an unknown lease fails with LEASE_NOT_FOUND, also inside a txn (which then changes nothing)', async (t) => {
  const hooks: StoreHooks = { leaseExists: async (lease) => lease === 5 };
  const { store } = await openStore(t, { hooks });
  const apply = new Applier(store);
  t.same(await apply.one(putCmd('a', '1', { lease: 5 })), { revision: 1 });
  t.match(await apply.one(putCmd('a', '1', { lease: 6 })), { error: { code: 'LEASE_NOT_FOUND' } });
  const txn = await apply.one({
    kind: 'txn',
    compare: [],
    success: [{ put: { key: 'b', value: '1' } }, { put: { key: 'c', value: '1', lease: 9 } }],
    failure: [],
  });
  t.match(txn, { revision: 1, error: { code: 'LEASE_NOT_FOUND' } });
  t.equal((await store.get('b')).kv, null, 'the txn is atomic: its first put is discarded too');
  t.equal(store.revision(), 1);
});
