// Goal: check single-server membership changes (§4.2): learners replicate but neither vote nor count for commit;
// promotion makes a learner a voter of the quorum; a removed leader steps down; one change at a time (CONFLICT);
// a member added later learns the founding membership from the log.
// Method: clusters from the synchronous harness (helpers.ts) with a fifth node joining on empty storage; changes
// are proposed through proposeConfChange and the tests assert configurations, roles, commit indexes and the
// messages each node sent.
import t from 'tap';
import { MemoryLogStorage } from '../../src/raft/index.js';
import { Cluster, bytes, keelErrorOf } from './helpers.js';

const electionTicks = 10;

/** Three founding voters with n1 as leader, plus n4 joining as a learner on empty storage. */
function withLearner(): Cluster {
  const c = new Cluster(3);
  c.elect('n1');
  c.addNode('n4', new MemoryLogStorage());
  c.raft('n1').proposeConfChange({ type: 'addLearner', id: 'n4' });
  c.stabilize();
  return c;
}

void t.test('§4.2 membership: a node added later learns the founding membership from the log', async (t) => {
  const c = withLearner();
  const n4 = c.raft('n4');
  t.same(c.logOf('n4'), c.logOf('n1'), 'the learner replicated the whole log, bootstrap entry included');
  t.match(c.node('n4').appliedEntries[0], { index: 1, type: 'conf', change: { type: 'init', voters: ['n1', 'n2', 'n3'] } });
  t.same(n4.conf, { voters: ['n1', 'n2', 'n3'], learners: ['n4'] });
  for (const id of c.ids()) t.same(c.raft(id).conf, n4.conf, `${id} agrees on the configuration`);
});

void t.test('§4.2 membership: a learner receives the log but does not vote or count for commit', async (t) => {
  const c = withLearner();
  c.propose('n1', 'a');
  c.stabilize();
  t.same(c.commands('n4'), ['a'], 'the learner applies commands');
  // Only the learner can hear the leader: its acks do not make a majority.
  c.cut('n1', 'n2');
  c.cut('n1', 'n3');
  c.propose('n1', 'b');
  c.stabilize();
  t.equal(c.raft('n4').log.lastIndex(), c.raft('n1').log.lastIndex(), 'the learner stored the entry');
  t.equal(c.raft('n1').log.committed, 4, 'but it is not committed');
  c.heal();
  c.tickAndStabilize(1); // the next heartbeat round resends the lost appends
  t.equal(c.raft('n1').log.committed, 5);
  // A learner never campaigns, however long it hears nothing, and candidates do not ask it for votes.
  c.isolate('n4');
  c.tick('n4', 10 * electionTicks);
  c.stabilize();
  t.notOk(c.sent.some((m) => m.from === 'n4' && (m.type === 'preVote' || m.type === 'vote')), 'no campaign from the learner');
  t.equal(c.raft('n4').role, 'follower');
  c.heal();
  c.cut('n1', 'n2');
  c.cut('n1', 'n3');
  c.cut('n1', 'n4');
  c.tick('n2', 3 * electionTicks);
  c.stabilize();
  const requests = c.sent.filter((m) => m.type === 'preVote' || m.type === 'vote');
  t.ok(requests.length > 0);
  t.notOk(requests.some((m) => m.to === 'n4'), 'vote requests go to voters only');
});

void t.test('§4.2 membership: promote', async (t) => {
  const c = withLearner();
  c.raft('n1').proposeConfChange({ type: 'promote', id: 'n4' });
  c.stabilize();
  for (const id of c.ids()) t.same(c.raft(id).conf, { voters: ['n1', 'n2', 'n3', 'n4'], learners: [] }, `${id}`);
  t.equal(c.raft('n1').status().progress?.find((p) => p.id === 'n4')?.isLearner, false);
  // Four voters: the leader and n4 (2 of 4) no longer commit.
  c.cut('n1', 'n2');
  c.cut('n1', 'n3');
  c.propose('n1', 'x');
  c.stabilize();
  t.equal(c.raft('n1').log.committed, c.raft('n1').log.lastIndex() - 1, 'two of four is not a majority');
  c.heal();
  c.tickAndStabilize(1);
  t.equal(c.raft('n1').log.committed, c.raft('n1').log.lastIndex());
  // The promoted node can now lead.
  c.isolate('n1');
  c.tick('n4', 3 * electionTicks);
  c.tick('n2', electionTicks);
  c.tick('n3', electionTicks);
  c.raft('n4').campaign();
  c.stabilize();
  t.equal(c.raft('n4').role, 'leader');
});

void t.test('§4.2 membership: remove (the removed leader steps down)', async (t) => {
  const c = new Cluster(3);
  c.elect('n1');
  c.raft('n1').proposeConfChange({ type: 'remove', id: 'n1' });
  c.stabilize();
  t.equal(c.raft('n1').role, 'follower', 'the leader stepped down once it applied its own removal');
  for (const id of c.ids()) t.same(c.raft(id).conf, { voters: ['n2', 'n3'], learners: [] }, `${id} applied the removal`);
  let rounds = 0;
  while (c.leaders().length === 0 && rounds++ < 100) c.tickAndStabilize();
  const [leader] = c.leaders();
  t.ok(leader === 'n2' || leader === 'n3', `the remaining voters elected ${leader}`);
  c.propose(leader!, 'after');
  c.stabilize();
  t.same(c.commands('n2'), ['after']);
  t.same(c.commands('n3'), ['after']);
  t.same(c.commands('n1'), [], 'the removed node no longer receives the log');
  const sentBefore = c.sent.length;
  c.tickAndStabilize(5 * electionTicks);
  t.notOk(c.sent.slice(sentBefore).some((m) => m.from === 'n1' && (m.type === 'preVote' || m.type === 'vote')), 'and never campaigns');
  t.same(c.leaders(), [leader]);

  // Removing a follower: the leader stops replicating to it.
  c.raft(leader!).proposeConfChange({ type: 'remove', id: leader === 'n2' ? 'n3' : 'n2' });
  c.stabilize();
  t.same(c.raft(leader!).conf.voters, [leader], 'a single voter is left');
  c.propose(leader!, 'alone');
  c.stabilize();
  t.equal(c.raft(leader!).log.committed, c.raft(leader!).log.lastIndex(), 'and it commits alone');
});

void t.test('§4.2 membership: only one change in flight (CONFLICT)', async (t) => {
  const c = new Cluster(3);
  // A new leader accepts no change until its no-op is applied.
  c.raft('n1').campaign();
  for (let i = 0; i < 10 && c.raft('n1').role !== 'leader'; i++) {
    c.processAll();
    c.deliver();
  }
  t.equal(c.raft('n1').role, 'leader');
  t.equal(c.raft('n1').log.applied, 1, 'its no-op is not applied yet');
  t.equal(keelErrorOf(() => c.raft('n1').proposeConfChange({ type: 'addLearner', id: 'n4' })).code, 'CONFLICT');
  c.stabilize();
  c.raft('n1').proposeConfChange({ type: 'addLearner', id: 'n4' });
  const second = keelErrorOf(() => c.raft('n1').proposeConfChange({ type: 'addLearner', id: 'n5' }));
  t.equal(second.code, 'CONFLICT', 'a second change while the first is not applied');
  c.raft('n1').propose(bytes('normal proposals are fine meanwhile'));
  c.isolate('n1');
  c.stabilize();
  t.equal(keelErrorOf(() => c.raft('n1').proposeConfChange({ type: 'addLearner', id: 'n5' })).code, 'CONFLICT', 'still uncommitted');
  c.heal();
  c.tickAndStabilize(1);
  c.raft('n1').proposeConfChange({ type: 'addLearner', id: 'n5' });
  c.stabilize();
  t.same(c.raft('n1').conf.learners, ['n4', 'n5'], 'accepted once the first one applied');
  // Changes that cannot apply are refused before they reach the log.
  t.equal(keelErrorOf(() => c.raft('n1').proposeConfChange({ type: 'addLearner', id: 'n2' })).code, 'CONFLICT');
  t.equal(keelErrorOf(() => c.raft('n1').proposeConfChange({ type: 'promote', id: 'n9' })).code, 'NOT_FOUND');
  t.equal(keelErrorOf(() => c.raft('n1').proposeConfChange({ type: 'remove', id: 'n9' })).code, 'NOT_FOUND');
  t.equal(keelErrorOf(() => c.raft('n1').proposeConfChange({ type: 'init', voters: ['n1'] })).code, 'INVALID_ARGUMENT');
});
