// Leader elections (shared/API.md "Locks and elections"): campaign until elected, then hold leadership through a
// lease of the client's own (as locks.ts does) until resign() or the lease's loss; proclaim a new value; read or
// observe the leader. Observing reads the election's holder record, then watches the election's documented prefix
// `_keel/elections/<name>/` from the next revision, so no change of leader between the read and the watch is lost.
import type { HttpClient } from '../client.js';
import { isKeelError } from '../util/errors.js';
import type { Lease, LeasesApi } from './lease.js';
import { acquireWithLease } from './locks.js';
import { keyPath, segment } from './paths.js';
import type { Elected, ElectionLeader, KV } from './types.js';
import { Watch, httpWatchSource, type WatchOptions } from './watch.js';

export interface CampaignOptions {
  /** Seconds leadership survives the leader's silence (the lease TTL, default 10). */
  readonly ttl?: number;
  /** How long to wait to be elected (the server's default applies without it: 30 s); then WAIT_TIMEOUT. */
  readonly waitMs?: number;
  readonly signal?: AbortSignal;
}

/** The documented prefix of an election's keys; its holder record names the leader. */
export function electionPrefix(name: string): string {
  return `_keel/elections/${name}/`;
}

/** The leader as the election's holder record names it, or null while there is none. */
export function leaderOfRecord(kv: KV): ElectionLeader | null {
  let record: { key?: unknown; fence?: unknown; value?: unknown };
  try {
    record = JSON.parse(kv.value) as typeof record;
  } catch {
    return null; // Not a record this client understands: treated as no leader rather than a crash.
  }
  if (typeof record.key !== 'string' || typeof record.fence !== 'number') return null;
  return { key: record.key, fence: record.fence, value: typeof record.value === 'string' ? record.value : '' };
}

function sameLeader(a: ElectionLeader | null, b: ElectionLeader | null): boolean {
  return a === b || (a !== null && b !== null && a.key === b.key && a.fence === b.fence && a.value === b.value);
}

/** Held leadership. The signal aborts when it is lost; resign() hands it to the next candidate. */
export class Leadership {
  readonly leaderKey: string;
  readonly fence: number;

  constructor(
    private readonly elections: ElectionsApi,
    readonly name: string,
    public value: string,
    elected: Elected,
    readonly lease: Lease,
  ) {
    this.leaderKey = elected.leaderKey;
    this.fence = elected.fence;
  }

  /** Aborted (reason: a LEASE_NOT_FOUND KeelError) when leadership is lost. */
  get signal(): AbortSignal {
    return this.lease.signal;
  }

  get isLeader(): boolean {
    return this.lease.isActive;
  }

  async proclaim(value: string): Promise<void> {
    await this.elections.proclaim(this.name, this.leaderKey, value);
    this.value = value;
  }

  /** Resigns (if still leader) and revokes the lease. */
  async resign(): Promise<void> {
    await this.lease.releaseAndRevoke(() => this.elections.resign(this.name, this.leaderKey));
  }
}

export class ElectionsApi {
  constructor(
    private readonly http: HttpClient,
    private readonly leases: LeasesApi,
  ) {}

  /** Waits until elected (candidates are served in arrival order); WAIT_TIMEOUT after `waitMs`. */
  async campaign(name: string, value: string, options: CampaignOptions = {}): Promise<Leadership> {
    const { lease, answer } = await acquireWithLease(this.http, this.leases, `/v1/elections/${segment(name)}/campaign`, { value }, options);
    return new Leadership(this, name, value, answer as unknown as Elected, lease);
  }

  async resign(name: string, leaderKey: string): Promise<void> {
    await this.http.call('POST', `/v1/elections/${segment(name)}/resign`, { leaderKey });
  }

  async proclaim(name: string, leaderKey: string, value: string): Promise<void> {
    await this.http.call('POST', `/v1/elections/${segment(name)}/proclaim`, { leaderKey, value });
  }

  async leader(name: string): Promise<ElectionLeader | null> {
    return (await this.http.call<{ leader: ElectionLeader | null }>('GET', `/v1/elections/${segment(name)}`)).body.leader;
  }

  /**
   * The leader now, then every change of leader (or of its value), null while there is none. Ends when the
   * signal aborts; a compacted history (a change missed for good) ends it with COMPACTED.
   */
  async *observe(name: string, options: Pick<WatchOptions, 'signal' | 'progressMs' | 'reconnectMs'> = {}): AsyncGenerator<ElectionLeader | null> {
    const prefix = electionPrefix(name);
    const holderKey = `${prefix}holder`;
    let current: ElectionLeader | null;
    let revision: number | null;
    try {
      const response = await this.http.call<{ kv: KV }>('GET', keyPath('/v1/kv', holderKey), undefined, options.signal === undefined ? {} : { signal: options.signal });
      current = leaderOfRecord(response.body.kv);
      revision = response.revision ?? response.body.kv.modRevision;
    } catch (err) {
      if (!isKeelError(err, 'KEY_NOT_FOUND')) throw err;
      current = null;
      revision = typeof err.details.revision === 'number' ? err.details.revision : null;
    }
    yield current;
    const source = httpWatchSource(this.http, prefix, { prefix: true, ...(options.progressMs !== undefined && { progressMs: options.progressMs }) });
    // Without the read's revision (a server that did not say) the watch starts now: a change in between is lost.
    const watch = new Watch(source, { ...options, ...(revision !== null && { fromRevision: revision + 1 }) });
    for await (const event of watch) {
      if (event.kv.key !== holderKey) continue;
      const next = event.type === 'delete' ? null : leaderOfRecord(event.kv);
      if (sameLeader(next, current)) continue;
      current = next;
      yield next;
    }
  }
}
