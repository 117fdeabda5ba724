// Goal: every example of the Leases section of shared/API.md holds on a real cluster, asked through the leader
// AND through a follower: grant (random or given id; a taken id is 409), keepalive (404 once gone), read (remaining
// ttl, grantedTtl, keys), list, revoke (the lease's keys deleted in ONE revision, seen as one watch revision), and on
// expiry the same single revision; a retried grant with the same X-Keel-Request-Id grants once; bad input is 400
// before it reaches the log; user KV writes into `_keel/` are 400; every node ends with the same state hash.
// Method: one real three-node cluster (test/helpers/cluster.ts, tickMs 50 × electionTicks 10) shared by the
// subtests; raw HTTP through test/helpers/http.ts; watch streams (NDJSON) on each subtest's key prefix.
import t from 'tap';
import { startCluster } from '../helpers/cluster.js';
import { call, closeHttp, keyPath, openStream, roles, stateOfEveryNode, type Stream } from '../helpers/http.js';
import { expectError, expectOk } from './expect.js';

const cluster = await startCluster(t);
t.teardown(closeHttp);
const { leader, followers } = await roles(cluster);
const targets = [
  { role: 'leader', address: cluster.node(leader).client },
  { role: 'follower', address: cluster.node(followers[0]!).client },
];
const streams: Stream[] = [];
t.teardown(() => streams.forEach((s) => s.close()));

function watch(address: string, prefix: string): Stream {
  const stream = openStream(address, `/v1/watch/${keyPath(prefix)}?prefix=true`);
  streams.push(stream);
  return stream;
}

/** The watch lines of one revision (skipping `created`/`progress`), waiting until `count` events arrived. */
async function eventsOf(stream: Stream, count: number): Promise<{ type: string; key: string; revision: number }[]> {
  await stream.until((lines) => lines.filter((l) => l.type === 'put' || l.type === 'delete').length >= count, 15_000);
  return stream.lines.filter((l) => l.type === 'put' || l.type === 'delete').map((l) => ({ type: l.type, key: l.kv.key, revision: l.revision }));
}

for (const { role, address } of targets) {
  void t.test(`Leases examples through the ${role}`, async (t) => {
    const prefix = `leases-${role}/`;
    const leaseId = role === 'leader' ? 1001 : 2002;

    const random = expectOk(t, await call(address, 'POST', '/v1/leases', { body: { ttl: 30 } }), 'grant, random id', 201);
    t.ok(Number.isSafeInteger(random.json.id) && random.json.id >= 1, 'a safe-integer id');
    t.equal(random.json.ttl, 30);
    t.same(Object.keys(random.json).sort(), ['id', 'ttl']);

    const given = expectOk(t, await call(address, 'POST', '/v1/leases', { body: { ttl: 30, id: leaseId } }), 'grant, given id', 201);
    t.same(given.json, { id: leaseId, ttl: 30 });
    expectError(t, await call(address, 'POST', '/v1/leases', { body: { ttl: 5, id: leaseId } }), 'CONFLICT', 'a taken id');

    const stream = watch(address, prefix);
    await stream.next(); // created
    for (const key of ['a', 'b', 'c']) {
      expectOk(t, await call(address, 'PUT', `/v1/kv/${prefix}${key}`, { body: { value: key, lease: leaseId } }), `put ${key} with the lease`);
    }
    expectError(t, await call(address, 'PUT', `/v1/kv/${prefix}x`, { body: { value: 'x', lease: 999_999 } }), 'LEASE_NOT_FOUND', 'put with an unknown lease');

    const kept = expectOk(t, await call(address, 'POST', `/v1/leases/${leaseId}/keepalive`), 'keepalive');
    t.same(kept.json, { id: leaseId, ttl: 30 }, 'keepalive answers {id, ttl}');
    expectError(t, await call(address, 'POST', '/v1/leases/999999/keepalive'), 'LEASE_NOT_FOUND', 'keepalive of an unknown lease');

    for (const consistency of ['', '?consistency=serializable']) {
      const read = expectOk(t, await call(address, 'GET', `/v1/leases/${leaseId}${consistency}`), `read ${consistency}`);
      t.ok(read.json.ttl >= 29 && read.json.ttl <= 30, `remaining ttl ${read.json.ttl} in [29, 30]`);
      t.equal(read.json.grantedTtl, 30);
      t.equal(read.json.id, leaseId);
      t.same(read.json.keys, [`${prefix}a`, `${prefix}b`, `${prefix}c`], 'keys attached, in key order');
    }
    const list = expectOk(t, await call(address, 'GET', '/v1/leases'), 'list');
    const listed = (list.json.leases as { id: number; ttl: number }[]).find((l) => l.id === leaseId);
    t.ok(listed !== undefined && listed.ttl >= 29 && listed.ttl <= 30, 'the list has the lease with its remaining ttl');

    const revoked = expectOk(t, await call(address, 'DELETE', `/v1/leases/${leaseId}`), 'revoke');
    t.same({ id: revoked.json.id, deleted: revoked.json.deleted }, { id: leaseId, deleted: 3 });
    const events = await eventsOf(stream, 6);
    const deletes = events.filter((e) => e.type === 'delete');
    t.same(deletes.map((d) => d.key), [`${prefix}a`, `${prefix}b`, `${prefix}c`], 'all three keys deleted');
    t.same([...new Set(deletes.map((d) => d.revision))], [revoked.json.revision], 'in ONE revision: the revoke answer');
    expectError(t, await call(address, 'GET', `/v1/kv/${prefix}a`), 'KEY_NOT_FOUND', 'the key is gone');
    expectError(t, await call(address, 'GET', `/v1/leases/${leaseId}`), 'LEASE_NOT_FOUND', 'read after revoke');
    expectError(t, await call(address, 'DELETE', `/v1/leases/${leaseId}`), 'LEASE_NOT_FOUND', 'revoke again');
    expectError(t, await call(address, 'POST', `/v1/leases/${leaseId}/keepalive`), 'LEASE_NOT_FOUND', 'keepalive after revoke');
    expectOk(t, await call(address, 'DELETE', `/v1/leases/${random.json.id}`), 'revoke the random one');
  });
}

void t.test('expiry deletes the keys in one revision, visible to watchers', async (t) => {
  const address = targets[1]!.address;
  const prefix = 'expiry/';
  const stream = watch(address, prefix);
  await stream.next();
  const lease = expectOk(t, await call(address, 'POST', '/v1/leases', { body: { ttl: 1 } }), 'grant ttl 1', 201).json.id as number;
  for (const key of ['x', 'y']) expectOk(t, await call(address, 'PUT', `/v1/kv/${prefix}${key}`, { body: { value: key, lease } }), `put ${key}`);
  const events = await eventsOf(stream, 4);
  const deletes = events.filter((e) => e.type === 'delete');
  t.equal(deletes.length, 2, 'both keys expired');
  t.equal(new Set(deletes.map((d) => d.revision)).size, 1, 'in one revision');
  expectError(t, await call(address, 'GET', `/v1/leases/${lease}`), 'LEASE_NOT_FOUND', 'the lease is gone');
});

void t.test('extension: keepalive of many leases in one request', async (t) => {
  const address = targets[1]!.address;
  const ids: number[] = [];
  for (let i = 0; i < 3; i++) ids.push(expectOk(t, await call(address, 'POST', '/v1/leases', { body: { ttl: 7 } }), 'grant', 201).json.id as number);
  const answer = expectOk(t, await call(address, 'POST', '/v1/leases/keepalive', { body: { ids: [...ids, 424242, ids[0]] } }), 'keepalive many');
  t.same(
    [...(answer.json.leases as { id: number }[])].sort((a, b) => a.id - b.id),
    [...ids].sort((a, b) => a - b).map((id) => ({ id, ttl: 7 })),
    'every known lease refreshed once',
  );
  t.same(answer.json.notFound, [424242], 'the unknown one listed');
  expectError(t, await call(address, 'POST', '/v1/leases/keepalive', { body: { ids: [] } }), 'INVALID_ARGUMENT', 'no ids');
  expectError(t, await call(address, 'POST', '/v1/leases/keepalive', { body: { ids: Array.from({ length: 1001 }, (_, i) => i + 1) } }), 'INVALID_ARGUMENT', 'over 1000 ids');
  for (const id of ids) expectOk(t, await call(address, 'DELETE', `/v1/leases/${id}`), 'revoke');
});

void t.test('a retried grant with the same request id grants once', async (t) => {
  const address = targets[1]!.address;
  const headers = { 'x-keel-request-id': 'lease-grant-retry-1' };
  const first = expectOk(t, await call(address, 'POST', '/v1/leases', { body: { ttl: 20 }, headers }), 'grant', 201);
  const again = expectOk(t, await call(targets[0]!.address, 'POST', '/v1/leases', { body: { ttl: 20 }, headers }), 'retry', 201);
  t.equal(again.json.id, first.json.id, 'the retry answers the same lease');
  expectOk(t, await call(address, 'DELETE', `/v1/leases/${first.json.id}`), 'revoke');
});

void t.test('bad input is 400 and user writes into _keel/ are refused', async (t) => {
  const address = targets[1]!.address;
  const bad: [string, string, unknown?][] = [
    ['POST', '/v1/leases', { ttl: 0 }],
    ['POST', '/v1/leases', { ttl: '5' }],
    ['POST', '/v1/leases', { ttl: 1.5 }],
    ['POST', '/v1/leases', {}],
    ['POST', '/v1/leases', { ttl: 5, id: 0 }],
    ['POST', '/v1/leases', { ttl: 5, id: 2 ** 53 }],
    ['POST', '/v1/leases', { ttl: 5, extra: 1 }],
    ['POST', '/v1/leases', { ttl: 100 * 365 * 24 * 3600 }],
    ['POST', '/v1/leases/abc/keepalive'],
    ['GET', '/v1/leases/0'],
    ['DELETE', '/v1/leases/-4'],
    ['GET', '/v1/leases/5?consistency=sometimes'],
    ['PUT', '/v1/kv/_keel/leases/5', { value: 'forged' }],
    ['PUT', '/v1/kv/_keel/locks/m/holder', { value: '{}' }],
    ['DELETE', '/v1/kv/_keel/leases/5'],
    ['DELETE', '/v1/kv/?prefix=true'],
    ['DELETE', '/v1/kv/_?prefix=true'],
    ['DELETE', '/v1/kv/_keel/?prefix=true'],
    ['POST', '/v1/txn', { success: [{ put: { key: '_keel/x', value: 'y' } }] }],
    ['POST', '/v1/txn', { failure: [{ delete: { key: '', prefix: true } }] }],
  ];
  const before = (await cluster.status(leader))?.commitIndex ?? 0;
  for (const [method, path, body] of bad) {
    expectError(t, await call(address, method, path, body === undefined ? {} : { body }), 'INVALID_ARGUMENT', `${method} ${path} ${JSON.stringify(body ?? '')}`);
  }
  const after = (await cluster.status(leader))?.commitIndex ?? 0;
  t.ok(after - before <= 2, `no bad request reached the log (commitIndex ${before} → ${after}; only lease traffic of other subtests may move it)`);
  expectOk(t, await call(address, 'DELETE', '/v1/kv/_other?prefix=true'), 'a prefix that does not cover _keel/ is fine');
});

void t.test('every node ends with the same state', async (t) => {
  const states = await stateOfEveryNode(cluster);
  t.equal(new Set(states.map((s) => `${s.revision}:${s.hash}`)).size, 1, `same revision and hash on every node: ${JSON.stringify(states)}`);
});
