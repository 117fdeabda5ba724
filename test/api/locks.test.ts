// Goal: every example of the "Locks and elections" section of shared/API.md holds on a real cluster, asked
// through the leader AND through a follower: acquire (held at once when free; FIFO waiting; 408 WAIT_TIMEOUT after
// waitMs with the waiter removed; 404 for an unknown lease), release (404 unknown key / twice, 409 a key that only
// waits), read {name, holder, waiters}, fences strictly increasing with each holder, fenced KV writes (412
// FENCE_REJECTED unless the current holder's token); elections: campaign, read the leader, proclaim (only the
// leader: 409/404), resign (the next candidate is elected with a higher fence), and observing by watching the
// documented prefix `_keel/elections/<name>/`; bad input is 400.
// Method: one real three-node cluster shared by the subtests (each with its own lock/election names); raw HTTP
// through test/helpers/http.ts; a watch stream on the election's prefix.
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
const other = cluster.node(followers[1]!).client;
const streams: Stream[] = [];
t.teardown(() => streams.forEach((s) => s.close()));

function expectPlain(t: Parameters<typeof expectOk>[0], answer: Awaited<ReturnType<typeof call>>, what: string): Awaited<ReturnType<typeof call>> {
  t.equal(answer.status, 200, `${what}: status 200${answer.status === 200 ? '' : ` (${answer.text.slice(0, 300)})`}`);
  return answer;
}

for (const { role, address } of targets) {
  void t.test(`Locks examples through the ${role}`, async (t) => {
    const name = `lock-${role}`;
    const acquired = expectPlain(t, await call(address, 'POST', `/v1/locks/${name}/acquire`, { body: { ttl: 10 } }), 'acquire a free lock');
    t.same(Object.keys(acquired.json).sort(), ['fence', 'key', 'lease', 'name']);
    t.equal(acquired.json.name, name);
    t.equal(acquired.json.fence, 1, 'the first holder has fence 1');
    t.match(acquired.json.key, new RegExp(`^_keel/locks/${name}/waiters/\\d{16}$`), 'the holder key');
    const a = acquired.json as { key: string; fence: number; lease: number };

    const read = expectOk(t, await call(address, 'GET', `/v1/locks/${name}`), 'read');
    t.same(read.json, { name, holder: { key: a.key, fence: 1, lease: a.lease }, waiters: 0 });

    const started = performance.now();
    expectError(t, await call(address, 'POST', `/v1/locks/${name}/acquire`, { body: { ttl: 10, waitMs: 300 } }), 'WAIT_TIMEOUT', 'held elsewhere, waitMs 300');
    t.ok(performance.now() - started >= 290, 'answered after about waitMs');
    t.equal(expectOk(t, await call(address, 'GET', `/v1/locks/${name}`), 'read').json.waiters, 0, 'the timed-out waiter was removed');

    // A client with its own lease waits (through the other follower); the holder releases; it gets fence 2.
    const lease = expectOk(t, await call(other, 'POST', '/v1/leases', { body: { ttl: 10 } }), 'grant', 201).json.id as number;
    const waiting = call(other, 'POST', `/v1/locks/${name}/acquire`, { body: { lease, waitMs: 10_000 } });
    await waitForWaiters(address, name, 1);
    expectError(t, await call(address, 'POST', `/v1/locks/${name}/acquire`, { body: { lease: 987_654_321 } }), 'LEASE_NOT_FOUND', 'unknown lease');

    expectOk(t, await call(address, 'PUT', `/v1/kv/${name}-data`, { body: { value: 'by a', fence: { lock: name, token: a.fence } } }), 'fenced write by the holder');
    expectOk(t, await call(address, 'POST', `/v1/locks/${name}/release`, { body: { key: a.key } }), 'release');
    const b = expectPlain(t, await waiting, 'the waiter acquires').json as { key: string; fence: number; lease: number };
    t.equal(b.fence, 2, 'the next holder has fence 2');
    t.equal(b.lease, lease, 'on its own lease');

    expectError(t, await call(address, 'PUT', `/v1/kv/${name}-data`, { body: { value: 'late a', fence: { lock: name, token: a.fence } } }), 'FENCE_REJECTED', "the ex-holder's token");
    expectOk(t, await call(address, 'PUT', `/v1/kv/${name}-data`, { body: { value: 'by b', fence: { lock: name, token: b.fence } } }), "the holder's token");
    t.equal(expectOk(t, await call(address, 'GET', `/v1/kv/${name}-data`), 'read data').json.kv.value, 'by b');

    expectError(t, await call(address, 'POST', `/v1/locks/${name}/release`, { body: { key: a.key } }), 'NOT_FOUND', 'release twice');
    expectError(t, await call(address, 'POST', `/v1/locks/${name}/release`, { body: { key: `_keel/locks/${name}/waiters/0000000000999999` } }), 'NOT_FOUND', 'unknown key');
    const c = call(address, 'POST', `/v1/locks/${name}/acquire`, { body: { ttl: 10, waitMs: 10_000 } });
    await waitForWaiters(address, name, 1);
    const waiterKey = await firstWaiterKey(address, name, b.key);
    expectError(t, await call(address, 'POST', `/v1/locks/${name}/release`, { body: { key: waiterKey } }), 'CONFLICT', 'a waiter cannot release');
    expectOk(t, await call(address, 'POST', `/v1/locks/${name}/release`, { body: { key: b.key } }), 'b releases');
    t.equal(expectPlain(t, await c, 'c acquires').json.fence, 3, 'fence 3');
    expectOk(t, await call(address, 'DELETE', `/v1/leases/${lease}`), 'revoke b lease');
  });

  void t.test(`Elections examples through the ${role}`, async (t) => {
    const name = `election-${role}`;
    const stream = openStream(address, `/v1/watch/${keyPath(`_keel/elections/${name}/`)}?prefix=true`);
    streams.push(stream);
    await stream.next();
    expectOk(t, await call(address, 'GET', `/v1/elections/${name}`), 'no leader yet');
    t.same((await call(address, 'GET', `/v1/elections/${name}`)).json, { name, leader: null });

    const alice = expectPlain(t, await call(address, 'POST', `/v1/elections/${name}/campaign`, { body: { value: 'alice', ttl: 10 } }), 'campaign').json;
    t.same(Object.keys(alice).sort(), ['fence', 'leaderKey', 'lease']);
    t.equal(alice.fence, 1);
    const read = expectOk(t, await call(address, 'GET', `/v1/elections/${name}`), 'read');
    t.same(read.json.leader, { key: alice.leaderKey, value: 'alice', fence: 1, lease: alice.lease });

    const bobCampaign = call(other, 'POST', `/v1/elections/${name}/campaign`, { body: { value: 'bob', ttl: 10, waitMs: 10_000 } });
    await stream.until((lines) => lines.some((l) => l.type === 'put' && String(l.kv.key).includes('/waiters/') && l.kv.value.includes('bob')));

    expectOk(t, await call(address, 'POST', `/v1/elections/${name}/proclaim`, { body: { leaderKey: alice.leaderKey, value: 'alice-2' } }), 'proclaim');
    t.equal((await call(address, 'GET', `/v1/elections/${name}`)).json.leader.value, 'alice-2');
    await stream.until((lines) => lines.some((l) => l.type === 'put' && l.kv.key === `_keel/elections/${name}/holder` && l.kv.value.includes('alice-2')));
    t.pass('observers see the proclaimed value on the watch');
    const bobKey = stream.lines.find((l) => l.type === 'put' && l.kv.value.includes('bob'))!.kv.key as string;
    expectError(t, await call(address, 'POST', `/v1/elections/${name}/proclaim`, { body: { leaderKey: bobKey, value: 'x' } }), 'CONFLICT', 'a candidate cannot proclaim');
    expectError(t, await call(address, 'POST', `/v1/elections/${name}/proclaim`, { body: { leaderKey: `_keel/elections/${name}/waiters/0000000000999999`, value: 'x' } }), 'NOT_FOUND', 'unknown key');
    expectError(t, await call(address, 'POST', `/v1/elections/${name}/resign`, { body: { leaderKey: bobKey } }), 'CONFLICT', 'a candidate cannot resign');

    expectOk(t, await call(address, 'POST', `/v1/elections/${name}/resign`, { body: { leaderKey: alice.leaderKey } }), 'resign');
    const bob = expectPlain(t, await bobCampaign, 'bob is elected').json;
    t.equal(bob.fence, 2, 'with fence 2');
    t.same((await call(address, 'GET', `/v1/elections/${name}`)).json.leader, { key: bob.leaderKey, value: 'bob', fence: 2, lease: bob.lease });
    await stream.until((lines) => lines.some((l) => l.type === 'put' && l.kv.key === `_keel/elections/${name}/holder` && l.kv.value.includes('"bob"')));
    t.pass('observers see the new leader on the watch');
    expectOk(t, await call(address, 'POST', `/v1/elections/${name}/resign`, { body: { leaderKey: bob.leaderKey } }), 'bob resigns');
    t.same((await call(address, 'GET', `/v1/elections/${name}`)).json, { name, leader: null });
  });
}

void t.test('bad input is 400', async (t) => {
  const address = targets[1]!.address;
  const bad: [string, unknown][] = [
    ['/v1/locks/m/acquire', { ttl: 5, lease: 1 }],
    ['/v1/locks/m/acquire', {}],
    ['/v1/locks/m/acquire', { waitMs: 100 }],
    ['/v1/locks/m/acquire', { ttl: 0 }],
    ['/v1/locks/m/acquire', { ttl: 5, waitMs: -1 }],
    ['/v1/locks/m/acquire', { ttl: 5, waitMs: 10_000_000 }],
    ['/v1/locks/m/acquire', { ttl: 5, extra: true }],
    ['/v1/locks/bad%20name/acquire', { ttl: 5 }],
    ['/v1/locks/m/release', {}],
    ['/v1/locks/m/release', { key: 5 }],
    ['/v1/elections/e/campaign', { ttl: 5 }],
    ['/v1/elections/e/campaign', { value: 'v' }],
    ['/v1/elections/e/campaign', { value: 5, ttl: 5 }],
    ['/v1/elections/e/resign', {}],
    ['/v1/elections/e/proclaim', { leaderKey: 'k' }],
  ];
  for (const [path, body] of bad) expectError(t, await call(address, 'POST', path, { body }), 'INVALID_ARGUMENT', `${path} ${JSON.stringify(body)}`);
  expectError(t, await call(address, 'GET', '/v1/locks/bad%20name'), 'INVALID_ARGUMENT', 'GET a bad name');
});

void t.test('every node ends with the same state', async (t) => {
  const states = await stateOfEveryNode(cluster);
  t.equal(new Set(states.map((s) => `${s.revision}:${s.hash}`)).size, 1, `same revision and hash on every node: ${JSON.stringify(states)}`);
});

async function waitForWaiters(address: string, name: string, count: number): Promise<void> {
  const deadline = performance.now() + 10_000;
  while ((await call(address, 'GET', `/v1/locks/${name}`)).json?.waiters !== count) {
    if (performance.now() > deadline) throw new Error(`${name}: never ${count} waiters`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

async function firstWaiterKey(address: string, name: string, holderKey: string): Promise<string> {
  const keys = await call(address, 'GET', `/v1/kv/${keyPath(`_keel/locks/${name}/waiters/`)}?prefix=true&keysOnly=true`);
  const key = (keys.json.kvs as { key: string }[]).map((kv) => kv.key).find((k) => k !== holderKey);
  if (key === undefined) throw new Error('no waiter key');
  return key;
}
