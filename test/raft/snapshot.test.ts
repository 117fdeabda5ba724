// Goal: check InstallSnapshot (§7): a follower that needs entries the leader has compacted receives the
// snapshot in chunks (snapshotChunkBytes), restores it, and catches up with the entries after it; a lost chunk is
// resent from the last acknowledged offset; the restored state and membership equal the leader's.
// Method: a three-node cluster from the synchronous harness (helpers.ts) with a small chunk size; the leader's
// log is compacted behind an isolated follower, then the follower rejoins while chunks are delivered, dropped
// and re-sent under test control.
import t from 'tap';
import type { SnapshotChunk } from '../../src/raft/index.js';
import { Cluster, toNode } from './helpers.js';

const electionTicks = 10;
const snapshotChunkBytes = 64;

function compactedBehindN3(): Cluster {
  const c = new Cluster(3, { options: { snapshotChunkBytes } });
  c.elect('n1');
  c.isolate('n3');
  for (let i = 0; i < 10; i++) c.propose('n1', `command-${i}`);
  c.stabilize();
  c.compact('n1', 12); // everything n3 lacks, but only its first entries, is now in a snapshot
  c.propose('n1', 'after-snapshot');
  c.stabilize();
  return c;
}

const chunksTo = (c: Cluster, id: string, from = 0) =>
  c.sent.slice(from).filter((m): m is SnapshotChunk => m.type === 'snapshot' && m.to === id);

void t.test('§7 snapshots: a follower behind the compacted log receives a chunked InstallSnapshot, restores, and catches up', async (t) => {
  const c = compactedBehindN3();
  t.equal(c.node('n1').storage.firstIndex(), 13, 'the leader compacted its log');
  const snapshot = c.node('n1').storage.snapshot();
  t.ok(snapshot.data.byteLength > 3 * snapshotChunkBytes, `the snapshot (${snapshot.data.byteLength} bytes) spans several chunks`);
  c.heal();
  c.tickAndStabilize(2);
  const chunks = chunksTo(c, 'n3');
  t.ok(chunks.length >= 4, `${chunks.length} chunks`);
  t.ok(chunks.every((m) => m.data.byteLength <= snapshotChunkBytes), 'no chunk is larger than snapshotChunkBytes');
  t.same(
    chunks.map((m) => m.offset),
    chunks.map((_, i) => i * snapshotChunkBytes),
    'chunks are sent in order, each after the previous one was acknowledged',
  );
  t.same(chunks.map((m) => m.done), chunks.map((_, i) => i === chunks.length - 1), 'only the last is marked done');
  t.ok(chunks.every((m) => m.metadata.index === 12 && m.metadata.term === 2 && m.totalBytes === snapshot.data.byteLength));
  const n3 = c.node('n3');
  t.equal(n3.snapshotsRestored, 1);
  const restoring = n3.readies.find((r) => r.snapshot !== null)!;
  t.same(restoring.snapshot?.data, snapshot.data, 'the reassembled snapshot is byte for byte the leader’s');
  t.same(restoring.committedEntries, [], 'no entries are applied on top of a snapshot in the same Ready');
  t.equal(restoring.hardState?.commit, 12);
  t.same(c.commands('n3'), c.commands('n1'), 'the restored state machine equals the leader’s');
  t.same(c.commands('n3').at(-1), 'after-snapshot', 'and the entries after the snapshot were replicated');
  t.same(c.logOf('n3'), c.logOf('n1'));
  t.equal(n3.storage.snapshot().metadata.index, 12, 'the follower persisted the snapshot');
  t.same(n3.raft.conf, c.raft('n1').conf, 'and took its membership');
  t.equal(c.raft('n1').status().progress?.find((p) => p.id === 'n3')?.state, 'replicate');

  // A restart from the installed snapshot keeps its membership and log, and the node keeps replicating.
  c.restart('n3');
  t.same(c.raft('n3').conf, c.raft('n1').conf);
  t.equal(c.raft('n3').log.firstIndex(), 13);
  t.equal(c.raft('n3').log.committed, 13);
  c.propose('n1', 'after-restart');
  c.stabilize();
  t.same(c.commands('n3'), c.commands('n1'));
});

void t.test('§7 snapshots: a lost chunk is resent', async (t) => {
  const c = compactedBehindN3();
  c.heal();
  const sentBefore = c.sent.length;
  c.tickAll();
  let lost: SnapshotChunk | null = null;
  for (let i = 0; i < 20; i++) {
    c.processAll();
    if (lost === null) {
      const second = c.inflight.find((m): m is SnapshotChunk => m.type === 'snapshot' && m.offset === snapshotChunkBytes);
      if (second !== undefined) {
        lost = second;
        c.drop((m) => m === second);
      }
    }
    c.deliver();
  }
  t.ok(lost, 'the second chunk was lost');
  t.equal(c.node('n3').snapshotsRestored, 0, 'the transfer stalled');
  t.equal(chunksTo(c, 'n3', sentBefore).length, 2);
  // The leader resends from the last acknowledged offset once the transfer has been idle for an election timeout.
  let ticks = 0;
  while (chunksTo(c, 'n3', sentBefore).length === 2 && ticks < 100) {
    c.tickAll();
    c.stabilize();
    ticks++;
  }
  t.ok(ticks > electionTicks - 1 && ticks <= electionTicks + 2, `resent after ${ticks} idle ticks`);
  const resent = chunksTo(c, 'n3', sentBefore)[2]!;
  t.equal(resent.offset, snapshotChunkBytes, 'from the offset the follower acknowledged');
  c.stabilize();
  t.equal(c.node('n3').snapshotsRestored, 1);
  t.same(c.commands('n3'), c.commands('n1'));

  // A chunk the follower did not expect is answered with the offset it does expect.
  const d = compactedBehindN3();
  d.heal();
  d.tickAll();
  const isChunk = (m: { type: string }) => m.type === 'snapshot';
  for (let i = 0; i < 10 && !d.inflight.some(isChunk); i++) {
    d.processAll();
    d.deliver((m) => !isChunk(m));
  }
  const first = d.inflight.find((m): m is SnapshotChunk => m.type === 'snapshot');
  t.ok(first);
  d.raft('n3').step({ ...first!, offset: 2 * snapshotChunkBytes });
  const rd = d.processReady('n3')!;
  t.match(rd.messages, [{ type: 'snapshotResp', nextOffset: 0, snapshotIndex: 12 }], 'the follower asks for offset 0');
  d.drop(toNode('n3'));
  d.deliver();
  d.stabilize();
  d.tickAndStabilize(2 * electionTicks);
  t.same(d.commands('n3'), d.commands('n1'), 'and the transfer still completes');
});
