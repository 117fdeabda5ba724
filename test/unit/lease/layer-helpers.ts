// Fixtures for the lease/lock unit tests: a manual clock, a fake Raft view (leader or not, applied and last
// index under the test's control), and a LeaseLayer wired to a real KvStore in a temp dir whose "log" applies
// each proposed command as the next entry (SerialLog), the way the driver applies committed entries.
import { LeaseLayer } from '../../../src/lease/index.js';
import type { RaftView } from '../../../src/lease/index.js';
import type { KvStore } from '../../../src/store/index.js';
import type { Clock } from '../../../src/util/clock.js';
import { openStore, type TapLike } from '../store/helpers.js';
import { SerialLog } from './helpers.js';

export class ManualClock implements Clock {
  constructor(public now = 1_000_000) {}
  nowMs(): number {
    return this.now;
  }
  wallMs(): number {
    return this.now;
  }
  advance(ms: number): void {
    this.now += ms;
  }
}

export class FakeRaft implements RaftView {
  isLeaderNow = true;
  last = 0;
  private readonly leaderListeners = new Set<() => void>();
  private readonly appliedListeners = new Set<(index: number) => void>();

  constructor(private readonly store: KvStore) {}

  isLeader(): boolean {
    return this.isLeaderNow;
  }
  appliedIndex(): number {
    return this.store.appliedIndex();
  }
  lastIndex(): number {
    return Math.max(this.last, this.store.appliedIndex());
  }
  onApplied(listener: (index: number) => void): () => void {
    this.appliedListeners.add(listener);
    return () => this.appliedListeners.delete(listener);
  }
  onLeaderChange(listener: () => void): () => void {
    this.leaderListeners.add(listener);
    return () => this.leaderListeners.delete(listener);
  }
  setLeader(isLeader: boolean): void {
    this.isLeaderNow = isLeader;
    for (const listener of this.leaderListeners) listener();
  }
}

export interface LayerFixture {
  readonly store: KvStore;
  readonly dir: string;
  readonly log: SerialLog;
  readonly layer: LeaseLayer;
  readonly clock: ManualClock;
  readonly raft: FakeRaft;
}

/** A started lease layer over a fresh store; closed in teardown. */
export async function openLayer(
  t: TapLike,
  options: {
    clock?: ManualClock;
    keepaliveBatchMs?: number;
    expiryIntervalMs?: number;
    keepaliveQueueMax?: number;
    start?: boolean;
    /** Wraps the log's propose (to delay entries, count them...). */
    propose?: (inner: (command: Uint8Array) => Promise<unknown>) => (command: Uint8Array) => Promise<unknown>;
  } = {},
): Promise<LayerFixture> {
  const clock = options.clock ?? new ManualClock();
  const layer = new LeaseLayer({
    clock,
    keepaliveBatchMs: options.keepaliveBatchMs ?? 5,
    expiryIntervalMs: options.expiryIntervalMs ?? 10,
    ...(options.keepaliveQueueMax !== undefined && { keepaliveQueueMax: options.keepaliveQueueMax }),
  });
  const { store, dir } = await openStore(t, { extensions: [...layer.extensions], hooks: layer.hooks });
  // Teardowns run last-registered first: the layer's loops stop before the store closes.
  t.teardown(() => layer.close());
  const log = new SerialLog(store);
  const raft = new FakeRaft(store);
  const inner = options.propose === undefined ? log.propose : options.propose(log.propose);
  const propose = (command: Uint8Array): Promise<unknown> => {
    const outcome = inner(command);
    layer.lessor.observeProposal(command, outcome);
    return outcome;
  };
  if (options.start !== false) await layer.start({ store, raft, propose });
  return { store, dir, log, layer, clock, raft };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls until `check` is true or `timeoutMs` passes; returns whether it became true. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 2_000): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (await check()) return true;
    await sleep(5);
  }
  return check();
}
