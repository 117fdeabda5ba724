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
