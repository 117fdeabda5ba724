// Client-side discovery: a ServicePicker holds the current instances of one service and picks one per request by
// round-robin, smooth weighted round-robin (by `weight`) or consistent hashing on a key. With `watch` (the
// default) it stays fresh through blocking queries (`index` + `waitMs`): each answer arrives as soon as the set
// changes, so a new instance is used and a dead one dropped within one round trip of the change.
import { EventEmitter } from 'node:events';
import { KeelError } from '../util/errors.js';
import { HashRing, RoundRobin, WeightedRoundRobin, type Balancer } from './balancers.js';
import { delay, linkedController } from './delay.js';
import type { ServicesApi } from './services.js';
import type { Instance, ServiceInstances, ServiceQuery } from './types.js';

export type PickStrategy = 'round-robin' | 'weighted' | 'consistent-hash';

export interface PickerOptions extends ServiceQuery {
  readonly strategy?: PickStrategy;
  /** Keep the instances fresh with blocking queries (default true); false = the set of the first answer. */
  readonly watch?: boolean;
  /** How long one blocking query waits for a change (default 30 s). */
  readonly waitMs?: number;
  /** Ring points per instance for consistent hashing (default 160, times the instance's weight). */
  readonly virtualNodes?: number;
  readonly signal?: AbortSignal;
}

export interface PickerEvents {
  /** The set of instances changed. */
  change: [instances: readonly Instance[]];
  /** A refresh failed; the picker keeps the last set and retries. */
  error: [error: unknown];
}

const retryBackoffMaxMs = 5_000;

export function buildBalancer(instances: readonly Instance[], strategy: PickStrategy, virtualNodes?: number): Balancer<Instance> {
  switch (strategy) {
    case 'round-robin':
      return new RoundRobin(instances);
    case 'weighted':
      return new WeightedRoundRobin(instances, (i) => i.weight);
    case 'consistent-hash':
      return new HashRing(instances, (i) => i.id, { weightOf: (i) => i.weight, ...(virtualNodes !== undefined && { virtualNodes }) });
    default: {
      const unknown: never = strategy;
      throw new KeelError('INVALID_ARGUMENT', `unknown pick strategy ${String(unknown)}`);
    }
  }
}

/** Same ids, addresses, weights, tags and status: no need to rebuild (and reset) the balancer. */
function sameInstances(a: readonly Instance[], b: readonly Instance[]): boolean {
  return a.length === b.length && a.every((x, i) => x.id === b[i]?.id && x.modRevision === b[i]?.modRevision && x.status === b[i]?.status);
}

export class ServicePicker extends EventEmitter<PickerEvents> {
  private current: readonly Instance[] = [];
  private balancer: Balancer<Instance>;
  private index = 0;
  private readonly controller: AbortController;
  private loop: Promise<void> | null = null;

  constructor(
    private readonly api: ServicesApi,
    readonly service: string,
    private readonly options: PickerOptions = {},
  ) {
    super();
    this.controller = linkedController(options.signal);
    this.balancer = buildBalancer([], this.strategy, options.virtualNodes);
  }

  get strategy(): PickStrategy {
    return this.options.strategy ?? 'round-robin';
  }

  /** The instances the picker chooses from, sorted by id. */
  get instances(): readonly Instance[] {
    return this.current;
  }

  /** The registry revision of the current set. */
  get revision(): number {
    return this.index;
  }

  /** Loads the first set, then (with `watch`) keeps it fresh in the background. */
  async start(): Promise<void> {
    this.apply(await this.api.get(this.service, this.queryOptions()));
    if (this.options.watch !== false) this.loop = this.refreshLoop();
  }

  /** An instance, or undefined when there is none; consistent hashing needs the `key` to place. */
  pick(key?: string): Instance | undefined {
    if (this.strategy === 'consistent-hash' && key === undefined) {
      throw new KeelError('INVALID_ARGUMENT', 'consistent-hash picking needs a key');
    }
    return this.balancer.pick(key);
  }

  async close(): Promise<void> {
    this.controller.abort();
    await this.loop;
  }

  private queryOptions(): { healthy?: boolean; tag?: string } {
    return {
      ...(this.options.healthy !== undefined && { healthy: this.options.healthy }),
      ...(this.options.tag !== undefined && { tag: this.options.tag }),
    };
  }

  private apply(answer: ServiceInstances): void {
    this.index = answer.index;
    const sorted = [...answer.instances].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    if (sameInstances(sorted, this.current)) return;
    this.current = sorted;
    this.balancer = buildBalancer(sorted, this.strategy, this.options.virtualNodes);
    this.emit('change', sorted);
  }

  private async refreshLoop(): Promise<void> {
    const signal = this.controller.signal;
    let backoffMs = 100;
    while (!signal.aborted) {
      try {
        const waitMs = this.options.waitMs ?? 30_000;
        const [previous, startedMs] = [this.index, Date.now()];
        this.apply(await this.api.get(this.service, { ...this.queryOptions(), index: previous, waitMs, signal }));
        backoffMs = 100;
        // A server that answers an unchanged set at once (not blocking) must not turn this into a busy loop.
        if (this.index === previous && Date.now() - startedMs < Math.min(waitMs, 1_000)) await delay(1_000, signal);
      } catch (err) {
        if (signal.aborted) return;
        if (this.listenerCount('error') > 0) this.emit('error', err);
        await delay(backoffMs, signal);
        backoffMs = Math.min(backoffMs * 2, retryBackoffMaxMs);
      }
    }
  }
}
