// Goal: check leadership transfer (§3.10): the leader sends TimeoutNow to an up-to-date transferee, which
// campaigns at once (no pre-vote, past the voters' leader lease); a lagging transferee is caught up first;
// proposals are refused while a transfer is in progress; a transfer that does not finish within an election
// timeout is abandoned.
// Method: three-node clusters from the synchronous harness (helpers.ts), asserting roles, terms, the order of
// the messages the leader sent, and proposal results.
import t from 'tap';
import type { AppendResponse, VoteRequest } from '../../src/raft/index.js';
import { Cluster, bytes, keelErrorOf, ofType } from './helpers.js';

const electionTicks = 10;

void t.test('§3.10 leadership transfer with TimeoutNow', async (t) => {
  const c = new Cluster(3);
  c.elect('n1');
  c.propose('n1', 'a');
  c.tickAndStabilize(2); // everyone is within the leader lease
  const sentBefore = c.sent.length;
  c.raft('n1').transferLeader('n2');
  t.equal(c.raft('n1').leadTransferee, 'n2');
  const rd = c.processReady('n1')!;
  t.same(rd.messages.map((m) => `${m.type}->${m.to}`), ['timeoutNow->n2'], 'an up-to-date transferee gets TimeoutNow at once');
  c.stabilize();
  t.same(c.leaders(), ['n2']);
  t.equal(c.raft('n2').term, 3);
  for (const id of c.ids()) t.equal(c.raft(id).leader, 'n2', `${id} follows n2`);
  const votes = c.sent.slice(sentBefore).filter((m): m is VoteRequest => m.type === 'vote' || m.type === 'preVote');
  t.ok(votes.length > 0 && votes.every((m) => m.type === 'vote' && m.transfer), 'a real campaign flagged as a transfer, no pre-vote');
  t.same(c.commands('n2'), ['a']);
  // Nothing is lost: the new leader commits new proposals.
  c.propose('n2', 'b');
  c.stabilize();
  for (const id of c.ids()) t.same(c.commands(id), ['a', 'b']);

  // Transfers to oneself or to a non-member are ignored.
  c.raft('n2').transferLeader('n2');
  c.raft('n2').transferLeader('n9');
  t.equal(c.raft('n2').leadTransferee, null);
});

void t.test('§3.10 transfer to a lagging follower catches it up first', async (t) => {
  const c = new Cluster(3);
  c.elect('n1');
  c.cut('n1', 'n3');
  for (const command of ['a', 'b', 'c']) c.propose('n1', command);
  c.stabilize();
  t.equal(c.raft('n1').log.committed, 5);
  t.equal(c.raft('n3').log.lastIndex(), 2, 'n3 lags behind');
  c.heal();
  const sentBefore = c.sent.length;
  c.raft('n1').transferLeader('n3');
  c.stabilize();
  const fromLeader = c.sent.slice(sentBefore).filter((m) => m.from === 'n1' && m.to === 'n3');
  const timeoutNowAt = fromLeader.findIndex((m) => m.type === 'timeoutNow');
  t.ok(timeoutNowAt > 0, 'TimeoutNow was sent, after appends');
  t.ok(fromLeader.slice(0, timeoutNowAt).some((m) => m.type === 'append' && m.entries.length > 0), 'the missing entries went first');
  const ackBefore = c.sent
    .slice(sentBefore)
    .filter((m): m is AppendResponse => m.type === 'appendResp' && m.from === 'n3' && !m.reject)
    .map((m) => m.index);
  t.ok(ackBefore.includes(5), 'n3 acknowledged the last index');
  t.same(c.leaders(), ['n3']);
  t.same(c.commands('n3'), ['a', 'b', 'c'], 'the new leader has every committed entry');
});

void t.test('§3.10 a TimeoutNow that was lost or ignored is sent again on the next heartbeat ack', async (t) => {
  const c = new Cluster(3);
  c.elect('n1');
  c.propose('n1', 'a');
  c.tickAndStabilize(2);
  c.raft('n1').transferLeader('n2');
  c.processReady('n1');
  // The transferee never sees the first TimeoutNow (lost, or ignored with a configuration change not yet applied).
  t.same(c.drop(ofType('timeoutNow')).map((m) => m.to), ['n2']);
  c.stabilize();
  t.same(c.leaders(), ['n1'], 'nothing happened yet');
  t.equal(c.raft('n1').leadTransferee, 'n2');
  c.tick('n1'); // one heartbeat interval (heartbeatTicks 1)
  c.stabilize();
  t.same(c.leaders(), ['n2'], 'the heartbeat ack brought a second TimeoutNow, well inside the election timeout');
  t.equal(c.raft('n2').term, 3);
});

void t.test('§3.10 proposals are refused during transfer', async (t) => {
  const c = new Cluster(3);
  c.elect('n1');
  c.isolate('n3');
  c.propose('n1', 'a');
  c.stabilize();
  c.raft('n1').transferLeader('n3'); // n3 cannot catch up: the transfer stays in progress
  c.stabilize();
  t.equal(c.raft('n1').leadTransferee, 'n3');
  const err = keelErrorOf(() => c.raft('n1').propose(bytes('b')));
  t.equal(err.code, 'UNAVAILABLE');
  t.equal(err.details['applied'], false);
  t.equal(c.raft('n1').log.lastIndex(), 3, 'nothing was appended');
});

void t.test('§3.10 transfer aborts after an election timeout', async (t) => {
  const c = new Cluster(3);
  c.elect('n1');
  c.isolate('n3');
  c.raft('n1').transferLeader('n3');
  c.stabilize();
  let ticks = 0;
  while (c.raft('n1').leadTransferee !== null && ticks < 100) {
    c.tickAll();
    c.stabilize();
    ticks++;
  }
  t.equal(ticks, electionTicks, 'abandoned after one election timeout');
  t.same(c.leaders(), ['n1'], 'n1 stays leader (n2 still acknowledges it)');
  t.same(c.raft('n1').propose(bytes('after')), { index: 3, term: 2 }, 'proposals are accepted again');
  c.stabilize();
  t.same(c.commands('n2'), ['after']);
});
