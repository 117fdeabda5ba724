// Distributed locks with fencing (shared/API.md "Locks and elections").
//
// The client grants its own lease first and keeps it alive, then acquires with `lease`: the lease then lives as
// long as the client does, also while it waits in the queue (a server-made lease with `ttl` would expire under a
// waiter that waits longer than its TTL). Losing the lease loses the lock; the handle's signal says so, a safety
// margin before the server could give the lock to the next waiter (lease.ts), so withLock can stop its function
// in time. Writes that must not outlive the lock carry `fence: {lock, token}` and are refused once it is lost.
import type { HttpClient } from '../client.js';
import { KeelError, isKeelError } from '../util/errors.js';
import { delay, linkedController } from './delay.js';
import type { Lease, LeasesApi } from './lease.js';
import { segment } from './paths.js';
import type { FenceToken, LockAcquired, LockState } from './types.js';

export interface LockOptions {
  /** Seconds the lock survives its holder's silence (the lease TTL, default 10). */
  readonly ttl?: number;
  /** How long to wait in the queue (the server's default applies without it: 30 s); then WAIT_TIMEOUT. */
  readonly waitMs?: number;
  /** Gives up waiting (or, in withLock, aborts the function) when aborted. */
  readonly signal?: AbortSignal;
}

export interface LockContext {
  readonly name: string;
  /** Strictly greater than the fence of every earlier holder of this lock. */
  readonly fence: number;
  /** The holder's key (what release takes). */
  readonly key: string;
  readonly lease: number;
  /** Aborted when the lock is lost (its lease lost) or the caller's signal aborts. */
  readonly signal: AbortSignal;
  /** `{lock, token}` for fenced writes: put(key, value, { fence: ctx.fenceToken }). */
  readonly fenceToken: FenceToken;
}

/** The server's default queue wait, for the HTTP timeout of an acquire without waitMs. */
export const serverWaitMsDefault = 30_000;

/** A held lock. release() gives it up and revokes its lease. */
export class LockHandle {
  readonly fence: number;
  readonly key: string;

  constructor(
    private readonly locks: LocksApi,
    readonly name: string,
    acquired: LockAcquired,
    readonly lease: Lease,
  ) {
    this.fence = acquired.fence;
    this.key = acquired.key;
  }

  /** Aborted (reason: a LEASE_NOT_FOUND KeelError) when the lock is lost. */
  get signal(): AbortSignal {
    return this.lease.signal;
  }

  get isHeld(): boolean {
    return this.lease.isActive;
  }

  /** Releases the lock, then revokes its lease. After a loss there is nothing to release: only the lease goes. */
  async release(): Promise<void> {
    await this.lease.releaseAndRevoke(() => this.locks.release(this.name, this.key));
  }
}

/** Acquire through a lease of our own; on any failure the lease (and with it our place in the queue) goes. */
export async function acquireWithLease(
  http: HttpClient,
  leases: LeasesApi,
  path: string,
  body: Record<string, unknown>,
  options: { readonly ttl?: number; readonly waitMs?: number; readonly signal?: AbortSignal },
): Promise<{ lease: Lease; answer: Record<string, unknown> }> {
  const lease = await leases.grant(options.ttl ?? 10);
  // The lease going away ends the wait too: an acquire for a dead lease can only fail.
  const controller = linkedController(options.signal, lease.signal);
  const deadlineMs = Date.now() + (options.waitMs ?? serverWaitMsDefault);
  try {
    for (let attempt = 0; ; attempt++) {
      // The first attempt leaves the wait to the server's default when none was given; a retry asks for what is left.
      const waitMs = attempt === 0 ? options.waitMs : Math.max(0, deadlineMs - Date.now());
      try {
        const response = await http.call<Record<string, unknown>>(
          'POST',
          path,
          { ...body, lease: lease.id, ...(waitMs !== undefined && { waitMs }) },
          { signal: controller.signal, timeoutMs: (waitMs ?? serverWaitMsDefault) + 5_000 },
        );
        if (lease.signal.aborted) throw lease.signal.reason;
        return { lease, answer: response.body };
      } catch (err) {
        // The node we waited on went away mid-wait (HttpClient fails over only within its retry window): a POST cut
        // off after it was sent is TIMEOUT (it may have been applied), one never sent UNAVAILABLE. Acquiring again
        // with the same lease is safe either way: the server gives a lease its existing place in the queue back.
        const isRetriable = isKeelError(err, 'UNAVAILABLE') || isKeelError(err, 'TIMEOUT');
        if (!isRetriable || controller.signal.aborted || Date.now() >= deadlineMs) throw err;
        await delay(100, controller.signal);
      }
    }
  } catch (err) {
    await revokeQuietly(lease);
    throw err;
  } finally {
    controller.abort();
  }
}

/** Revokes a lease we are giving up anyway; if that fails, the lease still expires after its TTL. */
export async function revokeQuietly(lease: Lease): Promise<void> {
  try {
    await lease.revoke();
  } catch {
    // Not swallowed silently by accident: an unrevoked lease expires on its own within its TTL.
  }
}

export class LocksApi {
  constructor(
    private readonly http: HttpClient,
    private readonly leases: LeasesApi,
  ) {}

  /** Waits for the lock (FIFO) and returns it held; WAIT_TIMEOUT after `waitMs`. */
  async acquire(name: string, options: LockOptions = {}): Promise<LockHandle> {
    const { lease, answer } = await acquireWithLease(this.http, this.leases, `/v1/locks/${segment(name)}/acquire`, {}, options);
    return new LockHandle(this, name, answer as unknown as LockAcquired, lease);
  }

  async release(name: string, key: string): Promise<void> {
    await this.http.call('POST', `/v1/locks/${segment(name)}/release`, { key });
  }

  async state(name: string): Promise<LockState> {
    return (await this.http.call<LockState>('GET', `/v1/locks/${segment(name)}`)).body;
  }

  /**
   * Runs `fn` while holding the lock. `fn` gets the fence and a signal that aborts if the lock is lost; the lock
   * is released when `fn` settles. If the lock was lost while `fn` ran, withLock rejects (LEASE_NOT_FOUND) even
   * if `fn` resolved: whatever it did may have overlapped with the next holder.
   */
  async withLock<T>(name: string, fn: (context: LockContext) => Promise<T> | T, options: LockOptions = {}): Promise<T> {
    const handle = await this.acquire(name, options);
    const controller = linkedController(handle.signal, options.signal);
    const context: LockContext = {
      name,
      fence: handle.fence,
      key: handle.key,
      lease: handle.lease.id,
      signal: controller.signal,
      fenceToken: { lock: name, token: handle.fence },
    };
    let outcome: { ok: true; value: T } | { ok: false; error: unknown };
    try {
      outcome = { ok: true, value: await fn(context) };
    } catch (err) {
      outcome = { ok: false, error: err };
    }
    const lost = handle.signal.aborted ? (handle.signal.reason as KeelError) : null;
    controller.abort();
    try {
      await handle.release();
    } catch (err) {
      // fn's own failure (or the loss) is the more useful error; a failed release only delays the next holder
      // until the lease expires.
      if (outcome.ok && lost === null) throw err;
    }
    if (lost !== null) throw new KeelError('LEASE_NOT_FOUND', `lock ${name} was lost while held`, { fence: handle.fence }, { cause: outcome.ok ? lost : outcome.error });
    if (!outcome.ok) throw outcome.error;
    return outcome.value;
  }
}
