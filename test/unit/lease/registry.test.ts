// Goal: the registry's apply logic (service.register / service.deregister / service.status) is right and
// deterministic on a real store: an instance is one MVCC key holding the API.md Instance record, "passing" on
// register; registering again replaces it; a registration with ttl grants its lease in the same entry (one
// revision) and the instance goes when that lease is revoked; an unknown lease is LEASE_NOT_FOUND; status
// changes take a revision only when the status really changes and are refused on a stale ifModRevision;
// deregister of an absent instance is NOT_FOUND; every bad body is refused at apply time too (INVALID_ARGUMENT,
// nothing written); equal input gives equal bytes (meta key order does not matter). The discovery reads
// (instances, filters, per-service summary) and the blocking wait (wakes on that service only) are checked too.
// Method: a KvStore in a temp dir opened with the lessor's and the registry's extensions; commands are encoded
// and applied as entries one at a time (test/unit/lease/helpers.ts), and the keys are read back directly.
import t from 'tap';
import {
  deregisterCommand,
  filterInstances,
  readInstances,
  readServices,
  registerCommand,
  serviceKeys,
  statusCommand,
  waitForChange,
  type RegisterBody,
} from '../../../src/lease/index.js';
import { extensionNames, leaseKeys } from '../../../src/lease/prefixes.js';
import type { ApplyFailure, ApplyResult } from '../../../src/store/index.js';
import { isApplyFailure } from '../../../src/store/index.js';
import { openRegistryStore } from './helpers.js';

const base: RegisterBody = {
  service: 'web',
  id: 'i1',
  address: '10.0.0.5',
  port: 8080,
  tags: ['blue'],
  meta: { zone: 'a' },
  weight: 1,
  lease: 0,
};

function failure(result: ApplyResult): ApplyFailure['error'] {
  if (!isApplyFailure(result)) throw new Error(`expected a failure, got ${JSON.stringify(result)}`);
  return result.error;
}

void t.test('register stores the Instance record; registering again replaces it', async (t) => {
  const { store, log } = await openRegistryStore(t);
  const first = await log.ok<{ service: string; id: string; lease: number }>(registerCommand(base));
  t.same(first, { service: 'web', id: 'i1', lease: 0, revision: 1 });
  const kv = (await store.get(serviceKeys.instance('web', 'i1'))).kv!;
  t.equal(kv.key, '_keel/services/web/i1');
  t.same(JSON.parse(kv.value), {
    id: 'i1', service: 'web', address: '10.0.0.5', port: 8080, tags: ['blue'], meta: { zone: 'a' }, weight: 1, status: 'passing', lease: 0,
  }, 'the stored record');
  const { instances, revision } = await readInstances(store, 'web');
  t.equal(revision, 1);
  t.same(instances, [{ ...JSON.parse(kv.value), modRevision: 1 }], 'read back as an Instance with modRevision');

  await log.ok(statusCommand({ service: 'web', id: 'i1', status: 'critical', ifModRevision: 1 }));
  const again = await log.ok(registerCommand({ ...base, address: '10.0.0.6', tags: [] }));
  t.equal(again.revision, 3);
  const replaced = (await store.get(serviceKeys.instance('web', 'i1'))).kv!;
  t.equal(replaced.createRevision, 1, 'same key: replaced, not created');
  t.equal(replaced.version, 3);
  const record = JSON.parse(replaced.value) as Record<string, unknown>;
  t.equal(record['address'], '10.0.0.6');
  t.same(record['tags'], []);
  t.equal(record['status'], 'passing', 'a registration starts over as passing');
  t.equal(store.keyCount(), 1);
});

void t.test('ttl: the lease is granted in the same entry, and its revoke removes the instance', async (t) => {
  const { store, log } = await openRegistryStore(t);
  const registered = await log.ok<{ lease: number }>(registerCommand({ ...base, lease: 77, ttl: 5 }));
  t.same(registered, { service: 'web', id: 'i1', lease: 77, revision: 1 }, 'one revision for the lease and the instance');
  t.ok((await store.get(leaseKeys.lease(77))).kv !== null, 'the lease record exists');
  t.equal((await store.get(serviceKeys.instance('web', 'i1'))).kv?.lease, 77, 'the instance key is attached to it');
  t.same((await store.leaseKeys(77)).keys, ['_keel/services/web/i1']);

  const conflict = failure(await log.run(registerCommand({ ...base, id: 'i2', lease: 77, ttl: 5 })));
  t.equal(conflict.code, 'CONFLICT', 'granting an existing lease id is refused');
  t.equal((await store.get(serviceKeys.instance('web', 'i2'))).kv, null, '... and registers nothing');

  const revoked = await log.ok({ kind: 'ext', name: extensionNames.leaseRevoke, body: { ids: [77], reason: 'expired' } });
  t.equal(revoked.revision, 2);
  t.same((await readInstances(store, 'web')).instances, [], 'the instance went with its lease');
});

void t.test('an existing lease: attached; an unknown one: LEASE_NOT_FOUND and nothing written', async (t) => {
  const { store, log } = await openRegistryStore(t);
  await log.ok({ kind: 'ext', name: extensionNames.leaseGrant, body: { id: 9, ttl: 10 } });
  const ok = await log.ok(registerCommand({ ...base, lease: 9 }));
  t.equal(ok.revision, 2);
  t.equal((await readInstances(store, 'web')).instances[0]?.lease, 9);
  const missing = failure(await log.run(registerCommand({ ...base, id: 'i2', lease: 10 })));
  t.equal(missing.code, 'LEASE_NOT_FOUND');
  t.equal(store.revision(), 2, 'no revision taken');
  // Registering again without a lease detaches the key from the old lease.
  await log.ok(registerCommand(base));
  t.same((await store.leaseKeys(9)).keys, []);
});

void t.test('status: a revision only on a real change; stale ifModRevision and absent instances refused', async (t) => {
  const { store, log } = await openRegistryStore(t);
  await log.ok(registerCommand(base));
  const same = await log.ok<{ changed: boolean }>(statusCommand({ service: 'web', id: 'i1', status: 'passing', ifModRevision: 1 }));
  t.equal(same.changed, false);
  t.equal(same.revision, 1, 'no change, no revision');
  t.equal(store.revision(), 1);
  const critical = await log.ok<{ changed: boolean }>(statusCommand({ service: 'web', id: 'i1', status: 'critical', ifModRevision: 1 }));
  t.same(critical, { service: 'web', id: 'i1', status: 'critical', changed: true, revision: 2 });
  const instance = (await readInstances(store, 'web')).instances[0]!;
  t.equal(instance.status, 'critical');
  t.equal(instance.modRevision, 2);
  t.equal(instance.address, '10.0.0.5', 'everything else is kept');
  const stale = failure(await log.run(statusCommand({ service: 'web', id: 'i1', status: 'passing', ifModRevision: 1 })));
  t.equal(stale.code, 'PRECONDITION_FAILED', 'a decision on a stale view is refused');
  const absent = failure(await log.run(statusCommand({ service: 'web', id: 'nope', status: 'critical', ifModRevision: 1 })));
  t.equal(absent.code, 'NOT_FOUND');
  t.equal(store.revision(), 2);
});

void t.test('deregister: removes; absent is NOT_FOUND; ifModRevision guards', async (t) => {
  const { store, log } = await openRegistryStore(t);
  await log.ok(registerCommand(base));
  const stale = failure(await log.run(deregisterCommand({ service: 'web', id: 'i1', ifModRevision: 7 })));
  t.equal(stale.code, 'PRECONDITION_FAILED');
  const removed = await log.ok(deregisterCommand({ service: 'web', id: 'i1', ifModRevision: 1 }));
  t.same(removed, { service: 'web', id: 'i1', lease: 0, revision: 2 });
  t.equal((await store.get(serviceKeys.instance('web', 'i1'))).kv, null);
  t.equal(failure(await log.run(deregisterCommand({ service: 'web', id: 'i1' }))).code, 'NOT_FOUND');
});

void t.test('bad bodies are refused at apply time too, and write nothing', async (t) => {
  const { store, log } = await openRegistryStore(t);
  const register = (body: unknown) => ({ kind: 'ext', name: extensionNames.serviceRegister, body }) as const;
  const bad: [string, unknown][] = [
    ['unknown field', { ...base, colour: 'red' }],
    ['bad service name', { ...base, service: 'a/b' }],
    ['empty instance id', { ...base, id: '' }],
    ['port 0', { ...base, port: 0 }],
    ['port 65536', { ...base, port: 65_536 }],
    ['negative weight', { ...base, weight: -1 }],
    ['fractional weight', { ...base, weight: 1.5 }],
    ['tags not strings', { ...base, tags: [1] }],
    ['meta not strings', { ...base, meta: { a: 1 } }],
    ['ttl without a lease id', { ...base, ttl: 5 }],
    ['ttl 0', { ...base, lease: 3, ttl: 0 }],
    ['check with http and tcp', { ...base, check: { http: 'http://127.0.0.1:1/', tcp: '127.0.0.1:1', intervalMs: 100, timeoutMs: 100 } }],
    ['check without a target', { ...base, check: { intervalMs: 100, timeoutMs: 100 } }],
    ['check interval under 100 ms', { ...base, check: { tcp: '127.0.0.1:1', intervalMs: 99, timeoutMs: 100 } }],
    ['check timeout under 100 ms', { ...base, check: { tcp: '127.0.0.1:1', intervalMs: 100, timeoutMs: 5 } }],
    ['check deregisterAfterMs under 100 ms', { ...base, check: { tcp: '127.0.0.1:1', intervalMs: 100, timeoutMs: 100, deregisterAfterMs: 1 } }],
    ['check http not a URL', { ...base, check: { http: 'nope', intervalMs: 100, timeoutMs: 100 } }],
    ['check http not http', { ...base, check: { http: 'ftp://x/', intervalMs: 100, timeoutMs: 100 } }],
    ['check tcp without port', { ...base, check: { tcp: 'localhost', intervalMs: 100, timeoutMs: 100 } }],
    ['check unknown field', { ...base, check: { tcp: 'h:1', intervalMs: 100, timeoutMs: 100, method: 'HEAD' } }],
  ];
  for (const [what, body] of bad) {
    t.equal(failure(await log.run(register(body))).code, 'INVALID_ARGUMENT', what);
    t.throws(() => registerCommand(body as RegisterBody), { code: 'INVALID_ARGUMENT' }, `${what}: refused before proposing too`);
  }
  const badStatus = failure(await log.run({ kind: 'ext', name: extensionNames.serviceStatus, body: { service: 'web', id: 'i1', status: 'warning', ifModRevision: 1 } }));
  t.equal(badStatus.code, 'INVALID_ARGUMENT');
  t.equal(store.revision(), 0, 'nothing was written');
});

void t.test('equal input, equal bytes: meta order does not matter; checks are stored as given', async (t) => {
  const a = await openRegistryStore(t);
  const b = await openRegistryStore(t);
  const check = { http: 'http://127.0.0.1:9/health', intervalMs: 1000, timeoutMs: 500, deregisterAfterMs: 60_000 };
  await a.log.ok(registerCommand({ ...base, meta: { z: '1', a: '2' }, check }));
  await b.log.ok(registerCommand({ ...base, meta: { a: '2', z: '1' }, check }));
  t.equal(await a.store.stateHash(), await b.store.stateHash(), 'same state hash');
  const instance = (await readInstances(a.store, 'web')).instances[0]!;
  t.same(instance.check, check);
  t.same(Object.keys(instance.meta), ['a', 'z']);
});

void t.test('discovery reads: instances in id order, filters, per-service summary', async (t) => {
  const { store, log } = await openRegistryStore(t);
  await log.ok(registerCommand({ ...base, id: 'b', tags: ['blue'] }));
  await log.ok(registerCommand({ ...base, id: 'a', tags: ['green'] }));
  await log.ok(registerCommand({ ...base, service: 'webx', id: 'c' }));
  await log.ok(registerCommand({ ...base, service: 'db', id: 'd' }));
  await log.ok(statusCommand({ service: 'web', id: 'b', status: 'critical', ifModRevision: 1 }));
  // A key under the prefix that is not an instance record (only extensions write here; be strict when reading).
  await log.ok({ kind: 'put', key: `${serviceKeys.service('web')}junk`, value: 'not json', lease: 0, prevKv: false });
  const { instances, revision } = await readInstances(store, 'web');
  t.equal(revision, 6);
  t.same(instances.map((i) => i.id), ['a', 'b'], 'only web, in id order (webx is another service)');
  t.same(filterInstances(instances, { isHealthyOnly: true }).map((i) => i.id), ['a']);
  t.same(filterInstances(instances, { tag: 'blue' }).map((i) => i.id), ['b']);
  t.same(filterInstances(instances, { tag: 'blue', isHealthyOnly: true }), []);
  const summary = await readServices(store);
  t.same(summary.services, [
    { name: 'db', instances: 1, healthy: 1 },
    { name: 'web', instances: 2, healthy: 1 },
    { name: 'webx', instances: 1, healthy: 1 },
  ]);
});

void t.test('blocking wait: wakes on its service only, at once for a change already past index, else times out', async (t) => {
  const { store, log } = await openRegistryStore(t);
  await log.ok(registerCommand(base)); // 1
  const signal = new AbortController().signal;
  const waiting = waitForChange(store, serviceKeys.service('web'), 1, 5_000, signal);
  let outcome: string | null = null;
  void waiting.then((o) => (outcome = o));
  await log.ok({ kind: 'put', key: 'unrelated', value: 'x', lease: 0, prevKv: false }); // 2
  await log.ok(registerCommand({ ...base, service: 'webx' })); // 3: a longer sibling name
  await log.ok(registerCommand({ ...base, service: 'db' })); // 4
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.equal(outcome, null, 'unrelated writes do not wake it');
  const started = performance.now();
  await log.ok(registerCommand({ ...base, id: 'i2' })); // 5
  t.equal(await waiting, 'changed');
  t.comment(`woke ${(performance.now() - started).toFixed(1)} ms after the registration was applied`);

  t.equal(await waitForChange(store, serviceKeys.service('web'), 4, 5_000, signal), 'changed', 'revision 5 is past index 4: at once');
  const t0 = performance.now();
  t.equal(await waitForChange(store, serviceKeys.service('web'), 5, 200, signal), 'timedOut');
  t.ok(performance.now() - t0 >= 190, 'waited its waitMs');
  const gone = new AbortController();
  const aborted = waitForChange(store, serviceKeys.service('web'), 5, 5_000, gone.signal);
  gone.abort();
  t.equal(await aborted, 'aborted');
  t.equal(store.watchHub.size(), 0, 'every wait released its watcher');
});
