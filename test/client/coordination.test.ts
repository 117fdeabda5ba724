// Goal: the coordination helpers of KeelClient work against a real cluster: a Lease's automatic keepalive keeps
// its keys alive well past the TTL, and they go once keepalives stop; a lease revoked behind the client's back is
// reported lost (LEASE_NOT_FOUND) through its signal; withLock excludes concurrent holders, hands out strictly
// increasing fences that guard writes, and aborts the function (and rejects) when the lock's lease is lost; a
// lock waiter keeps its place when the node it waits on is killed;
// registerService shows up in discovery (weighted picking by `weight`), stays past its TTL while the handle
// heartbeats, and disappears promptly after close(); elections elect one candidate at a time and observe() sees
// each leader.
// Method: 3 real `keel start` processes (test/helpers/cluster.ts), test Raft timings (50 ms ticks); timings are
// checked against the TTL bounds of API.md (expiry no earlier than ttl, no later than ttl + an election timeout).
import t from 'tap';
import { KeelClient, isKeelError } from '../../src/index.js';
import type { ElectionLeader } from '../../src/index.js';
import { sleep, startCluster } from '../helpers/cluster.js';
import { waitFor } from '../helpers/runtime.js';

async function cluster3(t: Parameters<typeof startCluster>[0]): Promise<KeelClient> {
  const cluster = await startCluster(t);
  await cluster.waitForLeader(30_000);
  const client = new KeelClient(cluster.nodes.map((n) => n.client));
  t.teardown(() => client.close());
  return client;
}

void t.test('leases: keepalive keeps keys past the TTL; they expire once it stops; loss is reported', async (t) => {
  const client = await cluster3(t);
  const lease = await client.leases.grant(2);
  t.teardown(() => lease.close());
  await client.put('session/alive', 'yes', { lease: lease.id });
  await sleep(5_000);
  t.equal((await client.get('session/alive'))?.value, 'yes', 'still there after 2.5 TTLs: the keepalives work');
  const info = await client.leases.timeToLive(lease.id);
  t.same(info.keys, ['session/alive']);
  t.ok(info.ttl >= 1 && info.ttl <= 2, `remaining ttl ${info.ttl}`);
  t.ok((await client.leases.list()).some((l) => l.id === lease.id));

  await lease.close();
  const stoppedAt = Date.now();
  await waitFor('the key to expire', 8_000, async () => ((await client.get('session/alive')) === null ? true : null));
  const expiredMs = Date.now() - stoppedAt;
  t.ok(expiredMs > 1_000 && expiredMs < 5_000, `expired ${expiredMs} ms after the keepalives stopped (ttl 2 s)`);

  const doomed = await client.leases.grant(3);
  t.teardown(() => doomed.close());
  await client.leases.revoke(doomed.id);
  const lost = await Promise.race([doomed.lost, sleep(4_000).then(() => null)]);
  t.ok(lost !== null && isKeelError(lost, 'LEASE_NOT_FOUND'), 'a revoked lease is reported lost by the next keepalive');
  t.ok(doomed.signal.aborted && !doomed.isActive);
});

void t.test('withLock: mutual exclusion, increasing fences, fenced writes, abort on loss', async (t) => {
  const client = await cluster3(t);
  let holders = 0;
  let maxHolders = 0;
  const fences: number[] = [];
  await Promise.all(
    Array.from({ length: 4 }, (_, i) =>
      client.withLock('jobs', async ({ fence, signal }) => {
        holders++;
        maxHolders = Math.max(maxHolders, holders);
        fences.push(fence);
        t.notOk(signal.aborted);
        await sleep(150 + i * 10);
        holders--;
      }, { ttl: 5, waitMs: 20_000 }),
    ),
  );
  t.equal(maxHolders, 1, 'never two holders at once');
  t.equal(fences.length, 4);
  t.ok(fences.every((f, i) => i === 0 || f > fences[i - 1]!), `fences strictly increase in grant order: ${fences.join(',')}`);

  const newest = await client.withLock('jobs', async (ctx) => {
    await client.put('jobs/out', 'by holder', { fence: ctx.fenceToken });
    return ctx.fence;
  });
  t.ok(newest > fences[fences.length - 1]!, 'a later holder has a higher fence');
  await t.rejects(client.put('jobs/out', 'stale', { fence: { lock: 'jobs', token: newest } }), { code: 'FENCE_REJECTED' }, 'an ex-holder cannot write');

  let sawAbort = false;
  const lossAt = Date.now();
  await t.rejects(
    client.withLock('jobs', async (ctx) => {
      await client.leases.revoke(ctx.lease); // the lock's lease goes behind the holder's back
      await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
      sawAbort = true;
    }, { ttl: 3 }),
    { code: 'LEASE_NOT_FOUND' },
  );
  t.ok(sawAbort, `fn was aborted through its signal ${Date.now() - lossAt} ms after the loss`);
  const state = await client.locks.state('jobs');
  t.equal(state.holder, null, 'the lock is free again');
});

void t.test('locks: a waiter survives the kill -9 of the node it waits on', async (t) => {
  const cluster = await startCluster(t);
  const leader = await cluster.waitForLeader(30_000);
  const victim = cluster.nodes.find((n) => n.id !== leader)!;
  const holderClient = new KeelClient(cluster.nodes.filter((n) => n !== victim).map((n) => n.client));
  const waiterClient = new KeelClient([victim.client, ...cluster.nodes.filter((n) => n !== victim).map((n) => n.client)]);
  t.teardown(async () => {
    await holderClient.close();
    await waiterClient.close();
  });
  const held = await holderClient.locks.acquire('ha', { ttl: 5 });
  const waiting = waiterClient.locks.acquire('ha', { ttl: 5, waitMs: 60_000 });
  await waitFor('the waiter to queue', 10_000, async () => ((await holderClient.locks.state('ha')).waiters >= 1 ? true : null));
  await sleep(6_000); // past the HttpClient's own fail-over window: the re-acquire in acquireWithLease must do it
  await cluster.kill(victim.id, 'SIGKILL');
  await sleep(1_000);
  await held.release();
  const got = await waiting;
  t.ok(got.fence > held.fence, `the waiter got the lock after its node died (fence ${held.fence} -> ${got.fence})`);
  t.ok(got.isHeld);
  await got.release();
});

void t.test('registerService: discovered, kept alive past its TTL, gone after close()', async (t) => {
  const client = await cluster3(t);
  const heavy = await client.registerService('web', { id: 'w1', address: '10.0.0.1', port: 8080, weight: 3, tags: ['v2'] }, { ttl: 2 });
  const light = await client.registerService('web', { id: 'w2', address: '10.0.0.2', port: 8080, weight: 1 }, { ttl: 2 });
  t.teardown(async () => {
    await heavy.close().catch(() => {});
    await light.close().catch(() => {});
  });
  const picker = await client.picker('web', { strategy: 'weighted', waitMs: 2_000 });
  t.teardown(() => picker.close());
  t.same(picker.instances.map((i) => i.id), ['w1', 'w2']);
  const picks = Array.from({ length: 8 }, () => picker.pick()!.id);
  t.equal(picks.filter((id) => id === 'w1').length, 6, `weight 3:1 over 8 picks: ${picks.join(',')}`);
  t.same((await client.services.get('web', { tag: 'v2' })).instances.map((i) => i.id), ['w1'], 'tag filter');

  await sleep(5_000);
  t.same((await client.services.get('web')).instances.map((i) => i.id), ['w1', 'w2'], 'both still registered after 2.5 TTLs');
  t.same((await client.services.list()).find((s) => s.name === 'web'), { name: 'web', instances: 2, healthy: 2 });

  const closedAt = Date.now();
  await heavy.close();
  await waitFor('the picker to drop w1', 3_000, () => (picker.instances.length === 1 ? true : null), 20);
  t.ok(Date.now() - closedAt < 3_000, `the blocking query saw the removal after ${Date.now() - closedAt} ms`);
  t.equal(picker.pick()?.id, 'w2');
  await light.close();
  await waitFor('the picker to be empty', 3_000, () => (picker.instances.length === 0 ? true : null), 20);
  t.equal(picker.pick(), undefined);
});

void t.test('elections: one leader at a time, observed in order', async (t) => {
  const client = await cluster3(t);
  const observed: (ElectionLeader | null)[] = [];
  const controller = new AbortController();
  const observing = (async () => {
    for await (const leader of client.observe('primary', { signal: controller.signal })) observed.push(leader);
  })();
  const a = await client.campaign('primary', 'node-a', { ttl: 5 });
  const bElected = client.campaign('primary', 'node-b', { ttl: 5, waitMs: 20_000 });
  await sleep(300);
  t.equal((await client.elections.leader('primary'))?.value, 'node-a');
  await a.proclaim('node-a2');
  await a.resign();
  const b = await bElected;
  t.ok(b.fence > a.fence, 'the next leader has a higher fence');
  t.equal((await client.elections.leader('primary'))?.value, 'node-b');
  await b.resign();
  await waitFor('observe to see everything', 3_000, () => (observed.length >= 6 ? true : null), 20);
  controller.abort();
  await observing;
  t.same(
    observed.map((l) => l?.value ?? null),
    [null, 'node-a', 'node-a2', null, 'node-b', null],
    'none, a, a (proclaimed), none (a resigned; b is promoted by a separate entry), b, none',
  );
});
