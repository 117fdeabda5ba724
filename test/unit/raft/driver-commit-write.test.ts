// The driver's write path at low load (src/raft/io/driver.ts persist() and applyWhileWriting()): a Ready that
// only moves the commit index gets no LevelDB write of its own (one log batch per sequential put, not two), the
// commit index kept back reaches the disk at close(), and every put is still answered with its own result.
import { rmSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { LevelLogStorage } from '../../../src/raft/io/index.js';
import { encodeCommand } from '../../../src/store/index.js';
import { startInProcessCluster } from '../../helpers/in-process-cluster.js';

const puts = 40;

void t.test('sequential puts: one log batch per put on every node, commit index written at close', async (t) => {
  const cluster = await startInProcessCluster({ tickMs: 50 });
  let closed = false;
  try {
    const leader = await cluster.waitForLeader(15_000);
    // Let the election's own writes settle before counting.
    await new Promise((resolve) => setTimeout(resolve, 300));
    const before = cluster.nodes.map((n) => n.storage.stats().batches);
    let lastRevision = 0;
    for (let n = 0; n < puts; n++) {
      const command = encodeCommand({ requestId: `commit-write-${n}`, cmd: { kind: 'put', key: `k/${n}`, value: `v${n}`, lease: 0, prevKv: false } });
      const result = (await leader.driver.propose(command)) as { revision: number };
      t.ok(result.revision > lastRevision, `put ${n} answered with a newer revision (${result.revision})`);
      lastRevision = result.revision;
    }
    const lastIndex = leader.driver.status().lastIndex;
    // Followers learn the last commit from the next heartbeat; wait until everyone applied everything.
    const deadline = performance.now() + 10_000;
    while (cluster.nodes.some((n) => n.driver.appliedIndex < lastIndex) && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    for (const [i, node] of cluster.nodes.entries()) {
      t.equal(node.driver.appliedIndex, lastIndex, `${node.id} applied every put`);
      const batches = node.storage.stats().batches - before[i]!;
      // Before: one synced batch for the entry and one more for the commit index, per put (80 here).
      t.ok(batches <= puts + 3, `${node.id}: ${batches} log batches for ${puts} sequential puts (at most ${puts + 3})`);
    }
    for (const node of cluster.nodes) await node.driver.close();
    for (const node of cluster.nodes) {
      await node.transport.close();
      await node.storage.close();
      await node.store.close();
    }
    closed = true;
    for (const node of cluster.nodes) {
      const reopened = await LevelLogStorage.open(path.join(cluster.dir, node.id, 'raft'));
      const commit = reopened.initialState().hardState.commit;
      await reopened.close();
      t.ok(commit >= lastIndex, `${node.id}: the commit index on disk after close (${commit}) covers the last put (${lastIndex})`);
    }
  } finally {
    if (closed) rmSync(cluster.dir, { recursive: true, force: true });
    else await cluster.close();
  }
});

void t.test('sequential puts: the commit index rides on the next append, and reaches followers soon after writes stop', async (t) => {
  // Heartbeats every 200 ms, so the followers' catch-up below cannot come from them; commits held up to 40 ms (the
  // default is 5), so the next put always comes first even on a loaded machine.
  const cluster = await startInProcessCluster({ tickMs: 200, commitHoldMs: 40 });
  t.teardown(() => cluster.close());
  const leader = await cluster.waitForLeader(15_000);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const sentBefore = leader.transport.stats().messagesSent;
  const startedAt = performance.now();
  const starts: number[] = [];
  for (let n = 0; n < puts; n++) {
    const command = encodeCommand({ requestId: `hold-${n}`, cmd: { kind: 'put', key: `h/${n}`, value: `v${n}`, lease: 0, prevKv: false } });
    starts.push(performance.now());
    await leader.driver.propose(command);
  }
  const sent = leader.transport.stats().messagesSent - sentBefore;
  const endedAt = performance.now();
  const heartbeats = 2 * Math.ceil((endedAt - startedAt) / 200 + 1);
  // A put's commit is held from its commit until the next put's append leaves: if the process stalled for the whole
  // hold (a GC pause, a loaded CI machine: this cluster shares the test's process), it went out on its own, one
  // message per follower. Allowed once per window from a put's start to the next one's answer of commitHoldMs or more.
  const windowEnds = [...starts.slice(2), endedAt, endedAt];
  const stalls = starts.filter((start, n) => windowEnds[n]! - start >= 40).length;
  t.ok(stalls < puts / 4, `${stalls} of ${puts} puts saw a stall of the commit hold (the count below means little if most did)`);
  // Before: an append with the entry and then one with only the new commit index, per follower and put.
  t.ok(
    sent <= 2 * puts + heartbeats + 2 * stalls,
    `leader sent ${sent} messages for ${puts} puts (4 per put before; at most ${2 * puts} + ${heartbeats} heartbeats + ${2 * stalls} for stalls)`,
  );
  const lastIndex = leader.driver.status().lastIndex;
  const stoppedAt = performance.now();
  while (cluster.nodes.some((n) => n.driver.appliedIndex < lastIndex) && performance.now() - stoppedAt < 5_000) {
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  const tookMs = performance.now() - stoppedAt;
  for (const node of cluster.nodes) t.equal(node.driver.appliedIndex, lastIndex, `${node.id} applied the last put`);
  // commitHoldMs (40) plus slack for a loaded machine, under the 200 ms heartbeat interval.
  t.ok(tookMs < 180, `followers applied the last put ${tookMs.toFixed(1)} ms after it was answered`);
});
