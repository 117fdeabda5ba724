// How a follower, pre-candidate and candidate handle peer messages of their current term, and how any role
// answers a vote request (Raft §5.2, §5.4.1, pre-vote §9.6).
import { unreachable } from '../util/assert.js';
import type { AppendRequest, PeerMessage, VoteRequest } from './messages.js';
import { voteResult } from './quorum.js';
import type { RaftNode } from './raft.js';
import type { Index, Term } from './types.js';

export function handleVoteRequest(r: RaftNode, m: VoteRequest): void {
  const isPreVote = m.type === 'preVote';
  // We may grant if we already voted for this candidate, or have not voted and know no leader in this term, or
  // (pre-vote) the candidate asks about a later term than ours.
  const canVote =
    r.vote === m.from ||
    (r.vote === null && r.leader === null) ||
    (isPreVote && m.term > r.term);
  const granted = canVote && r.log.isUpToDate(m.lastLogIndex, m.lastLogTerm);
  const responseType = isPreVote ? 'preVoteResp' : 'voteResp';
  if (granted) {
    // A granted pre-vote echoes the candidate's (future) term; a granted vote is persisted before it leaves.
    r.send({ type: responseType, from: r.id, to: m.from, term: m.term, granted: true });
    if (!isPreVote) {
      r.electionElapsed = 0;
      r.vote = m.from;
    }
  } else {
    r.send({ type: responseType, from: r.id, to: m.from, term: r.term, granted: false });
  }
}

export function stepFollower(r: RaftNode, m: PeerMessage): void {
  switch (m.type) {
    case 'append':
      r.electionElapsed = 0;
      r.leader = m.from;
      handleAppend(r, m);
      return;
    case 'heartbeat':
      r.electionElapsed = 0;
      r.leader = m.from;
      // The leader sends min(matchIndex, commit); a follower that lost its log (a wiped data dir rejoining with
      // the same id) holds less than the leader believes: never commit beyond what we hold.
      r.log.commitTo(Math.min(m.commit, r.log.lastIndex()));
      r.send({ type: 'heartbeatResp', from: r.id, to: m.from, term: r.term, context: m.context });
      return;
    case 'snapshot':
      r.electionElapsed = 0;
      r.leader = m.from;
      handleSnapshotChunk(r, m);
      return;
    case 'timeoutNow':
      // The leader hands over leadership: campaign at once, skipping pre-vote and the voters' leader lease. Not
      // while a committed configuration change is unapplied: the leader repeats TimeoutNow on heartbeat acks.
      if (r.startCampaign(true)) r.logger.info({ from: m.from, term: r.term }, 'leadership transfer: campaigning now');
      return;
    case 'readIndexResp':
      if (m.ok) r.readStates.push({ index: m.index, context: m.context });
      else r.droppedReads.push(m.context);
      return;
    case 'readIndex':
      r.send({ type: 'readIndexResp', from: r.id, to: m.from, term: r.term, context: m.context, index: 0, ok: false });
      return;
    case 'vote':
    case 'preVote':
    case 'voteResp':
    case 'preVoteResp':
    case 'appendResp':
    case 'heartbeatResp':
    case 'snapshotResp':
      return;
    default:
      unreachable(m, 'message');
  }
}

export function stepCandidate(r: RaftNode, m: PeerMessage): void {
  switch (m.type) {
    case 'append':
    case 'heartbeat':
    case 'snapshot':
      // A leader exists in our term: give up the campaign and follow it.
      r.becomeFollower(r.term, m.from);
      stepFollower(r, m);
      return;
    case 'voteResp':
    case 'preVoteResp': {
      const expected = r.role === 'precandidate' ? 'preVoteResp' : 'voteResp';
      if (m.type !== expected) return;
      r.votes.set(m.from, m.granted);
      const result = voteResult(r.conf.voters, r.votes);
      if (result === 'won') {
        if (r.role === 'precandidate') r.becomeCandidate(false);
        else r.becomeLeader();
      } else if (result === 'lost') {
        r.becomeFollower(r.term, null);
      }
      return;
    }
    case 'readIndex':
      r.send({ type: 'readIndexResp', from: r.id, to: m.from, term: r.term, context: m.context, index: 0, ok: false });
      return;
    case 'readIndexResp':
      r.droppedReads.push(m.context);
      return;
    case 'timeoutNow':
    case 'vote':
    case 'preVote':
    case 'appendResp':
    case 'heartbeatResp':
    case 'snapshotResp':
      return;
    default:
      unreachable(m, 'message');
  }
}

function handleAppend(r: RaftNode, m: AppendRequest): void {
  const base = { type: 'appendResp' as const, from: r.id, to: m.from, term: r.term };
  if (m.prevLogIndex < r.log.committed) {
    // Everything up to our commit index is settled; tell the leader where we are.
    r.send({ ...base, index: r.log.committed, reject: false, rejectHint: 0, hintTerm: 0 });
    return;
  }
  const lastNewIndex = r.log.maybeAppend(m.prevLogIndex, m.prevLogTerm, m.commit, m.entries);
  if (lastNewIndex !== null) {
    r.send({ ...base, index: lastNewIndex, reject: false, rejectHint: 0, hintTerm: 0 });
    return;
  }
  // Fast back-off: point the leader at the last index whose term is <= the term it tried, so one round trip
  // skips a whole term of divergent entries.
  const hint = findConflictByTerm(r, Math.min(m.prevLogIndex, r.log.lastIndex()), m.prevLogTerm);
  r.send({ ...base, index: m.prevLogIndex, reject: true, rejectHint: hint.index, hintTerm: hint.term });
}

/** The largest index <= `index` whose term is <= `term` (or the first index we can no longer see). */
export function findConflictByTerm(r: RaftNode, index: Index, term: Term): { index: Index; term: Term } {
  let i = index;
  for (;;) {
    const t = r.log.term(i);
    if (t === null) return { index: i, term: 0 };
    if (t <= term || i === 0) return { index: i, term: t };
    i--;
  }
}

function handleSnapshotChunk(r: RaftNode, m: PeerMessage & { type: 'snapshot' }): void {
  if (m.metadata.index <= r.log.committed) {
    r.send({ type: 'appendResp', from: r.id, to: m.from, term: r.term, index: r.log.committed, reject: false, rejectHint: 0, hintTerm: 0 });
    return;
  }
  const snapshot = r.receiveSnapshotChunk(m);
  if (snapshot === null) return;
  r.restoreSnapshot(snapshot);
  // Either way our log now matches the leader's up to the commit index (the snapshot index at least).
  r.send({ type: 'appendResp', from: r.id, to: m.from, term: r.term, index: r.log.committed, reject: false, rejectHint: 0, hintTerm: 0 });
}
