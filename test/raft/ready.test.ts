// Goal: check the driver contract around Ready (ready.ts) and recovery from storage: the ready/advance handshake
// is asserted, fsync is requested exactly when durability matters, and a node rebuilt from its storage keeps its
// term, vote and log and re-delivers only the committed entries above the `applied` it was given.
// Method: nodes from the synchronous harness (helpers.ts); the handshake is driven by hand, restarts rebuild the
// RaftNode from the same MemoryLogStorage (everything synced), and each test asserts the Readys produced.
import t from 'tap';
import { AssertionError } from '../../src/util/assert.js';
import { Cluster, bytes, describeData } from './helpers.js';

void t.test('the Ready handshake: ready() twice without advance() throws', async (t) => {
  const c = new Cluster(3);
  c.elect('n1');
  const n1 = c.raft('n1');
  n1.propose(bytes('a'));
  t.equal(n1.hasReady(), true);
  const rd = n1.ready();
  t.equal(rd.entries.length, 1);
  t.equal(n1.hasReady(), false, 'nothing more is offered while a Ready is outstanding');
  n1.propose(bytes('b'));
  t.equal(n1.hasReady(), false, 'not even after new input');
  t.throws(() => n1.ready(), AssertionError, 'a second ready() before advance() is a bug');
  c.node('n1').storage.append(rd.entries);
  n1.advance();
  t.throws(() => n1.advance(), AssertionError, 'advance() without an outstanding Ready is a bug');
  t.equal(n1.hasReady(), true);
  const next = n1.ready();
  t.same(next.entries.map((e) => describeData(e)), ['b'], 'the next Ready carries what arrived meanwhile');
  c.node('n1').storage.append(next.entries);
  n1.advance();
});

void t.test('the Ready handshake: fsync is requested for entries, term and vote, not for a commit index alone', async (t) => {
  const c = new Cluster(3);
  c.elect('n1');
  c.propose('n1', 'a');
  c.processReady('n1');
  c.deliver();
  const follower = c.processReady('n2')!;
  t.equal(follower.mustSync, true, 'an append must be durable before it is acknowledged');
  t.ok(follower.entries.length === 1 && follower.messages.some((m) => m.type === 'appendResp'));
  c.stabilize();
  const commitOnly = c.node('n2').readies.at(-1)!;
  t.same(commitOnly.entries, []);
  t.equal(commitOnly.hardState?.commit, 3, 'the last Ready only moved the commit index');
  t.equal(commitOnly.mustSync, false, 'which needs no fsync (it can be recovered from the leader)');
  const vote = c.node('n3').readies.find((r) => r.hardState?.vote === 'n1');
  t.equal(vote?.mustSync, true, 'a vote is synced before the response leaves');
});

void t.test('restart: a node rebuilt from its storage keeps term, vote and log and re-delivers committed entries above `applied` only', async (t) => {
  const c = new Cluster(3);
  c.elect('n1');
  for (const command of ['a', 'b', 'c']) c.propose('n1', command);
  c.stabilize();
  const before = c.raft('n2');
  const logBefore = c.logOf('n2');
  t.same(logBefore, ['1/1', '2/2', '3/2', '4/2', '5/2']);

  c.restart('n2', 3); // the state machine had applied up to 'a'
  const n2 = c.raft('n2');
  t.not(n2, before, 'a new RaftNode');
  t.equal(n2.term, 2, 'term kept');
  t.equal(n2.vote, 'n1', 'vote kept');
  t.equal(n2.role, 'follower');
  t.same(c.logOf('n2'), logBefore, 'log kept');
  t.equal(n2.log.committed, 5);
  t.same(n2.conf, { voters: ['n1', 'n2', 'n3'], learners: [] }, 'membership rebuilt from the applied log');
  const rd = c.processReady('n2')!;
  t.same(rd.committedEntries.map((e) => `${e.index}:${describeData(e)}`), ['4:b', '5:c'], 'only entries above applied');
  t.same(rd.entries, [], 'nothing to persist again');
  t.same(c.commands('n2'), ['a', 'b', 'c']);

  c.restart('n2'); // applied = 5: nothing to re-deliver
  const again = c.raft('n2');
  t.equal(again.hasReady(), false, 'a fully applied node has nothing to do');
  // The restarted node rejoins: it follows the leader and keeps replicating.
  c.propose('n1', 'd');
  c.stabilize();
  t.same(c.commands('n2'), ['a', 'b', 'c', 'd']);

  // A restarted leader comes back as a follower of its term and the cluster carries on.
  c.restart('n1');
  t.equal(c.raft('n1').role, 'follower');
  t.equal(c.raft('n1').term, 2);
  let rounds = 0;
  while (c.leaders().length === 0 && rounds++ < 100) c.tickAndStabilize();
  t.equal(c.leaders().length, 1, 'a leader is elected again');
  const [leader] = c.leaders();
  c.propose(leader!, 'e');
  c.stabilize();
  for (const id of c.ids()) t.same(c.commands(id), ['a', 'b', 'c', 'd', 'e'], `${id} applied everything exactly once`);
});

void t.test('restart: a membership change committed but not yet applied is re-applied from the log', async (t) => {
  const c = new Cluster(3);
  c.elect('n1');
  c.raft('n1').proposeConfChange({ type: 'remove', id: 'n3' });
  c.stabilize();
  t.same(c.raft('n2').conf.voters, ['n1', 'n2']);
  const removalIndex = c.raft('n2').log.committed;
  c.restart('n2', removalIndex - 1);
  t.same(c.raft('n2').conf.voters, ['n1', 'n2', 'n3'], 'as of the applied index, n3 is still a voter');
  const rd = c.processReady('n2')!;
  t.match(rd.committedEntries, [{ type: 'conf', change: { type: 'remove', id: 'n3' } }]);
  t.same(c.raft('n2').conf.voters, ['n1', 'n2'], 'and the removal takes effect when it is applied again');
});
