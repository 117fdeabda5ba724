// Goal: the nodes of a cluster take their periodic snapshots one at a time, not all at the same index
// (src/raft/io/driver.ts snapshotStagger): an export copies the whole store, and three at once slowed the whole
// quorum together. Method: the offset function on its own, then a real in-process cluster with snapshotEntries
// 30: after 55 puts (every node past its first snapshot, none due for a second) each node's snapshot sits at a
// different index, at or past 30 + its offset.
import t from 'tap';
import { snapshotStagger } from '../../../src/raft/io/driver.js';
import { encodeCommand } from '../../../src/store/index.js';
import { startInProcessCluster } from '../../helpers/in-process-cluster.js';

void t.test('snapshotStagger: the place among the sorted voters times snapshotEntries / voters', async (t) => {
  t.same(['n1', 'n2', 'n3'].map((id) => snapshotStagger(id, ['n3', 'n1', 'n2'], 50_000)), [0, 16_666, 33_333]);
  t.same(['a', 'b'].map((id) => snapshotStagger(id, ['a', 'b'], 100)), [0, 50]);
  t.equal(snapshotStagger('learner', ['n1', 'n2', 'n3'], 50_000), 0, 'not a voter: no offset');
  t.equal(snapshotStagger('n1', ['n1'], 50_000), 0, 'a single node');
});

void t.test('a cluster snapshots one node at a time', async (t) => {
  const entries = 30;
  const cluster = await startInProcessCluster({ snapshotEntries: entries });
  t.teardown(() => cluster.close());
  const leader = await cluster.waitForLeader(15_000);
  for (let n = 0; n < 55; n++) {
    await leader.driver.propose(encodeCommand({ requestId: `stagger-${n}`, cmd: { kind: 'put', key: `k/${n}`, value: `v${n}`, lease: 0, prevKv: false } }));
  }
  const voters = cluster.nodes.map((node) => node.id);
  const deadline = performance.now() + 10_000;
  const firstSnapshot = (id: string): number => cluster.nodes.find((node) => node.id === id)!.storage.snapshotMetadata().index;
  while (voters.some((id) => firstSnapshot(id) === 0) && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  const indexes = voters.map(firstSnapshot);
  t.equal(new Set(indexes).size, voters.length, `every node's snapshot at its own index: ${indexes.join(', ')}`);
  for (const [i, id] of voters.entries()) {
    const earliest = entries + snapshotStagger(id, voters, entries);
    t.ok(indexes[i]! >= earliest, `${id}: first snapshot at ${indexes[i]} (not before ${earliest})`);
    t.ok(indexes[i]! < earliest + entries, `${id}: and before its second would be due`);
  }
});
