// Goal: check log replication (§5.3), the commitment rule (§5.4.2, Figure 8), the leader's own durability, flow
// control and the proposal path (errors, bounded queue, batching).
// Method: small clusters from the synchronous harness (helpers.ts). Logs are preset in storage where a test
// needs divergent histories; messages are delivered, held back or dropped selectively, and each test asserts
// logs, commit indexes, applied commands and the appends that were actually sent.
import t from 'tap';
import type { AppendRequest, AppendResponse, PeerMessage } from '../../src/raft/index.js';
import { Cluster, both, bytes, keelErrorOf, link, ofType, presetStorage, toNode } from './helpers.js';

const appendsTo = (messages: readonly PeerMessage[], to: string): AppendRequest[] =>
  messages.filter((m): m is AppendRequest => m.type === 'append' && m.to === to);

void t.test('§5.3 a leader replicates entries, commits them once a majority stored them, and followers apply them', async (t) => {
  const c = new Cluster(3);
  c.elect('n1');
  c.propose('n1', 'a');
  c.propose('n1', 'b');
  const rd = c.processReady('n1')!;
  t.equal(rd.hardState, null, 'nothing is committed yet');
  t.same(appendsTo(rd.messages, 'n2')[0]?.entries.map((e) => e.index), [3, 4]);
  c.stabilize();
  for (const id of c.ids()) {
    t.equal(c.raft(id).log.committed, 4, `${id} knows index 4 is committed`);
    t.same(c.commands(id), ['a', 'b'], `${id} applied the commands in order`);
    t.same(c.logOf(id), ['1/1', '2/2', '3/2', '4/2'], `${id} holds the same log`);
  }
});

void t.test('§5.3 a follower rejects an append whose prev entry does not match and the leader backs off (fast back-off by term)', async (t) => {
  const voters = ['n1', 'n2', 'n3'];
  const storage = {
    // n1: an old leader of term 2 with 20 uncommitted entries (indexes 2..21).
    n1: presetStorage(voters, Array<number>(20).fill(2), 2),
    // n2: 10 entries of term 3 (indexes 2..11); n3: only the bootstrap entry.
    n2: presetStorage(voters, Array<number>(10).fill(3), 3),
    n3: presetStorage(voters, [], 3),
  };
  const c = new Cluster(voters, { storage });
  c.elect('n2');
  t.equal(c.raft('n2').term, 4);
  const rejections = c.sent.filter((m): m is AppendResponse => m.type === 'appendResp' && m.reject);
  const byFollower = (id: string) => rejections.filter((m) => m.from === id);
  // n1 rejects prev 11/3 once, with a hint (index 11, term 2) that lets the leader skip every term-3 entry.
  t.same(
    byFollower('n1').map((m) => ({ index: m.index, rejectHint: m.rejectHint, hintTerm: m.hintTerm })),
    [{ index: 11, rejectHint: 11, hintTerm: 2 }],
    'one rejection from the divergent follower instead of one per entry',
  );
  // n3's log is short: its hint points at its last index.
  t.same(
    byFollower('n3').map((m) => ({ index: m.index, rejectHint: m.rejectHint, hintTerm: m.hintTerm })),
    [{ index: 11, rejectHint: 1, hintTerm: 1 }],
    'one rejection from the lagging follower',
  );
  const retry = appendsTo(c.sent, 'n1').filter((m) => m.prevLogIndex < 11);
  t.equal(retry[0]?.prevLogIndex, 1, 'the leader retried right after the last entry of a term the follower has');
  const expected = ['1/1', ...Array.from({ length: 10 }, (_, i) => `${i + 2}/3`), '12/4'];
  for (const id of voters) t.same(c.logOf(id), expected, `${id} holds the leader's log`);
  t.equal(c.raft('n1').log.committed, 12);
});

void t.test('§5.3 conflicting uncommitted entries are truncated', async (t) => {
  const c = new Cluster(3);
  c.elect('n1');
  c.isolate('n1');
  c.propose('n1', 'lost-a');
  c.propose('n1', 'lost-b');
  c.stabilize();
  t.same(c.node('n1').storage.entries(3, 5, Infinity).map((e) => `${e.index}/${e.term}`), ['3/2', '4/2'], 'persisted on n1 only');
  // The others elect a new leader of a later term, which commits different entries at the same indexes.
  let rounds = 0;
  while (!c.leaders().some((id) => id !== 'n1') && rounds++ < 100) c.tickAndStabilize();
  const leader = c.leaders().find((id) => id !== 'n1')!;
  t.ok(leader);
  c.propose(leader, 'kept');
  c.stabilize();
  t.equal(c.raft(leader).log.committed, 4);
  c.heal();
  c.tickAndStabilize(3);
  t.same(c.leaders(), [leader]);
  const expected = c.logOf(leader);
  t.equal(expected.length, 4);
  t.not(expected[2], '3/2');
  t.same(c.logOf('n1'), expected, "n1's conflicting suffix was replaced by the leader's entries");
  const lastIndex = c.node('n1').storage.lastIndex();
  t.same(
    c.node('n1').storage.entries(1, lastIndex + 1, Infinity).map((e) => `${e.index}/${e.term}`),
    expected,
    'and the persisted log was truncated too',
  );
  t.same(c.commands('n1'), ['kept'], 'the truncated commands were never applied');
});

void t.test('§5.4.2 a leader never commits an earlier-term entry by counting replicas (Figure 8)', async (t) => {
  // One entry per append, so the leader's catch-up of a follower is observable entry by entry.
  const c = new Cluster(3, { options: { appendBytesMax: 1, preVote: false, checkQuorum: false } });
  c.elect('n1'); // term 2; log 1/1 2/2, committed everywhere
  // (a) n1 appends 3/2 but replicates it nowhere.
  c.isolate('n1');
  c.propose('n1', 'old');
  c.stabilize();
  // (b) n2 wins term 3 with n3's vote and appends 3/3 only locally.
  c.heal();
  c.cut('n1', 'n2');
  c.cut('n1', 'n3');
  c.raft('n2').campaign();
  c.processReady('n2');
  c.deliver();
  c.processReady('n3');
  c.deliver();
  t.equal(c.raft('n2').role, 'leader');
  t.equal(c.raft('n2').term, 3);
  c.isolate('n2'); // before its first Ready as leader: the append carrying 3/3 is lost
  c.stabilize();
  t.same(c.logOf('n2'), ['1/1', '2/2', '3/3']);
  // (c) n1 comes back and wins term 4 with n3's vote (its last entry 3/2 is more up-to-date than n3's 2/2).
  c.heal();
  c.isolate('n2');
  c.tick('n1'); // n1's heartbeat (term 2) is answered with term 3: n1 steps down
  c.stabilize();
  t.equal(c.raft('n1').role, 'follower');
  c.raft('n1').campaign();
  // Let n1 win and replicate 3/2 to n3, but hold back n3's acknowledgement of 4/4.
  const acksIndex4 = (m: PeerMessage) => m.type === 'appendResp' && !m.reject && m.index >= 4;
  for (let i = 0; i < 20; i++) {
    c.processAll();
    c.deliver((m) => !acksIndex4(m));
  }
  t.equal(c.raft('n1').role, 'leader');
  t.equal(c.raft('n1').term, 4);
  t.ok(c.logOf('n3').includes('3/2'), 'n3 now stores 3/2: a majority (n1, n3) holds it');
  t.equal(c.raft('n1').status().progress?.find((p) => p.id === 'n3')?.matchIndex, 3);
  t.equal(c.raft('n1').log.committed, 2, 'but 3/2 is from an earlier term, so it is not committed by counting');
  t.same(c.commands('n1'), []);
  // Once 4/4 (of the leader's term) is on a majority, both commit.
  c.stabilize();
  t.equal(c.raft('n1').log.committed, 4);
  t.same(c.commands('n1'), ['old']);
  t.same(c.commands('n3'), ['old']);
  // n2's 3/3 was never committed; it is replaced when n2 rejoins.
  c.heal();
  c.tickAndStabilize(3);
  t.same(c.logOf('n2'), ['1/1', '2/2', '3/2', '4/4']);
  t.same(c.commands('n2'), ['old']);
});

void t.test('a leader counts its own entry only after it is persisted (advance)', async (t) => {
  // Single voter: the leader is the whole quorum, so only its own durability matters.
  const solo = new Cluster(1);
  solo.elect('n1');
  const node = solo.node('n1');
  node.raft.propose(bytes('x'));
  const rd1 = node.raft.ready();
  t.same(rd1.entries.map((e) => e.index), [3]);
  t.same(rd1.committedEntries, [], 'an entry is not committed while it is only in memory');
  t.equal(rd1.hardState, null);
  node.storage.append(rd1.entries);
  node.raft.advance();
  t.equal(node.raft.log.committed, 3, 'advance() reports it durable: now it counts');
  const rd2 = node.raft.ready();
  t.same(rd2.hardState, { term: 2, vote: 'n1', commit: 3 });
  t.same(rd2.committedEntries.map((e) => e.index), [3]);
  node.raft.advance();

  // Three voters: one follower's ack plus a leader copy that is not yet durable is not a majority.
  const c = new Cluster(3);
  c.elect('n1');
  c.cut('n1', 'n3');
  const leader = c.node('n1');
  leader.raft.propose(bytes('y'));
  const rd = leader.raft.ready();
  c.inflight.push(...rd.messages);
  c.deliver(link('n1', 'n2'));
  c.processReady('n2');
  c.deliver(link('n2', 'n1')); // the ack arrives before the leader's advance()
  t.equal(leader.raft.log.committed, 2, 'not committed: the leader has not persisted its own copy');
  leader.storage.append(rd.entries);
  leader.raft.advance();
  t.equal(leader.raft.log.committed, 3, 'committed once the leader persisted it');
});

void t.test('flow control: at most inflightMessagesMax appends in flight', async (t) => {
  const c = new Cluster(3, { options: { inflightMessagesMax: 2, appendBytesMax: 1 } });
  c.elect('n1');
  for (const command of ['a', 'b', 'c', 'd']) {
    c.propose('n1', command);
    c.processReady('n1');
  }
  const inflightTo = (id: string) => appendsTo(c.inflight, id).map((m) => m.entries.map((e) => e.index));
  t.same(inflightTo('n2'), [[3], [4]], 'two appends in flight, then the leader waits');
  // One ack frees one slot: exactly one more append goes out.
  c.deliver(both(ofType('append'), toNode('n2'), (m) => (m as AppendRequest).entries[0]?.index === 3));
  c.processReady('n2');
  c.deliver(link('n2', 'n1'));
  c.processReady('n1');
  t.same(inflightTo('n2'), [[4], [5]]);
  c.stabilize();
  t.same(c.commands('n2'), ['a', 'b', 'c', 'd']);
});

void t.test('flow control: a follower whose in-flight appends were all lost is resumed by a heartbeat', async (t) => {
  const c = new Cluster(3, { options: { inflightMessagesMax: 2, appendBytesMax: 1 } });
  c.elect('n1');
  for (const command of ['a', 'b', 'c']) {
    c.propose('n1', command);
    c.processReady('n1');
  }
  c.drop(toNode('n2')); // both in-flight appends to n2 are lost
  c.stabilize(); // n3 acks: everything commits without n2
  t.equal(c.raft('n1').log.committed, 5);
  c.tickAndStabilize(3);
  t.same(c.logOf('n2'), c.logOf('n1'), 'n2 caught up after heartbeats');
  t.same(c.commands('n2'), ['a', 'b', 'c']);
});

void t.test('§5.3 appends lost in a quiet cluster are resent after the next heartbeat', async (t) => {
  const c = new Cluster(3);
  c.elect('n1');
  c.propose('n1', 'a');
  c.processReady('n1');
  t.equal(c.drop(ofType('append')).length, 2, 'both appends are lost');
  c.stabilize();
  t.equal(c.raft('n1').log.committed, 2, 'not committed, and no further proposal comes to expose the gap');
  c.tickAndStabilize(1);
  t.equal(c.raft('n1').log.committed, 3, 'the heartbeat acks made the leader resend');
  for (const id of c.ids()) t.same(c.commands(id), ['a'], `${id} applied it`);
});

void t.test('flow control: a probe-state follower gets one append per heartbeat', async (t) => {
  const c = new Cluster(3);
  c.elect('n1');
  c.raft('n1').step({ type: 'unreachable', peer: 'n3' });
  t.equal(c.raft('n1').status().progress?.find((p) => p.id === 'n3')?.state, 'probe');
  for (const command of ['a', 'b', 'c']) {
    c.propose('n1', command);
    c.processReady('n1');
  }
  t.equal(appendsTo(c.inflight, 'n3').length, 1, 'one probe, however many proposals');
  // Every probe (and everything else to n3) is lost for a while: each heartbeat round lets exactly one through.
  for (let round = 0; round < 3; round++) {
    c.drop(toNode('n3'));
    c.deliver();
    c.processAll();
    c.drop(toNode('n3'));
    c.stabilize();
    c.tick('n1'); // heartbeatTicks = 1
    c.processReady('n1');
    c.deliver(both(toNode('n3'), ofType('heartbeat')));
    c.processReady('n3');
    c.deliver(link('n3', 'n1'));
    c.processReady('n1');
    t.equal(appendsTo(c.inflight, 'n3').length, 1, `round ${round}: one probe after the heartbeat`);
  }
  c.stabilize();
  t.same(c.commands('n3'), ['a', 'b', 'c'], 'the last probe got through and n3 caught up');
  t.equal(c.raft('n1').status().progress?.find((p) => p.id === 'n3')?.state, 'replicate');
});

void t.test('proposals: not leader → KeelError UNAVAILABLE; queue full → UNAVAILABLE', async (t) => {
  const c = new Cluster(3, { options: { proposalQueueMax: 3 } });
  for (const id of c.ids()) {
    const err = keelErrorOf(() => c.raft(id).propose(bytes('x')));
    t.equal(err.code, 'UNAVAILABLE', `${id} before any election`);
    t.equal(err.details['applied'], false, 'the error says the write did not happen');
  }
  c.elect('n1');
  const follower = keelErrorOf(() => c.raft('n2').propose(bytes('x')));
  t.equal(follower.code, 'UNAVAILABLE');
  t.equal(follower.details['leader'], 'n1', 'a follower names the leader');
  t.equal(c.raft('n2').log.lastIndex(), 2, 'and appends nothing');

  c.isolate('n1');
  const tickets = ['a', 'b', 'c'].map((command) => c.raft('n1').propose(bytes(command)));
  t.same(tickets, [{ index: 3, term: 2 }, { index: 4, term: 2 }, { index: 5, term: 2 }]);
  const full = keelErrorOf(() => c.raft('n1').propose(bytes('d')));
  t.equal(full.code, 'UNAVAILABLE', 'the fourth uncommitted proposal is refused');
  t.equal(full.details['applied'], false);
  t.equal(keelErrorOf(() => c.raft('n1').proposeBatch([bytes('e')])).code, 'UNAVAILABLE');
  t.equal(c.raft('n1').log.lastIndex(), 5);
  c.heal();
  c.stabilize();
  t.equal(c.raft('n1').log.committed, 5);
  t.same(c.raft('n1').propose(bytes('d')), { index: 6, term: 2 }, 'accepted again once the queue drained');
});

void t.test('proposals: batching: many proposals between two Readys go out in one append per follower', async (t) => {
  const c = new Cluster(3);
  c.elect('n1');
  const sentBefore = c.sent.length;
  for (let i = 0; i < 100; i++) c.propose('n1', `cmd${i}`);
  const rd = c.processReady('n1')!;
  t.equal(rd.entries.length, 100, 'one Ready persists all of them');
  for (const id of ['n2', 'n3']) {
    const appends = appendsTo(rd.messages, id);
    t.equal(appends.length, 1, `one append to ${id}`);
    t.equal(appends[0]?.entries.length, 100, 'carrying all 100 entries');
  }
  c.stabilize();
  const appendsSent = c.sent.slice(sentBefore).filter((m) => m.type === 'append');
  // One batch per follower, then one empty append per follower carrying the new commit index.
  t.equal(appendsSent.length, 4);
  t.equal(c.commands('n3').length, 100);
});
