// The nemesis of the faulty phase: at random intervals it picks an action by the per-seed weights: partition the
// network (a node alone, the leader alone, majority/minority, one-way cuts, a bridge, one more clogged link),
// crash nodes (often the leader, sometimes a minority or all of them) and restart them later, pause a node
// (SIGSTOP) for 0.5-3 election timeouts, transfer leadership, take one step of a membership change (add a
// learner, promote it once caught up, remove a voter), or heal the partitions. Besides, with a per-seed rate it
// strikes a new leader soon after its election, and again right when its commit index first moves (crash or
// isolation): leader churn around elections and first commits is where the subtle cases live (Raft's figure 8:
// a leader replicates its predecessors' entries, then dies before its own entry reaches a majority).
import { isKeelError } from '../../src/util/errors.js';
import type { ConfChange, NodeId } from '../../src/raft/index.js';
import type { Prng } from '../../src/util/prng.js';
import type { SimNetwork } from './network.js';
import type { SimNode } from './node.js';
import type { NemesisAction, SimParams } from './params.js';

export interface NemesisHost {
  readonly params: SimParams;
  readonly network: SimNetwork;
  now(): number;
  nodes(): readonly SimNode[];
  /** A running leader of the highest term, if any. */
  leader(): SimNode | null;
  crash(node: SimNode, restartAfterMs: number | null): void;
  pause(node: SimNode, ms: number): void;
  scheduleHealCuts(at: number): void;
  scheduleLeaderFault(at: number, node: SimNode, term: number): void;
  /** Creates and boots a node with empty storage and a fresh id. */
  addNode(): SimNode;
  noteTransfer(from: SimNode, to: NodeId): void;
  touched(node: SimNode): void;
  trace(text: string): void;
}

/** Nodes added over a run, at most (keeps runs bounded). */
const addedNodesMax = 4;

export class Nemesis {
  private readonly host: NemesisHost;
  private readonly prng: Prng;
  private added = 0;

  constructor(host: NemesisHost, prng: Prng) {
    this.host = host;
    this.prng = prng;
  }

  nextGap(): number {
    const { nemesisGapMinMs, nemesisGapMaxMs } = this.host.params;
    return nemesisGapMinMs + this.prng.next() * (nemesisGapMaxMs - nemesisGapMinMs);
  }

  step(): void {
    switch (this.pickAction()) {
      case 'partition':
        this.partition();
        return;
      case 'crash':
        this.crash();
        return;
      case 'pause':
        this.pause();
        return;
      case 'transfer':
        this.transfer();
        return;
      case 'membership':
        this.membership();
        return;
      case 'heal':
        this.host.network.healCuts();
        this.host.trace('nemesis: heal partitions');
        return;
    }
  }

  /** A node just became leader of `term`: maybe strike it soon. */
  onNewLeader(node: SimNode, term: number): void {
    const { leaderFaultRate, leaderFaultDelayMaxMs } = this.host.params;
    if (leaderFaultRate === 0 || this.prng.next() >= leaderFaultRate) return;
    this.host.scheduleLeaderFault(this.host.now() + this.prng.next() * leaderFaultDelayMaxMs, node, term);
  }

  /** A leader's commit index moved for the first time in its term: maybe strike it at once (a crash point). */
  onLeaderFirstCommit(node: SimNode, term: number): void {
    const { leaderFaultRate } = this.host.params;
    if (leaderFaultRate === 0 || this.prng.next() >= leaderFaultRate) return;
    this.host.scheduleLeaderFault(this.host.now() + this.prng.next() * 2, node, term);
  }

  /** Strikes `node` if it is still the leader of `term`. */
  strikeLeader(node: SimNode, term: number): void {
    if (!node.isRunning || node.decommissioned || node.core.role !== 'leader' || node.core.term !== term) return;
    if (this.prng.next() < 0.6) {
      this.host.trace(`nemesis: strike new leader ${node.id} (term ${term}): crash`);
      this.host.crash(node, 20 + this.prng.next() * 600);
      return;
    }
    const net = this.host.network;
    net.cutBetween([node.id], this.members().map((n) => n.id).filter((id) => id !== node.id));
    this.host.trace(`nemesis: strike new leader ${node.id} (term ${term}): isolate: ${net.describeCuts()}`);
    this.host.scheduleHealCuts(this.host.now() + 50 + this.prng.next() * 600);
  }

  private pickAction(): NemesisAction {
    const weights = Object.entries(this.host.params.nemesisWeights) as [NemesisAction, number][];
    const total = weights.reduce((sum, [, w]) => sum + w, 0);
    let x = this.prng.next() * total;
    for (const [action, w] of weights) {
      x -= w;
      if (x < 0) return action;
    }
    return 'heal';
  }

  private members(): SimNode[] {
    return this.host.nodes().filter((n) => !n.decommissioned);
  }

  private pick<T>(items: readonly T[]): T {
    return items[this.prng.int(0, items.length - 1)]!;
  }

  private shuffled<T>(items: readonly T[]): T[] {
    const out = items.slice();
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.prng.int(0, i);
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }

  private partition(): void {
    const net = this.host.network;
    const ids = this.members().map((n) => n.id);
    if (ids.length < 2) return;
    const kind = this.pick(['isolateLeader', 'isolateOne', 'split', 'oneWay', 'bridge', 'clog'] as const);
    if (kind !== 'clog') net.healCuts();
    const leader = this.host.leader()?.id ?? this.pick(ids);
    switch (kind) {
      case 'isolateLeader':
      case 'isolateOne': {
        const alone = kind === 'isolateLeader' ? leader : this.pick(ids);
        net.cutBetween([alone], ids.filter((id) => id !== alone));
        break;
      }
      case 'split': {
        const order = this.shuffled(ids);
        const minority = this.prng.int(1, Math.floor(order.length / 2));
        net.cutBetween(order.slice(0, minority), order.slice(minority));
        break;
      }
      case 'oneWay': {
        const others = ids.filter((id) => id !== leader);
        const outbound = this.prng.next() < 0.5;
        for (const id of others) {
          if (this.prng.next() < 0.7) {
            if (outbound) net.cut(leader, id);
            else net.cut(id, leader);
          }
        }
        break;
      }
      case 'bridge': {
        if (ids.length < 3) return;
        const [bridge, ...rest] = this.shuffled(ids);
        const split = this.prng.int(1, rest.length - 1);
        net.cutBetween(rest.slice(0, split), rest.slice(split));
        this.host.trace(`nemesis: bridge through ${bridge}`);
        break;
      }
      case 'clog':
        net.cut(this.pick(ids), this.pick(ids));
        break;
    }
    this.host.trace(`nemesis: partition ${kind}: ${net.describeCuts()}`);
    if (this.prng.next() < 0.6) this.host.scheduleHealCuts(this.host.now() + 100 + this.prng.next() * 1400);
  }

  private crash(): void {
    const running = this.members().filter((n) => n.alive);
    if (running.length === 0) return;
    const x = this.prng.next();
    let victims: SimNode[];
    if (x < 0.05) {
      victims = running; // every node at once
    } else if (x < 0.15) {
      victims = this.shuffled(running).slice(0, Math.max(1, Math.floor(this.members().length / 2)));
    } else {
      const leader = this.host.leader();
      victims = [leader !== null && this.prng.next() < 0.4 ? leader : this.pick(running)];
    }
    for (const node of victims) {
      const restartAfter = this.prng.next() < 0.15 ? null : 20 + this.prng.next() * 1500;
      this.host.crash(node, restartAfter);
    }
  }

  private pause(): void {
    const running = this.members().filter((n) => n.isRunning);
    if (running.length === 0) return;
    const leader = this.host.leader();
    const node = leader !== null && this.prng.next() < 0.4 ? leader : this.pick(running);
    const { electionTicks, tickMs } = this.host.params;
    const maxElectionMs = 2 * electionTicks * tickMs;
    this.host.pause(node, (0.5 + this.prng.next() * 2.5) * maxElectionMs);
  }

  private transfer(): void {
    const leader = this.host.leader();
    if (leader === null) return;
    const voters = leader.core.conf.voters.filter((id) => id !== leader.id);
    if (voters.length === 0) return;
    const to = this.pick(voters);
    this.host.trace(`nemesis: transfer leadership ${leader.id} -> ${to}`);
    leader.core.transferLeader(to);
    this.host.noteTransfer(leader, to);
    leader.pump();
    this.host.touched(leader);
  }

  /** One step towards a membership change: promote a caught-up learner, remove an extra voter, or add a learner. */
  private membership(): void {
    const leader = this.host.leader();
    if (leader === null) return;
    const raft = leader.core;
    const { voters, learners } = raft.conf;
    let change: (ConfChange & { id: NodeId }) | null = null;
    const learner = learners[0];
    if (learner !== undefined) {
      const progress = raft.status().progress?.find((p) => p.id === learner);
      if (progress !== undefined && progress.matchIndex >= raft.log.committed) change = { type: 'promote', id: learner };
      else if (this.prng.next() < 0.2) change = { type: 'remove', id: learner };
    } else if (voters.length > this.host.params.nodes) {
      const victim = this.prng.next() < 0.3 ? leader.id : this.pick(voters);
      change = { type: 'remove', id: victim };
    } else if (this.added < addedNodesMax) {
      change = { type: 'addLearner', id: `n${this.host.nodes().length + 1}` };
    }
    if (change === null || !this.proposeConfChange(leader, change)) return;
    if (change.type === 'promote' && this.prng.next() < 0.3) {
      // At once a second voter change, while the first is in flight: the core must refuse it (CONFLICT), or two
      // configurations whose majorities need not overlap could be in use at the same time.
      const others = voters.filter((id) => id !== leader.id);
      if (others.length > 0) this.proposeConfChange(leader, { type: 'remove', id: this.pick(others) });
    }
  }

  /** Proposes one change through `leader`; returns false if the core refused it (as it may). */
  private proposeConfChange(leader: SimNode, change: ConfChange & { id: NodeId }): boolean {
    try {
      leader.core.proposeConfChange(change);
    } catch (err) {
      if (isKeelError(err, 'CONFLICT') || isKeelError(err, 'UNAVAILABLE') || isKeelError(err, 'NOT_FOUND')) return false;
      throw err;
    }
    this.host.trace(`nemesis: ${leader.id} proposes ${change.type} ${change.id}`);
    if (change.type === 'addLearner') {
      this.added++;
      const node = this.host.addNode();
      if (node.id !== change.id) throw new Error(`added node ${node.id}, expected ${change.id}`);
    }
    leader.pump();
    this.host.touched(leader);
    return true;
  }
}
