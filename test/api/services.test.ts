// Goal: every example of the Service registry section of shared/API.md holds on a real cluster, through the
// leader AND through a follower: register (200 {service, id, lease, revision}, X-Keel-Revision), the Instance
// fields exactly, idempotent re-registration (same key replaced), ttl → a lease that holds the instance key and
// is kept alive by POST /v1/leases/<lease>/keepalive and by the instance heartbeat, an existing lease, an
// unknown lease (404 LEASE_NOT_FOUND), deregister (404 NOT_FOUND the second time), GET /v1/services counts,
// discovery with healthy=true and tag=x, serializable reads, the generic watch seeing registrations under
// `_keel/services/`, a blocking query woken by a registration made through ANOTHER node and answered unchanged
// after waitMs, and bad input (400 INVALID_ARGUMENT, never 5xx).
// Method: one real three-node cluster (built dist/, real processes on loopback) shared by every subtest; each
// example runs once against the leader's address and once against a follower's, with its own service names.
import t from 'tap';
import { startCluster } from '../helpers/cluster.js';
import { call, closeHttp, openStream, roles, type Answer } from '../helpers/http.js';
import { expectError, expectOk } from './expect.js';

const cluster = await startCluster(t);
t.teardown(closeHttp);
// Generous: on a loaded 2-core machine (other real-process test files run in parallel) startup can take seconds.
const { leader, followers } = await roles(cluster, 60_000);
const targets = [
  { via: 'leader', address: cluster.node(leader).client, other: cluster.node(followers[0]!).client },
  { via: 'follower', address: cluster.node(followers[0]!).client, other: cluster.node(leader).client },
];
const instanceFields = ['address', 'id', 'lease', 'meta', 'modRevision', 'port', 'service', 'status', 'tags', 'weight'];

for (const { via, address, other } of targets) {
  const s = `web-${via}`;
  const register = (service: string, id: string, body: unknown): Promise<Answer> =>
    call(address, 'PUT', `/v1/services/${service}/instances/${id}`, { body });
  const discover = (service: string, query = ''): Promise<Answer> => call(address, 'GET', `/v1/services/${service}${query}`);

  void t.test(`via ${via}: register, Instance fields, re-register, filters, deregister`, async (t) => {
    const body = { address: '10.0.0.5', port: 8080, tags: ['blue', 'v2'], meta: { zone: 'a' }, weight: 5 };
    const first = expectOk(t, await register(s, 'i1', body), 'register');
    const r1 = first.json.revision as number;
    t.same(first.json, { service: s, id: 'i1', lease: 0, revision: r1 });
    t.equal(first.revision, r1, 'X-Keel-Revision is the registration revision');

    const listed = expectOk(t, await discover(s), 'discover');
    t.ok(listed.json.index >= r1 && listed.revision === listed.json.index, 'index = X-Keel-Revision >= the registration');
    t.same(listed.json.service, s);
    t.same(Object.keys(listed.json.instances[0]).sort(), instanceFields, 'Instance has exactly the documented fields');
    t.same(listed.json.instances, [
      { id: 'i1', service: s, address: '10.0.0.5', port: 8080, tags: ['blue', 'v2'], meta: { zone: 'a' }, weight: 5, status: 'passing', lease: 0, modRevision: r1 },
    ]);

    const again = expectOk(t, await register(s, 'i1', { address: '10.0.0.9', port: 9090 }), 're-register');
    const r2 = again.json.revision as number;
    t.ok(r2 > r1);
    const replaced = expectOk(t, await discover(s), 'discover after re-register').json.instances;
    t.equal(replaced.length, 1, 'the same id is replaced, not added');
    t.same(replaced[0], { id: 'i1', service: s, address: '10.0.0.9', port: 9090, tags: [], meta: {}, weight: 1, status: 'passing', lease: 0, modRevision: r2 }, 'defaults: no tags, no meta, weight 1');
    const kv = expectOk(t, await call(address, 'GET', `/v1/kv/_keel/services/${s}/i1`), 'the instance is an ordinary key');
    t.equal(kv.json.kv.createRevision, r1, '... created once');
    t.equal(kv.json.kv.version, 2, '... and replaced');

    expectOk(t, await register(s, 'i2', { address: '10.0.0.6', port: 8080, tags: ['green'] }), 'register i2');
    t.same(expectOk(t, await discover(s, '?tag=green'), 'tag filter').json.instances.map((i: { id: string }) => i.id), ['i2']);
    t.same(expectOk(t, await discover(s, '?healthy=true'), 'healthy filter').json.instances.map((i: { id: string }) => i.id), ['i1', 'i2']);
    t.same(expectOk(t, await discover(s, '?tag=none'), 'unknown tag').json.instances, []);
    const serializable = expectOk(t, await discover(s, '?consistency=serializable'), 'serializable');
    t.ok(Array.isArray(serializable.json.instances), 'a serializable read answers');

    const summary = expectOk(t, await call(address, 'GET', '/v1/services'), 'list services');
    t.same(summary.json.services.find((x: { name: string }) => x.name === s), { name: s, instances: 2, healthy: 2 });

    const removed = expectOk(t, await call(address, 'DELETE', `/v1/services/${s}/instances/i1`), 'deregister');
    t.same(removed.json, { service: s, id: 'i1', revision: removed.revision });
    expectError(t, await call(address, 'DELETE', `/v1/services/${s}/instances/i1`), 'NOT_FOUND', 'deregister again');
    expectError(t, await call(address, 'GET', `/v1/services/${s}/instances/i1`), 'NOT_FOUND', 'get a removed instance');
    t.same(expectOk(t, await discover(s), 'after deregister').json.instances.map((i: { id: string }) => i.id), ['i2']);
    expectOk(t, await call(address, 'DELETE', `/v1/services/${s}/instances/i2`), 'deregister i2');
    t.notOk(expectOk(t, await call(address, 'GET', '/v1/services'), 'list').json.services.some((x: { name: string }) => x.name === s), 'a service without instances is not listed');
  });

  void t.test(`via ${via}: ttl lease, keepalive, heartbeat, existing and unknown leases`, async (t) => {
    const ttlService = `ttl-${via}`;
    const withTtl = expectOk(t, await register(ttlService, 'a1', { address: 'h', port: 1, ttl: 30 }), 'register with ttl');
    const lease = withTtl.json.lease as number;
    t.ok(Number.isSafeInteger(lease) && lease > 0, 'a lease was created for the instance');
    const leaseInfo = expectOk(t, await call(address, 'GET', `/v1/leases/${lease}`), 'the lease');
    t.same(leaseInfo.json.keys, [`_keel/services/${ttlService}/a1`], 'the instance key is attached to it');
    t.equal(leaseInfo.json.grantedTtl, 30);
    t.equal(expectOk(t, await discover(ttlService), 'discover').json.instances[0].lease, lease);
    const kept = expectOk(t, await call(address, 'POST', `/v1/leases/${lease}/keepalive`), 'lease keepalive');
    t.same(kept.json, { id: lease, ttl: 30 });
    const beat = expectOk(t, await call(address, 'POST', `/v1/services/${ttlService}/instances/a1/heartbeat`), 'heartbeat');
    t.same(beat.json, { service: ttlService, id: 'a1', lease, ttl: 30 });

    const granted = expectOk(t, await call(address, 'POST', '/v1/leases', { body: { ttl: 60 } }), 'grant a lease', 201);
    const own = granted.json.id as number;
    const attached = expectOk(t, await register(ttlService, 'a2', { address: 'h', port: 2, lease: own }), 'register with a lease');
    t.same(attached.json, { service: ttlService, id: 'a2', lease: own, revision: attached.revision });
    expectError(t, await register(ttlService, 'a3', { address: 'h', port: 3, lease: 424242 }), 'LEASE_NOT_FOUND', 'unknown lease');
    expectError(t, await call(address, 'GET', `/v1/services/${ttlService}/instances/a3`), 'NOT_FOUND', 'nothing registered');
    expectOk(t, await register(ttlService, 'plain', { address: 'h', port: 4 }), 'register without a lease');
    expectError(t, await call(address, 'POST', `/v1/services/${ttlService}/instances/plain/heartbeat`), 'LEASE_NOT_FOUND', 'heartbeat without a lease');
    expectError(t, await call(address, 'POST', `/v1/services/${ttlService}/instances/nope/heartbeat`), 'NOT_FOUND', 'heartbeat of an absent instance');

    // Revoking the lease removes every instance attached to it.
    expectOk(t, await call(address, 'DELETE', `/v1/leases/${own}`), 'revoke');
    t.same(expectOk(t, await discover(ttlService), 'after revoke').json.instances.map((i: { id: string }) => i.id), ['a1', 'plain']);
    expectError(t, await call(address, 'POST', `/v1/services/${ttlService}/instances/a2/heartbeat`), 'NOT_FOUND', 'heartbeat after revoke');
  });

  void t.test(`via ${via}: blocking query woken by a registration through another node; unchanged after waitMs`, async (t) => {
    const blockService = `block-${via}`;
    expectOk(t, await register(blockService, 'b1', { address: 'h', port: 1 }), 'register b1');
    const index = expectOk(t, await discover(blockService), 'discover').json.index as number;
    let answered = false;
    const blocked = discover(blockService, `?index=${index}&waitMs=10000`).then((answer) => {
      answered = true;
      return answer;
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    await call(other, 'PUT', '/v1/kv/unrelated', { body: { value: 'x' } });
    await call(other, 'PUT', `/v1/services/${blockService}x/instances/b1`, { body: { address: 'h', port: 1 } });
    await new Promise((resolve) => setTimeout(resolve, 300));
    t.equal(answered, false, 'unrelated writes (another key, a longer sibling service name) do not answer it');
    const sentAt = performance.now();
    const registered = await call(other, 'PUT', `/v1/services/${blockService}/instances/b2`, { body: { address: 'h', port: 2 } });
    const ackedAt = performance.now();
    const woken = expectOk(t, await blocked, 'woken');
    t.comment(`via ${via}: blocked query answered ${Math.round(performance.now() - ackedAt)} ms after the registration's ack (${Math.round(performance.now() - sentAt)} ms after it was sent)`);
    t.same(woken.json.instances.map((i: { id: string }) => i.id), ['b1', 'b2'], 'the new set');
    t.ok(woken.json.index >= registered.json.revision, 'index >= the registration revision');

    const started = performance.now();
    const unchanged = expectOk(t, await discover(blockService, `?index=${woken.json.index}&waitMs=500`), 'unchanged');
    t.ok(performance.now() - started >= 480, 'answered after waitMs');
    t.same(unchanged.json.instances.map((i: { id: string }) => i.id), ['b1', 'b2'], 'the unchanged list');
    const immediate = expectOk(t, await discover(blockService, `?index=${index}&waitMs=10000`), 'index already passed');
    t.equal(immediate.json.instances.length, 2, 'a change after index answers at once');
  });

  void t.test(`via ${via}: the generic watch sees the registry`, async (t) => {
    const watched = `watched-${via}`;
    const stream = openStream(address, `/v1/watch/_keel/services/${watched}/?prefix=true`);
    t.teardown(() => stream.close());
    const created = await stream.next();
    t.equal(created.type, 'created');
    const registered = expectOk(t, await register(watched, 'w1', { address: 'h', port: 1 }), 'register');
    const event = await stream.next();
    t.equal(event.type, 'put');
    t.equal(event.revision, registered.json.revision);
    t.equal(event.kv.key, `_keel/services/${watched}/w1`);
    t.equal(JSON.parse(event.kv.value).status, 'passing');
    expectOk(t, await call(address, 'DELETE', `/v1/services/${watched}/instances/w1`), 'deregister');
    t.equal((await stream.next()).type, 'delete');
    expectError(t, await call(address, 'PUT', `/v1/kv/_keel/services/${watched}/w2`, { body: { value: '{}' } }), 'INVALID_ARGUMENT', 'user writes may not forge instances');
  });

  void t.test(`via ${via}: bad input is 400 INVALID_ARGUMENT`, async (t) => {
    const cases: [string, string, unknown][] = [
      ['bad service name', `/v1/services/a%20b/instances/i1`, { address: 'h', port: 1 }],
      ['port 0', `/v1/services/${s}/instances/i1`, { address: 'h', port: 0 }],
      ['negative weight', `/v1/services/${s}/instances/i1`, { address: 'h', port: 1, weight: -1 }],
      ['interval 50', `/v1/services/${s}/instances/i1`, { address: 'h', port: 1, check: { tcp: 'h:1', intervalMs: 50, timeoutMs: 100 } }],
      ['http and tcp', `/v1/services/${s}/instances/i1`, { address: 'h', port: 1, check: { tcp: 'h:1', http: 'http://h/', intervalMs: 100, timeoutMs: 100 } }],
      ['unknown field', `/v1/services/${s}/instances/i1`, { address: 'h', port: 1, extra: true }],
      ['ttl and lease', `/v1/services/${s}/instances/i1`, { address: 'h', port: 1, ttl: 5, lease: 5 }],
    ];
    for (const [what, path, body] of cases) expectError(t, await call(address, 'PUT', path, { body }), 'INVALID_ARGUMENT', what);
    expectError(t, await call(address, 'GET', `/v1/services/${s}?waitMs=abc`), 'INVALID_ARGUMENT', 'bad waitMs');
    expectError(t, await call(address, 'GET', `/v1/services/${s}?healthy=perhaps`), 'INVALID_ARGUMENT', 'bad healthy');
  });
}
