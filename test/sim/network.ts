// The simulated network: every message gets a virtual delivery time. Faults: loss, duplication, delay with jitter
// (which reorders), rare long delays (slow links), and directed link cuts, which express every partition shape:
// a node alone, majority/minority, one-way cuts, a bridge (A<->B<->C with A-/-C), links clogged one by one. A
// message in flight over a link that gets cut is lost. Rates are drawn per seed; healing restores a clean network.
import type { NodeId, PeerMessage } from '../../src/raft/index.js';
import type { Prng } from '../../src/util/prng.js';
import type { NetworkParams } from './params.js';

export interface Delivery {
  readonly at: number;
  readonly message: PeerMessage;
}

export class SimNetwork {
  private params: NetworkParams;
  private readonly prng: Prng;
  /** Directed cuts, as `${from}>${to}`. */
  private readonly cuts = new Set<string>();
  sent = 0;
  dropped = 0;
  duplicated = 0;

  constructor(params: NetworkParams, prng: Prng) {
    this.params = params;
    this.prng = prng;
  }

  /** Healed phase: no loss, no duplication, no slow links, short delays. */
  heal(): void {
    this.cuts.clear();
    this.params = {
      ...this.params,
      dropRate: 0,
      dupRate: 0,
      spikeRate: 0,
      delayJitterMs: Math.min(this.params.delayJitterMs, 5),
    };
  }

  healCuts(): void {
    this.cuts.clear();
  }

  isCut(from: NodeId, to: NodeId): boolean {
    return this.cuts.size > 0 && this.cuts.has(`${from}>${to}`);
  }

  cut(from: NodeId, to: NodeId): void {
    if (from !== to) this.cuts.add(`${from}>${to}`);
  }

  /** Cuts both directions between every node of `a` and every node of `b`. */
  cutBetween(a: readonly NodeId[], b: readonly NodeId[]): void {
    for (const x of a) {
      for (const y of b) {
        this.cut(x, y);
        this.cut(y, x);
      }
    }
  }

  describeCuts(): string {
    return this.cuts.size === 0 ? 'none' : [...this.cuts].sort().join(' ');
  }

  /**
   * Decides the fate of one message: zero, one or two deliveries. `unreachable` is true when the sender's
   * transport would notice the cut link (the core may then be told).
   */
  send(message: PeerMessage, now: number): { deliveries: Delivery[]; unreachable: boolean } {
    this.sent++;
    if (this.isCut(message.from, message.to)) {
      this.dropped++;
      return { deliveries: [], unreachable: this.prng.next() < this.params.unreachableRate };
    }
    if (this.params.dropRate > 0 && this.prng.next() < this.params.dropRate) {
      this.dropped++;
      return { deliveries: [], unreachable: false };
    }
    const deliveries = [{ at: now + this.delay(), message }];
    if (this.params.dupRate > 0 && this.prng.next() < this.params.dupRate) {
      this.duplicated++;
      deliveries.push({ at: now + this.delay(), message });
    }
    return { deliveries, unreachable: false };
  }

  /** A message arriving over a link cut while it was in flight is lost. */
  survives(message: PeerMessage): boolean {
    if (!this.isCut(message.from, message.to)) return true;
    this.dropped++;
    return false;
  }

  private delay(): number {
    const { delayMinMs, delayJitterMs, spikeRate, spikeMs } = this.params;
    let delay = delayMinMs + (delayJitterMs > 0 ? this.prng.next() * delayJitterMs : 0);
    if (spikeRate > 0 && this.prng.next() < spikeRate) delay += this.prng.next() * spikeMs;
    return delay;
  }
}
