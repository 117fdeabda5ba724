// The Raft consensus core: a plain synchronous object. Inputs are `step(message)`, `tick()`, `propose()` and
// `proposeConfChange()`; output is one Ready at a time (see ready.ts). It reads no clock, does no I/O and draws
// randomness only from the PRNG it was given, so the same state and inputs always give the same outputs.
//
// Role behaviour lives in step-leader.ts and step-follower.ts (follower, pre-candidate and candidate); this file
// holds the state, the term rules every role shares, role changes, and the send helpers.
import { assert, assertIndex, unreachable } from '../util/assert.js';
import { KeelError, notApplied } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import type { RaftConfig } from './config.js';
import { validateRaftConfig } from './config.js';
import { RaftLog } from './log.js';
import { applyConfChange, isVoter, members, validateConfChange } from './membership.js';
import type { LocalMessage, Message, PeerMessage } from './messages.js';
import { isPeerMessage } from './messages.js';
import { Progress } from './progress.js';
import { committedIndex, majority } from './quorum.js';
import { ReadOnlyQueue } from './read-index.js';
import type { Ready } from './ready.js';
import { LogCompactedError, SnapshotUnavailableError } from './storage.js';
import { stepFollower, stepCandidate, handleVoteRequest } from './step-follower.js';
import { stepLeader, handleReadRequest } from './step-leader.js';
import type {
  ConfChange,
  ConfState,
  Entry,
  HardState,
  Index,
  NodeId,
  ReadState,
  Role,
  Snapshot,
  SoftState,
  Term,
} from './types.js';

export interface ProgressStatus {
  readonly id: NodeId;
  readonly matchIndex: Index;
  readonly nextIndex: Index;
  readonly state: Progress['state'];
  readonly recentActive: boolean;
  readonly isLearner: boolean;
}

export interface RaftStatus {
  readonly id: NodeId;
  readonly term: Term;
  readonly vote: NodeId | null;
  readonly role: Role;
  readonly leader: NodeId | null;
  readonly commitIndex: Index;
  readonly appliedIndex: Index;
  readonly lastIndex: Index;
  readonly firstIndex: Index;
  readonly conf: ConfState;
  readonly leadTransferee: NodeId | null;
  /** Leader only: its view of every member's log. */
  readonly progress: readonly ProgressStatus[] | null;
}

/** Where a proposal landed: it is applied iff the entry applied at `index` has term `term`. */
export interface ProposalTicket {
  readonly index: Index;
  readonly term: Term;
}

interface IncomingSnapshot {
  readonly index: Index;
  readonly term: Term;
  readonly chunks: Uint8Array[];
  bytes: number;
}

export class RaftNode {
  readonly id: NodeId;
  readonly config: RaftConfig;
  readonly logger: Logger;
  readonly log: RaftLog;

  term: Term = 0;
  vote: NodeId | null = null;
  role: Role = 'follower';
  leader: NodeId | null = null;
  conf: ConfState;

  /** Leader only: one Progress per member, this node included. */
  readonly progress = new Map<NodeId, Progress>();
  /** Pre-candidate and candidate: the answers received in this campaign. */
  readonly votes = new Map<NodeId, boolean>();

  electionElapsed = 0;
  heartbeatElapsed = 0;
  randomizedElectionTimeout = 0;

  /** Leader: the member leadership is being handed to (proposals are refused meanwhile). */
  leadTransferee: NodeId | null = null;
  /** Leader: index of the latest conf change or of its first entry; no new change until it is applied. */
  pendingConfIndex: Index = 0;
  /** Leader: appends are owed to followers (new entries or a new commit index), sent at the next Ready. */
  needsBroadcast = false;

  readonly readOnly = new ReadOnlyQueue();
  /** Leader: reads that arrived before an entry of this term was committed. */
  readsAwaitingCommit: { context: string; from: NodeId }[] = [];

  messages: PeerMessage[] = [];
  readStates: ReadState[] = [];
  droppedReads: string[] = [];

  private incomingSnapshot: IncomingSnapshot | null = null;
  private previousSoftState: SoftState;
  private previousHardState: HardState;
  private outstanding: Ready | null = null;

  constructor(config: RaftConfig) {
    validateRaftConfig(config);
    this.config = config;
    this.id = config.id;
    this.logger = config.logger;
    const { hardState, confState } = config.storage.initialState();
    this.log = new RaftLog(config.storage, 0);
    assert(hardState.commit <= this.log.lastIndex(), `hard state commit ${hardState.commit} beyond the log`);
    assert(config.applied <= this.log.lastIndex(), `applied ${config.applied} beyond the log's last index`);
    // A commit index written without fsync may lag what the state machine applied; both were committed.
    this.log.commitTo(Math.max(hardState.commit, config.applied));
    this.conf = confState;
    // Membership as of `applied`: the snapshot's, then every conf entry up to applied, replayed.
    const applied = Math.max(config.applied, this.log.firstIndex() - 1);
    if (applied >= this.log.firstIndex()) {
      for (const entry of this.log.slice(this.log.firstIndex(), applied + 1, Number.MAX_SAFE_INTEGER)) {
        if (entry.type === 'conf') this.conf = applyConfChange(this.conf, entry.change);
      }
    }
    this.log.appliedTo(applied);
    this.term = hardState.term;
    this.vote = hardState.vote;
    this.becomeFollower(this.term, null);
    this.previousSoftState = this.softState();
    this.previousHardState = this.hardState();
  }

  // ---- public surface -------------------------------------------------------------------------------------

  tick(): void {
    if (this.role === 'leader') this.tickLeader();
    else this.tickElection();
  }

  step(message: Message): void {
    if (!isPeerMessage(message)) {
      this.stepLocal(message);
      return;
    }
    if (message.to !== this.id) return;
    assertIndex(message.term, 'message term');
    if (message.term > this.term) {
      if (!this.acceptHigherTerm(message)) return;
    } else if (message.term < this.term) {
      this.answerStaleTerm(message);
      return;
    }
    if (message.type === 'vote' || message.type === 'preVote') {
      handleVoteRequest(this, message);
      return;
    }
    switch (this.role) {
      case 'leader':
        stepLeader(this, message);
        return;
      case 'candidate':
      case 'precandidate':
        stepCandidate(this, message);
        return;
      case 'follower':
        stepFollower(this, message);
        return;
      default:
        unreachable(this.role, 'role');
    }
  }

  /** Appends a command; throws UNAVAILABLE (not applied) if this node cannot take it. */
  propose(data: Uint8Array): ProposalTicket {
    this.checkCanPropose();
    const index = this.log.lastIndex() + 1;
    this.appendEntries([{ type: 'normal', term: this.term, index, data }]);
    return { index, term: this.term };
  }

  /** Appends a batch of commands as consecutive entries; returns the ticket of the first. */
  proposeBatch(batch: readonly Uint8Array[]): ProposalTicket {
    this.checkCanPropose(batch.length);
    const first = this.log.lastIndex() + 1;
    this.appendEntries(batch.map((data, i) => ({ type: 'normal' as const, term: this.term, index: first + i, data })));
    return { index: first, term: this.term };
  }

  /** Proposes one membership change; throws CONFLICT while another is in progress. */
  proposeConfChange(change: ConfChange): ProposalTicket {
    this.checkCanPropose();
    if (this.pendingConfIndex > this.log.applied) {
      throw new KeelError('CONFLICT', 'a membership change is still in progress', { pendingIndex: this.pendingConfIndex });
    }
    validateConfChange(this.conf, change);
    const index = this.log.lastIndex() + 1;
    this.appendEntries([{ type: 'conf', term: this.term, index, change }]);
    this.pendingConfIndex = index;
    return { index, term: this.term };
  }

  campaign(): void {
    this.step({ type: 'campaign' });
  }

  readIndex(context: string): void {
    this.step({ type: 'readIndexLocal', context });
  }

  transferLeader(to: NodeId): void {
    this.step({ type: 'transferLeader', to });
  }

  hasReady(): boolean {
    if (this.outstanding !== null) return false;
    // Reads already covered by a sent heartbeat round wait for acks, not for a Ready: only unsent ones count.
    if (this.role === 'leader' && (this.needsBroadcast || this.readOnly.hasUnsentReads())) return true;
    return (
      this.messages.length > 0 ||
      this.log.unstable.entries.length > 0 ||
      this.log.unstable.snapshot !== null ||
      this.log.hasNextCommittedEntries() ||
      this.readStates.length > 0 ||
      this.droppedReads.length > 0 ||
      !softStateEqual(this.softState(), this.previousSoftState) ||
      !hardStateEqual(this.hardState(), this.previousHardState)
    );
  }

  ready(): Ready {
    assert(this.outstanding === null, 'ready() called again before advance()');
    if (this.role === 'leader') this.flushLeaderBroadcasts();
    const softState = this.softState();
    const hardState = this.hardState();
    const snapshot = this.log.unstable.snapshot;
    const entries = this.log.unstable.entries.slice();
    const committedEntries = snapshot === null ? this.log.nextCommittedEntries(this.config.committedBytesMax) : [];
    const hardChanged = !hardStateEqual(hardState, this.previousHardState);
    const rd: Ready = {
      softState: softStateEqual(softState, this.previousSoftState) ? null : softState,
      hardState: hardChanged ? hardState : null,
      entries,
      snapshot,
      committedEntries,
      messages: this.messages,
      readStates: this.readStates,
      droppedReads: this.droppedReads,
      mustSync:
        entries.length > 0 ||
        snapshot !== null ||
        hardState.term !== this.previousHardState.term ||
        hardState.vote !== this.previousHardState.vote,
    };
    this.messages = [];
    this.readStates = [];
    this.droppedReads = [];
    const lastCommitted = committedEntries[committedEntries.length - 1];
    if (snapshot !== null) this.log.applying = Math.max(this.log.applying, snapshot.metadata.index);
    if (lastCommitted !== undefined) this.log.applying = lastCommitted.index;
    this.previousSoftState = softState;
    this.previousHardState = hardState;
    this.outstanding = rd;
    return rd;
  }

  /** The driver persisted, sent and applied the outstanding Ready. */
  advance(): void {
    const rd = this.outstanding;
    assert(rd !== null, 'advance() without an outstanding Ready');
    this.outstanding = null;
    if (rd.snapshot !== null) {
      this.log.unstable.stableSnapshotTo(rd.snapshot.metadata.index);
      this.log.appliedTo(rd.snapshot.metadata.index);
    }
    const lastEntry = rd.entries[rd.entries.length - 1];
    if (lastEntry !== undefined) {
      this.log.unstable.stableTo(lastEntry.index, lastEntry.term);
      // A leader counts its own copy towards the quorum only once it is durable.
      if (this.role === 'leader' && this.log.term(lastEntry.index) === lastEntry.term) {
        this.onLeaderPersisted(lastEntry.index);
      }
    }
    for (const entry of rd.committedEntries) {
      if (entry.type === 'conf') this.onConfApplied(entry.change);
    }
    const lastCommitted = rd.committedEntries[rd.committedEntries.length - 1];
    if (lastCommitted !== undefined) this.log.appliedTo(lastCommitted.index);
  }

  status(): RaftStatus {
    return {
      id: this.id,
      term: this.term,
      vote: this.vote,
      role: this.role,
      leader: this.leader,
      commitIndex: this.log.committed,
      appliedIndex: this.log.applied,
      lastIndex: this.log.lastIndex(),
      firstIndex: this.log.firstIndex(),
      conf: this.conf,
      leadTransferee: this.leadTransferee,
      progress:
        this.role !== 'leader'
          ? null
          : [...this.progress].map(([id, pr]) => ({
              id,
              matchIndex: pr.matchIndex,
              nextIndex: pr.nextIndex,
              state: pr.state,
              recentActive: pr.recentActive,
              isLearner: pr.isLearner,
            })),
    };
  }

  isPromotable(): boolean {
    return isVoter(this.conf, this.id);
  }

  // ---- term rules shared by every role ----------------------------------------------------------------------

  /** Returns false when the message must be dropped instead of moving this node to the higher term. */
  private acceptHigherTerm(message: PeerMessage): boolean {
    if (message.type === 'vote' || message.type === 'preVote') {
      // Leader lease (with check-quorum): while we hear from a leader, ignore campaigns (unless a transfer).
      const inLease =
        this.config.checkQuorum && this.leader !== null && this.electionElapsed < this.config.electionTicks;
      if (inLease && !message.transfer) return false;
    }
    // A pre-vote asks about a future term; answering it must not change ours.
    if (message.type === 'preVote') return true;
    if (message.type === 'preVoteResp' && message.granted) return true;
    const fromLeader = message.type === 'append' || message.type === 'heartbeat' || message.type === 'snapshot';
    this.becomeFollower(message.term, fromLeader ? message.from : null);
    return true;
  }

  private answerStaleTerm(message: PeerMessage): void {
    if (message.type === 'append' || message.type === 'heartbeat' || message.type === 'snapshot') {
      // A deposed leader (e.g. back from a partition) learns the new term from this answer and steps down.
      this.send({
        type: 'appendResp', from: this.id, to: message.from, term: this.term,
        index: 0, reject: false, rejectHint: 0, hintTerm: 0,
      });
    } else if (message.type === 'preVote') {
      this.send({ type: 'preVoteResp', from: this.id, to: message.from, term: this.term, granted: false });
    } else if (message.type === 'readIndex') {
      this.send({ type: 'readIndexResp', from: this.id, to: message.from, term: this.term, context: message.context, index: 0, ok: false });
    }
  }

  private stepLocal(message: LocalMessage): void {
    switch (message.type) {
      case 'campaign':
        this.startCampaign(false);
        return;
      case 'transferLeader':
        if (this.role === 'leader') this.startTransfer(message.to);
        return;
      case 'unreachable': {
        const pr = this.progress.get(message.peer);
        if (this.role === 'leader' && pr !== undefined && pr.state === 'replicate') pr.becomeProbe();
        return;
      }
      case 'readIndexLocal':
        this.requestReadIndex(message.context);
        return;
      default:
        unreachable(message, 'local message');
    }
  }

  private requestReadIndex(context: string): void {
    if (this.role === 'leader') {
      handleReadRequest(this, context, this.id);
    } else if (this.leader !== null && this.role === 'follower') {
      this.send({ type: 'readIndex', from: this.id, to: this.leader, term: this.term, context });
    } else {
      this.droppedReads.push(context);
    }
  }

  // ---- timers -----------------------------------------------------------------------------------------------

  private tickElection(): void {
    this.electionElapsed++;
    if (this.isPromotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.startCampaign(false);
    }
  }

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.config.electionTicks) {
      this.electionElapsed = 0;
      if (this.config.checkQuorum && !this.hasActiveQuorum()) {
        this.logger.info({ term: this.term }, 'leader cannot hear a quorum, stepping down');
        this.becomeFollower(this.term, null);
        return;
      }
      if (this.leadTransferee !== null) this.abortTransfer();
    }
    for (const [id, pr] of this.progress) {
      if (id !== this.id && pr.state === 'snapshot' && pr.snapshot !== null && ++pr.snapshot.idleTicks > this.config.electionTicks) {
        // A chunk or its ack was lost: resend from the last acknowledged offset.
        pr.snapshot.idleTicks = 0;
        this.sendSnapshotChunk(id, pr);
      }
    }
    if (this.heartbeatElapsed >= this.config.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      // Carry the latest pending read round, so reads whose round (or its acks) was lost are still confirmed.
      this.broadcastHeartbeat(this.readOnly.lastRound());
    }
  }

  private hasActiveQuorum(): boolean {
    let active = 0;
    for (const id of this.conf.voters) {
      const pr = this.progress.get(id);
      if (id === this.id || pr?.recentActive === true) active++;
    }
    for (const pr of this.progress.values()) pr.recentActive = false;
    return active >= majority(this.conf.voters.length);
  }

  // ---- role changes -----------------------------------------------------------------------------------------

  private reset(term: Term): void {
    if (term !== this.term) {
      this.term = term;
      this.vote = null;
    }
    this.leader = null;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout =
      this.config.electionTicks + this.config.prng.int(0, this.config.electionTicks - 1);
    this.leadTransferee = null;
    this.votes.clear();
    this.progress.clear();
    this.pendingConfIndex = 0;
    this.needsBroadcast = false;
    this.failPendingReads();
  }

  private failPendingReads(): void {
    const lost = [...this.readOnly.drain(), ...this.readsAwaitingCommit.splice(0)];
    for (const read of lost) {
      if (read.from === this.id) this.droppedReads.push(read.context);
      else this.send({ type: 'readIndexResp', from: this.id, to: read.from, term: this.term, context: read.context, index: 0, ok: false });
    }
  }

  becomeFollower(term: Term, leader: NodeId | null): void {
    const wasLeader = this.role === 'leader';
    this.reset(term);
    this.role = 'follower';
    this.leader = leader;
    if (wasLeader) this.logger.info({ term }, 'stepped down');
  }

  /** Starts an election (pre-vote first unless `transfer`); false when this node may not campaign now. */
  startCampaign(transfer: boolean): boolean {
    if (this.role === 'leader' || !this.isPromotable() || this.hasUnappliedConfChange()) return false;
    if (this.config.preVote && !transfer) this.becomePreCandidate();
    else this.becomeCandidate(transfer);
    return true;
  }

  private hasUnappliedConfChange(): boolean {
    if (this.log.committed <= this.log.applying) return false;
    try {
      return this.log
        .slice(this.log.applying + 1, this.log.committed + 1, Number.MAX_SAFE_INTEGER)
        .some((entry) => entry.type === 'conf');
    } catch (err) {
      if (err instanceof LogCompactedError) return false;
      throw err;
    }
  }

  private becomePreCandidate(): void {
    // Pre-vote changes neither term nor vote: a node that cannot win never disrupts the cluster.
    this.votes.clear();
    this.role = 'precandidate';
    this.leader = null;
    this.requestVotes('preVote', this.term + 1, false);
  }

  becomeCandidate(transfer: boolean): void {
    this.reset(this.term + 1);
    this.role = 'candidate';
    this.vote = this.id;
    this.requestVotes('vote', this.term, transfer);
  }

  private requestVotes(type: 'vote' | 'preVote', term: Term, transfer: boolean): void {
    this.votes.set(this.id, true);
    if (this.conf.voters.length === 1) {
      // A single voter wins at once.
      if (type === 'preVote') this.becomeCandidate(transfer);
      else this.becomeLeader();
      return;
    }
    const lastLogIndex = this.log.lastIndex();
    const lastLogTerm = this.log.lastTerm();
    for (const id of this.conf.voters) {
      if (id === this.id) continue;
      this.send({ type, from: this.id, to: id, term, lastLogIndex, lastLogTerm, transfer });
    }
  }

  becomeLeader(): void {
    assert(this.role === 'candidate', 'only a candidate becomes leader');
    this.reset(this.term);
    this.role = 'leader';
    this.leader = this.id;
    const nextIndex = this.log.lastIndex() + 1;
    for (const id of members(this.conf)) {
      this.progress.set(id, new Progress(nextIndex, this.config.inflightMessagesMax, !isVoter(this.conf, id)));
    }
    const self = this.progress.get(this.id);
    if (self !== undefined) {
      self.matchIndex = this.persistedLastIndex();
      self.becomeReplicate();
    }
    // The no-op of the new term: committing it commits every earlier entry (Raft §5.4.2), and no membership
    // change may be proposed before it is applied.
    const index = this.log.lastIndex() + 1;
    this.appendEntries([{ type: 'normal', term: this.term, index, data: new Uint8Array(0) }]);
    this.pendingConfIndex = index;
    this.logger.info({ term: this.term }, 'became leader');
  }

  /** The last index known durable: the log minus whatever is still in the unstable tail. */
  private persistedLastIndex(): Index {
    const unstable = this.log.unstable;
    if (unstable.snapshot !== null) return unstable.snapshot.metadata.index - 1;
    return unstable.entries.length > 0 ? unstable.offset - 1 : this.log.lastIndex();
  }

  // ---- leader helpers ---------------------------------------------------------------------------------------

  private checkCanPropose(count = 1): void {
    if (this.role !== 'leader') throw notApplied('not the leader', { leader: this.leader });
    if (this.leadTransferee !== null) throw notApplied('leadership transfer in progress');
    if (this.log.lastIndex() - this.log.committed + count > this.config.proposalQueueMax) {
      throw notApplied('proposal queue full', { queued: this.log.lastIndex() - this.log.committed });
    }
  }

  private appendEntries(entries: Entry[]): void {
    this.log.append(entries);
    this.needsBroadcast = true;
  }

  private onLeaderPersisted(index: Index): void {
    const self = this.progress.get(this.id);
    if (self !== undefined && self.maybeUpdate(index)) this.maybeCommit();
  }

  /** Advances the commit index to what a majority of voters hold, if that is an entry of this term. */
  maybeCommit(): boolean {
    const index = committedIndex(this.conf.voters, (id) => this.progress.get(id)?.matchIndex ?? 0);
    if (!this.log.maybeCommit(index, this.term)) return false;
    this.needsBroadcast = true;
    if (this.readsAwaitingCommit.length > 0) {
      for (const read of this.readsAwaitingCommit.splice(0)) handleReadRequest(this, read.context, read.from);
    }
    return true;
  }

  private flushLeaderBroadcasts(): void {
    if (this.needsBroadcast) {
      this.needsBroadcast = false;
      for (const id of this.progress.keys()) if (id !== this.id) this.sendAppend(id, true);
    }
    const round = this.readOnly.openRound(this.term, this.id);
    if (round !== null) {
      this.broadcastHeartbeat(round);
      if (this.conf.voters.length === 1) this.releaseReads(round);
    }
  }

  releaseReads(round: string): void {
    for (const read of this.readOnly.release(round)) {
      if (read.from === this.id) this.readStates.push({ index: read.index, context: read.context });
      else this.send({ type: 'readIndexResp', from: this.id, to: read.from, term: this.term, context: read.context, index: read.index, ok: true });
    }
  }

  /**
   * Sends the follower the entries it lacks (or a snapshot if they are compacted). With `allowEmpty` false an
   * append with no entries is not sent. Returns whether a message went out.
   */
  sendAppend(to: NodeId, allowEmpty: boolean): boolean {
    const pr = this.progress.get(to);
    if (pr === undefined || pr.isPaused()) return false;
    const prevLogIndex = pr.nextIndex - 1;
    const prevLogTerm = this.log.term(prevLogIndex);
    let entries: Entry[];
    try {
      entries = this.log.slice(pr.nextIndex, this.log.lastIndex() + 1, this.config.appendBytesMax);
    } catch (err) {
      if (!(err instanceof LogCompactedError)) throw err;
      return this.startSnapshotTransfer(to, pr);
    }
    if (prevLogTerm === null) return this.startSnapshotTransfer(to, pr);
    if (entries.length === 0 && !allowEmpty) return false;
    this.send({
      type: 'append', from: this.id, to, term: this.term,
      prevLogIndex, prevLogTerm, entries, commit: this.log.committed,
    });
    const last = entries[entries.length - 1];
    pr.sentEntries(entries.length, last === undefined ? prevLogIndex : last.index);
    return true;
  }

  /**
   * Starts sending the latest snapshot. If its data is not exported yet (a snapshot recorded without data:
   * SnapshotUnavailableError) nothing is sent and the progress stays as it is: the storage remembers the request,
   * the driver exports one, and the next heartbeat response (which calls sendAppend again) starts the transfer.
   */
  private startSnapshotTransfer(to: NodeId, pr: Progress): boolean {
    let snapshot: Snapshot;
    try {
      snapshot = this.log.snapshot();
    } catch (err) {
      if (!(err instanceof SnapshotUnavailableError)) throw err;
      this.logger.debug({ to, index: this.log.storage.snapshotMetadata().index }, 'snapshot not exported yet; will retry');
      return false;
    }
    assert(snapshot.metadata.index > 0, `follower ${to} needs a snapshot but none exists`);
    pr.becomeSnapshot({ metadata: snapshot.metadata, data: snapshot.data, nextOffset: 0, idleTicks: 0 });
    this.logger.info({ to, index: snapshot.metadata.index, bytes: snapshot.data.byteLength }, 'sending snapshot');
    this.sendSnapshotChunk(to, pr);
    return true;
  }

  sendSnapshotChunk(to: NodeId, pr: Progress): void {
    const transfer = pr.snapshot;
    assert(transfer !== null, 'snapshot chunk without a transfer');
    const data = transfer.data.subarray(transfer.nextOffset, transfer.nextOffset + this.config.snapshotChunkBytes);
    this.send({
      type: 'snapshot', from: this.id, to, term: this.term, metadata: transfer.metadata,
      offset: transfer.nextOffset, data, totalBytes: transfer.data.byteLength,
      done: transfer.nextOffset + data.byteLength >= transfer.data.byteLength,
    });
  }

  broadcastHeartbeat(context: string): void {
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      this.send({ type: 'heartbeat', from: this.id, to: id, term: this.term, commit: Math.min(pr.matchIndex, this.log.committed), context });
    }
  }

  private startTransfer(to: NodeId): void {
    if (to === this.id || !isVoter(this.conf, to) || this.leadTransferee === to) return;
    const pr = this.progress.get(to);
    if (pr === undefined) return;
    this.leadTransferee = to;
    this.electionElapsed = 0;
    this.logger.info({ to }, 'transferring leadership');
    if (pr.matchIndex === this.log.lastIndex()) this.sendTimeoutNow(to);
    else this.sendAppend(to, true);
  }

  abortTransfer(): void {
    this.leadTransferee = null;
  }

  sendTimeoutNow(to: NodeId): void {
    this.send({ type: 'timeoutNow', from: this.id, to, term: this.term });
  }

  // ---- membership -------------------------------------------------------------------------------------------

  private onConfApplied(change: ConfChange): void {
    this.conf = applyConfChange(this.conf, change);
    if (this.role !== 'leader') return;
    for (const id of members(this.conf)) {
      const pr = this.progress.get(id);
      if (pr === undefined) {
        this.progress.set(id, new Progress(this.log.lastIndex() + 1, this.config.inflightMessagesMax, !isVoter(this.conf, id)));
      } else {
        pr.isLearner = !isVoter(this.conf, id);
      }
    }
    for (const id of [...this.progress.keys()]) if (!members(this.conf).includes(id)) this.progress.delete(id);
    if (this.leadTransferee !== null && !isVoter(this.conf, this.leadTransferee)) this.abortTransfer();
    if (!isVoter(this.conf, this.id)) {
      // This leader was removed (or demoted): it steps down and, no longer a voter, never campaigns again.
      this.becomeFollower(this.term, null);
      return;
    }
    this.maybeCommit();
    this.needsBroadcast = true;
  }

  // ---- follower side of snapshots ---------------------------------------------------------------------------

  /** Handles one InstallSnapshot chunk; returns the snapshot once the last chunk arrived, else null. */
  receiveSnapshotChunk(message: PeerMessage & { type: 'snapshot' }): Snapshot | null {
    const { metadata } = message;
    let incoming = this.incomingSnapshot;
    if (incoming === null || incoming.index !== metadata.index || incoming.term !== metadata.term) {
      incoming = message.offset === 0 ? { index: metadata.index, term: metadata.term, chunks: [], bytes: 0 } : null;
      this.incomingSnapshot = incoming;
    }
    if (incoming === null || message.offset !== incoming.bytes) {
      this.send({
        type: 'snapshotResp', from: this.id, to: message.from, term: this.term,
        snapshotIndex: metadata.index, nextOffset: incoming?.bytes ?? 0,
      });
      return null;
    }
    incoming.chunks.push(message.data.slice());
    incoming.bytes += message.data.byteLength;
    if (!message.done) {
      this.send({
        type: 'snapshotResp', from: this.id, to: message.from, term: this.term,
        snapshotIndex: metadata.index, nextOffset: incoming.bytes,
      });
      return null;
    }
    assert(incoming.bytes === message.totalBytes, `snapshot bytes ${incoming.bytes} != announced ${message.totalBytes}`);
    this.incomingSnapshot = null;
    const data = new Uint8Array(incoming.bytes);
    let offset = 0;
    for (const chunk of incoming.chunks) {
      data.set(chunk, offset);
      offset += chunk.byteLength;
    }
    return { metadata, data };
  }

  /** Installs a snapshot from the leader; returns false if the log already covers it. */
  restoreSnapshot(snapshot: Snapshot): boolean {
    const { index, term } = snapshot.metadata;
    if (index <= this.log.committed) return false;
    if (this.log.matchTerm(index, term)) {
      // We already hold that entry: just fast-forward the commit index instead of discarding the log.
      this.log.commitTo(index);
      return false;
    }
    this.logger.info({ index, term }, 'installing snapshot');
    this.log.restore(snapshot);
    this.conf = snapshot.metadata.conf;
    return true;
  }

  // ---- output -----------------------------------------------------------------------------------------------

  send(message: PeerMessage): void {
    this.messages.push(message);
  }

  softState(): SoftState {
    return { leader: this.leader, role: this.role };
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }
}

function softStateEqual(a: SoftState, b: SoftState): boolean {
  return a.leader === b.leader && a.role === b.role;
}

function hardStateEqual(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}
