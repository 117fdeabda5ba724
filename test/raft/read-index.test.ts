// Goal: check linearizable reads through ReadIndex (§6.4): a read point is released only after a majority
// acknowledged a heartbeat round sent after the read arrived; reads share rounds; a new leader waits for an entry
// of its term to commit; followers forward reads; reads are dropped (never answered late) when leadership is lost.
// Method: clusters from the synchronous harness (helpers.ts); heartbeats and their acks are delivered one by one
// and the ReadStates / dropped reads each node reports in its Readys are asserted.
import t from 'tap';
import type { HeartbeatRequest } from '../../src/raft/index.js';
import { Cluster, both, fromNode, link, ofType, toNode } from './helpers.js';

const heartbeatsWithContext = (c: Cluster) =>
  c.inflight.filter((m): m is HeartbeatRequest => m.type === 'heartbeat' && m.context !== '');

void t.test('§6.4 ReadIndex: a read is served only after a heartbeat round acknowledged by a majority', async (t) => {
  const c = new Cluster(5);
  c.elect('n1');
  const leader = c.node('n1');
  leader.raft.readIndex('r1');
  const rd = c.processReady('n1')!;
  t.same(rd.readStates, [], 'not served at once');
  const rounds = heartbeatsWithContext(c);
  t.equal(rounds.length, 4, 'a heartbeat round to every follower');
  const round = rounds[0]!.context;
  t.ok(rounds.every((m) => m.context === round));
  // Acks from n2 alone (2 of 5 with the leader) are not enough.
  c.deliver(toNode('n2'));
  c.processReady('n2');
  c.deliver(link('n2', 'n1'));
  t.notOk(c.raft('n1').hasReady() && c.processReady('n1')!.readStates.length > 0, 'no read state after 2 of 5');
  // A late or duplicate ack from the same follower does not count twice.
  c.raft('n1').step({ type: 'heartbeatResp', from: 'n2', to: 'n1', term: 2, context: round });
  t.same(leader.readStates, []);
  c.deliver(toNode('n3'));
  c.processReady('n3');
  c.deliver(link('n3', 'n1'));
  c.processReady('n1');
  t.same(leader.readStates, [{ index: 2, context: 'r1' }], 'served at the commit index once 3 of 5 acknowledged');
  c.stabilize();
  t.equal(leader.readStates.length, 1, 'and only once');
});

void t.test('§6.4 ReadIndex: many reads share one round', async (t) => {
  const c = new Cluster(3);
  c.elect('n1');
  c.raft('n1').readIndex('a');
  c.raft('n1').readIndex('b');
  c.raft('n1').readIndex('c');
  c.processReady('n1');
  const rounds = heartbeatsWithContext(c);
  t.equal(rounds.length, 2, 'one heartbeat per follower for three reads');
  c.stabilize();
  t.same(c.node('n1').readStates, ['a', 'b', 'c'].map((context) => ({ index: 2, context })));
  t.equal(c.node('n1').readies.filter((r) => r.readStates.length > 0).length, 1, 'released together');

  // A read that arrives after a round was sent waits for a round of its own (the earlier round proves nothing
  // about leadership at the time the later read arrived).
  c.propose('n1', 'x');
  c.stabilize();
  c.raft('n1').readIndex('d');
  c.processReady('n1');
  const first = heartbeatsWithContext(c)[0]!.context;
  c.raft('n1').readIndex('e');
  c.processReady('n1');
  const contexts = new Set(heartbeatsWithContext(c).map((m) => m.context));
  t.equal(contexts.size, 2, 'the second read opened a second round');
  // Acks of the first round release 'd' only.
  c.deliver((m) => m.type !== 'heartbeat' || m.context === first);
  c.processAll();
  c.deliver(ofType('heartbeatResp'));
  c.processReady('n1');
  t.same(c.node('n1').readStates.slice(3), [{ index: 3, context: 'd' }]);
  c.stabilize();
  t.same(c.node('n1').readStates.slice(3), [
    { index: 3, context: 'd' },
    { index: 3, context: 'e' },
  ]);
});

void t.test('§6.4 ReadIndex: a read whose heartbeat round was lost is confirmed by the next heartbeat', async (t) => {
  const c = new Cluster(3);
  c.elect('n1');
  c.raft('n1').readIndex('r');
  c.processReady('n1');
  t.equal(c.drop(ofType('heartbeat')).length, 2, 'the whole round is lost');
  c.stabilize();
  t.same(c.node('n1').readStates, []);
  c.tickAndStabilize(1);
  t.same(c.node('n1').readStates, [{ index: 2, context: 'r' }], 'the periodic heartbeat carries the pending round');
});

void t.test('§6.4 ReadIndex: a new leader delays reads until it commits an entry of its term', async (t) => {
  const c = new Cluster(3);
  c.elect('n1');
  c.propose('n1', 'x');
  c.stabilize();
  // n2 takes over; hold back the acks of its no-op so it cannot commit anything in its term yet.
  c.raft('n2').transferLeader('n2'); // a no-op on a follower
  c.raft('n1').transferLeader('n2');
  const noopAck = (m: { type: string; to: string }) => m.type === 'appendResp' && m.to === 'n2';
  for (let i = 0; i < 20; i++) {
    c.processAll();
    c.deliver((m) => !noopAck(m));
  }
  const n2 = c.raft('n2');
  t.equal(n2.role, 'leader');
  t.equal(n2.log.committed, 3, 'its commit index is from the previous term');
  n2.readIndex('r');
  c.processReady('n2');
  t.same(heartbeatsWithContext(c), [], 'no read round while nothing of its term is committed');
  t.same(c.node('n2').readStates, []);
  c.stabilize();
  t.equal(n2.log.committed, 4, 'the no-op committed');
  t.same(c.node('n2').readStates, [{ index: 4, context: 'r' }], 'then the read is served at the new commit index');
});

void t.test('§6.4 ReadIndex: a follower read is forwarded and answered', async (t) => {
  const c = new Cluster(3);
  c.elect('n1');
  c.raft('n2').readIndex('f');
  const rd = c.processReady('n2')!;
  t.same(
    rd.messages.map((m) => `${m.type}->${m.to}`),
    ['readIndex->n1'],
    'the follower forwards the read to its leader',
  );
  c.stabilize();
  t.same(c.node('n2').readStates, [{ index: 2, context: 'f' }], 'and gets a read point back');
  t.same(c.node('n1').readStates, [], "the leader does not serve it itself");
  // A node that knows no leader drops the read at once.
  const lonely = new Cluster(3);
  lonely.raft('n3').readIndex('nobody');
  lonely.processReady('n3');
  t.same(lonely.node('n3').droppedReads, ['nobody']);
});

void t.test('§6.4 ReadIndex: reads are dropped when leadership is lost', async (t) => {
  const c = new Cluster(3);
  c.elect('n1');
  c.raft('n1').readIndex('local');
  c.raft('n2').readIndex('forwarded');
  c.processReady('n2');
  c.deliver(both(fromNode('n2'), ofType('readIndex')));
  c.isolate('n1');
  c.cut('n1', 'n2');
  c.stabilize(); // the heartbeat rounds are lost
  t.same(c.node('n1').readStates, []);
  // n1 learns a higher term: both pending reads fail instead of hanging.
  c.raft('n1').step({ type: 'heartbeat', from: 'n3', to: 'n1', term: 5, commit: 2, context: '' });
  const rd = c.processReady('n1')!;
  t.same(rd.droppedReads, ['local'], "the leader's own read is reported dropped");
  t.same(
    rd.messages.filter((m) => m.type === 'readIndexResp').map((m) => ({ to: m.to, ok: (m as { ok: boolean }).ok })),
    [{ to: 'n2', ok: false }],
    'the forwarded read is answered with a failure',
  );
  c.heal();
  c.deliver(ofType('readIndexResp'));
  c.processReady('n2');
  t.same(c.node('n2').droppedReads, ['forwarded']);
  t.same(c.node('n2').readStates, []);
});

void t.test('§6.4 ReadIndex: a single voter confirms its reads by itself', async (t) => {
  const c = new Cluster(1);
  c.raft('n1').campaign();
  c.raft('n1').readIndex('early'); // before its no-op is committed: waits
  c.stabilize();
  c.raft('n1').readIndex('late');
  c.stabilize();
  t.same(c.node('n1').readStates, [
    { index: 2, context: 'early' },
    { index: 2, context: 'late' },
  ]);
  t.same(c.sent, [], 'no messages needed');
});
