// Goal: a follower that was down while the leader compacted its log past the follower's last entry catches up
// by installing a snapshot (RELIABILITY.md L5): after restart its appliedIndex reaches the leader's commitIndex,
// a serializable (local) read on it returns the last key written, /health turns 200, and its /metrics count at
// least one installed snapshot. The leader's periodic snapshots have no data: it exported one (and only a few)
// when the follower asked. Then all three are killed and restarted: each comes back from its synced store and
// its compacted log with every key.
// Method: a real 3-node cluster (test/helpers/cluster.ts) with raft.snapshotEntries 50 and snapshotKeepEntries 10,
// so the leader snapshots and compacts every 50 entries. One follower is killed (SIGKILL, by PID), 400 keys are
// written through the survivors, the follower restarts and is polled. Every child is killed by PID in teardown.
import t from 'tap';
import type { HttpClient } from '../../src/client.js';
import { startCluster } from '../helpers/cluster.js';
import { getText, metricValue, setupWaitMs, waitFor } from '../helpers/runtime.js';

const keyCount = 400;

void t.test('a restarted follower behind a compacted log catches up through a snapshot', async (t) => {
  const cluster = await startCluster(t, { nodes: 3, raft: { snapshotEntries: 50, snapshotKeepEntries: 10 } });
  const leader = await cluster.waitForLeader(setupWaitMs);
  const follower = cluster.nodes.find((n) => n.id !== leader)!.id;
  await cluster.client().call('PUT', '/v1/kv/catch-up/first', { value: 'before the kill' });

  await cluster.kill(follower, 'SIGKILL');
  const survivors = cluster.running().map((n) => n.id);
  await writeMany(cluster.client(survivors), keyCount, 8);
  const lastKey = `catch-up/last`;
  await cluster.client(survivors).call('PUT', `/v1/kv/${lastKey}`, { value: 'the last write' });
  const leaderStatus = (await cluster.status(leader))!;
  t.ok(leaderStatus.commitIndex > keyCount, `leader commitIndex ${leaderStatus.commitIndex} after ${keyCount} writes`);

  const restartedAt = performance.now();
  cluster.start(follower);
  const caughtUp = await waitFor(`${follower} to apply up to ${leaderStatus.commitIndex}`, setupWaitMs, async () => {
    const s = await cluster.status(follower);
    return s !== null && s.appliedIndex >= leaderStatus.commitIndex ? s : null;
  });
  t.comment(`${follower} caught up to ${caughtUp.appliedIndex} ${Math.round(performance.now() - restartedAt)} ms after restart`);
  t.equal(caughtUp.leader, leader, `${follower} follows ${leader}`);

  const local = cluster.client([follower]);
  const read = await local.call<{ kv: { value: string } }>('GET', `/v1/kv/${lastKey}?consistency=serializable`);
  t.equal(read.body.kv.value, 'the last write', `a serializable read on ${follower} returns the last key`);
  const count = await local.call<{ count: number }>('GET', '/v1/kv/catch-up/?prefix=true&countOnly=true&consistency=serializable');
  t.equal(count.body.count, keyCount + 2, `${follower} holds all ${keyCount + 2} keys locally`);

  const health = await waitFor(`${follower} /health 200`, 5_000, async () => {
    const h = await getText(cluster.node(follower).client, '/health');
    return h.status === 200 ? h : null;
  });
  t.equal(health.status, 200, `${follower}: /health is 200`);
  const metrics = await getText(cluster.node(follower).client, '/metrics');
  const installed = metricValue(metrics.text, 'keel_raft_snapshots_installed_total') ?? 0;
  t.ok(installed >= 1, `${follower}: keel_raft_snapshots_installed_total = ${installed} ≥ 1`);
  const leaderMetrics = await getText(cluster.node(leader).client, '/metrics');
  t.ok((metricValue(leaderMetrics.text, 'keel_raft_snapshots_taken_total') ?? 0) >= keyCount / 50 - 1, `${leader}: snapshots were taken`);
  // The periodic snapshots carry no data: the leader exported one only when the restarted follower needed it.
  const exported = metricValue(leaderMetrics.text, 'keel_raft_snapshots_exported_total') ?? 0;
  t.ok(exported >= 1 && exported <= 3, `${leader}: keel_raft_snapshots_exported_total = ${exported}, for the follower only`);

  // Every node restarts from a log compacted behind a snapshot without data: its store must stand for it.
  const before = (await cluster.status(leader))!;
  for (const node of cluster.nodes.map((n) => n.id)) await cluster.kill(node, 'SIGKILL');
  for (const node of cluster.nodes.map((n) => n.id)) cluster.start(node);
  await cluster.waitForLeader(setupWaitMs);
  for (const node of cluster.nodes.map((n) => n.id)) {
    const back = await waitFor(`${node} to apply up to ${before.commitIndex} after a restart`, setupWaitMs, async () => {
      const s = await cluster.status(node);
      return s !== null && s.appliedIndex >= before.commitIndex ? s : null;
    });
    const held = await cluster.client([node]).call<{ count: number }>('GET', '/v1/kv/catch-up/?prefix=true&countOnly=true&consistency=serializable');
    t.equal(held.body.count, keyCount + 2, `${node} restarted at ${back.appliedIndex} and holds all ${keyCount + 2} keys`);
  }
});

async function writeMany(client: HttpClient, count: number, concurrency: number): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < count; i = next++) {
      await client.call('PUT', `/v1/kv/catch-up/${String(i).padStart(4, '0')}`, { value: `value-${i}` });
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}
