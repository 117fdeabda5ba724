// Leases with automatic keepalive (shared/API.md "Leases"). A Lease sends a keepalive every ttl/3 and reports its
// loss exactly once: through its AbortSignal (`lease.signal`), the `lost` event and the `lost` promise.
//
// A lease is lost when a keepalive answers LEASE_NOT_FOUND (expired or revoked), or when no keepalive succeeded
// for so long that the server may have expired it. The server expires a lease no earlier than `ttl` after the
// last keepalive it applied, and that keepalive was sent after the client's clock read `sentAtMs`; so the lease
// is certainly held until sentAtMs + ttl. The client gives it up a safety margin before that, so a lock holder is
// told to stop before anyone else can be granted the lock.
import { EventEmitter } from 'node:events';
import type { HttpClient } from '../client.js';
import { KeelError, isKeelError } from '../util/errors.js';
import { delay } from './delay.js';
import type { LeaseGrant, LeaseTimeToLive } from './types.js';

export interface LeaseEvents {
  /** The lease is gone (or may be): stop relying on it. Emitted once. */
  lost: [error: KeelError];
  /** A keepalive succeeded; the lease is held until at least `validUntilMs` (Date.now() clock). */
  keepalive: [validUntilMs: number];
}

/** Retry a failed keepalive this soon (bounded by the time left). */
const retryDelayMs = 250;

/** How long before the latest possible expiry the client declares the lease lost. */
export function safetyMarginMs(ttl: number): number {
  return Math.min(1_000, Math.max(50, ttl * 100));
}

export class Lease extends EventEmitter<LeaseEvents> {
  readonly id: number;
  /** The granted TTL in seconds. */
  ttl: number;
  /** Aborted (reason: a LEASE_NOT_FOUND KeelError) when the lease is lost; not by close(). */
  readonly signal: AbortSignal;
  /** Resolves with the loss error when the lease is lost; never resolves if it is closed first. */
  readonly lost: Promise<KeelError>;
  private readonly lostController = new AbortController();
  private readonly stopController = new AbortController();
  private validUntilMs: number;
  private expiryTimer: NodeJS.Timeout | null = null;
  private loop: Promise<void> | null = null;
  private resolveLost: (error: KeelError) => void = () => {};

  constructor(
    private readonly http: HttpClient,
    grant: LeaseGrant,
    /** Date.now() when the grant (or the keepalive that gave us the lease) was sent. */
    sentAtMs: number,
    options: { readonly keepalive?: boolean } = {},
  ) {
    super();
    this.id = grant.id;
    this.ttl = grant.ttl;
    this.signal = this.lostController.signal;
    this.lost = new Promise((resolve) => {
      this.resolveLost = resolve;
    });
    this.validUntilMs = sentAtMs + grant.ttl * 1000;
    // The `lost` promise may have no listener: a rejection would be unhandled, so it only ever resolves.
    if (options.keepalive !== false) {
      this.armExpiry();
      this.loop = this.keepaliveLoop();
    }
  }

  /** True until the lease is lost or closed. */
  get isActive(): boolean {
    return !this.signal.aborted && !this.stopController.signal.aborted;
  }

  /** Sends one keepalive now (the loop does this by itself). */
  async keepAliveOnce(signal?: AbortSignal): Promise<void> {
    const sentAtMs = Date.now();
    const timeLeftMs = Math.max(0, this.validUntilMs - safetyMarginMs(this.ttl) - sentAtMs);
    const response = await this.http.call<LeaseGrant>('POST', `/v1/leases/${this.id}/keepalive`, undefined, {
      signal: signal ?? this.stopController.signal,
      retryMs: timeLeftMs,
      timeoutMs: Math.max(500, Math.min(timeLeftMs, 5_000)),
    });
    this.ttl = response.body.ttl;
    this.validUntilMs = Math.max(this.validUntilMs, sentAtMs + response.body.ttl * 1000);
    if (!this.isActive) return;
    this.armExpiry();
    this.emit('keepalive', this.validUntilMs);
  }

  /** Stops the keepalives; the lease then expires on the server after its TTL (revoke() ends it now). */
  async close(): Promise<void> {
    this.stopController.abort();
    if (this.expiryTimer !== null) clearTimeout(this.expiryTimer);
    await this.loop;
  }

  /** Stops the keepalives and revokes the lease, deleting its keys. A lease already gone is not an error. */
  async revoke(): Promise<void> {
    await this.close();
    try {
      await this.http.call('DELETE', `/v1/leases/${this.id}`);
    } catch (err) {
      if (!isKeelError(err, 'LEASE_NOT_FOUND')) throw err;
    }
  }

  /**
   * Gives up what this lease holds (a lock, a leadership) with `release`, then revokes the lease. After a loss there
   * is nothing to give up: only the lease goes. The lease may also run out between the check and the call; the
   * holding is then not ours any more, and NOT_FOUND, CONFLICT or LEASE_NOT_FOUND is the outcome wanted anyway.
   */
  async releaseAndRevoke(release: () => Promise<void>): Promise<void> {
    const wasLost = this.signal.aborted;
    await this.close();
    try {
      if (!wasLost) await release();
    } catch (err) {
      if (!(isKeelError(err, 'NOT_FOUND') || isKeelError(err, 'CONFLICT') || isKeelError(err, 'LEASE_NOT_FOUND'))) throw err;
    } finally {
      await this.revoke();
    }
  }

  private async keepaliveLoop(): Promise<void> {
    let waitMs = (this.ttl * 1000) / 3;
    const stop = this.stopController.signal;
    while (this.isActive) {
      await delay(waitMs, stop);
      if (!this.isActive) return;
      try {
        await this.keepAliveOnce();
        waitMs = (this.ttl * 1000) / 3;
      } catch (err) {
        if (!this.isActive) return;
        if (isKeelError(err, 'LEASE_NOT_FOUND')) {
          this.lose(err);
          return;
        }
        // Unreachable cluster or no leader: retry soon; the expiry timer declares the loss if it lasts.
        waitMs = Math.min(retryDelayMs, (this.ttl * 1000) / 3);
      }
    }
  }

  private armExpiry(): void {
    if (this.expiryTimer !== null) clearTimeout(this.expiryTimer);
    const inMs = this.validUntilMs - safetyMarginMs(this.ttl) - Date.now();
    this.expiryTimer = setTimeout(() => {
      this.lose(new KeelError('LEASE_NOT_FOUND', `lease ${this.id} could not be renewed before its TTL ran out`, { id: this.id, local: true }));
    }, Math.max(0, inMs));
  }

  private lose(error: KeelError): void {
    if (this.signal.aborted) return;
    if (this.expiryTimer !== null) clearTimeout(this.expiryTimer);
    this.stopController.abort();
    this.lostController.abort(error);
    this.resolveLost(error);
    this.emit('lost', error);
  }
}

/** The lease routes: grant (with keepalive), keep an existing lease alive, revoke, time-to-live, list. */
export class LeasesApi {
  constructor(private readonly http: HttpClient) {}

  /** Grants a lease of `ttl` seconds and keeps it alive (unless `keepalive: false`) until close() or revoke(). */
  async grant(ttl: number, options: { readonly id?: number; readonly keepalive?: boolean } = {}): Promise<Lease> {
    const sentAtMs = Date.now();
    const response = await this.http.call<LeaseGrant>('POST', '/v1/leases', { ttl, ...(options.id !== undefined && { id: options.id }) });
    return new Lease(this.http, response.body, sentAtMs, options);
  }

  /** Starts keeping an existing lease alive (one keepalive now, which also learns its TTL). */
  async keepAlive(id: number): Promise<Lease> {
    const sentAtMs = Date.now();
    const response = await this.http.call<LeaseGrant>('POST', `/v1/leases/${id}/keepalive`);
    return new Lease(this.http, response.body, sentAtMs);
  }

  async revoke(id: number): Promise<void> {
    await this.http.call('DELETE', `/v1/leases/${id}`);
  }

  async timeToLive(id: number): Promise<LeaseTimeToLive> {
    return (await this.http.call<LeaseTimeToLive>('GET', `/v1/leases/${id}`)).body;
  }

  async list(): Promise<readonly LeaseGrant[]> {
    return (await this.http.call<{ leases: LeaseGrant[] }>('GET', '/v1/leases')).body.leases;
  }
}
