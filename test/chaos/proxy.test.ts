// Goal: every node-to-node byte goes through the fault proxies (the `dial` overrides reach both the Raft
// transport and follower forwarding), so cutting a node's proxies really partitions it: an isolated follower can
// no longer get a write committed through the leader, the majority goes on, and healing restores it. Also: the
// debug endpoint answers 404 unless the debug flag is on, and dumps applied entries that agree across nodes.
import t from 'tap';
import { SeededPrng } from '../../src/util/prng.js';
import { removeTestDir, startCluster } from '../helpers/cluster.js';
import { startChaosCluster } from './cluster.js';
import { ChaosHttp } from './workloads/recorder.js';
import type { AppliedEntry } from './history.js';

void t.test('proxies carry peer and forwarded traffic; a cut isolates a node; heal restores it', async (t) => {
  const chaos = await startChaosCluster(3, new SeededPrng(7), 'warn');
  t.teardown(async () => {
    await chaos.close();
    removeTestDir(t, chaos.cluster.dir);
  });
  const { cluster, proxies } = chaos;
  const leader = await cluster.waitForLeader(30_000);
  const follower = cluster.nodes.map((n) => n.id).find((id) => id !== leader)!;
  const http = new ChaosHttp(cluster.nodes.map((n) => ({ id: n.id, address: n.client })), 5000);
  t.teardown(() => http.close());
  t.equal((await http.send(follower, 'PUT', '/v1/kv/a', { value: '1' }, 'p-1')).status, 200, 'a follower forwards through its proxy');

  for (const [pair, list] of proxies) if (pair.startsWith(`${follower}->`) || pair.endsWith(`->${follower}`)) for (const p of list) p.setMode('blackhole');
  const cut = await http.send(follower, 'PUT', '/v1/kv/a', { value: '2' }, 'p-2', 10_000).catch((err: { code?: string }) => ({ status: 0, body: err.code }));
  t.ok([503, 504].includes(cut.status), `an isolated follower cannot commit a write (answered ${cut.status})`);
  t.equal((await http.send(leader, 'PUT', '/v1/kv/b', { value: '1' }, 'p-3')).status, 200, 'the majority goes on');

  for (const list of proxies.values()) for (const p of list) p.heal();
  const deadline = performance.now() + 20_000;
  let healed = 0;
  while (performance.now() < deadline) {
    healed = (await http.send(follower, 'PUT', '/v1/kv/a', { value: '3' }, `p-4-${performance.now()}`).catch(() => ({ status: 0 }))).status;
    if (healed === 200) break;
  }
  t.equal(healed, 200, 'healed: the follower forwards again');

  await cluster.waitForLeader(30_000);
  const dumps: AppliedEntry[][] = [];
  for (const node of cluster.nodes) {
    for (;;) {
      const answer = await http.send(node.id, 'GET', '/v1/debug/applied', undefined, 'dump');
      const body = answer.body as { entries: AppliedEntry[] };
      if (body.entries.length > 0 && body.entries.at(-1)!.revision >= 3) {
        dumps.push(body.entries);
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  const common = Math.min(...dumps.map((d) => d.at(-1)!.index));
  const cut3 = dumps.map((d) => d.filter((e) => e.index <= common));
  t.same(cut3[1], cut3[0], 'every node applied the same entries');
  t.same(cut3[2], cut3[0]);
  t.ok(cut3[0]!.some((e) => e.requestId === 'p-1'), 'with request ids');
});

void t.test('the debug endpoint is 404 when the flag is off', async (t) => {
  const cluster = await startCluster(t, { nodes: 1 });
  await cluster.waitForLeader(30_000);
  const http = new ChaosHttp([{ id: 'n1', address: cluster.node('n1').client }], 5000);
  t.teardown(() => http.close());
  const answer = await http.send('n1', 'GET', '/v1/debug/applied', undefined, 'x');
  t.equal(answer.status, 404);
  t.equal((answer.body as { error: { code: string } }).error.code, 'NOT_FOUND');
});
