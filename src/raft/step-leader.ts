// How a leader handles peer messages of its term: append acks and rejections (flow control, fast back-off,
// commit), heartbeat acks (check-quorum, ReadIndex rounds), snapshot chunk acks, and forwarded reads.
import { unreachable } from '../util/assert.js';
import type { AppendResponse, PeerMessage } from './messages.js';
import { majority } from './quorum.js';
import type { RaftNode } from './raft.js';
import { findConflictByTerm } from './step-follower.js';
import type { NodeId } from './types.js';

/** Bound on reads queued while a new leader waits for its first commit (beyond it, reads are dropped). */
const readsAwaitingCommitMax = 10_000;

export function stepLeader(r: RaftNode, m: PeerMessage): void {
  switch (m.type) {
    case 'appendResp':
      handleAppendResponse(r, m);
      return;
    case 'heartbeatResp': {
      const pr = r.progress.get(m.from);
      if (pr === undefined) return;
      pr.recentActive = true;
      // The follower is alive but behind, and the appends that should catch it up may have been lost (a probe,
      // the tail of a window, or a whole full window): each heartbeat ack lets one more append through. It may
      // be empty: it still checks prevLogIndex, and a rejection sends the leader back to probing.
      pr.probeSent = false;
      if (pr.state === 'replicate' && pr.inflights.isFull()) pr.inflights.freeFirst();
      if (pr.matchIndex < r.log.lastIndex()) r.sendAppend(m.from, true);
      // A TimeoutNow is sent once; the transferee may have lost it, or ignored it because it had not yet applied a
      // committed configuration change (it may not campaign then). Each heartbeat ack repeats it until the
      // transferee campaigns or the transfer is abandoned after an election timeout.
      else if (m.from === r.leadTransferee) r.sendTimeoutNow(m.from);
      if (m.context !== '') {
        const acks = r.readOnly.recordAck(m.context, m.from, (id) => r.conf.voters.includes(id));
        if (acks >= majority(r.conf.voters.length)) r.releaseReads(m.context);
      }
      return;
    }
    case 'snapshotResp': {
      const pr = r.progress.get(m.from);
      if (pr === undefined) return;
      pr.recentActive = true;
      const transfer = pr.snapshot;
      if (pr.state !== 'snapshot' || transfer === null || transfer.metadata.index !== m.snapshotIndex) return;
      transfer.nextOffset = Math.min(m.nextOffset, transfer.data.byteLength);
      transfer.idleTicks = 0;
      r.sendSnapshotChunk(m.from, pr);
      return;
    }
    case 'readIndex':
      handleReadRequest(r, m.context, m.from);
      return;
    case 'vote':
    case 'preVote':
    case 'voteResp':
    case 'preVoteResp':
    case 'append':
    case 'heartbeat':
    case 'snapshot':
    case 'timeoutNow':
    case 'readIndexResp':
      // 'append'/'heartbeat'/'snapshot' in our own term cannot come from another leader (S1); ignore.
      return;
    default:
      unreachable(m, 'message');
  }
}

function handleAppendResponse(r: RaftNode, m: AppendResponse): void {
  const pr = r.progress.get(m.from);
  if (pr === undefined) return;
  pr.recentActive = true;
  if (m.reject) {
    const hint = m.hintTerm > 0 ? findConflictByTerm(r, m.rejectHint, m.hintTerm).index : m.rejectHint;
    if (pr.maybeDecrease(m.index, hint)) {
      if (pr.state === 'replicate') pr.becomeProbe();
      r.sendAppend(m.from, true);
    }
    return;
  }
  const wasPaused = pr.isPaused();
  if (!pr.maybeUpdate(m.index)) {
    if (wasPaused && !pr.isPaused()) r.sendAppend(m.from, false);
    return;
  }
  if (pr.state === 'probe') {
    pr.becomeReplicate();
  } else if (pr.state === 'snapshot' && pr.snapshot !== null && pr.matchIndex >= pr.snapshot.metadata.index) {
    r.logger.info({ to: m.from, index: pr.matchIndex }, 'snapshot installed by follower');
    pr.becomeProbe();
    pr.becomeReplicate();
  } else if (pr.state === 'replicate') {
    pr.inflights.freeLE(m.index);
  }
  if (r.maybeCommit()) {
    // The new commit index reaches followers with the next broadcast (at the next Ready).
  }
  // Pipelining: keep the follower's window full.
  while (r.sendAppend(m.from, false)) {
    /* send until paused or caught up */
  }
  if (m.from === r.leadTransferee && pr.matchIndex === r.log.lastIndex()) r.sendTimeoutNow(m.from);
}

/** A linearizable read asked by `from` (this node or a follower): record the commit index and confirm leadership. */
export function handleReadRequest(r: RaftNode, context: string, from: NodeId): void {
  // Until an entry of this term is committed, the leader's commit index may lag the cluster's (Raft §6.4).
  if (r.log.term(r.log.committed) !== r.term) {
    if (r.readsAwaitingCommit.length >= readsAwaitingCommitMax) {
      reject(r, context, from);
      return;
    }
    r.readsAwaitingCommit.push({ context, from });
    return;
  }
  r.readOnly.add({ context, index: r.log.committed, from });
}

function reject(r: RaftNode, context: string, from: NodeId): void {
  if (from === r.id) r.droppedReads.push(context);
  else r.send({ type: 'readIndexResp', from: r.id, to: from, term: r.term, context, index: 0, ok: false });
}
