// Goal: locks are safe and live on a real cluster (RELIABILITY.md S16, L7):
//   - five clients contend for one lock, each increments a counter key under it with fenced writes: the final
//     count equals the number of acquisitions (no lost update), every acquisition has a distinct fence, and fences
//     increase in the order the counter advanced;
//   - a holder whose lease expires loses the lock; the next waiter gets it with a higher fence, never before the
//     holder's ttl and within ttl + election timeout + slack of its last keepalive; the ex-holder's late fenced
//     write is refused with 412 FENCE_REJECTED while the new holder's succeeds.
// Method: real processes (tickMs 50 × electionTicks 10); clients talk to random nodes (leader and followers);
// counter reads are linearizable; every fence and written value is recorded and checked at the end.
import t from 'tap';
import { startCluster } from '../helpers/cluster.js';
import { call, closeHttp, roles, stateOfEveryNode } from '../helpers/http.js';

const electionTimeoutMaxMs = 2 * 10 * 50;
const slackMs = 700;

t.teardown(closeHttp);
const cluster = await startCluster(t);
const { leader, followers } = await roles(cluster);
const addresses = [leader, ...followers].map((id) => cluster.node(id).client);

function anyNode(i: number): string {
  return addresses[i % addresses.length]!;
}

void t.test('five clients, one lock, fenced increments: no lost update, fences distinct and increasing', async (t) => {
  const rounds = 6;
  const writes: { value: number; fence: number; client: number }[] = [];
  let acquisitions = 0;
  const client = async (c: number): Promise<void> => {
    for (let round = 0; round < rounds; round++) {
      const address = anyNode(c + round);
      const acquired = await call(address, 'POST', '/v1/locks/counter-lock/acquire', { body: { ttl: 10, waitMs: 60_000 }, timeoutMs: 70_000 });
      if (acquired.status !== 200) throw new Error(`client ${c}: acquire answered ${acquired.status} ${acquired.text}`);
      acquisitions++;
      const { key, fence } = acquired.json as { key: string; fence: number };
      const read = await call(anyNode(c + round + 1), 'GET', '/v1/kv/counter');
      const current = read.status === 404 ? 0 : Number(read.json.kv.value);
      const next = current + 1;
      const put = await call(anyNode(c + round + 2), 'PUT', '/v1/kv/counter', { body: { value: String(next), fence: { lock: 'counter-lock', token: fence } } });
      if (put.status !== 200) throw new Error(`client ${c}: fenced put answered ${put.status} ${put.text}`);
      writes.push({ value: next, fence, client: c });
      const released = await call(address, 'POST', '/v1/locks/counter-lock/release', { body: { key } });
      if (released.status !== 200) throw new Error(`client ${c}: release answered ${released.status} ${released.text}`);
    }
  };
  const started = performance.now();
  await Promise.all([0, 1, 2, 3, 4].map(client));
  const elapsedMs = performance.now() - started;
  const final = Number((await call(addresses[0]!, 'GET', '/v1/kv/counter')).json.kv.value);
  t.equal(acquisitions, 5 * rounds, `${acquisitions} acquisitions`);
  t.equal(final, acquisitions, 'the counter equals the number of acquisitions: no lost update');
  const fences = writes.map((w) => w.fence);
  t.equal(new Set(fences).size, fences.length, 'every acquisition had a distinct fence');
  const byValue = [...writes].sort((a, b) => a.value - b.value);
  t.same(byValue.map((w) => w.value), Array.from({ length: acquisitions }, (_, i) => i + 1), 'each value written once');
  t.ok(byValue.every((w, i) => i === 0 || w.fence > byValue[i - 1]!.fence), 'fences increase in the order the counter advanced');
  t.comment(`${acquisitions} fenced critical sections in ${Math.round(elapsedMs)} ms (${Math.round(elapsedMs / acquisitions)} ms each)`);
});

void t.test('a holder whose lease expires loses the lock; its late fenced write is 412', async (t) => {
  const ttlMs = 2_000;
  // A holds through an explicit lease it stops keeping alive (a paused or dead client).
  const granted = await call(anyNode(1), 'POST', '/v1/leases', { body: { ttl: ttlMs / 1000 } });
  const leaseA = granted.json.id as number;
  const lastKeepaliveSentMs = performance.now();
  const kept = await call(anyNode(1), 'POST', `/v1/leases/${leaseA}/keepalive`);
  const lastKeepaliveAckMs = performance.now();
  t.equal(kept.status, 200, 'A kept its lease alive once');
  const a = await call(anyNode(2), 'POST', '/v1/locks/expiry-lock/acquire', { body: { lease: leaseA } });
  t.equal(a.status, 200, 'A holds the lock');
  const fenceA = a.json.fence as number;
  t.equal((await call(anyNode(0), 'PUT', '/v1/kv/guarded', { body: { value: 'A', fence: { lock: 'expiry-lock', token: fenceA } } })).status, 200, 'A writes while it holds');

  // B waits (its own lease, kept alive by the node while it waits).
  const b = await call(anyNode(0), 'POST', '/v1/locks/expiry-lock/acquire', { body: { ttl: 10, waitMs: 15_000 }, timeoutMs: 20_000 });
  const acquiredMs = performance.now();
  t.equal(b.status, 200, 'B gets the lock');
  const fenceB = b.json.fence as number;
  t.ok(fenceB > fenceA, `B's fence ${fenceB} is higher than A's ${fenceA}`);
  t.ok(acquiredMs - lastKeepaliveSentMs >= ttlMs, `not before A's ttl (${Math.round(acquiredMs - lastKeepaliveSentMs)} ms after A's last keepalive)`);
  const bound = ttlMs + electionTimeoutMaxMs + slackMs;
  t.ok(acquiredMs - lastKeepaliveAckMs <= bound, `hand-over ${Math.round(acquiredMs - lastKeepaliveAckMs)} ms after A's last ack (bound ${bound})`);
  t.comment(`hand-over: B acquired ${Math.round(acquiredMs - lastKeepaliveSentMs)} ms after A's last keepalive was sent (ttl ${ttlMs})`);

  const late = await call(anyNode(1), 'PUT', '/v1/kv/guarded', { body: { value: 'A late', fence: { lock: 'expiry-lock', token: fenceA } } });
  t.equal(late.status, 412, 'the ex-holder late write is refused');
  t.equal(late.json?.error?.code, 'FENCE_REJECTED');
  t.equal((await call(anyNode(2), 'PUT', '/v1/kv/guarded', { body: { value: 'B', fence: { lock: 'expiry-lock', token: fenceB } } })).status, 200, 'the new holder writes');
  t.equal((await call(anyNode(0), 'GET', '/v1/kv/guarded')).json.kv.value, 'B', 'the data is the new holder’s');
  const lock = await call(anyNode(1), 'GET', '/v1/locks/expiry-lock');
  t.same({ key: lock.json.holder.key, fence: lock.json.holder.fence }, { key: b.json.key, fence: fenceB }, 'B is the holder everywhere');
});

void t.test('every node ends with the same state', async (t) => {
  const states = await stateOfEveryNode(cluster);
  t.equal(new Set(states.map((s) => `${s.revision}:${s.hash}`)).size, 1, `same revision and hash on every node: ${JSON.stringify(states)}`);
});
