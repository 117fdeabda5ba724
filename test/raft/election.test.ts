// Goal: check the election rules of the core: terms (§5.1), election timeouts, votes and leader no-op (§5.2),
// the up-to-date check (§5.4.1), pre-vote (§9.6), check-quorum and the leader lease.
// Method: small clusters from the synchronous harness (helpers.ts); messages are delivered, dropped or crafted
// by hand, and each test asserts the resulting roles, terms, votes, logs and the messages that were sent.
import t from 'tap';
import type { PeerMessage, VoteRequest } from '../../src/raft/index.js';
import { Cluster, fromNode, link, ofType, presetStorage, toNode, both } from './helpers.js';

const electionTicks = 10;

void t.test('§5.1 a node with a lower term rejects/ignores a message and answers with its term', async (t) => {
  const c = new Cluster(3);
  c.elect('n1');
  const n2 = c.raft('n2');
  t.equal(n2.term, 2);
  const logBefore = c.logOf('n2');

  // A stale append (e.g. from a deposed leader) is refused with our term, so its sender learns it.
  n2.step({ type: 'append', from: 'n3', to: 'n2', term: 1, prevLogIndex: 2, prevLogTerm: 1, entries: [], commit: 2 });
  n2.step({ type: 'heartbeat', from: 'n3', to: 'n2', term: 1, commit: 2, context: '' });
  // A stale pre-vote is refused with our term; a stale vote is ignored (the candidate learns the term elsewhere).
  n2.step({ type: 'preVote', from: 'n3', to: 'n2', term: 1, lastLogIndex: 9, lastLogTerm: 1, transfer: false });
  n2.step({ type: 'vote', from: 'n3', to: 'n2', term: 1, lastLogIndex: 9, lastLogTerm: 1, transfer: false });
  const rd = c.processReady('n2');
  t.ok(rd);
  const answers = rd!.messages.map((m) => `${m.type}:${m.to}:${m.term}:${'granted' in m ? m.granted : '-'}`);
  t.same(answers, ['appendResp:n3:2:-', 'appendResp:n3:2:-', 'preVoteResp:n3:2:false']);
  t.equal(n2.term, 2, 'term unchanged');
  t.equal(n2.leader, 'n1', 'still follows the real leader');
  t.equal(n2.vote, 'n1', 'vote unchanged');
  t.same(c.logOf('n2'), logBefore, 'log unchanged');
});

void t.test('§5.1 a leader that hears a higher term steps down and adopts it', async (t) => {
  const c = new Cluster(3);
  c.elect('n1');
  const n1 = c.raft('n1');
  n1.step({ type: 'appendResp', from: 'n2', to: 'n1', term: 7, index: 0, reject: false, rejectHint: 0, hintTerm: 0 });
  t.equal(n1.role, 'follower');
  t.equal(n1.term, 7);
  t.equal(n1.vote, null, 'no vote in the new term');
  const rd = c.processReady('n1');
  t.same(rd?.hardState, { term: 7, vote: null, commit: 2 }, 'the new term is persisted');
  t.equal(rd?.mustSync, true);
});

void t.test('§5.2 a follower that hears nothing campaigns after its randomized election timeout', async (t) => {
  const timeouts = new Set<number>();
  for (let seed = 1; seed <= 8; seed++) {
    const c = new Cluster(3, { seed, options: { preVote: false } });
    const n1 = c.raft('n1');
    let ticks = 0;
    while (n1.role === 'follower' && ticks < 100) {
      c.tick('n1');
      ticks++;
    }
    t.equal(n1.role, 'candidate', `seed ${seed}: campaigned`);
    t.ok(ticks >= electionTicks && ticks < 2 * electionTicks, `seed ${seed}: timeout ${ticks} in [10, 20)`);
    t.equal(n1.term, 2, 'a candidate increments its term');
    t.equal(n1.vote, 'n1', 'and votes for itself');
    const rd = c.processReady('n1')!;
    t.same(rd.hardState, { term: 2, vote: 'n1', commit: 1 });
    t.equal(rd.mustSync, true, 'the vote is synced before the requests leave');
    t.same(
      rd.messages.map((m) => `${m.type}->${m.to}@${m.term}`),
      ['vote->n2@2', 'vote->n3@2'],
    );
    timeouts.add(ticks);
  }
  t.ok(timeouts.size > 1, `the timeout is randomized per node (saw ${[...timeouts].join(',')})`);

  // A follower that hears its leader never campaigns.
  const c = new Cluster(3);
  c.elect('n1');
  c.tickAndStabilize(10 * electionTicks);
  t.same(c.leaders(), ['n1']);
  t.equal(c.raft('n1').term, 2);
});

void t.test('§5.2 a candidate with a majority of votes becomes leader and appends a no-op', async (t) => {
  const c = new Cluster(5, { options: { preVote: false } });
  const n1 = c.raft('n1');
  n1.campaign();
  c.processReady('n1');
  // Two votes of five (its own and n2's) are not a majority.
  c.deliver(toNode('n2'));
  c.processReady('n2');
  c.deliver(ofType('voteResp'));
  t.equal(n1.role, 'candidate');
  // The third vote is.
  c.deliver(toNode('n3'));
  c.processReady('n3');
  c.deliver(ofType('voteResp'));
  t.equal(n1.role, 'leader');
  t.equal(n1.leader, 'n1');
  const rd = c.processReady('n1')!;
  t.same(rd.softState, { leader: 'n1', role: 'leader' });
  t.same(
    rd.entries.map((e) => ({ index: e.index, term: e.term, type: e.type, bytes: e.type === 'normal' ? e.data.byteLength : -1 })),
    [{ index: 2, term: 2, type: 'normal', bytes: 0 }],
    'the new leader appends an empty entry of its term',
  );
  t.same(
    rd.messages.filter((m) => m.type === 'append').map((m) => m.to),
    ['n2', 'n3', 'n4', 'n5'],
    'and replicates it to every follower',
  );
  c.stabilize();
  for (const id of c.ids()) t.equal(c.raft(id).log.committed, 2, `${id} committed the no-op`);
});

void t.test('§5.2 a candidate that a majority refuses goes back to follower', async (t) => {
  const storage = { n1: presetStorage(['n1', 'n2', 'n3'], [], 1), n2: presetStorage(['n1', 'n2', 'n3'], [2], 2), n3: presetStorage(['n1', 'n2', 'n3'], [2], 2) };
  const c = new Cluster(3, { storage, options: { preVote: false } });
  c.raft('n1').campaign();
  c.stabilize();
  t.equal(c.raft('n1').role, 'follower');
  t.equal(c.raft('n1').term, 2);
  t.same(c.leaders(), []);
});

void t.test('§5.2 a node grants at most one vote per term', async (t) => {
  const c = new Cluster(3, { options: { preVote: false } });
  c.raft('n1').campaign();
  c.raft('n2').campaign();
  c.processReady('n1');
  c.processReady('n2');
  // n3 hears n1 first, then n2, in the same term 2.
  c.deliver(both(fromNode('n1'), toNode('n3')));
  c.deliver(both(fromNode('n2'), toNode('n3')));
  const rd = c.processReady('n3')!;
  t.same(rd.hardState, { term: 2, vote: 'n1', commit: 1 });
  t.same(
    rd.messages.map((m) => `${m.type}->${m.to}:${(m as { granted: boolean }).granted}`),
    ['voteResp->n1:true', 'voteResp->n2:false'],
  );
  // The vote is durable: a restarted n3 still refuses n2 and still grants n1 (a duplicate request).
  c.restart('n3');
  const n3 = c.raft('n3');
  t.equal(n3.vote, 'n1');
  const request: VoteRequest = { type: 'vote', from: 'n2', to: 'n3', term: 2, lastLogIndex: 1, lastLogTerm: 1, transfer: false };
  n3.step(request);
  n3.step({ ...request, from: 'n1' });
  const after = c.processReady('n3')!;
  t.same(
    after.messages.map((m) => `${m.to}:${(m as { granted: boolean }).granted}`),
    ['n2:false', 'n1:true'],
  );
  c.deliver();
  c.stabilize();
  t.same(c.leaders(), ['n1'], 'only n1 could win term 2');
});

void t.test('§5.4.1 a vote is refused to a candidate whose log is less up-to-date', async (t) => {
  const voters = ['n1', 'n2', 'n3'];
  // Last entries: n1 3/2 (longer), n2 2/2 (shorter), n3 2/3 (shorter but a later term).
  const storage = {
    n1: presetStorage(voters, [2, 2], 3),
    n2: presetStorage(voters, [2], 3),
    n3: presetStorage(voters, [3], 3),
  };
  const c = new Cluster(voters, { storage, options: { preVote: false } });
  c.raft('n2').campaign();
  c.processReady('n2');
  c.deliver();
  const grants = (id: string) => c.processReady(id)!.messages.map((m) => (m as { granted: boolean }).granted);
  t.same(grants('n1'), [false], 'n1 refuses: same last term, shorter log');
  t.same(grants('n3'), [false], 'n3 refuses: lower last term');
  c.stabilize();
  t.not(c.raft('n2').role, 'leader');

  // n3's last term is the highest, so its shorter log is more up-to-date than n1's: both grant.
  c.raft('n3').campaign();
  c.processReady('n3');
  c.deliver();
  t.same(grants('n1'), [true], 'a later last term wins over a longer log');
  t.same(grants('n2'), [true]);
  c.stabilize();
  t.equal(c.raft('n3').role, 'leader');
  // The leader's log wins: n1's uncommitted 3/2 is replaced.
  for (const id of voters) t.same(c.logOf(id), ['1/1', '2/3', '3/5'], `${id} holds the leader's log`);
});

void t.test('§9.6 pre-vote: a partitioned node rejoining does not bump the term or disrupt the leader', async (t) => {
  const c = new Cluster(3);
  c.elect('n1');
  c.isolate('n3');
  for (let i = 0; i < 10 * electionTicks; i++) {
    c.tickAll();
    c.stabilize();
  }
  t.equal(c.raft('n3').term, 2, 'pre-votes that cannot win do not bump the term');
  t.ok(
    c.sent.some((m) => m.from === 'n3' && m.type === 'preVote'),
    'the isolated node did pre-campaign',
  );
  t.notOk(c.sent.some((m) => m.from === 'n3' && m.type === 'vote'), 'but never campaigned for real');
  c.heal();
  c.tickAndStabilize(3 * electionTicks);
  t.same(c.leaders(), ['n1'], 'the leader keeps its leadership');
  for (const id of c.ids()) t.equal(c.raft(id).term, 2, `${id} still in term 2`);
  t.equal(c.raft('n3').leader, 'n1', 'the rejoined node follows the leader');

  // Without pre-vote (and check-quorum) the same partition disrupts the cluster: this is what pre-vote prevents.
  const plain = new Cluster(3, { options: { preVote: false, checkQuorum: false } });
  plain.elect('n1');
  plain.isolate('n3');
  for (let i = 0; i < 10 * electionTicks; i++) {
    plain.tickAll();
    plain.stabilize();
  }
  t.ok(plain.raft('n3').term > 2, 'without pre-vote the isolated node bumps its term');
  plain.heal();
  plain.tickAndStabilize(3 * electionTicks);
  t.ok(plain.raft('n1').term > 2, 'and deposes the leader of term 2 when it rejoins');
});

void t.test('check-quorum: a leader that cannot hear a majority steps down within an election timeout', async (t) => {
  const c = new Cluster(3);
  c.elect('n1');
  c.tickAndStabilize(3 * electionTicks);
  t.same(c.leaders(), ['n1'], 'a leader that hears its followers stays leader');
  c.isolate('n1');
  let ticks = 0;
  while (c.raft('n1').role === 'leader' && ticks < 100) {
    c.tickAll();
    c.stabilize();
    ticks++;
  }
  t.equal(c.raft('n1').role, 'follower');
  t.equal(c.raft('n1').leader, null);
  t.equal(c.raft('n1').term, 2, 'stepping down does not change the term');
  // The followers were active until the cut, so the first check passes and the next one fails.
  t.ok(ticks > 0 && ticks <= 2 * electionTicks, `stepped down after ${ticks} ticks (<= 2 election timeouts)`);
  t.ok(c.node('n1').readies.some((r) => r.softState?.role === 'follower'), 'the step-down is reported in a Ready');

  // Without check-quorum it would stay leader forever.
  const plain = new Cluster(3, { options: { checkQuorum: false } });
  plain.elect('n1');
  plain.isolate('n1');
  plain.tickAll(10 * electionTicks);
  t.equal(plain.raft('n1').role, 'leader');
});

void t.test('leader lease: voters ignore vote requests while they hear a leader', async (t) => {
  const c = new Cluster(3, { perNode: { n3: { preVote: false } } });
  c.elect('n1');
  c.tickAndStabilize(2);
  // n3 campaigns without pre-vote in term 3 while n1 leads term 2.
  c.raft('n3').campaign();
  c.processReady('n3');
  const requests = c.deliver(both(fromNode('n3'), ofType('vote')));
  t.equal(requests.length, 2);
  for (const id of ['n1', 'n2']) {
    t.equal(c.raft(id).term, 2, `${id} ignored the higher term`);
    t.notOk(c.raft(id).hasReady() && c.processReady(id)!.messages.some((m) => m.type === 'voteResp'), `${id} did not answer`);
  }
  t.equal(c.raft('n2').vote, 'n1');
  t.equal(c.raft('n1').role, 'leader');

  // Once n2 has not heard the leader for an election timeout, the lease is over and it grants.
  c.drop();
  c.cut('n1', 'n2');
  c.cut('n1', 'n3');
  c.tick('n2', electionTicks);
  c.stabilize();
  c.raft('n3').campaign();
  c.processReady('n3');
  c.deliver(link('n3', 'n2'));
  const rd = c.processReady('n2')!;
  const response = rd.messages.find((m): m is PeerMessage & { type: 'voteResp' } => m.type === 'voteResp');
  t.equal(response?.granted, true, 'n2 grants once the lease has expired');
  t.equal(c.raft('n2').term, 4);
});
