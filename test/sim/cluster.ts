// One simulator run: a cluster of real cores (3 or 5 founding members, more may join) on simulated disks and a
// simulated network, with clients and a nemesis, driven by one agenda of virtual-time events from one seed.
// Phases: faulty (nemesis active, lossy network) -> healed (every partition healed, every crashed node restarted,
// clean network; L1-L3 are checked) -> quiet (clients stop; every member must catch up). The safety checkers
// run after every step of every node and on every disk write, apply and read.
import type { Entry, NodeId, PeerMessage, Ready, Snapshot } from '../../src/raft/index.js';
import type { Logger } from '../../src/util/logger.js';
import { HistoryChecker, LivenessChecker, SafetyChecker, Violation, type LivenessBounds } from './checkers.js';
import { Workload, type ReadRecord, type WorkloadHost, type WriteRecord } from './clients.js';
import type { WriteEffects } from './disk.js';
import { Nemesis, type NemesisHost } from './nemesis.js';
import { SimNetwork } from './network.js';
import { SimNode, type NodeEvent, type NodeHost } from './node.js';
import { streamPrng, type SimParams } from './params.js';
import { EventQueue } from './queue.js';
import type { SmState } from './state-machine.js';

type SimEvent =
  | NodeEvent
  | { readonly kind: 'deliver'; readonly message: PeerMessage }
  | { readonly kind: 'client'; readonly client: number; readonly generation: number }
  | { readonly kind: 'nemesis' }
  | { readonly kind: 'restart'; readonly node: NodeId; readonly incarnation: number }
  | { readonly kind: 'decommission'; readonly node: NodeId }
  | { readonly kind: 'healCuts' }
  | { readonly kind: 'leaderFault'; readonly node: NodeId; readonly incarnation: number; readonly term: number }
  | { readonly kind: 'sample' }
  | { readonly kind: 'phase'; readonly phase: 'heal' | 'quiesce' | 'end' };

export interface SimStats {
  virtualMs: number;
  events: number;
  readys: number;
  elections: number;
  crashes: number;
  restarts: number;
  pauses: number;
  transfersRequested: number;
  transfers: number;
  snapshotsInstalled: number;
  truncations: number;
  confChanges: number;
  committed: number;
  writesOk: number;
  writesFailed: number;
  writesUnknown: number;
  readsOk: number;
  readsFailed: number;
  messages: number;
  dropped: number;
  duplicated: number;
  /** Time from the heal to the first stable leader, and to the first acknowledged write (L1, L3). */
  electAfterHealMs: number;
  writeAfterHealMs: number;
}

export interface SimOptions {
  /** Print the trace as it happens. */
  readonly verbose?: boolean;
  readonly print?: (line: string) => void;
}

const traceMax = 400;
/** A run takes ~10-100 thousand events; far more means something spins (e.g. messages breeding messages). */
const eventsMax = 3_000_000;

export class SimCluster implements NodeHost, WorkloadHost, NemesisHost {
  readonly params: SimParams;
  readonly network: SimNetwork;
  readonly safety = new SafetyChecker();
  readonly history: HistoryChecker;
  readonly liveness: LivenessChecker;
  readonly workload: Workload;
  readonly stats: SimStats;
  readonly traceLines: string[] = [];
  private readonly nemesis: Nemesis;
  private readonly options: SimOptions;
  private readonly queue = new EventQueue<SimEvent>();
  private readonly nodeMap = new Map<NodeId, SimNode>();
  private readonly nodeList: SimNode[] = [];
  private pendingTransfers: { to: NodeId; term: number; at: number }[] = [];
  private readonly roles = new Map<SimNode, string>();
  private samples = 0;
  private time = 0;
  private phase: 'faulty' | 'healed' | 'ended' = 'faulty';

  constructor(params: SimParams, options: SimOptions = {}) {
    this.params = params;
    this.options = options;
    this.network = new SimNetwork(params.net, streamPrng(params.seed, 'network'));
    this.history = new HistoryChecker(this.safety);
    this.liveness = new LivenessChecker(livenessBounds(params));
    this.workload = new Workload(this, streamPrng(params.seed, 'clients'));
    this.nemesis = new Nemesis(this, streamPrng(params.seed, 'nemesis'));
    this.stats = {
      virtualMs: 0, events: 0, readys: 0, elections: 0, crashes: 0, restarts: 0, pauses: 0, transfersRequested: 0,
      transfers: 0, snapshotsInstalled: 0, truncations: 0, confChanges: 0, committed: 0, writesOk: 0,
      writesFailed: 0, writesUnknown: 0, readsOk: 0, readsFailed: 0, messages: 0, dropped: 0, duplicated: 0,
      electAfterHealMs: -1, writeAfterHealMs: -1,
    };
  }

  run(): void {
    const founders = Array.from({ length: this.params.nodes }, (_, i) => `n${i + 1}`);
    for (const id of founders) this.createNode(id).boot(founders);
    this.workload.start();
    const { faultyMs, healedMs, quiesceMs } = this.params;
    this.queue.push(this.nemesis.nextGap(), { kind: 'nemesis' });
    this.queue.push(faultyMs, { kind: 'phase', phase: 'heal' });
    this.queue.push(faultyMs + healedMs - quiesceMs, { kind: 'phase', phase: 'quiesce' });
    this.queue.push(faultyMs + healedMs, { kind: 'phase', phase: 'end' });
    while (this.phase !== 'ended') {
      const next = this.queue.pop();
      if (next === undefined) break;
      this.time = next.time;
      if (++this.stats.events > eventsMax) this.fail(`more than ${eventsMax} events: a livelock or message storm`);
      this.dispatch(next.item);
    }
    this.finish();
  }

  private finish(): void {
    this.liveness.final(this.nodeList);
    this.workload.finish();
    this.history.final(this.workload.writes);
    const s = this.stats;
    s.virtualMs = Math.round(this.time);
    s.committed = this.safety.committedIndex;
    s.confChanges = this.safety.confChangesApplied;
    for (const w of this.workload.writes) {
      if (w.status === 'ok') s.writesOk++;
      else if (w.status === 'failed') s.writesFailed++;
      else s.writesUnknown++;
    }
    for (const r of this.workload.reads) {
      if (r.status === 'ok') s.readsOk++;
      else s.readsFailed++;
    }
    s.messages = this.network.sent;
    s.dropped = this.network.dropped;
    s.duplicated = this.network.duplicated;
    s.readys = this.nodeList.reduce((sum, n) => sum + n.readyCount, 0);
    s.electAfterHealMs = this.liveness.firstStableAt === null ? -1 : Math.round(this.liveness.firstStableAt - this.params.faultyMs);
    s.writeAfterHealMs = this.liveness.firstWriteAt === null ? -1 : Math.round(this.liveness.firstWriteAt - this.params.faultyMs);
  }

  private dispatch(event: SimEvent): void {
    switch (event.kind) {
      case 'tick':
      case 'persisted':
      case 'applied': {
        const node = this.nodeMap.get(event.node)!;
        if (event.kind !== 'tick' && node.alive && node.isPaused) {
          this.queue.push(node.pausedUntil, event); // a stopped process finishes its I/O only when it resumes
          return;
        }
        node.onEvent(event);
        this.afterStep(node);
        return;
      }
      case 'deliver':
        this.deliver(event);
        return;
      case 'client':
        this.workload.step(event.client, event.generation);
        return;
      case 'nemesis':
        if (this.phase !== 'faulty') return;
        this.nemesis.step();
        this.queue.push(this.time + this.nemesis.nextGap(), { kind: 'nemesis' });
        return;
      case 'restart': {
        const node = this.nodeMap.get(event.node)!;
        if (node.alive || node.decommissioned || node.incarnation !== event.incarnation) return;
        this.restart(node);
        return;
      }
      case 'decommission':
        this.decommission(this.nodeMap.get(event.node)!);
        return;
      case 'healCuts':
        if (this.phase === 'faulty') this.network.healCuts();
        return;
      case 'leaderFault': {
        const node = this.nodeMap.get(event.node)!;
        if (this.phase === 'faulty' && node.incarnation === event.incarnation) this.nemesis.strikeLeader(node, event.term);
        return;
      }
      case 'sample':
        this.liveness.sample(this.time, this.nodeList);
        if (this.liveness.firstWriteAt === null && ++this.samples % 5 === 0) this.workload.probe();
        this.queue.push(this.time + this.params.tickMs, { kind: 'sample' });
        return;
      case 'phase':
        this.onPhase(event.phase);
        return;
      default:
        throw new Error(`unknown event ${JSON.stringify(event)}`);
    }
  }

  private deliver(event: SimEvent & { kind: 'deliver' }): void {
    const node = this.nodeMap.get(event.message.to);
    if (node === undefined || !node.alive || node.decommissioned) return;
    if (!this.network.survives(event.message)) return;
    if (node.isPaused) {
      this.queue.push(node.pausedUntil, event);
      return;
    }
    node.deliver(event.message);
    this.afterStep(node);
  }

  private onPhase(phase: 'heal' | 'quiesce' | 'end'): void {
    if (phase === 'heal') {
      this.phase = 'healed';
      this.network.heal();
      this.trace('phase: healed (partitions healed, crashed nodes restarted, clean network)');
      for (const node of this.nodeList) {
        if (node.decommissioned) continue;
        node.pausedUntil = 0;
        if (!node.alive) this.restart(node);
      }
      this.liveness.start(this.time);
      this.queue.push(this.time, { kind: 'sample' });
    } else if (phase === 'quiesce') {
      this.trace('phase: quiet (clients stop)');
      this.workload.stopped = true;
    } else {
      this.phase = 'ended';
    }
  }

  /** The checks that run after every step of a node. */
  private afterStep(node: SimNode): void {
    if (this.options.verbose === true) this.noteRole(node);
    const leader = this.safety.afterStep(node);
    if (leader !== null && leader.kind === 'firstCommit') {
      if (this.phase === 'faulty') this.nemesis.onLeaderFirstCommit(node, leader.term);
    } else if (leader !== null) {
      this.stats.elections++;
      this.trace(`${node.id} is leader of term ${leader.term}`);
      this.liveness.onNewLeader(this.time);
      if (this.phase === 'faulty') this.nemesis.onNewLeader(node, leader.term);
      const transfer = this.pendingTransfers.find((t) => t.to === node.id && leader.term > t.term);
      if (transfer !== undefined) {
        this.stats.transfers++;
        this.trace(`leadership transferred to ${node.id}`);
      }
      this.pendingTransfers = this.pendingTransfers.filter((t) => t !== transfer && this.time - t.at < 1000);
    }
    for (const entry of this.safety.newConfChanges.splice(0)) this.onConfCommitted(entry);
  }

  /** Verbose replays: every role or term change of a node. */
  private noteRole(node: SimNode): void {
    if (node.raft === null || !node.alive) return;
    const role = `${node.raft.role}@${node.raft.term}`;
    if (this.roles.get(node) === role) return;
    this.roles.set(node, role);
    this.trace(`${node.id} is ${node.raft.role} in term ${node.raft.term} (log ${node.raft.log.lastIndex()}@${node.raft.log.lastTerm()})`);
  }

  private onConfCommitted(entry: Entry): void {
    if (entry.type !== 'conf' || entry.change.type === 'init') return;
    this.trace(`conf change applied: ${entry.change.type} ${entry.change.id} at ${entry.index}`);
    if (entry.change.type === 'remove') {
      // The operator shuts a removed member down a little later.
      this.queue.push(this.time + 300 * streamPrng(this.params.seed, 'decommission', entry.index).next(), {
        kind: 'decommission', node: entry.change.id,
      });
    }
  }

  private createNode(id: NodeId): SimNode {
    const skew = 1 + streamPrng(this.params.seed, 'tick', id).next() * this.params.tickSkew;
    const node = new SimNode(id, this, this.params.tickMs * skew);
    this.nodeMap.set(id, node);
    this.nodeList.push(node);
    return node;
  }

  private restart(node: SimNode): void {
    node.restart();
    this.stats.restarts++;
    this.trace(`${node.id} restarted (incarnation ${node.incarnation}, applied ${node.sm.index}, log ${node.disk.live.firstIndex()}..${node.disk.live.lastIndex()})`);
    this.afterStep(node);
  }

  private decommission(node: SimNode): void {
    if (node.decommissioned) return;
    if (node.alive) {
      this.workload.onCrashed(node);
      node.crash();
    }
    node.decommissioned = true;
    this.trace(`${node.id} decommissioned`);
  }

  // ---- NodeHost ---------------------------------------------------------------------------------------------

  now(): number {
    return this.time;
  }

  schedule(at: number, event: NodeEvent): void {
    this.queue.push(at, event);
  }

  send(_from: SimNode, messages: readonly PeerMessage[]): NodeId[] {
    const unreachable: NodeId[] = [];
    for (const message of messages) {
      const fate = this.network.send(message, this.time);
      for (const delivery of fate.deliveries) this.queue.push(delivery.at, { kind: 'deliver', message: delivery.message });
      if (fate.unreachable && !unreachable.includes(message.to)) unreachable.push(message.to);
    }
    return unreachable;
  }

  onReady(node: SimNode, rd: Ready): void {
    this.safety.onReady(node, rd);
  }

  onPersisted(node: SimNode, rd: Ready, leaderTerm: number | null, effects: WriteEffects): void {
    this.safety.onPersisted(node, rd, leaderTerm, effects);
    if (effects.removed.length > 0) {
      this.stats.truncations++;
      this.trace(`${node.id} truncated its log from index ${effects.removed[0]![0]} (${effects.removed.length} entries)`);
    }
  }

  onRestored(node: SimNode, snapshot: Snapshot, state: SmState): void {
    this.stats.snapshotsInstalled++;
    this.trace(`${node.id} installed a snapshot at (${snapshot.metadata.index}, ${snapshot.metadata.term})`);
    this.safety.onRestored(node, snapshot, state);
    this.workload.onRestored(node, snapshot.metadata.index);
  }

  onApplied(node: SimNode, entry: Entry, state: SmState): void {
    this.safety.onApplied(node, entry, state);
    this.workload.onApplied(node, entry);
  }

  onReadServed(_node: SimNode, context: string, readIndex: number, state: SmState): void {
    this.workload.onReadServed(context, readIndex, state);
  }

  onReadFailed(_node: SimNode, context: string): void {
    this.workload.onReadFailed(context);
  }

  fail(message: string): never {
    throw new Violation(message);
  }

  logger(node: SimNode): Logger {
    const log = (fields: object, message: string): void => this.trace(`${node.id}: ${message} ${JSON.stringify(fields)}`);
    const logger: Logger = { debug: () => {}, info: log, warn: log, error: log, child: () => logger };
    return logger;
  }

  // ---- WorkloadHost -----------------------------------------------------------------------------------------

  nodes(): readonly SimNode[] {
    return this.nodeList;
  }

  scheduleClient(at: number, client: number, generation: number): void {
    this.queue.push(at, { kind: 'client', client, generation });
  }

  checkRead(read: ReadRecord, readIndex: number, state: SmState): void {
    this.history.onReadServed(read, readIndex, state);
  }

  onWriteAcked(write: WriteRecord): void {
    this.history.onWriteAcked(write);
    this.liveness.onWriteAcked(write, this.time);
  }

  touched(node: SimNode): void {
    this.afterStep(node);
  }

  note(text: () => string): void {
    if (this.options.verbose === true) this.trace(text());
  }

  // ---- NemesisHost ------------------------------------------------------------------------------------------

  leader(): SimNode | null {
    let leader: SimNode | null = null;
    for (const node of this.nodeList) {
      if (!node.isRunning || node.decommissioned || node.core.role !== 'leader') continue;
      if (leader === null || node.core.term > leader.core.term) leader = node;
    }
    return leader;
  }

  crash(node: SimNode, restartAfterMs: number | null): void {
    if (!node.alive || node.decommissioned) return;
    this.workload.onCrashed(node);
    const { lostWrites } = node.crash();
    this.stats.crashes++;
    const when = restartAfterMs === null ? 'at the heal' : `in ${Math.round(restartAfterMs)} ms`;
    this.trace(`nemesis: crash ${node.id} (lost ${lostWrites} unsynced writes), restart ${when}`);
    if (restartAfterMs !== null) {
      this.queue.push(this.time + restartAfterMs, { kind: 'restart', node: node.id, incarnation: node.incarnation });
    }
  }

  pause(node: SimNode, ms: number): void {
    node.pausedUntil = Math.max(node.pausedUntil, this.time + ms);
    this.stats.pauses++;
    this.trace(`nemesis: pause ${node.id} for ${Math.round(ms)} ms`);
  }

  scheduleHealCuts(at: number): void {
    this.queue.push(at, { kind: 'healCuts' });
  }

  scheduleLeaderFault(at: number, node: SimNode, term: number): void {
    this.queue.push(at, { kind: 'leaderFault', node: node.id, incarnation: node.incarnation, term });
  }

  addNode(): SimNode {
    const node = this.createNode(`n${this.nodeList.length + 1}`);
    node.boot(null);
    this.trace(`${node.id} started with empty storage`);
    return node;
  }

  noteTransfer(from: SimNode, to: NodeId): void {
    this.stats.transfersRequested++;
    this.pendingTransfers.push({ to, term: from.core.term, at: this.time });
  }

  trace(text: string): void {
    const line = `t=${this.time.toFixed(2)}ms ${text}`;
    if (this.options.verbose === true) (this.options.print ?? console.log)(line);
    this.traceLines.push(line);
    if (this.traceLines.length > traceMax * 2) this.traceLines.splice(0, this.traceLines.length - traceMax);
  }
}

/**
 * Liveness bounds in multiples of the longest election timeout. With pre-vote they are RELIABILITY.md's: a stable
 * leader within 2 and writes within 3 election timeouts of the heal. Without pre-vote (not the default, and not
 * bounded by RELIABILITY.md) nodes with stale logs can win the timer race again and again, each bumping the term
 * and resetting everyone's timer; the fastest-ticking node (clock skew) wins it most. Seed 8914 (6 voters, three
 * of them stale) needed 5.6 election timeouts, so the bounds there are loose. L2 (no flapping) is promised only
 * with pre-vote and check-quorum: without the leader lease, a removed member that never learned of its removal
 * may still win an election and disrupt the cluster once.
 */
export function livenessBounds(params: SimParams): LivenessBounds {
  const electionMs = 2 * params.electionTicks * params.tickMs * (1 + params.tickSkew);
  return {
    electMs: (params.preVote ? 2 : 10) * electionMs,
    stableWindowMs: 10 * electionMs,
    flapsMax: params.preVote && params.checkQuorum ? 1 : Infinity,
    writeMs: (params.preVote ? 3 : 12) * electionMs,
  };
}
