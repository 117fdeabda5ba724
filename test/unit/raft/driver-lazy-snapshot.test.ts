// Goal: the driver's periodic snapshots carry no data (the store is synced and stands for them), and one with
// data is exported only when asked for (src/raft/io/driver.ts maybeSnapshot/onTick): what the core does when a
// follower needs a snapshot and the latest has none.
// Method: a real in-process cluster with snapshotEntries 30 and 55 puts, so every node took its first snapshot.
// Each node's snapshot has no data and no file, and nothing was exported. Then one node's log is asked for its
// snapshot, as the core asks when it must send one: it refuses (SnapshotUnavailableError) and remembers it, the
// driver exports one from its next tick with the loop idle, and the log then serves it, at or past the index it
// refused at, with the store's appliedIndex in its data. One node's store answers its first persist() with false
// (busy, as during a defrag): that node puts its snapshot off by a tenth of snapshotEntries and takes it then.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { SnapshotUnavailableError } from '../../../src/raft/storage.js';
import { encodeCommand } from '../../../src/store/index.js';
import { decodeSnapshot } from '../../../src/store/snapshot.js';
import { startInProcessCluster } from '../../helpers/in-process-cluster.js';

const snapshotFiles = (clusterDir: string, id: string): string[] => {
  try {
    return readdirSync(path.join(clusterDir, id, 'raft', 'snap'));
  } catch {
    return [];
  }
};

void t.test('periodic snapshots carry no data; one is exported when asked for', async (t) => {
  const cluster = await startInProcessCluster({ snapshotEntries: 30 });
  t.teardown(() => cluster.close());
  const leader = await cluster.waitForLeader(15_000);
  const busy = cluster.nodes.find((node) => node.id === 'n1')!;
  const persist = busy.store.persist.bind(busy.store);
  let refusals = 0;
  busy.store.persist = async () => (refusals++ === 0 ? false : persist());
  for (let n = 0; n < 55; n++) {
    await leader.driver.propose(encodeCommand({ requestId: `lazy-${n}`, cmd: { kind: 'put', key: `k/${n}`, value: `v${n}`, lease: 0, prevKv: false } }));
  }
  const deadline = performance.now() + 10_000;
  while (cluster.nodes.some((node) => node.driver.counters.snapshotsTaken === 0) && performance.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  for (const node of cluster.nodes) {
    const index = node.storage.snapshotMetadata().index;
    t.ok(index > 0, `${node.id}: a snapshot at ${index}`);
    t.equal(node.storage.snapshotExported(), false, `${node.id}: without data`);
    t.same(snapshotFiles(cluster.dir, node.id), [], `${node.id}: no snapshot file`);
    t.ok(node.store.appliedIndex() >= index, `${node.id}: the store (at ${node.store.appliedIndex()}) stands for it`);
    t.equal(node.driver.counters.snapshotsExported, 0, `${node.id}: nothing exported`);
  }

  t.equal(refusals, 2, 'n1: refused once, then synced');
  t.ok(busy.storage.snapshotMetadata().index >= 33, `n1: its first snapshot put off from 30 to ${busy.storage.snapshotMetadata().index} (not before 33)`);

  const node = cluster.nodes[0]!;
  const refusedAt = node.storage.snapshotMetadata().index;
  t.throws(() => node.storage.snapshot(), SnapshotUnavailableError, 'asked for its data: refused for now');
  t.equal(node.storage.snapshotRequested(), true, 'and the request is remembered');
  while (node.driver.counters.snapshotsExported === 0 && performance.now() < deadline + 5_000) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  t.equal(node.driver.counters.snapshotsExported, 1, 'the driver exported one');
  t.equal(node.storage.snapshotRequested(), false, 'the request is answered');
  const snapshot = node.storage.snapshot();
  t.ok(snapshot.metadata.index >= refusedAt, `exported at ${snapshot.metadata.index}`);
  t.equal(decodeSnapshot(snapshot.data).appliedIndex, snapshot.metadata.index, 'its data is the store at that index');
  t.same(snapshotFiles(cluster.dir, node.id), [`${snapshot.metadata.index}-${snapshot.metadata.term}.snap`], 'in its file');
});
