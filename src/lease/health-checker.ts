// The health checker: on the cluster leader only, it probes every registered instance that has a `check`, every
// intervalMs, and turns what it sees into log entries — service.status when an instance's stored status differs
// from its last probe, service.deregister once the instance has failed continuously for deregisterAfterMs.
// Followers probe nothing; status enters the state only through the log, so every node answers the same.
//
// Each leadership gets a fresh Session (setLeader(true) on becoming leader, setLeader(false) on losing it): the
// session loads the instances from the store, then follows the services prefix with a store watch from the
// next revision, so it sees registrations, re-registrations, status changes and removals in order. Its failure
// clock starts empty: a new leader deregisters nothing before it has itself watched an instance fail for
// deregisterAfterMs (the previous leader's observations are not trusted or carried over).
//
// Every decision is proposed with `ifModRevision` = the instance's modRevision as this session last saw it. If
// the instance changed in between (re-registered, removed, or a stale status from an old leader landed), the
// store refuses the command and the session simply continues from what its watch shows next.
//
// Bounds: at most one probe and one proposal in flight per instance; at most `probesInFlightMax` probes in
// flight overall (the others wait for a slot, FIFO); every probe is bounded by its check's timeoutMs.
import type { Command, KvStore, StoreEvent, WatchMessage, Watcher } from '../store/index.js';
import { encodeCommand, isApplyFailure } from '../store/index.js';
import type { Clock } from '../util/clock.js';
import { isKeelError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { serviceKeys } from './prefixes.js';
import type { Prober, ProbeResult } from './probe.js';
import { NetworkProber } from './probe.js';
import type { Instance, InstanceStatus } from './registry.js';
import { deregisterCommand, instanceFromKv, statusCommand } from './registry.js';

export interface HealthCheckerOptions {
  readonly store: KvStore;
  /** Proposes on this node (it is the leader while a session runs); resolves with the entry's apply result. */
  readonly proposeLocal: (command: Uint8Array) => Promise<unknown>;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Replaces the network probes (tests). */
  readonly prober?: Prober;
  readonly probesInFlightMax?: number;
  /** Pause before reloading after the session's watch ended (store restored from a snapshot, slow consumer). */
  readonly resyncDelayMs?: number;
}

export const healthCheckerDefaults = { probesInFlightMax: 64, resyncDelayMs: 200 } as const;

export interface HealthCheckerStats {
  readonly isActive: boolean;
  /** Instances with a check that this leader is probing. */
  readonly targets: number;
  readonly probesInFlight: number;
}

export class HealthChecker {
  private session: Session | null = null;
  private readonly network: NetworkProber | null;
  private readonly prober: Prober;
  private isClosed = false;

  constructor(private readonly options: HealthCheckerOptions) {
    this.network = options.prober === undefined ? new NetworkProber() : null;
    this.prober = options.prober ?? this.network!.probe;
  }

  /** Starts probing when this node becomes the leader, stops (aborting probes) when it no longer is. */
  setLeader(isLeader: boolean): void {
    if (this.isClosed) return;
    if (isLeader && this.session === null) {
      this.session = new Session(this.options, this.prober);
      this.session.start();
    } else if (!isLeader && this.session !== null) {
      void this.session.stop();
      this.session = null;
    }
  }

  stats(): HealthCheckerStats {
    const session = this.session;
    if (session === null) return { isActive: false, targets: 0, probesInFlight: 0 };
    return { isActive: true, targets: session.targetCount, probesInFlight: session.probesInFlight };
  }

  async close(): Promise<void> {
    this.isClosed = true;
    const session = this.session;
    this.session = null;
    if (session !== null) await session.stop();
    await this.network?.close();
  }
}

/** Probing state of one checked instance, within one session. */
interface Target {
  readonly key: string;
  /** The instance as the session last saw it in the store (status and modRevision are what proposals use). */
  instance: Instance;
  /** The check it was created for; a different check (re-registration) makes a new Target. */
  readonly checkSignature: string;
  /** Monotonic ms of the start of the first probe of the current run of failures; null = not failing. */
  failingSince: number | null;
  timer: NodeJS.Timeout | null;
  probe: AbortController | null;
  isProposing: boolean;
  isDropped: boolean;
}

/** FIFO slots bounding the probes in flight. */
class Slots {
  private used = 0;
  private readonly waiters: (() => void)[] = [];

  constructor(private readonly max: number) {}

  get inUse(): number {
    return this.used;
  }

  acquire(): Promise<void> {
    if (this.used < this.max) {
      this.used++;
      return Promise.resolve();
    }
    // Bounded: each target waits for at most one slot at a time.
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  release(): void {
    const next = this.waiters.shift();
    if (next !== undefined) next(); // the slot passes straight to the next waiter
    else this.used--;
  }
}

class Session {
  private readonly targets = new Map<string, Target>();
  private readonly slots: Slots;
  private readonly prober: Prober;
  private readonly logger: Logger;
  private watcher: Watcher | null = null;
  private isStopped = false;
  private running: Promise<void> = Promise.resolve();
  private wake: (() => void) | null = null;

  constructor(
    private readonly options: HealthCheckerOptions,
    prober: Prober,
  ) {
    this.prober = prober;
    this.slots = new Slots(options.probesInFlightMax ?? healthCheckerDefaults.probesInFlightMax);
    this.logger = options.logger.child({ component: 'health-checker' });
  }

  get targetCount(): number {
    return this.targets.size;
  }

  get probesInFlight(): number {
    return this.slots.inUse;
  }

  start(): void {
    this.logger.info({}, 'leader: health checks started');
    this.running = this.follow().catch((err: unknown) => {
      // Not an expected condition (those are KeelErrors, handled in follow): a store fault the operator must
      // see. Probing continues with what the session knows; the next leadership starts over.
      this.logger.error({ err }, 'health checker stopped following the registry');
    });
  }

  /** Stops at once (timers cleared, probes aborted, watch cancelled); resolves when the follow loop ended. */
  async stop(): Promise<void> {
    if (!this.isStopped) {
      this.isStopped = true;
      this.watcher?.cancel();
      this.wake?.();
      for (const target of this.targets.values()) this.drop(target);
      this.targets.clear();
      this.logger.info({}, 'no longer leader: health checks stopped');
    }
    await this.running;
  }

  /** Load, then follow the watch; after the watch ends for any reason but stop(), load again. */
  private async follow(): Promise<void> {
    while (!this.isStopped) {
      try {
        await this.loadAndWatch();
      } catch (err) {
        // UNAVAILABLE: the store is restoring a snapshot or closing; a watcher too far behind. Reload.
        if (!isKeelError(err)) throw err;
        if (!this.isStopped) this.logger.warn({ err }, 'health checker lost its watch; reloading the instances');
      }
      if (this.isStopped) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.options.resyncDelayMs ?? healthCheckerDefaults.resyncDelayMs);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = null;
    }
  }

  private async loadAndWatch(): Promise<void> {
    const { store } = this.options;
    const loaded = await store.range({ key: serviceKeys.prefix, prefix: true });
    if (this.isStopped) return;
    const present = new Set<string>();
    for (const kv of loaded.kvs) {
      present.add(kv.key);
      this.upsert(kv.key, instanceFromKv(kv));
    }
    for (const target of [...this.targets.values()]) if (!present.has(target.key)) this.remove(target.key);
    // No await between the range above and the watch: history from the next revision covers the rest.
    const watcher = store.watch({ key: serviceKeys.prefix, prefix: true, fromRevision: loaded.revision + 1 });
    this.watcher = watcher;
    if (this.isStopped) watcher.cancel();
    for await (const message of watcher as AsyncIterable<WatchMessage>) {
      if (this.isStopped) return;
      if (message.type === 'compacted') return; // cannot happen from the current revision; reload anyway
      for (const event of message.events) this.onEvent(event);
    }
  }

  private onEvent(event: StoreEvent): void {
    if (event.type === 'delete') this.remove(event.kv.key);
    else this.upsert(event.kv.key, instanceFromKv(event.kv));
  }

  private upsert(key: string, instance: Instance | null): void {
    const current = this.targets.get(key);
    if (instance === null || instance.check === undefined) {
      if (current !== undefined) this.remove(key);
      return;
    }
    const checkSignature = JSON.stringify(instance.check);
    if (current !== undefined && current.checkSignature === checkSignature) {
      current.instance = instance;
      // "passing" in the store is either our own proposal after a passing probe (failingSince is already null)
      // or a re-registration, which starts the failure clock over.
      if (instance.status === 'passing') current.failingSince = null;
      return;
    }
    if (current !== undefined) this.remove(key);
    const target: Target = {
      key,
      instance,
      checkSignature,
      failingSince: null,
      timer: null,
      probe: null,
      isProposing: false,
      isDropped: false,
    };
    this.targets.set(key, target);
    this.schedule(target, 0);
  }

  private remove(key: string): void {
    const target = this.targets.get(key);
    if (target === undefined) return;
    this.targets.delete(key);
    this.drop(target);
  }

  private drop(target: Target): void {
    target.isDropped = true;
    if (target.timer !== null) clearTimeout(target.timer);
    target.timer = null;
    target.probe?.abort();
  }

  private schedule(target: Target, delayMs: number): void {
    if (target.isDropped) return;
    target.timer = setTimeout(() => {
      target.timer = null;
      void this.probe(target);
    }, delayMs);
  }

  private async probe(target: Target): Promise<void> {
    const check = target.instance.check!;
    await this.slots.acquire();
    if (target.isDropped) {
      this.slots.release();
      return;
    }
    const startedAtMs = this.options.clock.nowMs();
    target.probe = new AbortController();
    let result: ProbeResult;
    try {
      result = await this.prober(check, target.probe.signal);
    } catch (err) {
      // Probers resolve every failure as a result; a throw is a bug in one, logged and counted as a failure.
      this.logger.error({ err }, 'health probe threw');
      result = { isPassing: false, detail: 'probe failed unexpectedly' };
    } finally {
      target.probe = null;
      this.slots.release();
    }
    if (target.isDropped) return;
    this.judge(target, result, startedAtMs);
    // Probes start every intervalMs (start to start); a slow probe or a wait for a slot delays the next one.
    this.schedule(target, Math.max(0, startedAtMs + check.intervalMs - this.options.clock.nowMs()));
  }

  private judge(target: Target, result: ProbeResult, startedAtMs: number): void {
    const { instance } = target;
    const check = instance.check!;
    if (result.isPassing) {
      target.failingSince = null;
      if (instance.status !== 'passing') this.proposeStatus(target, 'passing', result);
      return;
    }
    target.failingSince ??= startedAtMs;
    const failingMs = this.options.clock.nowMs() - target.failingSince;
    if (check.deregisterAfterMs !== undefined && failingMs >= check.deregisterAfterMs) {
      this.propose(target, 'deregister', { failingMs: Math.round(failingMs), detail: result.detail }, () =>
        deregisterCommand({ service: instance.service, id: instance.id, ifModRevision: instance.modRevision }),
      );
    } else if (instance.status !== 'critical') {
      this.proposeStatus(target, 'critical', result);
    }
  }

  private proposeStatus(target: Target, status: InstanceStatus, result: ProbeResult): void {
    const { service, id, modRevision } = target.instance;
    this.propose(target, `status ${status}`, { detail: result.detail }, () =>
      statusCommand({ service, id, status, ifModRevision: modRevision }),
    );
  }

  /** One proposal in flight per instance; a refusal or a lost proposal is retried after the next probe. */
  private propose(target: Target, what: string, fields: object, build: () => Command): void {
    if (target.isProposing || this.isStopped) return;
    target.isProposing = true;
    const { service, id } = target.instance;
    this.logger.info({ ...fields, service, id }, `health check: proposing ${what}`);
    const command = encodeCommand({ requestId: '', cmd: build() });
    this.options
      .proposeLocal(command)
      .then(
        (result) => {
          // PRECONDITION_FAILED / NOT_FOUND: the instance changed or is gone; the watch brings the new state.
          if (isApplyFailure(result)) this.logger.debug({ service, id, error: result.error }, `health check: ${what} refused`);
        },
        (err: unknown) => {
          // UNAVAILABLE (lost leadership, queue full) or TIMEOUT: the next probe decides again.
          if (!isKeelError(err)) this.logger.error({ err, service, id }, `health check: proposing ${what} failed`);
          else this.logger.debug({ err, service, id }, `health check: ${what} not applied`);
        },
      )
      .finally(() => {
        target.isProposing = false;
      });
  }
}
