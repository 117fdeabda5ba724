// The lock service: distributed locks with fencing tokens, and (same machinery, kind 'elections') the election
// service's core. The replicated part is in lock-apply.ts; this file is the node-local part:
//
//   - acquire/release/proclaim requests: propose the command through the leader, then (when the lock was not
//     free) wait on this node until the acquirer's key becomes the holder, its key goes away, or waitMs passes —
//     then its waiter is withdrawn (lock.release with cancel) and the request answers 408 WAIT_TIMEOUT;
//   - promotion, on the leader only: when a lock is free and has waiters, the leader looks at the FIRST waiter's
//     lease on its own clock. Alive → it proposes lock.grant for that waiter (fence + 1 at apply). Expired → it
//     proposes nothing: the lessor's expiry loop revokes that lease (which removes the waiter and touches the lock
//     again), so the next holder is never a waiter whose lease already expired.
//
// An acquire that grants its own lease (ttl) keeps that lease alive from this node while it waits: the client
// learns the lease id only with the answer, and from then on keeps it alive itself (POST /v1/leases/<id>/keepalive).
import type { CommandExtension, CommandGuard, StoreHooks } from '../store/index.js';
import type { Clock } from '../util/clock.js';
import { KeelError, isKeelError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { silentLogger } from '../util/logger.js';
import type { Lessor } from './lessor.js';
import { leaseLimits } from './limits.js';
import {
  currentFence,
  lockExtensions,
  lockRevokeHandler,
  parseHolder,
  parseWaiter,
  type AcquireResult,
  type HolderRecord,
  type LockEvents,
} from './lock-apply.js';
import { extensionNames, lockKeys, reservedPrefix, type LockKind } from './prefixes.js';
import { proposeExtension, type LeaseRuntime } from './runtime.js';

export type { HolderRecord } from './lock-apply.js';

export interface LockServiceOptions {
  readonly clock: Clock;
  readonly lessor: Lessor;
  readonly logger?: Logger;
  /** How often the leader retries promotions that could not progress (default 100 ms). */
  readonly retryMs?: number;
}

export interface AcquireRequest {
  /** An existing lease to attach the waiter to, or... */
  readonly lease?: number;
  /** ...a ttl: a lease is granted for this acquire in the same entry (and revoked when it is released). */
  readonly ttl?: number;
  /** Elections: the candidate's value. */
  readonly value?: string;
  /** How long to wait for the lock (default leaseLimits.waitMsDefault, at most waitMsMax). */
  readonly waitMs?: number;
  readonly requestId: string;
  /** Auth on: refused when applied if auth changed after the request was checked (store CommandGuard). */
  readonly guard?: CommandGuard;
  /** Aborted when the client went away: the waiter is withdrawn as on a timeout. */
  readonly signal?: AbortSignal;
}

export interface Held {
  readonly key: string;
  readonly fence: number;
  readonly lease: number;
  readonly value: string;
}

export interface LockState {
  readonly holder: HolderRecord | null;
  /** Waiters not holding the lock. */
  readonly waiters: number;
  readonly revision: number;
}

interface Wait {
  readonly kind: LockKind;
  readonly name: string;
  /** The revision of the acquire entry (its waiter key's createRevision). */
  readonly revision: number;
  readonly resolve: (holder: HolderRecord) => void;
  readonly reject: (err: unknown) => void;
}

export class LockService {
  readonly extensions: readonly CommandExtension[];
  /** Register with KvStore.open({hooks}): the fence of a lock's current holder (fenced puts). */
  readonly hooks: Required<Pick<StoreHooks, 'lockFence'>>;

  private readonly clock: Clock;
  private readonly lessor: Lessor;
  private readonly logger: Logger;
  private readonly retryMs: number;
  private runtime: LeaseRuntime | null = null;
  private readonly unsubscribe: (() => void)[] = [];
  private closed = false;
  /** Requests on this node waiting for their key to hold the lock, by waiter key. */
  private readonly waits = new Map<string, Set<Wait>>();
  /** Locks to look at for a promotion (leader), as "kind/name". */
  private readonly pending = new Set<string>();
  /** Locks with a lock.grant in flight (one per lock). */
  private readonly promoting = new Set<string>();
  private processScheduled = false;
  private retryTimer: NodeJS.Timeout | null = null;

  constructor(options: LockServiceOptions) {
    this.clock = options.clock;
    this.lessor = options.lessor;
    this.logger = (options.logger ?? silentLogger).child({ component: 'locks' });
    this.retryMs = options.retryMs ?? 100;
    const events: LockEvents = {
      touched: (kind, name) => this.touch(kind, name),
      held: (_kind, _name, holder) => this.settleWaits(holder.key, (wait) => wait.resolve(holder)),
      removed: (key) =>
        this.settleWaits(key, (wait) =>
          wait.reject(new KeelError('LEASE_NOT_FOUND', `the waiter ${key} went away (its lease expired or was revoked, or it was withdrawn)`)),
        ),
    };
    const deps = { leases: this.lessor, events };
    this.extensions = lockExtensions(deps);
    this.lessor.onRevokeApply(lockRevokeHandler(deps));
    this.hooks = { lockFence: (lock, ctx) => currentFence(ctx, lock) };
  }

  start(runtime: LeaseRuntime): void {
    this.runtime = runtime;
    this.unsubscribe.push(runtime.raft.onLeaderChange(() => this.onLeaderChange()));
    this.retryTimer = setInterval(() => this.scheduleProcess(), this.retryMs);
    this.onLeaderChange();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer !== null) clearInterval(this.retryTimer);
    for (const off of this.unsubscribe.splice(0)) off();
    const error = new KeelError('UNAVAILABLE', 'node is shutting down', { applied: false });
    for (const key of [...this.waits.keys()]) this.settleWaits(key, (wait) => wait.reject(error));
  }

  // ---- requests ---------------------------------------------------------------------------------------------

  /**
   * Acquires `kind/name`: resolves once this request's key holds it, with the fence. WAIT_TIMEOUT (408) after
   * waitMs (the waiter is withdrawn), LEASE_NOT_FOUND (404) if its lease is unknown or goes away while waiting.
   */
  async acquire(kind: LockKind, name: string, request: AcquireRequest): Promise<Held> {
    const startedMs = this.clock.nowMs();
    const waitMs = Math.min(request.waitMs ?? leaseLimits.waitMsDefault, leaseLimits.waitMsMax);
    const result = await this.proposeAcquire(kind, name, request);
    if (result.held) return { key: result.key, fence: result.fence, lease: result.lease, value: request.value ?? '' };
    const leftMs = Math.max(0, waitMs - (this.clock.nowMs() - startedMs));
    const holder = await this.waitForHold(kind, name, result, { leftMs, waitMs }, request);
    return { key: result.key, fence: holder.fence, lease: result.lease, value: holder.value };
  }

  /** The holder gives the lock up: 404 NOT_FOUND for an unknown key, 409 CONFLICT for a key that only waits. */
  async release(kind: LockKind, name: string, key: string, requestId: string, guard?: CommandGuard): Promise<{ revision: number }> {
    return this.proposeExt(extensionNames.lockRelease, { kind, name, key, cancel: false }, requestId, guard);
  }

  /** Elections: the leader `key` changes its value (404 unknown key, 409 not the leader). */
  async proclaim(name: string, key: string, value: string, requestId: string, guard?: CommandGuard): Promise<{ revision: number; fence: number }> {
    return this.proposeExt(extensionNames.electionProclaim, { name, key, value }, requestId, guard);
  }

  /** The lock as this node applied it (the API puts a ReadIndex barrier in front for linearizable reads). */
  async state(kind: LockKind, name: string): Promise<LockState> {
    const store = this.requireRuntime().store;
    const holderRead = await store.get(lockKeys.holder(kind, name));
    const holder = parseHolder(holderRead.kv);
    const waiters = await store.range({ key: lockKeys.waitersPrefix(kind, name), prefix: true, countOnly: true });
    const isHeld = holder !== null && holder.key !== null;
    return { holder: isHeld ? holder : null, waiters: waiters.count - (isHeld ? 1 : 0), revision: waiters.revision };
  }

  // ---- internals: requests -----------------------------------------------------------------------------------

  private requireRuntime(): LeaseRuntime {
    if (this.runtime === null) throw new KeelError('UNAVAILABLE', 'the lock service is not started', { applied: false });
    return this.runtime;
  }

  private async proposeExt<T>(name: string, body: unknown, requestId: string, guard?: CommandGuard): Promise<T> {
    return proposeExtension<T>(this.requireRuntime(), this.extensions, { name, body, requestId, guard });
  }

  private async proposeAcquire(kind: LockKind, name: string, request: AcquireRequest): Promise<AcquireResult & { revision: number }> {
    const value = request.value ?? '';
    if (request.ttl === undefined) {
      if (request.lease === undefined) throw new KeelError('INVALID_ARGUMENT', 'give a ttl or a lease');
      return this.proposeExt(extensionNames.lockAcquire, { kind, name, lease: request.lease, value }, request.requestId, request.guard);
    }
    // A fresh random lease id for this acquire; on the unlikely collision (CONFLICT) one more try with another.
    for (let attempt = 0; ; attempt++) {
      try {
        const body = { kind, name, lease: this.lessor.newLeaseId(), ttl: request.ttl, value };
        return await this.proposeExt(extensionNames.lockAcquire, body, `${request.requestId}:${attempt}`, request.guard);
      } catch (err) {
        if (!(isKeelError(err, 'CONFLICT') && attempt === 0)) throw err;
      }
    }
  }

  private waitForHold(
    kind: LockKind,
    name: string,
    acquired: AcquireResult & { revision: number },
    wait: { leftMs: number; waitMs: number },
    request: AcquireRequest,
  ): Promise<HolderRecord> {
    const { leftMs, waitMs } = wait;
    const { key, lease } = acquired;
    return new Promise<HolderRecord>((resolve, reject) => {
      const cleanups: (() => void)[] = [];
      let isDone = false;
      const finish = (settle: () => void): void => {
        if (isDone) return;
        isDone = true;
        for (const cleanup of cleanups.splice(0)) cleanup();
        settle();
      };
      const withdraw = (why: KeelError): void =>
        finish(() => {
          this.withdraw(kind, name, key, request.requestId).then(
            () => reject(why),
            (err: unknown) => reject(new KeelError(why.code, `${why.message}; withdrawing the waiter failed: ${(err as Error).message}`, { key })),
          );
        });
      const waiting: Wait = {
        kind,
        name,
        revision: acquired.revision,
        resolve: (holder) => finish(() => resolve(holder)),
        reject: (err) => finish(() => reject(err)),
      };
      this.addWait(key, waiting);
      cleanups.push(() => this.removeWait(key, waiting));
      const timeout = new KeelError('WAIT_TIMEOUT', `${kind}/${name} not acquired within waitMs ${waitMs}`, { key });
      const timer = setTimeout(() => withdraw(timeout), leftMs);
      cleanups.push(() => clearTimeout(timer));
      if (request.signal !== undefined) {
        const onAbort = (): void => withdraw(new KeelError('UNAVAILABLE', 'the client went away', { key }));
        if (request.signal.aborted) return onAbort();
        request.signal.addEventListener('abort', onAbort, { once: true });
        cleanups.push(() => request.signal?.removeEventListener('abort', onAbort));
      }
      if (request.ttl !== undefined) cleanups.push(this.keepAliveWhileWaiting(lease, request.ttl));
      this.recheck(key, waiting);
    });
  }

  /** Settles a wait from what this node applied (events it missed: before it subscribed, or a snapshot restore). */
  private recheck(key: string, wait: Wait): void {
    this.checkApplied(wait.kind, wait.name, { key, revision: wait.revision }).then(
      (outcome) => {
        if (outcome === 'gone') wait.reject(new KeelError('LEASE_NOT_FOUND', `the waiter ${key} went away before it got ${wait.kind}/${wait.name}`));
        else if (outcome !== 'waiting') wait.resolve(outcome);
      },
      (err: unknown) => wait.reject(err),
    );
  }

  /**
   * After the store was restored from a snapshot: no apply events were emitted for what the snapshot changed, so
   * every waiting request looks at the restored state, and the leader (if this node becomes one) rescans.
   */
  reconcile(): void {
    for (const [key, waits] of this.waits) for (const wait of [...waits]) this.recheck(key, wait);
    this.onLeaderChange();
  }

  /** After subscribing: what this node already applied about the waiter (its events before the subscription). */
  private async checkApplied(
    kind: LockKind,
    name: string,
    acquired: { key: string; revision: number },
  ): Promise<HolderRecord | 'gone' | 'waiting'> {
    const store = this.requireRuntime().store;
    const holder = parseHolder((await store.get(lockKeys.holder(kind, name))).kv);
    if (holder !== null && holder.key === acquired.key) return holder;
    const waiter = await store.get(acquired.key);
    // Absent before this node applied the acquire is "not yet"; absent after it is "gone".
    return waiter.kv === null && waiter.revision >= acquired.revision ? 'gone' : 'waiting';
  }

  /** Withdraws a waiter (or gives the lock up, if it was granted meanwhile). Unknown key: already gone. */
  private async withdraw(kind: LockKind, name: string, key: string, requestId: string): Promise<void> {
    try {
      await this.proposeExt(extensionNames.lockRelease, { kind, name, key, cancel: true }, `${requestId}:withdraw`);
    } catch (err) {
      if (!isKeelError(err, 'NOT_FOUND')) throw err;
    }
  }

  /** Keeps an acquire's own lease alive while its request waits; returns the stop function. */
  private keepAliveWhileWaiting(lease: number, ttl: number): () => void {
    const everyMs = Math.max(200, Math.floor((ttl * 1000) / 3));
    const timer = setInterval(() => {
      this.lessor.keepalive(lease).catch((err: unknown) => this.logger.warn({ err, lease }, 'keepalive of a waiting acquire failed'));
    }, everyMs);
    return () => clearInterval(timer);
  }

  private addWait(key: string, wait: Wait): void {
    const set = this.waits.get(key);
    if (set === undefined) this.waits.set(key, new Set([wait]));
    else set.add(wait);
  }

  private removeWait(key: string, wait: Wait): void {
    const set = this.waits.get(key);
    set?.delete(wait);
    if (set?.size === 0) this.waits.delete(key);
  }

  private settleWaits(key: string | null, settle: (wait: Wait) => void): void {
    if (key === null) return;
    const set = this.waits.get(key);
    if (set === undefined) return;
    for (const wait of [...set]) settle(wait);
  }

  // ---- internals: promotion (leader) --------------------------------------------------------------------------

  private touch(kind: LockKind, name: string): void {
    this.pending.add(`${kind}/${name}`);
    this.scheduleProcess();
  }

  private onLeaderChange(): void {
    const runtime = this.runtime;
    if (runtime === null || !runtime.raft.isLeader()) return;
    // A new leader looks at every lock once: a promotion the old leader did not finish is finished here.
    this.scanAll().catch((err: unknown) => this.logger.warn({ err }, 'scanning the locks after becoming leader failed'));
  }

  private async scanAll(): Promise<void> {
    const store = this.requireRuntime().store;
    for (const kind of ['locks', 'elections'] as const) {
      const { kvs } = await store.range({ key: `${reservedPrefix}${kind}/`, prefix: true, keysOnly: true });
      for (const kv of kvs) {
        const name = kv.key.slice(`${reservedPrefix}${kind}/`.length).split('/')[0];
        if (name !== undefined && name !== '') this.pending.add(`${kind}/${name}`);
      }
    }
    this.scheduleProcess();
  }

  private scheduleProcess(): void {
    if (this.processScheduled || this.pending.size === 0) return;
    this.processScheduled = true;
    setImmediate(() => {
      this.processScheduled = false;
      this.processPending();
    });
  }

  private processPending(): void {
    const runtime = this.runtime;
    if (runtime === null || this.closed || !runtime.raft.isLeader()) {
      this.pending.clear();
      return;
    }
    for (const id of [...this.pending]) {
      if (this.promoting.has(id)) continue;
      this.pending.delete(id);
      const [kind, name] = id.split('/') as [LockKind, string];
      this.promote(kind, name).catch((err: unknown) => {
        this.logger.warn({ err, lock: id }, 'promotion failed; will retry');
        this.pending.add(id);
      });
    }
  }

  /** Leader: grants a free lock to its first waiter if that waiter's lease is alive on this node's clock. */
  private async promote(kind: LockKind, name: string): Promise<void> {
    const store = this.requireRuntime().store;
    const holder = parseHolder((await store.get(lockKeys.holder(kind, name))).kv);
    if (holder !== null && holder.key !== null) return;
    const first = (await store.range({ key: lockKeys.waitersPrefix(kind, name), prefix: true, limit: 1 })).kvs[0];
    if (first === undefined) return;
    const waiter = parseWaiter(first);
    const remainingMs = this.lessor.status(waiter.lease)?.remainingMs ?? 0;
    const id = `${kind}/${name}`;
    if (remainingMs <= 0) {
      // Expired on the leader's clock: the lessor revokes it (which removes the waiter and touches the lock).
      this.pending.add(id);
      return;
    }
    this.promoting.add(id);
    try {
      await this.proposeExt(extensionNames.lockGrant, { kind, name, key: first.key }, '');
    } finally {
      this.promoting.delete(id);
    }
  }
}
