// KeelClient: the TypeScript client of the HTTP contract (shared/API.md), built on the one HttpClient (endpoint
// fail-over, typed KeelErrors by code, request ids that make retried writes apply once). The key-value calls live
// here; leases, the service registry, discovery, locks and elections are in src/client/ and reachable as
// `client.leases`, `client.services`, `client.locks`, `client.elections`, with shortcuts for the common cases
// (registerService, picker, withLock, campaign, observe).
import { HttpClient, type ClientOptions } from './client.js';
import { ServicePicker, type PickerOptions } from './client/discovery.js';
import { ElectionsApi, type CampaignOptions, type Leadership } from './client/elections.js';
import { LeasesApi } from './client/lease.js';
import { LocksApi, type LockContext, type LockOptions } from './client/locks.js';
import { keyPath, query } from './client/paths.js';
import { ServicesApi, type RegisterOptions, type ServiceRegistration } from './client/services.js';
import type {
  CompactResult,
  DeleteOptions,
  DeleteResult,
  ElectionLeader,
  GetOptions,
  InstanceSpec,
  KV,
  PutOptions,
  PutResult,
  RangeOptions,
  RangeResult,
  TxnRequest,
  TxnResult,
} from './client/types.js';
import { Watch, httpWatchSource, type WatchOptions } from './client/watch.js';
import { KeelError, isKeelError } from './util/errors.js';

export type KeelClientOptions = ClientOptions;

export class KeelClient {
  /** The underlying HTTP client (raw calls to routes this class does not wrap). */
  readonly http: HttpClient;
  readonly leases: LeasesApi;
  readonly services: ServicesApi;
  readonly locks: LocksApi;
  readonly elections: ElectionsApi;

  /** `new KeelClient(['10.0.0.1:7201', '10.0.0.2:7201'])` or with options (timeoutMs, retryMs, token). */
  constructor(options: KeelClientOptions | readonly string[]) {
    this.http = new HttpClient(isEndpointList(options) ? { endpoints: options } : options);
    this.leases = new LeasesApi(this.http);
    this.services = new ServicesApi(this.http);
    this.locks = new LocksApi(this.http, this.leases);
    this.elections = new ElectionsApi(this.http, this.leases);
  }

  // ---- key-value

  /** One key, or null when it does not exist (at `revision`, if given). */
  async get(key: string, options: GetOptions = {}): Promise<KV | null> {
    requireKey(key);
    try {
      const path = `${keyPath('/v1/kv', key)}${query({ revision: options.revision, consistency: options.consistency })}`;
      return (await this.http.call<{ kv: KV }>('GET', path)).body.kv;
    } catch (err) {
      if (isKeelError(err, 'KEY_NOT_FOUND')) return null;
      throw err;
    }
  }

  /** Every key that starts with `prefix` ('' = all keys), with the revision the answer reflects. */
  async range(prefix: string, options: RangeOptions = {}): Promise<RangeResult> {
    const path = `${keyPath('/v1/kv', prefix)}${query({
      prefix: true,
      limit: options.limit,
      keysOnly: options.keysOnly,
      countOnly: options.countOnly,
      revision: options.revision,
      consistency: options.consistency,
      sort: options.sort,
      order: options.order,
    })}`;
    const response = await this.http.call<Omit<RangeResult, 'revision'>>('GET', path);
    return { ...response.body, revision: response.revision ?? 0 };
  }

  /** Writes a key; a failed `ifModRevision`/`ifVersion` throws PRECONDITION_FAILED (details.kv = the current one). */
  async put(key: string, value: string, options: PutOptions = {}): Promise<PutResult> {
    requireKey(key);
    return (await this.http.call<PutResult>('PUT', keyPath('/v1/kv', key), { value, ...options })).body;
  }

  /** Deletes a key, or with `prefix` every key under it ('' with prefix = everything). */
  async delete(key: string, options: DeleteOptions = {}): Promise<DeleteResult> {
    if (options.prefix !== true) requireKey(key);
    // DELETE has no collection route: the empty prefix travels as /v1/kv/.
    const path = `${key === '' ? '/v1/kv/' : keyPath('/v1/kv', key)}${query({
      prefix: options.prefix === true ? true : undefined,
      prevKv: options.prevKv === true ? true : undefined,
      ifModRevision: options.ifModRevision,
    })}`;
    return (await this.http.call<DeleteResult>('DELETE', path)).body;
  }

  /** An atomic compare-and-then: `success` ops if every compare holds, else `failure` ops; one revision. */
  async txn(request: TxnRequest): Promise<TxnResult> {
    return (await this.http.call<TxnResult>('POST', '/v1/txn', request)).body;
  }

  /** Drops the history before `revision`; reads and watches below it then get COMPACTED. */
  async compact(revision: number): Promise<CompactResult> {
    return (await this.http.call<CompactResult>('POST', '/v1/compact', { revision })).body;
  }

  /**
   * Watches a key (or prefix): `for await (const event of client.watch('config/', { prefix: true }))`. Survives
   * the loss of its node (reconnects elsewhere, resumes without gap or duplicate); a compacted start revision
   * throws COMPACTED; close() or the signal ends it.
   */
  watch(key: string, options: WatchOptions = {}): Watch {
    return new Watch(httpWatchSource(this.http, key, options), options);
  }

  // ---- shortcuts

  /** Registers a service instance and keeps it alive until the handle's close(), which deregisters it. */
  registerService(service: string, instance: InstanceSpec, options: RegisterOptions = {}): Promise<ServiceRegistration> {
    return this.services.registerWithHeartbeat(service, instance, options);
  }

  /** A picker over the instances of a service, kept fresh with blocking queries (see discovery.ts). */
  async picker(service: string, options: PickerOptions = {}): Promise<ServicePicker> {
    const picker = new ServicePicker(this.services, service, options);
    await picker.start();
    return picker;
  }

  /** Runs `fn` while holding the lock `name`; see LocksApi.withLock. */
  withLock<T>(name: string, fn: (context: LockContext) => Promise<T> | T, options: LockOptions = {}): Promise<T> {
    return this.locks.withLock(name, fn, options);
  }

  campaign(name: string, value: string, options: CampaignOptions = {}): Promise<Leadership> {
    return this.elections.campaign(name, value, options);
  }

  observe(name: string, options: Pick<WatchOptions, 'signal' | 'progressMs' | 'reconnectMs'> = {}): AsyncGenerator<ElectionLeader | null> {
    return this.elections.observe(name, options);
  }

  /** Closes the connections. Leases, registrations and pickers are closed by their own close(). */
  async close(): Promise<void> {
    await this.http.close();
  }
}

/** The empty key addresses a collection route (GET /v1/kv lists everything): refuse it here, as the server would. */
function requireKey(key: string): void {
  if (key === '') throw new KeelError('INVALID_ARGUMENT', 'key must not be empty');
}

function isEndpointList(options: KeelClientOptions | readonly string[]): options is readonly string[] {
  return Array.isArray(options);
}
