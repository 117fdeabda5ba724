// Goal: the service registry routes map HTTP to the registry exactly as API.md says, on one node: register
// (defaults, ttl → a lease granted in the same entry, an existing lease, LEASE_NOT_FOUND), idempotent
// re-registration, deregister (404 NOT_FOUND when absent), heartbeat (404 for an absent instance or one without
// a lease), the services summary, discovery with healthy/tag filters and X-Keel-Revision, blocking queries
// (woken by that service only, timed out unchanged, waitMs capped), and 400 INVALID_ARGUMENT for every kind of
// bad input (names, port, weight, intervals, check targets, ttl with lease, unknown fields, bad query values)
// before anything reaches the log.
// Method: buildApi() over a real store in a temp dir with the lessor's and registry's extensions; the Proposer
// sees a permanent leader whose proposeLocal applies each command as the next entry (test/unit/lease/helpers.ts);
// requests go through app.inject().
import t from 'tap';
import { buildApi, NodeMetrics, Proposer } from '../../../src/api/index.js';
import type { FastifyInstance } from 'fastify';
import { silentLogger } from '../../../src/util/logger.js';
import { openRegistryStore } from '../lease/helpers.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

async function openApi(t: Test) {
  const { store, log, lessor } = await openRegistryStore(t);
  const proposer = new Proposer(
    { isLeader: () => true, leaderClientAddress: () => null, proposeLocal: log.propose, waitForLeaderChange: async () => undefined },
    { leaderWaitMs: 100, forwardTimeoutMs: 1_000 },
  );
  const kv = { store, proposer, readBarrier: async () => undefined, proposeLocal: log.propose };
  const zero = { term: 0, isLeader: true, commitIndex: 0, appliedIndex: 0, leaderChanges: 0, proposalsCommitted: 0, proposalsFailed: 0, snapshotsTaken: 0, snapshotsExported: 0, snapshotsInstalled: 0, revision: 0, keys: 0, dbSizeBytes: 0, watchers: 0, leases: 0 };
  const keepalives: number[] = [];
  const app = await buildApi({
    cluster: { status: async () => { throw new Error('unused'); }, isHealthy: () => true, revision: () => store.revision() },
    metrics: new NodeMetrics({ readings: () => zero }, { node: 'n1', cluster: 'test' }),
    logger: silentLogger,
    kv,
    services: {
      ...kv,
      leases: {
        newLeaseId: () => lessor.newLeaseId(),
        keepalive: async (id) => {
          keepalives.push(id);
          if ((await store.get(`_keel/leases/${id}`)).kv === null) {
            const { KeelError } = await import('../../../src/util/errors.js');
            throw new KeelError('LEASE_NOT_FOUND', `lease ${id} not found`);
          }
          return { id, ttl: 10 };
        },
      },
    },
  });
  t.teardown(async () => {
    await app.close();
    await proposer.close();
  });
  return { app, store, log, keepalives };
}

async function send(app: FastifyInstance, method: 'GET' | 'PUT' | 'POST' | 'DELETE', url: string, body?: unknown) {
  const response = await app.inject({ method, url, ...(body !== undefined && { payload: body as object }) });
  const revision = response.headers['x-keel-revision'];
  return { status: response.statusCode, json: response.json() as any, revision: revision === undefined ? null : Number(revision) }; // eslint-disable-line @typescript-eslint/no-explicit-any
}

void t.test('register, discover, filter, re-register, deregister', async (t) => {
  const { app, store } = await openApi(t);
  const put = await send(app, 'PUT', '/v1/services/web/instances/i1', { address: '10.0.0.5', port: 8080, tags: ['blue'] });
  t.same(put, { status: 200, json: { service: 'web', id: 'i1', lease: 0, revision: 1 }, revision: 1 });
  await send(app, 'PUT', '/v1/services/web/instances/i2', { address: '10.0.0.6', port: 8080, meta: { zone: 'b' }, weight: 3 });
  await send(app, 'PUT', '/v1/services/db/instances/d1', { address: '10.0.0.7', port: 5432 });

  const web = await send(app, 'GET', '/v1/services/web');
  t.equal(web.status, 200);
  t.equal(web.revision, 3);
  t.same(web.json, {
    service: 'web',
    index: 3,
    instances: [
      { id: 'i1', service: 'web', address: '10.0.0.5', port: 8080, tags: ['blue'], meta: {}, weight: 1, status: 'passing', lease: 0, modRevision: 1 },
      { id: 'i2', service: 'web', address: '10.0.0.6', port: 8080, tags: [], meta: { zone: 'b' }, weight: 3, status: 'passing', lease: 0, modRevision: 2 },
    ],
  });
  t.same((await send(app, 'GET', '/v1/services/web?tag=blue')).json.instances.map((i: { id: string }) => i.id), ['i1']);
  t.same((await send(app, 'GET', '/v1/services/nothing')).json, { service: 'nothing', instances: [], index: 3 }, 'an unknown service is empty');
  const summary = await send(app, 'GET', '/v1/services');
  t.same(summary.json, { services: [{ name: 'db', instances: 1, healthy: 1 }, { name: 'web', instances: 2, healthy: 2 }], index: 3 });
  t.equal(summary.revision, 3);

  // Status changes come from the leader's checker; here one is applied directly to see the filter.
  const { statusCommand } = await import('../../../src/lease/index.js');
  const { encodeCommand } = await import('../../../src/store/index.js');
  await store.apply([{ type: 'normal', term: 1, index: store.appliedIndex() + 1, data: encodeCommand({ requestId: '', cmd: statusCommand({ service: 'web', id: 'i1', status: 'critical', ifModRevision: 1 }) }) }]);
  t.same((await send(app, 'GET', '/v1/services/web?healthy=true')).json.instances.map((i: { id: string }) => i.id), ['i2']);
  t.same((await send(app, 'GET', '/v1/services')).json.services[1], { name: 'web', instances: 2, healthy: 1 });
  t.same((await send(app, 'GET', '/v1/services/web/instances/i1')).json.instance.status, 'critical');

  const again = await send(app, 'PUT', '/v1/services/web/instances/i1', { address: '10.0.0.5', port: 8080, tags: ['blue'] });
  t.same(again.json, { service: 'web', id: 'i1', lease: 0, revision: 5 });
  t.equal((await send(app, 'GET', '/v1/services/web?healthy=true')).json.instances.length, 2, 'registering again: passing again');

  const removed = await send(app, 'DELETE', '/v1/services/web/instances/i1');
  t.same(removed, { status: 200, json: { service: 'web', id: 'i1', revision: 6 }, revision: 6 });
  const missing = await send(app, 'DELETE', '/v1/services/web/instances/i1');
  t.equal(missing.status, 404);
  t.equal(missing.json.error.code, 'NOT_FOUND');
  t.equal((await send(app, 'GET', '/v1/services/web/instances/i1')).json.error.code, 'NOT_FOUND');
});

void t.test('ttl and lease; heartbeat', async (t) => {
  const { app, store, keepalives } = await openApi(t);
  const withTtl = await send(app, 'PUT', '/v1/services/api/instances/a1', { address: 'h', port: 1, ttl: 5 });
  t.equal(withTtl.status, 200);
  const lease = withTtl.json.lease as number;
  t.ok(Number.isSafeInteger(lease) && lease > 0, 'a lease was granted');
  t.equal(withTtl.json.revision, 1, 'lease and instance in one revision');
  t.same((await store.leaseKeys(lease)).keys, ['_keel/services/api/a1']);
  const reuse = await send(app, 'PUT', '/v1/services/api/instances/a2', { address: 'h', port: 2, lease });
  t.same(reuse.json, { service: 'api', id: 'a2', lease, revision: 2 });
  const unknown = await send(app, 'PUT', '/v1/services/api/instances/a3', { address: 'h', port: 2, lease: 12345 });
  t.equal(unknown.status, 404);
  t.equal(unknown.json.error.code, 'LEASE_NOT_FOUND');

  const beat = await send(app, 'POST', '/v1/services/api/instances/a1/heartbeat');
  t.same(beat.json, { service: 'api', id: 'a1', lease, ttl: 10 });
  t.equal(beat.revision, 2);
  t.same(keepalives, [lease]);
  await send(app, 'PUT', '/v1/services/api/instances/plain', { address: 'h', port: 3 });
  t.equal((await send(app, 'POST', '/v1/services/api/instances/plain/heartbeat')).json.error.code, 'LEASE_NOT_FOUND', 'no lease to keep alive');
  t.equal((await send(app, 'POST', '/v1/services/api/instances/nope/heartbeat')).json.error.code, 'NOT_FOUND');
});

void t.test('blocking discovery: woken by that service only; unchanged after waitMs', async (t) => {
  const { app } = await openApi(t);
  await send(app, 'PUT', '/v1/services/web/instances/i1', { address: 'h', port: 1 });
  const index = (await send(app, 'GET', '/v1/services/web')).json.index as number;
  let answered = false;
  const blocked = send(app, 'GET', `/v1/services/web?index=${index}&waitMs=5000`).then((r) => {
    answered = true;
    return r;
  });
  await new Promise((resolve) => setTimeout(resolve, 50));
  await send(app, 'PUT', '/v1/kv/unrelated', { value: 'x' });
  await send(app, 'PUT', '/v1/services/webx/instances/i1', { address: 'h', port: 1 });
  await new Promise((resolve) => setTimeout(resolve, 100));
  t.equal(answered, false, 'unrelated writes do not answer it');
  const started = performance.now();
  await send(app, 'PUT', '/v1/services/web/instances/i2', { address: 'h', port: 2 });
  const woken = await blocked;
  t.comment(`answered ${(performance.now() - started).toFixed(1)} ms after the registration was acknowledged`);
  t.same(woken.json.instances.map((i: { id: string }) => i.id), ['i1', 'i2']);
  t.equal(woken.json.index, index + 3);
  t.equal(woken.revision, index + 3);

  const t0 = performance.now();
  const unchanged = await send(app, 'GET', `/v1/services/web?index=${index + 3}&waitMs=200`);
  t.ok(performance.now() - t0 >= 190, 'waited waitMs');
  t.equal(unchanged.status, 200);
  t.same(unchanged.json.instances.length, 2, 'the unchanged list');
  const past = await send(app, 'GET', `/v1/services/web?index=${index}&waitMs=5000`);
  t.equal(past.json.instances.length, 2, 'a change already past index answers at once');
  const summary = send(app, 'GET', `/v1/services?index=${index + 3}&waitMs=5000`);
  await send(app, 'PUT', '/v1/services/db/instances/d1', { address: 'h', port: 1 });
  t.equal((await summary).json.services.length, 3, 'the summary blocks on the whole registry');
});

void t.test('bad input: 400 INVALID_ARGUMENT, nothing proposed', async (t) => {
  const { app, store } = await openApi(t);
  const ok = { address: '10.0.0.5', port: 8080 };
  const check = { http: 'http://127.0.0.1:1/', intervalMs: 100, timeoutMs: 100 };
  const bad: [string, string, unknown][] = [
    ['bad service name', '/v1/services/a%2Fb/instances/i1', ok],
    ['bad instance id', '/v1/services/web/instances/i%20d', ok],
    ['long name', `/v1/services/${'a'.repeat(257)}/instances/i1`, ok],
    ['missing address', '/v1/services/web/instances/i1', { port: 1 }],
    ['missing port', '/v1/services/web/instances/i1', { address: 'h' }],
    ['port 0', '/v1/services/web/instances/i1', { ...ok, port: 0 }],
    ['port 70000', '/v1/services/web/instances/i1', { ...ok, port: 70_000 }],
    ['port as text', '/v1/services/web/instances/i1', { ...ok, port: '80' }],
    ['weight -1', '/v1/services/web/instances/i1', { ...ok, weight: -1 }],
    ['weight 1.5', '/v1/services/web/instances/i1', { ...ok, weight: 1.5 }],
    ['unknown field', '/v1/services/web/instances/i1', { ...ok, colour: 'red' }],
    ['ttl and lease', '/v1/services/web/instances/i1', { ...ok, ttl: 5, lease: 3 }],
    ['ttl 0', '/v1/services/web/instances/i1', { ...ok, ttl: 0 }],
    ['tags not strings', '/v1/services/web/instances/i1', { ...ok, tags: [1] }],
    ['meta not strings', '/v1/services/web/instances/i1', { ...ok, meta: { a: 1 } }],
    ['check with both targets', '/v1/services/web/instances/i1', { ...ok, check: { ...check, tcp: 'h:1' } }],
    ['check with no target', '/v1/services/web/instances/i1', { ...ok, check: { intervalMs: 100, timeoutMs: 100 } }],
    ['check interval 99', '/v1/services/web/instances/i1', { ...ok, check: { ...check, intervalMs: 99 } }],
    ['check timeout 10', '/v1/services/web/instances/i1', { ...ok, check: { ...check, timeoutMs: 10 } }],
    ['check unknown field', '/v1/services/web/instances/i1', { ...ok, check: { ...check, method: 'HEAD' } }],
    ['check http not a URL', '/v1/services/web/instances/i1', { ...ok, check: { ...check, http: 'not a url' } }],
    ['check tcp without port', '/v1/services/web/instances/i1', { ...ok, check: { tcp: 'host', intervalMs: 100, timeoutMs: 100 } }],
    ['malformed JSON', '/v1/services/web/instances/i1', '{"address":'],
  ];
  for (const [what, url, body] of bad) {
    const response = await app.inject({
      method: 'PUT',
      url,
      headers: { 'content-type': 'application/json' },
      payload: typeof body === 'string' ? body : JSON.stringify(body),
    });
    t.equal(response.statusCode, 400, `${what}: 400 (${response.body.slice(0, 160)})`);
    t.equal((response.json() as { error: { code: string } }).error.code, 'INVALID_ARGUMENT', `${what}: INVALID_ARGUMENT`);
  }
  for (const query of ['healthy=maybe', 'index=-1', 'waitMs=x', 'consistency=eventual', 'color=red']) {
    const response = await send(app, 'GET', `/v1/services/web?${query}`);
    t.equal(response.status, 400, `GET ?${query}: 400`);
    t.equal(response.json.error.code, 'INVALID_ARGUMENT');
  }
  t.equal(store.revision(), 0, 'nothing reached the log');
});
