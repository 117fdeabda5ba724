// The service registry (shared/API.md "Service registry"): register/deregister/list/get, blocking queries, and
// a registration handle that keeps an instance alive until close().
//
// A handle registers with a `ttl`, so the server gives the instance a lease, and keeps that lease alive (Lease,
// every ttl/3). If the lease is lost anyway (a partition longer than the TTL, the instance expired), the handle
// registers the instance again, like a Consul agent's anti-entropy: an instance that is alive ends up listed.
import { EventEmitter } from 'node:events';
import type { HttpClient } from '../client.js';
import { isKeelError, type KeelError } from '../util/errors.js';
import { delay } from './delay.js';
import { Lease } from './lease.js';
import { query, segment } from './paths.js';
import type { InstanceSpec, RegisterResult, ServiceInstances, ServiceQuery, ServiceSummary } from './types.js';

export interface RegisterOptions {
  /** Seconds without heartbeat before the instance expires (default 10). */
  readonly ttl?: number;
}

export interface BlockingQuery extends ServiceQuery {
  /** Answer only once the set changed after this revision (the `index` of a previous answer)... */
  readonly index?: number;
  /** ...or after this long unchanged (default 30 s). */
  readonly waitMs?: number;
  readonly signal?: AbortSignal;
}

export interface RegistrationEvents {
  /** The instance is registered (again): the lease that keeps it alive. */
  registered: [result: RegisterResult];
  /** Its lease was lost; the handle is registering it again. */
  lost: [error: KeelError];
  /** Registering again failed; the handle keeps trying. */
  error: [error: unknown];
}

const reregisterBackoffMaxMs = 2_000;
/** The wait of a blocking query given an `index` but no `waitMs`. */
export const blockingWaitMsDefault = 30_000;

export class ServiceRegistration extends EventEmitter<RegistrationEvents> {
  private lease: Lease | null = null;
  private readonly stopController = new AbortController();
  private loop: Promise<void> | null = null;
  private current: RegisterResult | null = null;

  constructor(
    private readonly api: ServicesApi,
    private readonly http: HttpClient,
    readonly service: string,
    readonly instance: InstanceSpec,
    readonly ttl: number,
  ) {
    super();
  }

  /** The latest registration (its lease changes when the handle had to register again). */
  get registration(): RegisterResult | null {
    return this.current;
  }

  /** Registers once; the caller gets the first failure. Later losses are repaired in the background. */
  async start(): Promise<RegisterResult> {
    const result = await this.registerOnce();
    this.loop = this.watchLoss();
    return result;
  }

  /** Stops the heartbeats and deregisters the instance. */
  async close(): Promise<void> {
    this.stopController.abort();
    await this.loop;
    await this.lease?.close();
    try {
      await this.api.deregister(this.service, this.instance.id);
    } catch (err) {
      if (!isKeelError(err, 'NOT_FOUND')) throw err;
    }
    // The server may keep an instance's lease after a deregister; it has no keys left, revoke it to be tidy.
    await this.lease?.revoke();
  }

  private async registerOnce(): Promise<RegisterResult> {
    const sentAtMs = Date.now();
    const result = await this.api.register(this.service, this.instance, { ttl: this.ttl });
    this.current = result;
    // close() may have come while the request was in flight: then no keepalives, close() deregisters.
    this.lease = new Lease(this.http, { id: result.lease, ttl: this.ttl }, sentAtMs, { keepalive: !this.stopController.signal.aborted });
    this.emit('registered', result);
    return result;
  }

  private async watchLoss(): Promise<void> {
    const stop = this.stopController.signal;
    while (!stop.aborted) {
      const lease = this.lease;
      if (lease === null) return;
      const lost = await Promise.race([lease.lost, new Promise<null>((resolve) => stop.addEventListener('abort', () => resolve(null), { once: true }))]);
      if (lost === null || stop.aborted) return;
      this.emit('lost', lost);
      let backoffMs = 100;
      while (!stop.aborted) {
        try {
          await this.registerOnce();
          break;
        } catch (err) {
          if (this.listenerCount('error') > 0) this.emit('error', err);
          await delay(backoffMs, stop);
          backoffMs = Math.min(backoffMs * 2, reregisterBackoffMaxMs);
        }
      }
    }
  }
}

export class ServicesApi {
  constructor(private readonly http: HttpClient) {}

  /** One registration (no heartbeats): with `ttl`, keep `lease` alive yourself. */
  async register(service: string, instance: InstanceSpec, options: { readonly ttl?: number; readonly lease?: number } = {}): Promise<RegisterResult> {
    const { id, ...body } = instance;
    const path = `/v1/services/${segment(service)}/instances/${segment(id)}`;
    return (await this.http.call<RegisterResult>('PUT', path, { ...body, ...options })).body;
  }

  /** Registers and keeps the instance alive until the handle's close(), which deregisters it. */
  async registerWithHeartbeat(service: string, instance: InstanceSpec, options: RegisterOptions = {}): Promise<ServiceRegistration> {
    const handle = new ServiceRegistration(this, this.http, service, instance, options.ttl ?? 10);
    await handle.start();
    return handle;
  }

  async deregister(service: string, instanceId: string): Promise<void> {
    await this.http.call('DELETE', `/v1/services/${segment(service)}/instances/${segment(instanceId)}`);
  }

  /** Refreshes an instance's TTL without knowing its lease. */
  async heartbeat(service: string, instanceId: string): Promise<void> {
    await this.http.call('POST', `/v1/services/${segment(service)}/instances/${segment(instanceId)}/heartbeat`);
  }

  async list(): Promise<readonly ServiceSummary[]> {
    return (await this.http.call<{ services: ServiceSummary[] }>('GET', '/v1/services')).body.services;
  }

  /** The instances of a service; with `index` and `waitMs`, a blocking query that answers on change. */
  async get(service: string, options: BlockingQuery = {}): Promise<ServiceInstances> {
    const waitMs = options.waitMs ?? blockingWaitMsDefault;
    const path = `/v1/services/${segment(service)}${query({
      healthy: options.healthy === true ? true : undefined,
      tag: options.tag,
      index: options.index,
      waitMs: options.index === undefined ? undefined : waitMs,
    })}`;
    // A blocking query may legitimately take waitMs: allow that plus a margin before calling the node dead.
    const timeoutMs = options.index === undefined ? undefined : waitMs + 5_000;
    const response = await this.http.call<ServiceInstances>('GET', path, undefined, {
      ...(options.signal !== undefined && { signal: options.signal }),
      ...(timeoutMs !== undefined && { timeoutMs }),
    });
    return response.body;
  }
}
