// Goal: the registry's health promises hold on a real cluster, with times measured and printed:
//  1. an instance registered with ttl disappears once its heartbeats stop: never before ttl after the last
//     heartbeat was sent, and within ttl + one (maximal, randomized) election timeout + slack after it was acked;
//  2. an HTTP-checked instance (a tiny HTTP server in this test, switched to 500) turns critical within about
//     one interval, stays listed but is excluded by healthy=true, and is deregistered after deregisterAfterMs of
//     continuous failure — not before; only the leader probes (the server sees ~one request per interval);
//  3. after kill -9 of the leader in the middle of a failure, the new leader starts its own failure clock: the
//     instance is not removed before deregisterAfterMs after the kill;
//  4. a blocking discovery query on a follower is not woken by unrelated writes (other keys, another service,
//     a longer sibling name), and is woken by a registration of its service made through the leader; the time
//     from the registration's ack to the blocked answer is measured over many rounds (median / p90 / max).
// Method: real `keel start` processes on 127.0.0.1 (test/helpers/cluster.ts, tickMs 50 × electionTicks 10: an
// election timeout is 500..1000 ms); times are taken from removal/put events of a watch stream on
// `_keel/services/<service>/` opened on a node that is not killed. Every child is killed by PID in teardown.
import http from 'node:http';
import type net from 'node:net';
import t from 'tap';
import { sleep, startCluster } from '../helpers/cluster.js';
import { call, closeHttp, openStream, roles, type Stream } from '../helpers/http.js';

const tickMs = 50;
const electionTicks = 10;
/** The largest randomized election timeout. */
const electionTimeoutMaxMs = 2 * electionTicks * tickMs;

const cluster = await startCluster(t, { raft: { tickMs, electionTicks } });
t.teardown(closeHttp);
// Generous: on a loaded 2-core machine (other real-process test files run in parallel) startup can take seconds.
await roles(cluster, 60_000);

/** Takes the next stream line and the time it arrived. */
async function nextEvent(stream: Stream, timeoutMs: number): Promise<{ line: Record<string, any>; at: number }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const line = await stream.next(timeoutMs);
  return { line, at: performance.now() };
}

async function statusServer(t: { teardown(fn: () => unknown): void }): Promise<{ url: string; setStatus(code: number): void; requests: () => number }> {
  let status = 200;
  let requests = 0;
  const server = http.createServer((_request, response) => {
    requests++;
    response.statusCode = status;
    response.end(status === 200 ? 'ok' : 'failing');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  }));
  const { port } = server.address() as net.AddressInfo;
  return { url: `http://127.0.0.1:${port}/health`, setStatus: (code) => (status = code), requests: () => requests };
}

void t.test('ttl: the instance goes after its heartbeats stop, never before ttl', async (t) => {
  const { leader, followers } = await roles(cluster);
  const via = cluster.node(followers[0]!).client;
  const observer = cluster.node(leader).client;
  const ttl = 2;
  const stream = openStream(observer, '/v1/watch/_keel/services/ttl-expiry/?prefix=true');
  t.teardown(() => stream.close());
  t.equal((await stream.next()).type, 'created');
  const registered = await call(via, 'PUT', '/v1/services/ttl-expiry/instances/e1', { body: { address: 'h', port: 1, ttl } });
  t.equal(registered.status, 200);
  t.equal((await stream.next()).type, 'put');
  let lastSentAt = 0;
  let lastAckedAt = 0;
  for (let i = 0; i < 4; i++) {
    await sleep(500);
    lastSentAt = performance.now();
    const beat = await call(via, 'POST', '/v1/services/ttl-expiry/instances/e1/heartbeat');
    lastAckedAt = performance.now();
    t.equal(beat.status, 200, `heartbeat ${i + 1}`);
  }
  t.comment('heartbeats stopped');
  const removed = await nextEvent(stream, 10_000);
  t.equal(removed.line.type, 'delete');
  t.equal(removed.line.kv.key, '_keel/services/ttl-expiry/e1');
  const afterSentMs = removed.at - lastSentAt;
  const afterAckMs = removed.at - lastAckedAt;
  const upperMs = ttl * 1000 + electionTimeoutMaxMs + 500;
  t.ok(afterSentMs >= ttl * 1000, `not before ttl: removed ${Math.round(afterSentMs)} ms after the last heartbeat was sent (>= ${ttl * 1000})`);
  t.ok(afterAckMs <= upperMs, `removed ${Math.round(afterAckMs)} ms after the last heartbeat's ack (<= ttl + election timeout + 500 = ${upperMs})`);
  t.comment(`ttl ${ttl} s: instance removed ${Math.round(afterSentMs)} ms after the last heartbeat was sent, ${Math.round(afterAckMs)} ms after its ack`);
  const listed = await call(via, 'GET', '/v1/services/ttl-expiry');
  t.same(listed.json.instances, [], 'discovery no longer lists it');
  t.equal((await call(via, 'POST', '/v1/services/ttl-expiry/instances/e1/heartbeat')).status, 404, 'a late heartbeat is 404');
});

void t.test('HTTP check: critical, excluded by healthy=true, then deregistered after deregisterAfterMs', async (t) => {
  const server = await statusServer(t);
  const { leader, followers } = await roles(cluster);
  const via = cluster.node(followers[0]!).client;
  const stream = openStream(cluster.node(leader).client, '/v1/watch/_keel/services/checked/?prefix=true');
  t.teardown(() => stream.close());
  t.equal((await stream.next()).type, 'created');
  const intervalMs = 200;
  const deregisterAfterMs = 2_000;
  const check = { http: server.url, intervalMs, timeoutMs: 200, deregisterAfterMs };
  const registered = await call(via, 'PUT', '/v1/services/checked/instances/c1', { body: { address: '127.0.0.1', port: 1, check } });
  t.equal(registered.status, 200);
  t.equal((await stream.next()).type, 'put');
  const countFrom = server.requests();
  await sleep(2_000);
  const probes = server.requests() - countFrom;
  t.ok(probes >= 6 && probes <= 2_000 / intervalMs + 2, `one prober (the leader): ${probes} probes in 2 s at intervalMs ${intervalMs}`);
  const listed = await call(via, 'GET', '/v1/services/checked');
  t.same(listed.json.instances[0].check, check, 'the check is listed with the instance');
  t.equal(listed.json.instances[0].status, 'passing');
  t.equal(stream.lines.length, 2, 'a passing check proposes nothing (no revision taken)');

  server.setStatus(500);
  const failedAt = performance.now();
  const critical = await nextEvent(stream, 5_000);
  t.equal(critical.line.type, 'put');
  t.equal(JSON.parse(critical.line.kv.value).status, 'critical');
  const criticalMs = critical.at - failedAt;
  t.ok(criticalMs <= intervalMs + 200 + 500, `critical ${Math.round(criticalMs)} ms after the server started failing`);
  const all = await call(via, 'GET', '/v1/services/checked');
  t.equal(all.json.instances[0]?.status, 'critical', 'still listed, as critical');
  t.same((await call(via, 'GET', '/v1/services/checked?healthy=true')).json.instances, [], 'excluded by healthy=true');
  t.same((await call(via, 'GET', '/v1/services')).json.services.find((s: { name: string }) => s.name === 'checked'), { name: 'checked', instances: 1, healthy: 0 });

  const removed = await nextEvent(stream, deregisterAfterMs + 5_000);
  t.equal(removed.line.type, 'delete', 'deregistered (no other change in between)');
  const removedMs = removed.at - failedAt;
  t.ok(removedMs >= deregisterAfterMs, `not before deregisterAfterMs: removed ${Math.round(removedMs)} ms after the server started failing`);
  t.ok(removedMs <= deregisterAfterMs + intervalMs + 200 + 1_000, `removed within deregisterAfterMs + interval + timeout + 1 s`);
  t.comment(`HTTP check (interval ${intervalMs} ms, deregisterAfterMs ${deregisterAfterMs}): 500 → critical in ${Math.round(criticalMs)} ms, → deregistered in ${Math.round(removedMs)} ms`);
});

void t.test('a new leader starts its own failure clock', async (t) => {
  const server = await statusServer(t);
  const { leader, followers } = await roles(cluster);
  const observer = cluster.node(followers[0]!).client;
  const stream = openStream(observer, '/v1/watch/_keel/services/failover/?prefix=true');
  t.teardown(() => stream.close());
  t.equal((await stream.next()).type, 'created');
  const deregisterAfterMs = 3_000;
  const check = { http: server.url, intervalMs: 200, timeoutMs: 200, deregisterAfterMs };
  t.equal((await call(observer, 'PUT', '/v1/services/failover/instances/f1', { body: { address: 'h', port: 1, check } })).status, 200);
  t.equal((await stream.next()).type, 'put');
  server.setStatus(500);
  const failedAt = performance.now();
  t.equal(JSON.parse((await stream.next(5_000)).kv.value).status, 'critical', 'critical on the first leader');
  await sleep(1_500);
  await cluster.kill(leader, 'SIGKILL');
  const killedAt = performance.now();
  const survivors = cluster.running().map((n) => n.id);
  const newLeader = await cluster.waitForLeader(10_000, survivors);
  const electedAt = performance.now();
  const removed = await nextEvent(stream, deregisterAfterMs + 10_000);
  t.equal(removed.line.type, 'delete');
  const afterKillMs = removed.at - killedAt;
  t.ok(afterKillMs >= deregisterAfterMs, `not removed before deregisterAfterMs after the kill (${Math.round(afterKillMs)} ms), though failing for ${Math.round(removed.at - failedAt)} ms`);
  t.ok(removed.at - electedAt <= deregisterAfterMs + 200 + 200 + 1_500, 'removed by the new leader within deregisterAfterMs + interval + timeout + slack of its election');
  t.comment(`leader ${leader} killed after 1.5 s of failure; ${newLeader} leads ${Math.round(electedAt - killedAt)} ms later; removed ${Math.round(afterKillMs)} ms after the kill (deregisterAfterMs ${deregisterAfterMs})`);
  cluster.start(leader);
  await cluster.waitForLeader(15_000);
});

void t.test('blocking discovery: not woken by unrelated writes; wake-up latency after a registration', async (t) => {
  const { leader, followers } = await roles(cluster);
  const writer = cluster.node(leader).client;
  const reader = cluster.node(followers[0]!).client;
  const service = 'latency';
  await call(writer, 'PUT', `/v1/services/${service}/instances/seed`, { body: { address: 'h', port: 1 } });
  const rounds = 30;
  const latencies: number[] = [];
  const fromSend: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const index = (await call(reader, 'GET', `/v1/services/${service}`)).json.index as number;
    let answeredAt: number | null = null;
    const blocked = call(reader, 'GET', `/v1/services/${service}?index=${index}&waitMs=20000`, { timeoutMs: 30_000 }).then((answer) => {
      answeredAt = performance.now();
      return answer;
    });
    await sleep(50);
    if (round === 0) {
      // Unrelated writes, through both nodes: another key, another service, a longer sibling name, a lease.
      await call(writer, 'PUT', '/v1/kv/latency-noise', { body: { value: 'x' } });
      await call(reader, 'PUT', '/v1/kv/latency-noise', { body: { value: 'y' } });
      await call(writer, 'PUT', `/v1/services/${service}-other/instances/n1`, { body: { address: 'h', port: 1 } });
      await call(writer, 'PUT', `/v1/services/${service}x/instances/n1`, { body: { address: 'h', port: 1 } });
      await call(writer, 'POST', '/v1/leases', { body: { ttl: 30 } });
      await sleep(500);
      t.equal(answeredAt, null, 'unrelated writes did not wake the blocked query');
    }
    const sentAt = performance.now();
    const registered = await call(writer, 'PUT', `/v1/services/${service}/instances/r${round}`, { body: { address: 'h', port: 1 } });
    const ackedAt = performance.now();
    const answer = await blocked;
    t.ok(answer.json.instances.some((i: { id: string }) => i.id === `r${round}`), `round ${round}: the answer has the new instance`);
    t.ok(answer.json.index >= registered.json.revision);
    latencies.push(answeredAt! - ackedAt);
    fromSend.push(answeredAt! - sentAt);
  }
  const describe = (values: number[]): string => {
    const sorted = [...values].sort((a, b) => a - b);
    const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
    return `median ${at(0.5).toFixed(1)} ms, p90 ${at(0.9).toFixed(1)} ms, min ${sorted[0]!.toFixed(1)} ms, max ${sorted[sorted.length - 1]!.toFixed(1)} ms`;
  };
  // The follower may apply (and answer) before the leader's ack reaches the writer: answer − ack can be < 0.
  t.comment(`blocked discovery on a follower, registration through the leader, ${rounds} rounds: answer − registration ack: ${describe(latencies)}; answer − registration sent: ${describe(fromSend)}`);
  const median = [...latencies].sort((a, b) => a - b)[Math.floor(rounds / 2)]!;
  t.ok(median < 200, 'the median wake-up is well under an election timeout');
});
