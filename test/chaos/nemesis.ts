// The nemesis: a seeded schedule of faults against a real cluster, each healed after a while, every injection
// counted by kind. Faults: kill -9 (follower, leader, minority, all then restart), SIGSTOP/SIGCONT (leader or
// follower, 0.5-3 election timeouts), partitions through the fault proxies (leader alone, one node, one-way,
// bridge), delay + jitter, connection resets, and a restart loop. There is no namespace/iptables backend (the
// issue's optional item): the loopback proxies cover every partition shape without root.
import type { TestCluster } from '../helpers/cluster.js';
import type { Prng } from '../../src/util/prng.js';
import type { FaultProxy } from './proxy.js';

export const nemesisGroups = {
  kill: ['kill-follower', 'kill-leader', 'kill-minority', 'kill-all'],
  pause: ['pause-leader', 'pause-follower'],
  partition: ['partition-leader', 'partition-one', 'partition-oneway', 'partition-bridge'],
  delay: ['delay'],
  reset: ['reset'],
  restart: ['restart-loop'],
} as const;
export type NemesisGroup = keyof typeof nemesisGroups;
export type FaultKind = (typeof nemesisGroups)[NemesisGroup][number];

export interface NemesisOptions {
  readonly groups: readonly NemesisGroup[];
  readonly electionTimeoutMs: number;
  /** Quiet time between faults and how long a fault lasts (ms, drawn uniformly). */
  readonly quietMs: readonly [number, number];
  readonly faultMs: readonly [number, number];
  readonly log: (line: string) => void;
}

/** proxies.get(`${from}->${to}`) = the peer and client proxies carrying what `from` sends to `to`. */
export type ProxyMap = ReadonlyMap<string, readonly FaultProxy[]>;

export class Nemesis {
  readonly counts = new Map<FaultKind, number>();
  /** When each fault was injected and healed (runner ms). */
  readonly windows: { kind: FaultKind; fromMs: number; toMs: number }[] = [];
  private readonly paused = new Set<string>();
  private readonly kinds: FaultKind[];

  constructor(
    private readonly cluster: TestCluster,
    private readonly proxies: ProxyMap,
    private readonly prng: Prng,
    private readonly options: NemesisOptions,
  ) {
    this.kinds = options.groups.flatMap((g) => [...nemesisGroups[g]]);
    for (const kind of this.kinds) this.counts.set(kind, 0);
  }

  get total(): number {
    return [...this.counts.values()].reduce((a, b) => a + b, 0);
  }

  /** Runs faults until `stop`: every kind once per shuffled round, so all kinds come up evenly. */
  async run(stop: AbortSignal): Promise<void> {
    let round: FaultKind[] = [];
    while (!stop.aborted && this.kinds.length > 0) {
      await this.sleep(this.between(this.options.quietMs), stop);
      if (stop.aborted) break;
      if (round.length === 0) round = this.shuffle([...this.kinds]);
      const kind = round.shift()!;
      const fromMs = performance.now();
      await this.inject(kind, stop);
      await this.healAll();
      // A fault lasts until the healed cluster has a leader again (restarts are slow on a busy machine).
      await this.cluster.waitForLeader(60_000).catch(() => undefined);
      this.windows.push({ kind, fromMs, toMs: performance.now() });
    }
  }

  /** Heals every fault: proxies pass without delay, paused nodes continue, stopped nodes start. */
  async healAll(): Promise<void> {
    for (const list of this.proxies.values()) for (const proxy of list) proxy.heal();
    for (const id of this.paused) {
      const pid = this.cluster.node(id).process?.pid;
      if (pid !== undefined) process.kill(pid, 'SIGCONT');
    }
    this.paused.clear();
    for (const node of this.cluster.nodes) if (node.process === null) this.cluster.start(node.id);
  }

  private async inject(kind: FaultKind, stop: AbortSignal): Promise<void> {
    const ids = this.cluster.nodes.map((n) => n.id);
    const leader = await this.leader();
    const followers = ids.filter((id) => id !== leader);
    const holdMs = this.between(this.options.faultMs);
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
    const note = (what: string): void => this.options.log(`nemesis ${kind}: ${what}`);
    switch (kind) {
      case 'kill-follower':
      case 'kill-leader':
      case 'kill-minority':
      case 'kill-all': {
        const victims = kind === 'kill-all' ? ids : kind === 'kill-leader' ? [leader] : kind === 'kill-follower' ? [this.pick(followers)] : this.shuffle([...ids]).slice(0, Math.floor((ids.length - 1) / 2));
        note(victims.join(','));
        await Promise.all(victims.map((id) => this.cluster.kill(id, 'SIGKILL')));
        await this.sleep(kind === 'kill-all' ? Math.min(holdMs, 1500) : holdMs, stop);
        return;
      }
      case 'pause-leader':
      case 'pause-follower': {
        const victim = kind === 'pause-leader' ? leader : this.pick(followers);
        const ms = this.options.electionTimeoutMs * (0.5 + this.prng.next() * 2.5);
        note(`${victim} for ${Math.round(ms)} ms`);
        const pid = this.cluster.node(victim).process?.pid;
        if (pid !== undefined) {
          process.kill(pid, 'SIGSTOP');
          this.paused.add(victim);
        }
        await this.sleep(ms, stop);
        return;
      }
      case 'partition-leader':
      case 'partition-one': {
        const alone = kind === 'partition-leader' ? leader : this.pick(ids);
        note(`${alone} | ${ids.filter((id) => id !== alone).join(',')}`);
        for (const other of ids) if (other !== alone) this.cut(alone, other, true);
        break;
      }
      case 'partition-oneway': {
        // One node's outbound traffic is dropped, its inbound still arrives.
        const from = this.pick(ids);
        note(`${from} -/-> everyone`);
        for (const other of ids) if (other !== from) this.cut(from, other, false);
        break;
      }
      case 'partition-bridge': {
        // A <-> B <-> C with A -/- C (B the bridge); with more nodes the rest join C's side.
        const [a, b, ...rest] = this.shuffle([...ids]);
        note(`bridge ${b}: ${a} -/- ${rest.join(',')}`);
        for (const c of rest) this.cut(a!, c, true);
        break;
      }
      case 'delay': {
        const delay = this.prng.int(20, 200);
        const jitter = this.prng.int(0, 100);
        note(`${delay} ms + up to ${jitter} ms on every link`);
        for (const list of this.proxies.values()) for (const proxy of list) proxy.setDelay(delay, jitter);
        break;
      }
      case 'reset': {
        let count = 0;
        const bursts = this.prng.int(2, 5);
        for (let i = 0; i < bursts && !stop.aborted; i++) {
          for (const list of this.proxies.values()) for (const proxy of list) count += proxy.reset();
          await this.sleep(holdMs / bursts, stop);
        }
        note(`${count} connections reset in ${bursts} bursts`);
        return;
      }
      case 'restart-loop': {
        const victim = this.pick(ids);
        const rounds = this.prng.int(2, 4);
        note(`${victim} x${rounds}`);
        for (let i = 0; i < rounds && !stop.aborted; i++) {
          await this.cluster.kill(victim, 'SIGKILL');
          await this.sleep(this.prng.int(100, 600), stop);
          this.cluster.start(victim);
          await this.sleep(this.prng.int(800, 2000), stop);
        }
        return;
      }
    }
    await this.sleep(holdMs, stop);
  }

  /** Blackholes what `from` sends to `to` (and the reverse when `both`). */
  private cut(from: string, to: string, both: boolean): void {
    for (const proxy of this.proxies.get(`${from}->${to}`) ?? []) proxy.setMode('blackhole');
    if (both) for (const proxy of this.proxies.get(`${to}->${from}`) ?? []) proxy.setMode('blackhole');
  }

  private async leader(): Promise<string> {
    const running = this.cluster.running().map((n) => n.id).filter((id) => !this.paused.has(id));
    const statuses = await Promise.all(running.map((id) => this.cluster.status(id)));
    const leader = statuses.find((s) => s?.role === 'leader')?.id;
    return leader ?? this.pick(this.cluster.nodes.map((n) => n.id));
  }

  private pick<T>(items: readonly T[]): T {
    return items[this.prng.int(0, items.length - 1)]!;
  }

  private shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.prng.int(0, i);
      [items[i], items[j]] = [items[j]!, items[i]!];
    }
    return items;
  }

  private between([lo, hi]: readonly [number, number]): number {
    return lo + this.prng.next() * (hi - lo);
  }

  private sleep(ms: number, stop: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        stop.removeEventListener('abort', done);
        resolve();
      }
      stop.addEventListener('abort', done);
    });
  }
}
