// The driver runs the pure core against real I/O. One loop handles one Ready at a time, in the order the core
// requires: persist (one batch, synced when the Ready says so) → send → apply → advance, except that a leader's
// appends and heartbeats leave before its own write (sendsBeforePersist in ready.ts), so the followers' fsyncs
// overlap the leader's instead of following it, and committed entries already durable here are applied while
// the write runs (a commit-only hard state is not written on its own at all: see persist()). While a Ready is being
// persisted, incoming messages, ticks and proposals keep stepping the core; they pile up in its next Ready, so
// many proposals share one fsync (group commit) and one AppendEntries per follower (batching).
//
// Proposals and reads return promises with typed outcomes: UNAVAILABLE means definitely not applied, TIMEOUT
// means it may have been applied (see util/errors.ts).
import { EventEmitter } from 'node:events';
import { assert } from '../../util/assert.js';
import type { Clock } from '../../util/clock.js';
import { KeelError, mayHaveApplied, notApplied } from '../../util/errors.js';
import type { Logger } from '../../util/logger.js';
import { latencyTraceEnabled, traceMark } from '../../util/latency-trace.js';
import type { PeerMessage } from '../messages.js';
import type { RaftNode, RaftStatus } from '../raft.js';
import type { Ready } from '../ready.js';
import { sendsBeforePersist } from '../ready.js';
import type { StateMachine } from '../state-machine.js';
import type { ConfChange, ConfState, Entry, HardState, Index, NodeId, Role, SoftState, Term } from '../types.js';
import type { DurableLogStorage } from '../storage.js';
import type { Transport } from './transport.js';

export interface DriverOptions {
  readonly node: RaftNode;
  readonly storage: DurableLogStorage;
  readonly transport: Transport;
  readonly stateMachine: StateMachine;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly tickMs: number;
  /** Take a state-machine snapshot (and compact the log) every this many applied entries. */
  readonly snapshotEntries: number;
  /** Entries kept in the log behind a snapshot, so a slightly lagging follower needs no snapshot. */
  readonly snapshotKeepEntries: number;
  readonly proposalTimeoutMs: number;
  readonly readTimeoutMs: number;
  /**
   * How long a leader holds an append without entries (a new commit index: see splitMessages()), waiting for an
   * append with entries to carry it instead; 0 sends it once this node applied. Default commitHoldMsDefault.
   */
  readonly commitHoldMs?: number;
  /** Called when the node must stop (failed assertion, storage error): the process exits. */
  readonly onFatal: (err: unknown) => void;
}

export const commitHoldMsDefault = 5;

interface PendingProposal {
  readonly term: Term;
  readonly resolve: (result: unknown) => void;
  readonly reject: (err: unknown) => void;
  readonly timer: NodeJS.Timeout;
}

interface ReadWaiter {
  readonly resolve: (index: Index) => void;
  readonly reject: (err: unknown) => void;
  readonly timer: NodeJS.Timeout;
}

export interface DriverCounters {
  readyLoops: number;
  proposalsCommitted: number;
  proposalsFailed: number;
  entriesApplied: number;
  /** Snapshots taken: the state machine synced, a snapshot recorded without data, the log compacted. */
  snapshotsTaken: number;
  /** Snapshots whose data was exported because a follower needed one. */
  snapshotsExported: number;
  snapshotsInstalled: number;
  leaderChanges: number;
}

/**
 * Driver events: 'softState' (SoftState), 'applied' (Index), 'confApplied' (ConfChange),
 * 'persisted' ({sync, durationMs}), 'peerRtt' ({peer, ms}).
 */
export class RaftDriver extends EventEmitter {
  readonly counters: DriverCounters = {
    readyLoops: 0, proposalsCommitted: 0, proposalsFailed: 0, entriesApplied: 0,
    snapshotsTaken: 0, snapshotsExported: 0, snapshotsInstalled: 0, leaderChanges: 0,
  };
  private readonly options: DriverOptions;
  private readonly node: RaftNode;
  private readonly pendingProposals = new Map<Index, PendingProposal>();
  private readonly pendingReads = new Map<string, ReadWaiter[]>();
  /** Reads waiting for appliedIndex to reach their read index, in index order of arrival. */
  private readonly readsAwaitingApply: { index: Index; waiters: ReadWaiter[] }[] = [];
  /** Reads asked since the last flush: they share one ReadIndex request (one heartbeat round). */
  private readBatch: ReadWaiter[] = [];
  private readCounter = 0;
  private ticker: NodeJS.Timeout | null = null;
  private running = false;
  private scheduled = false;
  private closed = false;
  private fatal: unknown = null;
  private lastSnapshotIndex: Index;
  /** No periodic snapshot before this applied index (one was put off: takeSnapshot()). */
  private snapshotRetryAt: Index = 0;
  private loopDone: Promise<void> = Promise.resolve();
  /** The snapshot being taken or exported off the loop (at most one), or null. */
  private snapshotInFlight: Promise<void> | null = null;
  private softState: SoftState;
  /** The newest hard state whose change was only its commit index, not written yet (see persist()). */
  private unsavedHardState: HardState | null = null;
  private readonly heartbeatSentAt = new Map<NodeId, number>();
  /** Appends without entries held back, the newest per follower, and the timer that sends them (holdCommits()). */
  private readonly heldCommits = new Map<NodeId, PeerMessage>();
  private heldTimer: NodeJS.Timeout | null = null;

  constructor(options: DriverOptions) {
    super();
    this.options = options;
    this.node = options.node;
    this.lastSnapshotIndex = options.storage.snapshotMetadata().index;
    this.softState = this.node.softState();
  }

  start(): void {
    this.options.transport.onMessage((message) => this.onPeerMessage(message));
    this.options.transport.onUnreachable((peer) => this.guard(() => this.node.step({ type: 'unreachable', peer })));
    // Election tick advance (as etcd does): a node that just started has heard from no leader, so it may count
    // all but one tick of the base election timeout as elapsed. Its first campaign then comes after 1..electionTicks
    // ticks instead of electionTicks..2*electionTicks, still randomized, and a fresh cluster elects a leader about
    // one election timeout sooner. Safe: pre-vote keeps an early campaign from disrupting a live leader, and a
    // leader's heartbeat (arriving within one tick) resets the count anyway.
    this.guard(() => {
      for (let i = 0; i < this.node.config.electionTicks - 1; i++) this.node.tick();
    });
    this.ticker = setInterval(() => this.guard(() => this.onTick()), this.options.tickMs);
    this.schedule();
  }

  /** A copy of the core's whole state, every peer's progress included: for status pages, not per request. */
  status(): RaftStatus {
    return this.node.status();
  }

  // The getters below read one field each, for the checks made on every request or apply (status() allocates).

  get role(): Role {
    return this.node.role;
  }

  /** The leader this node knows of, or null. */
  get leader(): NodeId | null {
    return this.node.leader;
  }

  /** The membership as the core sees it now. */
  get conf(): ConfState {
    return this.node.conf;
  }

  get lastIndex(): Index {
    return this.node.log.lastIndex();
  }

  get appliedIndex(): Index {
    return this.node.log.applied;
  }

  /** Proposes a command; resolves with the state machine's result once applied. */
  propose(data: Uint8Array): Promise<unknown> {
    return this.track(() => this.node.propose(data));
  }

  proposeConfChange(change: ConfChange): Promise<unknown> {
    return this.track(() => this.node.proposeConfChange(change));
  }

  private track(append: () => { index: Index; term: Term }): Promise<unknown> {
    if (this.closed) return Promise.reject(notApplied('node is shutting down'));
    traceMark('propose');
    let ticket: { index: Index; term: Term };
    try {
      ticket = append();
    } catch (err) {
      this.counters.proposalsFailed++;
      return Promise.reject(err);
    }
    this.schedule(true);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pendingProposals.delete(ticket.index);
        this.counters.proposalsFailed++;
        reject(mayHaveApplied(`proposal at index ${ticket.index} not applied within ${this.options.proposalTimeoutMs} ms`));
      }, this.options.proposalTimeoutMs);
      this.pendingProposals.set(ticket.index, { term: ticket.term, resolve, reject, timer });
    });
  }

  /**
   * Waits until this node may serve a linearizable read: resolves with the read index once the leader confirmed
   * it and this node applied up to it. Concurrent callers share one ReadIndex round.
   */
  readIndex(): Promise<Index> {
    if (this.closed) return Promise.reject(notApplied('node is shutting down'));
    return new Promise((resolve, reject) => {
      const waiter: ReadWaiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.removeReadWaiter(waiter);
          reject(new KeelError('UNAVAILABLE', `no read index within ${this.options.readTimeoutMs} ms`));
        }, this.options.readTimeoutMs),
      };
      this.readBatch.push(waiter);
      if (this.readBatch.length === 1) queueMicrotask(() => this.flushReadBatch());
    });
  }

  private flushReadBatch(): void {
    const batch = this.readBatch;
    this.readBatch = [];
    if (batch.length === 0) return;
    const context = `${this.node.id}:${++this.readCounter}`;
    this.pendingReads.set(context, batch);
    this.guard(() => this.node.readIndex(context));
    this.schedule();
  }

  private removeReadWaiter(waiter: ReadWaiter): void {
    this.readBatch = this.readBatch.filter((w) => w !== waiter);
    for (const [context, waiters] of this.pendingReads) {
      const kept = waiters.filter((w) => w !== waiter);
      if (kept.length === 0) this.pendingReads.delete(context);
      else this.pendingReads.set(context, kept);
    }
    for (const group of this.readsAwaitingApply) {
      const i = group.waiters.indexOf(waiter);
      if (i >= 0) group.waiters.splice(i, 1);
    }
  }

  transferLeader(to: NodeId): void {
    this.guard(() => this.node.transferLeader(to));
    this.schedule();
  }

  /** Graceful stop: hand leadership over if leader, finish the Ready in flight, fail what is pending. */
  async close(): Promise<void> {
    if (this.closed) return;
    if (this.node.role === 'leader') await this.handOverLeadership(1500);
    this.closed = true;
    if (this.ticker !== null) clearInterval(this.ticker);
    this.ticker = null;
    await this.loopDone;
    this.sendHeldCommits();
    await this.snapshotInFlight;
    await this.flushHardState().catch((err: unknown) => this.options.logger.warn({ err }, 'could not write the last commit index at shutdown'));
    this.failEverything(() => notApplied('node is shutting down'), () => mayHaveApplied('node shut down before the proposal was applied'));
  }

  private async handOverLeadership(timeoutMs: number): Promise<void> {
    const status = this.node.status();
    // Only a voter we can reach right now: a peer that is down (often the previous leader, stopping a moment ago,
    // whose matchIndex this new leader has not learned yet) would hold this node in a doomed transfer for the whole
    // timeout, refusing proposals. Among those, one that answered recently and has the most of the log goes first.
    const candidates = (status.progress ?? [])
      .filter((p) => p.id !== this.node.id && !p.isLearner && status.conf.voters.includes(p.id))
      .filter((p) => this.options.transport.isConnected(p.id))
      .sort((a, b) => Number(b.recentActive) - Number(a.recentActive) || b.matchIndex - a.matchIndex);
    const target = candidates[0];
    if (target === undefined) return;
    this.options.logger.info({ to: target.id }, 'shutting down: transferring leadership');
    this.transferLeader(target.id);
    const deadline = this.options.clock.nowMs() + timeoutMs;
    while (this.node.role === 'leader' && this.options.clock.nowMs() < deadline && this.fatal === null) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  // ---- the loop ---------------------------------------------------------------------------------------------

  /** Heartbeat send times per peer, for the round-trip metric (one outstanding probe per peer). */
  private notePlainHeartbeats(messages: readonly PeerMessage[]): void {
    const now = this.options.clock.nowMs();
    for (const message of messages) {
      if (message.type !== 'heartbeat') continue;
      const sentAt = this.heartbeatSentAt.get(message.to);
      // A probe whose answer was lost is replaced after a while instead of reporting a huge round trip.
      if (sentAt === undefined || now - sentAt > 10 * this.options.tickMs) this.heartbeatSentAt.set(message.to, now);
    }
  }

  private onPeerMessage(message: PeerMessage): void {
    if (this.closed) return;
    if (latencyTraceEnabled) traceMessages('recv', [message]);
    if (message.type === 'heartbeatResp') {
      const sentAt = this.heartbeatSentAt.get(message.from);
      if (sentAt !== undefined) {
        this.heartbeatSentAt.delete(message.from);
        this.emit('peerRtt', { peer: message.from, ms: this.options.clock.nowMs() - sentAt });
      }
    }
    this.guard(() => this.node.step(message), true);
  }

  /**
   * A tick of the core. A follower's need for a snapshot is found while stepping a heartbeat response, which
   * often makes no Ready: with the loop idle, the export is started from here (a running loop starts it itself).
   */
  private onTick(): void {
    this.node.tick();
    if (!this.running && !this.scheduled && this.options.storage.snapshotRequested()) this.maybeSnapshot();
  }

  /** Runs `fn` on the core; a thrown error is a bug (or a broken disk) and stops the node. */
  private guard(fn: () => void, soon = false): void {
    if (this.fatal !== null) return;
    try {
      fn();
    } catch (err) {
      this.die(err);
    }
    this.schedule(soon);
  }

  private die(err: unknown): void {
    if (this.fatal !== null) return;
    this.fatal = err;
    this.closed = true;
    if (this.ticker !== null) clearInterval(this.ticker);
    if (this.heldTimer !== null) clearTimeout(this.heldTimer);
    this.options.logger.error({ err }, 'fatal: stopping the node');
    this.failEverything(() => notApplied('node stopped'), () => mayHaveApplied('node stopped'));
    this.options.onFatal(err);
  }

  /**
   * Starts the loop if the core has a Ready and no loop runs. `soon` (a proposal, a peer message: the write path)
   * starts it at the end of the current callback (a microtask) instead of after the poll phase (setImmediate),
   * saving one event-loop hop on each of the leader's propose, the follower's append and the leader's ack.
   * Messages decoded from one socket read are all stepped before it runs; proposals arriving while a Ready is
   * being written still pile up into the next one (group commit).
   */
  private schedule(soon = false): void {
    if (this.scheduled || this.running || this.fatal !== null) return;
    if (!this.node.hasReady()) return;
    this.scheduled = true;
    traceMark('schedule');
    const run = (): void => {
      traceMark('loop.start');
      this.scheduled = false;
      this.loopDone = this.runLoop();
    };
    if (soon) queueMicrotask(run);
    else setImmediate(run);
  }

  private async runLoop(): Promise<void> {
    if (this.running || this.fatal !== null) return;
    this.running = true;
    try {
      while (this.fatal === null && this.node.hasReady()) {
        const rd = this.node.ready();
        this.counters.readyLoops++;
        if (latencyTraceEnabled) traceReady(rd);
        await this.handleReady(rd);
        this.node.advance();
        traceMark('advanced');
        this.afterAdvance();
        this.maybeSnapshot();
      }
    } catch (err) {
      this.die(err);
    } finally {
      this.running = false;
    }
    this.schedule();
  }

  private async handleReady(rd: Ready): Promise<void> {
    if (rd.softState !== null) this.onSoftState(rd.softState);
    // 0. a leader's appends and heartbeats leave first: followers write while this node writes (ready.ts); an
    //    append without entries (a new commit index) is held (splitMessages()).
    const { early, late, empty } = splitMessages(rd);
    this.sendMessages(early);
    // A received snapshot replaces the log: a local snapshot still being written must land (or be dropped) first.
    if (rd.snapshot !== null) await this.snapshotInFlight;
    // 1. persist: a vote or an append ack must never leave before what it promises is durable.
    const persisting = this.persist(rd);
    // Committed entries already durable in this node's log are applied while this Ready's own write runs (ready.ts),
    // started after the write was issued so the write does not wait for the apply's first steps.
    const applying = this.applyWhileWriting(rd);
    // Both are awaited below; this only keeps a failure meanwhile from counting as unhandled.
    applying?.catch(() => undefined);
    persisting.catch(() => undefined);
    try {
      await persisting;
    } catch (err) {
      // A failed write stops the node; the apply in flight still ends before the loop gives up (no overlap).
      if (applying !== null) await applying.catch(() => undefined);
      throw err;
    }
    // 2. send the rest (votes, acks: what they promise is durable now).
    this.sendMessages(late);
    // 3. apply.
    if (rd.snapshot !== null) {
      await this.options.stateMachine.restore(rd.snapshot);
      this.counters.snapshotsInstalled++;
      this.lastSnapshotIndex = rd.snapshot.metadata.index;
      this.failProposalsUpTo(rd.snapshot.metadata.index);
    }
    if (applying !== null) await applying;
    else if (rd.committedEntries.length > 0) await this.applyEntries(rd.committedEntries);
    this.holdCommits(empty);
    for (const context of rd.droppedReads) this.failRead(context);
    for (const state of rd.readStates) this.onReadState(state.context, state.index);
  }

  /**
   * Writes the Ready's snapshot, entries and hard state in one batch. A hard state that changed only its commit
   * index (no entries, no snapshot, no term or vote change: mustSync false) is not written on its own: it is kept
   * and goes into the next batch (or the write at close()). The commit index promises nothing to anyone and is
   * written without fsync anyway (as etcd does); a node that restarts with an older one takes the state
   * machine's applied index as committed (raft.ts) and learns the rest from the leader. This saves a LevelDB
   * write per commit on every node, which was on the path of every answer (the apply waited for it).
   */
  private async persist(rd: Ready): Promise<void> {
    if (rd.snapshot === null && rd.entries.length === 0 && !rd.mustSync) {
      if (rd.hardState !== null) this.unsavedHardState = rd.hardState;
      return;
    }
    const hardState = rd.hardState ?? this.unsavedHardState;
    traceMark(rd.mustSync ? 'persist.start' : 'persist.nosync.start');
    const startMs = this.options.clock.nowMs();
    await this.options.storage.save({ hardState, entries: rd.entries, snapshot: rd.snapshot }, rd.mustSync);
    this.emit('persisted', { sync: rd.mustSync, durationMs: this.options.clock.nowMs() - startMs });
    traceMark(rd.mustSync ? 'persist.end' : 'persist.nosync.end');
    this.unsavedHardState = null;
  }

  /** Writes a commit-only hard state kept back by persist(), at shutdown. */
  private async flushHardState(): Promise<void> {
    const hardState = this.unsavedHardState;
    if (hardState === null || this.fatal !== null) return;
    await this.options.storage.save({ hardState, entries: [], snapshot: null }, false);
    this.unsavedHardState = null;
  }

  /**
   * Starts applying the Ready's committed entries at once if all of them are already in the durable log (their
   * index <= storage.lastIndex(), which moves only after a write landed; committed entries are never truncated),
   * so the apply overlaps the Ready's own write; null when there is nothing to apply or an entry is not durable
   * yet (a follower may learn a commit index covering entries of this very Ready): those wait for the write.
   */
  private applyWhileWriting(rd: Ready): Promise<void> | null {
    const last = rd.committedEntries[rd.committedEntries.length - 1];
    if (last === undefined || rd.snapshot !== null || last.index > this.options.storage.lastIndex()) return null;
    return this.applyEntries(rd.committedEntries);
  }

  private sendMessages(messages: readonly PeerMessage[]): void {
    if (messages.length === 0) return;
    // An append to a follower carries the commit index too: a commit-only append held for it is superseded.
    if (this.heldCommits.size > 0) for (const m of messages) if (m.type === 'append') this.heldCommits.delete(m.to);
    this.notePlainHeartbeats(messages);
    this.options.transport.send(messages);
    if (latencyTraceEnabled) traceMessages('sent', messages);
  }

  /** Holds appends without entries until an append to the same follower supersedes them or commitHoldMs passes. */
  private holdCommits(messages: readonly PeerMessage[]): void {
    if (messages.length === 0) return;
    const holdMs = this.options.commitHoldMs ?? commitHoldMsDefault;
    if (holdMs <= 0 || this.closed) {
      this.sendMessages(messages);
      return;
    }
    for (const m of messages) this.heldCommits.set(m.to, m);
    this.heldTimer ??= setTimeout(() => {
      this.heldTimer = null;
      this.sendHeldCommits();
    }, holdMs);
  }

  private sendHeldCommits(): void {
    if (this.heldTimer !== null) clearTimeout(this.heldTimer);
    this.heldTimer = null;
    if (this.heldCommits.size === 0 || this.fatal !== null) return;
    const messages = [...this.heldCommits.values()];
    this.heldCommits.clear();
    this.sendMessages(messages);
  }

  /**
   * Applies the entries and answers their proposers: as soon as the state machine has the results (its `answer`
   * callback, before its own write lands: reads it serves wait for that write), else when apply() returns. A conf
   * change is answered only after apply() returned and 'confApplied' went out, as before: whoever proposed it
   * then finds the new membership everywhere on this node.
   */
  private async applyEntries(entries: readonly Entry[]): Promise<void> {
    traceMark('apply.start');
    let answered = false;
    const answer = (results: readonly unknown[]): void => {
      if (answered) return;
      answered = true;
      this.answerProposals(entries, results, 'normal');
    };
    const results = await this.options.stateMachine.apply(entries, answer);
    traceMark('apply.end');
    answer(results);
    for (const entry of entries) {
      this.counters.entriesApplied++;
      if (entry.type === 'conf') this.emit('confApplied', entry.change);
    }
    this.answerProposals(entries, results, 'conf');
  }

  private answerProposals(entries: readonly Entry[], results: readonly unknown[], type: Entry['type']): void {
    assert(results.length === entries.length, 'state machine returned a result count different from the entries');
    entries.forEach((entry, i) => {
      if (entry.type !== type) return;
      const pending = this.pendingProposals.get(entry.index);
      if (pending === undefined) return;
      this.pendingProposals.delete(entry.index);
      clearTimeout(pending.timer);
      if (pending.term === entry.term) {
        this.counters.proposalsCommitted++;
        traceMark('resolve');
        pending.resolve(results[i]);
      } else {
        // Another leader's entry took this index: ours was never committed anywhere.
        this.counters.proposalsFailed++;
        pending.reject(notApplied(`proposal at index ${entry.index} was overwritten by a new leader`));
      }
    });
  }

  private afterAdvance(): void {
    const applied = this.node.log.applied;
    while (this.readsAwaitingApply.length > 0 && this.readsAwaitingApply[0]!.index <= applied) {
      const group = this.readsAwaitingApply.shift()!;
      for (const waiter of group.waiters) {
        clearTimeout(waiter.timer);
        waiter.resolve(group.index);
      }
    }
    this.emit('applied', applied);
  }

  private onSoftState(softState: SoftState): void {
    if (softState.leader !== this.softState.leader) this.counters.leaderChanges++;
    this.softState = softState;
    this.emit('softState', softState);
  }

  private onReadState(context: string, index: Index): void {
    const waiters = this.pendingReads.get(context);
    if (waiters === undefined) return;
    this.pendingReads.delete(context);
    if (index <= this.node.log.applied) {
      for (const waiter of waiters) {
        clearTimeout(waiter.timer);
        waiter.resolve(index);
      }
      return;
    }
    // Read states arrive in index order per leader term; keep the queue sorted anyway.
    const at = this.readsAwaitingApply.findIndex((group) => group.index > index);
    const group = { index, waiters };
    if (at < 0) this.readsAwaitingApply.push(group);
    else this.readsAwaitingApply.splice(at, 0, group);
  }

  private failRead(context: string): void {
    const waiters = this.pendingReads.get(context);
    if (waiters === undefined) return;
    this.pendingReads.delete(context);
    for (const waiter of waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(notApplied('no leader to confirm the read'));
    }
  }

  private failProposalsUpTo(index: Index): void {
    for (const [at, pending] of this.pendingProposals) {
      if (at > index) continue;
      this.pendingProposals.delete(at);
      clearTimeout(pending.timer);
      pending.reject(mayHaveApplied(`proposal at index ${at} was covered by a snapshot; outcome unknown`));
    }
  }

  private failEverything(readError: () => KeelError, proposalError: () => KeelError): void {
    for (const pending of this.pendingProposals.values()) {
      clearTimeout(pending.timer);
      pending.reject(proposalError());
    }
    this.pendingProposals.clear();
    const waiters = [...this.readBatch, ...[...this.pendingReads.values()].flat(), ...this.readsAwaitingApply.flatMap((g) => g.waiters)];
    for (const waiter of waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(readError());
    }
    this.readBatch = [];
    this.pendingReads.clear();
    this.readsAwaitingApply.length = 0;
  }

  /**
   * Snapshots, OFF the loop (the loop keeps persisting, sending and applying meanwhile), one at a time:
   * - Every snapshotEntries applied entries (the first one staggered per node: snapshotStagger()), a snapshot
   *   WITHOUT data, as etcd does: the state machine syncs what it applied, the log records a snapshot at that
   *   index with only its metadata (synced), and compacts behind it. The store on disk stands for the snapshot.
   *   Exporting the whole store every time (tens of MB, seconds per node) was the largest single cost of a
   *   write-heavy run, and nobody read the result unless a follower fell behind.
   * - When a follower needs a snapshot that has no data (the core asked for it: snapshotRequested()), the state
   *   machine fixes its image synchronously (a LevelDB snapshot at the applied index) and exports it; the next
   *   heartbeat response starts the transfer. A new member waits for that export once.
   * Either record is written (synced) before the log is compacted, so the entries it replaces are never the only
   * copy lost.
   */
  private maybeSnapshot(): void {
    if (this.snapshotInFlight !== null || this.closed) return;
    const applied = this.node.log.applied;
    const exporting = this.options.storage.snapshotRequested();
    if (!exporting && !this.snapshotDue(applied)) return;
    const smApplied = this.options.stateMachine.appliedIndex();
    assert(smApplied === applied, `state machine applied ${smApplied} but raft applied ${applied}`);
    const conf = this.node.status().conf;
    const startedMs = this.options.clock.nowMs();
    // The image is fixed now, at `applied`, before anything else is applied.
    const taking = exporting
      ? this.exportSnapshot(applied, conf, this.options.stateMachine.snapshot(), startedMs)
      : this.takeSnapshot(applied, conf, startedMs);
    this.snapshotInFlight = taking
      .catch((err: unknown) => {
        if (this.closed) this.options.logger.warn({ err, index: applied }, 'snapshot abandoned at shutdown');
        else this.die(err);
      })
      .finally(() => {
        this.snapshotInFlight = null;
        this.schedule();
      });
  }

  /** Whether the periodic snapshot is due at `applied`. */
  private snapshotDue(applied: Index): boolean {
    const entries = this.options.snapshotEntries;
    if (applied - this.lastSnapshotIndex < entries || applied < this.snapshotRetryAt) return false;
    const status = this.node.status();
    return this.lastSnapshotIndex > 0 || applied >= entries + snapshotStagger(status.id, status.conf.voters, entries);
  }

  /** The periodic snapshot: the state machine's synced state stands for it; nothing is exported. */
  private async takeSnapshot(index: Index, conf: ConfState, startedMs: number): Promise<void> {
    // Synced first: once the log is compacted, the state machine's state on disk is the only copy of what the
    // compacted entries did, so it must never be behind the snapshot record after a crash.
    if (!(await this.options.stateMachine.persist())) {
      // Busy (a defrag): the log keeps its entries a little longer; try again a tenth of the interval later.
      this.snapshotRetryAt = index + Math.max(1, Math.floor(this.options.snapshotEntries / 10));
      this.options.logger.info({ index, retryAt: this.snapshotRetryAt }, 'snapshot put off: the state machine cannot sync now');
      return;
    }
    await this.options.storage.recordSnapshot(index, conf);
    await this.compactBehind(index);
    this.counters.snapshotsTaken++;
    const ms = Math.round(this.options.clock.nowMs() - startedMs);
    this.options.logger.info({ index, ms }, 'snapshot taken (state machine synced, no export), log compacted');
  }

  /** A follower needs a snapshot and the latest one was taken without data: export the state at `index`. */
  private async exportSnapshot(index: Index, conf: ConfState, image: Promise<Uint8Array>, startedMs: number): Promise<void> {
    const data = await image;
    // A snapshot received meanwhile waits for this one (handleReady), so the log still holds `index`.
    await this.options.storage.createSnapshot(index, conf, data);
    await this.compactBehind(index);
    this.counters.snapshotsExported++;
    const ms = Math.round(this.options.clock.nowMs() - startedMs);
    this.options.logger.info({ index, bytes: data.byteLength, ms }, 'snapshot exported for a follower, log compacted');
  }

  private async compactBehind(index: Index): Promise<void> {
    const compactTo = index - this.options.snapshotKeepEntries;
    if (compactTo >= this.options.storage.firstIndex()) await this.options.storage.compact(compactTo);
    this.lastSnapshotIndex = index;
  }
}

/**
 * How much later than snapshotEntries this node takes its first snapshot: its place among the sorted voters
 * times snapshotEntries / voters. The later ones follow every snapshotEntries, so the nodes keep their phases
 * and snapshot one at a time. All nodes reach the same index together, so unstaggered they did their snapshot
 * work at once (when each snapshot exported the whole store, seconds of it; now a memtable flush and a log
 * compaction), which slowed every member of the quorum together and, on one machine, fought for the same disk
 * and cores. A node that is not a voter (a learner) takes no offset.
 */
export function snapshotStagger(id: NodeId, voters: readonly NodeId[], snapshotEntries: number): number {
  const place = [...voters].sort().indexOf(id);
  return place <= 0 ? 0 : Math.floor((place * snapshotEntries) / voters.length);
}

/** Latency trace marks for appends that carry entries and their acks (bench/latency-trace.ts). */
function traceMessages(what: 'sent' | 'recv', messages: readonly PeerMessage[]): void {
  for (const m of messages) {
    if (m.type === 'append' && m.entries.length > 0) traceMark(`${what}.append`);
    else if (m.type === 'appendResp') traceMark(`${what}.appendResp`);
  }
}

function traceReady(rd: Ready): void {
  if (rd.entries.length > 0) traceMark('ready.entries');
  if (rd.committedEntries.length > 0) traceMark('ready.commit');
}

/**
 * Splits a Ready's messages by when they leave: `early` before the write (appends with entries, heartbeats:
 * sendsBeforePersist), `late` after it, and `empty`: appends without entries, which mostly only tell a follower
 * the new commit index (or probe its log). Those are held (holdCommits()): at low load each write would
 * otherwise cost every follower one more message, a wake-up, a loop turn and an answer, and the leader one more
 * socket write each, on a machine where those wake-ups are most of the CPU a write costs; the next append (the
 * next write) carries the commit index anyway. Followers then apply up to commitHoldMs later when writes stop
 * (serializable reads and watches on followers lag that much more), and a probe leaves that much later. A delayed
 * message is always safe in Raft, and ReadIndex on a follower does not wait for it (the leader's heartbeat round
 * carries the commit index).
 */
function splitMessages(rd: Ready): { early: PeerMessage[]; late: PeerMessage[]; empty: PeerMessage[] } {
  const early: PeerMessage[] = [];
  const late: PeerMessage[] = [];
  const empty: PeerMessage[] = [];
  for (const m of rd.messages) {
    if (!sendsBeforePersist(m)) late.push(m);
    else if (m.type === 'append' && m.entries.length === 0) empty.push(m);
    else early.push(m);
  }
  return { early, late, empty };
}
