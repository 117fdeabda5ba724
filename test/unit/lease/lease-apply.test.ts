// Goal: the lease commands are applied deterministically and exactly as DESIGN.md describes: a grant creates the
// record `_keel/leases/<id>` (a duplicate id is refused with CONFLICT), a keepalive changes no key and takes no
// revision, a revoke deletes the record and EVERY attached key in ONE revision (watchers see one message), keys may
// only be attached to existing leases, user writes never touch `_keel/` (refused at apply, deterministically), bad
// bodies are refused, and two stores applying the same entries end byte-identical.
// Method: a LeaseLayer over a real KvStore in a temp dir; commands are applied as consecutive entries (SerialLog);
// results, revisions, history reads and a watch on the whole keyspace are checked.
import t from 'tap';
import type { ApplyFailure, Command, WatchMessage, Watcher } from '../../../src/store/index.js';
import { leaseKeys } from '../../../src/lease/index.js';
import { leaseKeysDigest } from '../../../src/lease/lease-apply.js';
import { openLayer } from './layer-helpers.js';

const ext = (name: string, body: unknown): Command => ({ kind: 'ext', name, body });
const grant = (id: number, ttl: number): Command => ext('lease.grant', { id, ttl });
const keepalive = (...ids: number[]): Command => ext('lease.keepalive', { ids });
const revoke = (ids: number[], reason = 'revoke'): Command => ext('lease.revoke', { ids, reason });
const put = (key: string, value: string, lease = 0): Command => ({ kind: 'put', key, value, lease, prevKv: false });

function failure(result: unknown): ApplyFailure['error'] | null {
  return typeof result === 'object' && result !== null && 'error' in result ? (result as ApplyFailure).error : null;
}

async function next(watcher: Watcher): Promise<WatchMessage> {
  const item = await watcher.next();
  if (item.done === true) throw new Error('watch ended');
  return item.value;
}

void t.test('grant creates the record; a duplicate id is CONFLICT and changes nothing', async (t) => {
  const { store, log } = await openLayer(t);
  const granted = await log.ok(grant(7, 10));
  t.same({ id: granted.id, ttl: granted.ttl, revision: granted.revision }, { id: 7, ttl: 10, revision: 1 });
  const record = await store.get(leaseKeys.lease(7));
  t.same(JSON.parse(record.kv!.value), { id: 7, ttl: 10 }, 'the record holds id and ttl');
  t.equal(record.kv!.lease, 0, 'the record itself is not lease-attached');
  const again = await log.run(grant(7, 20));
  t.equal(failure(again)?.code, 'CONFLICT');
  t.equal(store.revision(), 1, 'a refused grant takes no revision');
  t.same(JSON.parse((await store.get(leaseKeys.lease(7))).kv!.value), { id: 7, ttl: 10 }, 'the first grant stands');
});

void t.test('keepalive answers per id, takes no revision, and unknown ids get 0', async (t) => {
  const { store, log } = await openLayer(t);
  await log.ok(grant(1, 5));
  await log.ok(grant(2, 9));
  const before = store.revision();
  const result = await log.ok<{ ttls: number[] }>(keepalive(1, 3, 2, 1));
  t.same(result.ttls, [5, 0, 9, 5], 'ttls aligned with the ids, 0 for an unknown lease');
  t.equal(result.revision, before, 'the result reports the unchanged revision');
  t.equal(store.revision(), before, 'no revision taken');
});

void t.test('keys attach only to existing leases', async (t) => {
  const { store, log } = await openLayer(t);
  t.equal(failure(await log.run(put('a', '1', 99)))?.code, 'LEASE_NOT_FOUND', 'unknown lease refused');
  await log.ok(grant(99, 5));
  await log.ok(put('a', '1', 99));
  t.equal((await store.get('a')).kv?.lease, 99);
  t.same((await store.leaseKeys(99)).keys, ['a']);
});

void t.test('revoke deletes the record and every attached key in ONE revision', async (t) => {
  const { store, log } = await openLayer(t);
  await log.ok(grant(5, 5));
  await log.ok(grant(6, 5));
  for (const key of ['k/1', 'k/2', 'k/3']) await log.ok(put(key, key, 5));
  await log.ok(put('other', 'x', 6));
  await log.ok(put('plain', 'x'));
  const watcher = store.watch({ key: '', prefix: true });
  t.teardown(() => watcher.return?.());
  const before = store.revision();
  const result = await log.ok<{ revoked: number[]; deleted: number }>(revoke([5, 404]));
  t.same(result.revoked, [5], 'only the existing lease is reported');
  t.equal(result.deleted, 3, 'three attached keys deleted');
  t.equal(result.revision, before + 1, 'one revision');
  t.equal(store.revision(), before + 1);
  const message = await next(watcher);
  t.equal(message.type, 'events');
  if (message.type === 'events') {
    t.equal(message.revision, before + 1);
    t.same(
      message.events.map((e) => `${e.type} ${e.kv.key}`).sort(),
      ['delete _keel/leases/5', 'delete k/1', 'delete k/2', 'delete k/3'],
      'one watch message holds every delete of the revoke',
    );
  }
  for (const key of ['k/1', 'k/2', 'k/3', leaseKeys.lease(5)]) {
    t.equal((await store.get(key)).kv, null, `${key} is gone`);
    t.ok((await store.get(key, { revision: before })).kv, `${key} existed at the revision before`);
  }
  t.ok((await store.get('other')).kv, 'keys of another lease stay');
  t.ok((await store.get('plain')).kv, 'keys without a lease stay');
  const nothing = await log.ok<{ revoked: number[] }>(revoke([5]));
  t.same(nothing.revoked, [], 'revoking again revokes nothing');
  t.equal(store.revision(), before + 1, 'and takes no revision');
});

void t.test('an authorized revoke applies only while the lease has the keys it was checked against', async (t) => {
  const { store, log } = await openLayer(t);
  await log.ok(grant(8, 5));
  await log.ok(put('app/a', '1', 8));
  const checked = (await store.leaseKeys(8)).keys;
  t.same(checked, ['app/a']);
  // Another client attaches a key between the check and the revoke's entry.
  await log.ok(put('web/i1', '2', 8));
  const revision = store.revision();
  const stale = failure(await log.run(ext('lease.revoke', { ids: [8], reason: 'revoke', keysDigest: leaseKeysDigest(checked) })));
  t.equal(stale?.code, 'CONFLICT', 'the keys changed since the check: CONFLICT');
  t.equal(store.revision(), revision, 'and nothing changed');
  t.ok((await store.get('web/i1')).kv, 'the key attached after the check is still there');
  t.ok((await store.get(leaseKeys.lease(8))).kv, 'so is the lease');
  // A detached key changes the set too: a check that saw it does not match any more.
  await log.ok(put('app/a', '3'));
  const current = (await store.leaseKeys(8)).keys;
  t.same(current, ['web/i1']);
  const result = await log.ok<{ revoked: number[]; deleted: number }>(ext('lease.revoke', { ids: [8], reason: 'revoke', keysDigest: leaseKeysDigest(current) }));
  t.same({ revoked: result.revoked, deleted: result.deleted }, { revoked: [8], deleted: 1 }, 'a check that matches revokes');
  t.equal((await store.get('web/i1')).kv, null);
  t.ok((await store.get('app/a')).kv, 'the detached key stays');
});

void t.test('user writes may not touch _keel/ (refused at apply, nothing changes)', async (t) => {
  const { store, log } = await openLayer(t);
  await log.ok(grant(1, 5));
  await log.ok(put('_keelx', 'fine'));
  await log.ok(put('_other', 'fine'));
  const revision = store.revision();
  const refused: Command[] = [
    put('_keel/leases/1', 'forged'),
    put('_keel/locks/m/holder', '{}'),
    { kind: 'deleteRange', key: '_keel/leases/1', prefix: false, prevKv: false },
    { kind: 'deleteRange', key: '', prefix: true, prevKv: false },
    { kind: 'deleteRange', key: '_', prefix: true, prevKv: false },
    { kind: 'deleteRange', key: '_keel/', prefix: true, prevKv: false },
    { kind: 'txn', compare: [], success: [], failure: [{ put: { key: '_keel/x', value: 'y' } }] },
    { kind: 'txn', compare: [], success: [{ delete: { key: '_k', prefix: true } }], failure: [] },
  ];
  for (const cmd of refused) t.equal(failure(await log.run(cmd))?.code, 'INVALID_ARGUMENT', JSON.stringify(cmd));
  t.equal(store.revision(), revision, 'no refused write took a revision');
  t.ok((await store.get(leaseKeys.lease(1))).kv, 'the lease record is intact');
  const allowed = await log.ok({ kind: 'deleteRange', key: '_o', prefix: true, prevKv: false });
  t.equal((allowed as unknown as { deleted: number }).deleted, 1, 'a prefix that does not cover _keel/ is fine');
  const read = await log.ok({ kind: 'txn', compare: [{ key: '_keel/leases/1', target: 'version', op: '>', value: 0 }], success: [], failure: [] });
  t.equal((read as unknown as { succeeded: boolean }).succeeded, true, 'txn compares may read _keel/');
});

void t.test('bad bodies are refused (validate before proposing, and again at apply)', async (t) => {
  const { store, log } = await openLayer(t);
  const bad: Command[] = [
    grant(0, 5),
    grant(1, 0),
    grant(1, 1.5),
    grant(Number.MAX_SAFE_INTEGER + 1, 5),
    ext('lease.grant', { id: 1, ttl: 5, extra: true }),
    ext('lease.keepalive', { ids: [] }),
    ext('lease.keepalive', { ids: ['1'] }),
    ext('lease.revoke', { ids: [1], reason: 'whim' }),
    ext('lease.revoke', { ids: [1] }),
    ext('lease.revoke', { ids: [1], reason: 'revoke', keysDigest: 'not hex' }),
    ext('lease.revoke', { ids: [1, 2], reason: 'revoke', keysDigest: leaseKeysDigest([]) }),
  ];
  for (const cmd of bad) t.equal(failure(await log.run(cmd))?.code, 'INVALID_ARGUMENT', JSON.stringify(cmd));
  t.equal(store.revision(), 0);
});

void t.test('two stores applying the same entries end identical', async (t) => {
  const a = await openLayer(t);
  const b = await openLayer(t);
  const cmds: Command[] = [grant(1, 5), grant(2, 7), put('x', '1', 1), put('y', '2', 2), keepalive(1, 2), put('x', '3', 2), revoke([1]), put('z', '4')];
  for (const cmd of cmds) {
    const [ra, rb] = [await a.log.run(cmd), await b.log.run(cmd)];
    t.same(ra, rb, `same result for ${JSON.stringify(cmd)}`);
  }
  t.equal(await a.store.stateHash(), await b.store.stateHash(), 'same state hash');
});
