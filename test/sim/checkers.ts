// The simulator's checkers: a global observer that sees every node after every step and every disk write.
//   S1  at most one leader per term.
//   S2  a leader only appends entries of its own term, at the end of its log (never truncates it); an entry of
//       term T is only ever created while a leader of T exists; and a conf change only when no other is pending.
//   S3  log matching: an (index, term) pair always names the same entry with the same predecessor term, checked
//       on every persisted entry (by induction: same prefix).
//   S4  leader completeness: a new leader's log holds every entry committed in an earlier term; and the commit
//       rule S4 rests on: a leader advances its commit index only onto an entry of its own term.
//   S5  state machine safety: every node applies the same entry at each index and reaches the same state hash;
//       snapshots carry the state every applier reached at their index.
//   Committed entries are never lost or changed: the global record of committed (index, term, content) is
//   write-once; any node that reports a different committed entry, applies a different entry at a committed
//   index, or truncates a committed entry from its log fails the run (and S4 checks every new leader holds them).
//   History: every acknowledged write is applied exactly once at its index; a write answered "not applied" is
//   never applied; a ReadIndex read observes every write acknowledged before it started.
//   L1-L3 (and catch-up) in the healed phase: see LivenessChecker.
import type { Entry, NodeId, Ready, Snapshot } from '../../src/raft/index.js';
import type { ReadRecord, WriteRecord } from './clients.js';
import type { WriteEffects } from './disk.js';
import type { SimNode } from './node.js';
import { entryContent, type SmState } from './state-machine.js';

export class Violation extends Error {
  override readonly name = 'Violation';
}

export function violation(message: string): never {
  throw new Violation(message);
}

interface Observed {
  incarnation: number;
  isLeader: boolean;
  term: number;
  commit: number;
  /** As leader of `term`: its commit index at election, until it first moves (then null). */
  commitAtElection: number | null;
}

export interface LeaderEvent {
  readonly node: NodeId;
  readonly term: number;
  /** 'elected': it just became leader; 'firstCommit': its commit index moved for the first time in its term. */
  readonly kind: 'elected' | 'firstCommit';
}

export class SafetyChecker {
  private readonly leaderOfTerm = new Map<number, NodeId>();
  /** S3: `${index}:${term}` -> the entry's content and the term of its predecessor (null when unknown). */
  private readonly entries = new Map<string, { content: string; prevTerm: number | null }>();
  private readonly committedTerm: number[] = [];
  private readonly committedContent: string[] = [];
  /** The lowest term of a node that reported the index committed (>= the term it was committed in). */
  private readonly committedInTerm: number[] = [];
  /** Highest index any node reported as committed. */
  committedIndex = 0;
  private readonly appliedContent: string[] = [];
  private readonly appliedHash: number[] = [];
  /** Highest index any node applied. */
  appliedIndex = 0;
  /** Command id -> the index it was applied at. */
  readonly writeIndex = new Map<string, number>();
  private readonly observed = new Map<SimNode, Observed>();
  confChangesApplied = 0;
  /** Conf changes (other than the bootstrap) applied for the first time, for the cluster's bookkeeping. */
  readonly newConfChanges: Entry[] = [];

  /** After any step of `node`: S1, S4 for a new leader, and the commit index it reports. Returns leader events. */
  afterStep(node: SimNode): LeaderEvent | null {
    const raft = node.raft;
    if (raft === null || !node.alive) return null;
    let seen = this.observed.get(node);
    if (seen === undefined || seen.incarnation !== node.incarnation) {
      seen = { incarnation: node.incarnation, isLeader: false, term: raft.term, commit: 0, commitAtElection: null };
      this.observed.set(node, seen);
    }
    let event: LeaderEvent | null = null;
    if (raft.role === 'leader' && (!seen.isLeader || seen.term !== raft.term)) {
      this.noteLeader(node, raft.term);
      event = { node: node.id, term: raft.term, kind: 'elected' };
      seen.commitAtElection = raft.log.committed;
      this.checkLeaderCompleteness(node);
    } else if (raft.role === 'leader' && seen.commitAtElection !== null && raft.log.committed > seen.commitAtElection) {
      seen.commitAtElection = null;
      event = { node: node.id, term: raft.term, kind: 'firstCommit' };
    }
    if (raft.role === 'leader' && seen.isLeader && seen.term === raft.term && raft.log.committed > seen.commit) {
      this.checkCommitRule(node);
    }
    seen.isLeader = raft.role === 'leader';
    seen.term = raft.term;
    if (raft.log.committed > seen.commit) {
      this.observeCommit(node, seen.commit + 1, raft.log.committed);
      seen.commit = raft.log.committed;
    }
    return event;
  }

  /**
   * Raft's commit rule (5.4.2), on which S4 rests: a leader advances its commit index only onto an entry of its own
   * term (earlier entries are committed indirectly); counting replicas of an older entry is Figure 8's bug.
   */
  private checkCommitRule(node: SimNode): void {
    const raft = node.raft!;
    const term = raft.log.term(raft.log.committed);
    if (term !== raft.term) {
      violation(`commit rule: leader ${node.id} of term ${raft.term} advanced its commit index to ${raft.log.committed}, an entry of term ${term}`);
    }
  }

  /** S1: records `node` as the leader of `term`; returns true the first time a leader of `term` is seen. */
  private noteLeader(node: SimNode, term: number): boolean {
    const holder = this.leaderOfTerm.get(term);
    if (holder === undefined) {
      this.leaderOfTerm.set(term, node.id);
      return true;
    }
    if (holder !== node.id) violation(`S1: ${node.id} and ${holder} are both leaders of term ${term}`);
    return false;
  }

  /**
   * S4: a leader of term T holds every entry committed in a term below T. (A leader of an older term elected
   * late, e.g. after a pause, need not hold what a later term committed.)
   */
  private checkLeaderCompleteness(node: SimNode): void {
    const raft = node.raft!;
    const log = raft.log;
    const last = log.lastIndex();
    for (let i = Math.max(log.firstIndex() - 1, 1); i <= this.committedIndex; i++) {
      const expected = this.committedTerm[i];
      const committedIn = this.committedInTerm[i];
      if (expected === undefined || committedIn === undefined || committedIn >= raft.term) continue;
      if (i > last) violation(`S4: new leader ${node.id} (term ${raft.term}) ends at ${last}, before index ${i} committed in term ${committedIn}`);
      const term = log.term(i);
      if (term !== expected) {
        violation(`S4: new leader ${node.id} (term ${raft.term}) has term ${term} at index ${i}, committed with term ${expected} in term ${committedIn}`);
      }
    }
  }

  private observeCommit(node: SimNode, lo: number, hi: number): void {
    const log = node.raft!.log;
    const first = log.firstIndex();
    if (first - 1 >= lo && first - 1 <= hi) this.recordCommitted(node, first - 1, log.mustTerm(first - 1), null);
    for (const entry of log.slice(Math.max(lo, first), hi + 1, Number.MAX_SAFE_INTEGER)) {
      this.recordCommitted(node, entry.index, entry.term, entryContent(entry));
    }
    if (hi > this.committedIndex) this.committedIndex = hi;
  }

  private recordCommitted(node: SimNode, index: number, term: number, content: string | null): void {
    // The observer's term bounds from above the term in which the entry was committed.
    const observedIn = node.raft!.term;
    const committedIn = this.committedInTerm[index];
    if (committedIn === undefined || observedIn < committedIn) this.committedInTerm[index] = observedIn;
    const knownTerm = this.committedTerm[index];
    if (knownTerm === undefined) {
      this.committedTerm[index] = term;
    } else if (knownTerm !== term) {
      violation(`committed entry changed: ${node.id} says index ${index} committed with term ${term}, it was committed with term ${knownTerm}`);
    }
    if (content === null) return;
    const knownContent = this.committedContent[index];
    if (knownContent === undefined) this.committedContent[index] = content;
    else if (knownContent !== content) {
      violation(`committed entry changed: ${node.id} says index ${index} committed as ${content}, it was ${knownContent}`);
    }
  }

  /** Right after `node` handed out a Ready (its state is exactly the one that made it). */
  onReady(node: SimNode, rd: Ready): void {
    const raft = node.raft!;
    if (raft.role !== 'leader') return;
    for (const entry of rd.entries) if (entry.type === 'conf') this.checkMembershipRule(node, entry, raft.term);
  }

  /** After a Ready's batch was written to `node`'s disk. */
  onPersisted(node: SimNode, rd: Ready, leaderTerm: number | null, effects: WriteEffects): void {
    if (rd.snapshot !== null) this.checkSnapshotPoint(node, rd.snapshot);
    for (const [index, term] of effects.removed) {
      if (index <= this.committedIndex && this.committedTerm[index] === term) {
        violation(`committed entry lost: ${node.id} truncated index ${index} (term ${term}), which is committed`);
      }
    }
    const first = rd.entries[0];
    if (first === undefined) return;
    if (leaderTerm !== null) {
      // A leader's first Ready may be persisted within the very step that elected it.
      this.noteLeader(node, leaderTerm);
      this.checkLeaderAppend(node, rd.entries, leaderTerm, effects);
    }
    const storage = node.disk.live;
    let prevTerm: number | null = first.index - 1 >= storage.firstIndex() - 1 ? storage.term(first.index - 1) : null;
    for (const entry of rd.entries) {
      this.checkPersistedEntry(node, entry, prevTerm);
      prevTerm = entry.term;
    }
  }

  private checkLeaderAppend(node: SimNode, entries: readonly Entry[], term: number, effects: WriteEffects): void {
    for (const entry of entries) {
      if (entry.term !== term) violation(`S2: leader ${node.id} of term ${term} persisted entry ${entry.index} of term ${entry.term}`);
    }
    if (entries[0]!.index !== effects.lastIndexBefore + 1 || effects.removed.length > 0) {
      violation(`S2: leader ${node.id} of term ${term} rewrote its log from index ${entries[0]!.index} (last was ${effects.lastIndexBefore})`);
    }
  }

  /**
   * The membership rule single-server changes rest on (membership.ts): a leader appends a conf change only once
   * every earlier conf entry in its log and an entry of its own term are applied, so two changes never overlap
   * (two in flight could put configurations whose majorities do not intersect in use at once).
   */
  private checkMembershipRule(node: SimNode, entry: Entry, term: number): void {
    const log = node.raft!.log;
    const applied = log.applied;
    const appliedTerm = log.term(applied);
    if (appliedTerm !== null && appliedTerm !== term) {
      violation(`membership rule: leader ${node.id} of term ${term} appended conf entry ${entry.index} before applying an entry of its term`);
    }
    const from = Math.max(applied + 1, log.firstIndex());
    for (const earlier of log.slice(from, entry.index, Number.MAX_SAFE_INTEGER)) {
      if (earlier.type === 'conf') {
        violation(`membership rule: leader ${node.id} appended conf entry ${entry.index} while conf entry ${earlier.index} is not applied`);
      }
    }
  }

  private checkPersistedEntry(node: SimNode, entry: Entry, prevTerm: number | null): void {
    const key = `${entry.index}:${entry.term}`;
    const content = entryContent(entry);
    const known = this.entries.get(key);
    if (known === undefined) {
      const isBootstrap = entry.index === 1 && entry.type === 'conf' && entry.change.type === 'init';
      if (!isBootstrap && !this.leaderOfTerm.has(entry.term)) {
        violation(`S2: ${node.id} persisted entry ${entry.index} of term ${entry.term}, but term ${entry.term} never had a leader`);
      }
      this.entries.set(key, { content, prevTerm });
    } else {
      if (known.content !== content) {
        violation(`S3: entry (${entry.index}, ${entry.term}) is ${content} on ${node.id} but ${known.content} elsewhere`);
      }
      if (prevTerm !== null && known.prevTerm !== null && prevTerm !== known.prevTerm) {
        violation(`S3: entry (${entry.index}, ${entry.term}) follows term ${prevTerm} on ${node.id} but term ${known.prevTerm} elsewhere`);
      }
      if (known.prevTerm === null) known.prevTerm = prevTerm;
    }
    // No check against the committed record here: with persistence in flight while the core keeps stepping (as
    // in the real driver), a Ready made before an index was committed elsewhere may land a stale entry there
    // later; the next Ready overwrites it before anything is acknowledged for that index.
  }

  private checkSnapshotPoint(node: SimNode, snapshot: Snapshot): void {
    const { index, term } = snapshot.metadata;
    const known = this.committedTerm[index];
    if (known !== undefined && known !== term) {
      violation(`snapshot at (${index}, ${term}) on ${node.id} contradicts committed term ${known}`);
    }
  }

  /** S5 for a state restored from a snapshot. */
  onRestored(node: SimNode, snapshot: Snapshot, state: SmState): void {
    this.checkSnapshotPoint(node, snapshot);
    const hash = this.appliedHash[state.index];
    if (hash !== undefined && hash !== state.hash) {
      violation(`S5: snapshot at ${state.index} installed on ${node.id} has state hash ${state.hash}, appliers reached ${hash}`);
    }
  }

  /** S5 for one applied entry; also the committed record and exactly-once application of commands. */
  onApplied(node: SimNode, entry: Entry, state: SmState): void {
    const index = entry.index;
    const content = entryContent(entry);
    if (index > node.raft!.log.committed) {
      violation(`${node.id} applied ${index} beyond its commit index ${node.raft!.log.committed}`);
    }
    const committedTerm = this.committedTerm[index];
    const committed = this.committedContent[index];
    if ((committedTerm !== undefined && committedTerm !== entry.term) || (committed !== undefined && committed !== content)) {
      violation(`S5: ${node.id} applied (${index}, ${entry.term}, ${content}), committed was (${committedTerm}, ${committed})`);
    }
    const known = this.appliedContent[index];
    if (known === undefined) {
      this.appliedContent[index] = content;
      this.appliedHash[index] = state.hash;
      if (index > this.appliedIndex) this.appliedIndex = index;
      this.onFirstApply(entry, content);
      return;
    }
    if (known !== content) violation(`S5: ${node.id} applied ${content} at ${index}, others applied ${known}`);
    if (this.appliedHash[index] !== state.hash) {
      violation(`S5: ${node.id} reached state hash ${state.hash} at ${index}, others reached ${this.appliedHash[index]}`);
    }
  }

  private onFirstApply(entry: Entry, content: string): void {
    if (entry.type === 'conf' && entry.change.type !== 'init') {
      this.confChangesApplied++;
      this.newConfChanges.push(entry);
    }
    if (!content.startsWith('w:')) return;
    const id = content.slice(2);
    const at = this.writeIndex.get(id);
    if (at !== undefined) violation(`write ${id} applied twice: at ${at} and at ${entry.index}`);
    this.writeIndex.set(id, entry.index);
  }

  contentAt(index: number): string | undefined {
    return this.appliedContent[index];
  }

  hashAt(index: number): number | undefined {
    return this.appliedHash[index];
  }
}

/** Client history: acknowledged writes and ReadIndex reads, checked against what the cluster applied. */
export class HistoryChecker {
  private readonly safety: SafetyChecker;

  constructor(safety: SafetyChecker) {
    this.safety = safety;
  }

  onWriteAcked(write: WriteRecord): void {
    const content = this.safety.contentAt(write.index);
    if (content !== `w:${write.id}`) {
      violation(`write ${write.id} acknowledged at (${write.index}, ${write.term}) but ${content ?? 'nothing'} was applied there`);
    }
  }

  /** A read served at `state` after its read index `readIndex` was confirmed. */
  onReadServed(read: ReadRecord, readIndex: number, state: SmState): void {
    if (readIndex < read.minIndex) {
      violation(`stale read ${read.context} on ${read.node}: read index ${readIndex}, but a write at ${read.minIndex} was acknowledged before it started`);
    }
    if (state.index < readIndex) violation(`read ${read.context} served at ${state.index} before reaching its read index ${readIndex}`);
    const hash = this.safety.hashAt(state.index);
    if (state.index > 0 && hash !== state.hash) violation(`read ${read.context} observed a state no other node reached at ${state.index}`);
  }

  /** Every write answered OK is applied exactly at its index; a write answered "not applied" never is. */
  final(writes: readonly WriteRecord[]): void {
    for (const write of writes) {
      const at = this.safety.writeIndex.get(write.id);
      if (write.status === 'ok' && at !== write.index) {
        violation(`acknowledged write ${write.id} (index ${write.index}) is ${at === undefined ? 'lost' : `applied at ${at}`}`);
      }
      if (write.status === 'failed' && at !== undefined) {
        violation(`write ${write.id} was answered "not applied" (${write.reason}) but is applied at ${at}`);
      }
    }
  }
}

export interface LivenessBounds {
  /** L1: a stable leader (followed by every running member) within this long after the heal. */
  readonly electMs: number;
  /** L2: at most `flapsMax` new leaders within `stableWindowMs` after the first stable leader. */
  readonly stableWindowMs: number;
  readonly flapsMax: number;
  /** L3: a write proposed after the heal is acknowledged within this long after the heal. */
  readonly writeMs: number;
}

/** L1-L3 and catch-up, in the healed phase (no faults, every node restarted, every partition healed). */
export class LivenessChecker {
  private readonly bounds: LivenessBounds;
  private healAt: number | null = null;
  firstStableAt: number | null = null;
  firstWriteAt: number | null = null;
  private newLeaders = 0;

  constructor(bounds: LivenessBounds) {
    this.bounds = bounds;
  }

  start(now: number): void {
    this.healAt = now;
  }

  onNewLeader(now: number): void {
    if (this.firstStableAt === null || now > this.firstStableAt + this.bounds.stableWindowMs) return;
    if (++this.newLeaders > this.bounds.flapsMax) {
      violation(`L2: ${this.newLeaders} leader changes within ${this.bounds.stableWindowMs} ms of the first stable leader`);
    }
  }

  onWriteAcked(write: WriteRecord, now: number): void {
    if (this.healAt !== null && this.firstWriteAt === null && write.proposedAt >= this.healAt) this.firstWriteAt = now;
  }

  sample(now: number, nodes: readonly SimNode[]): void {
    const healAt = this.healAt;
    if (healAt === null) return;
    if (this.firstStableAt === null) {
      if (stableLeader(nodes) !== null) this.firstStableAt = now;
      else if (now - healAt > this.bounds.electMs) violation(`L1: no stable leader ${this.bounds.electMs} ms after the heal`);
    }
    if (this.firstWriteAt === null && now - healAt > this.bounds.writeMs) {
      violation(`L3: no write proposed after the heal was acknowledged within ${this.bounds.writeMs} ms`);
    }
  }

  /** After the quiet period: one leader, and every running member has committed and applied all it has. */
  final(nodes: readonly SimNode[]): void {
    const leader = stableLeader(nodes);
    if (leader === null) violation('no stable leader at the end of the healed phase');
    const commit = leader.core.log.committed;
    for (const node of runningMembers(nodes, leader)) {
      const raft = node.core;
      if (raft.log.committed !== commit || node.sm.index !== commit) {
        violation(`catch-up: ${node.id} committed ${raft.log.committed} and applied ${node.sm.index}, leader ${leader.id} committed ${commit}`);
      }
    }
  }
}

function runningMembers(nodes: readonly SimNode[], leader: SimNode): SimNode[] {
  const { voters, learners } = leader.core.conf;
  return nodes.filter((n) => n.isRunning && !n.decommissioned && (voters.includes(n.id) || learners.includes(n.id)));
}

/** The leader of the highest term among running nodes, if every running member of its configuration follows it. */
export function stableLeader(nodes: readonly SimNode[]): SimNode | null {
  let leader: SimNode | null = null;
  for (const node of nodes) {
    if (!node.isRunning || node.decommissioned || node.core.role !== 'leader') continue;
    if (leader === null || node.core.term > leader.core.term) leader = node;
  }
  if (leader === null) return null;
  const term = leader.core.term;
  for (const node of runningMembers(nodes, leader)) {
    if (node.core.term !== term || node.core.leader !== leader.id) return null;
  }
  return leader;
}
