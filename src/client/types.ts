// The wire types of the HTTP contract (shared/API.md), as the TypeScript client sees them. They are declared here,
// not imported from the server's store, so the client package depends on the contract only.

export type Consistency = 'linearizable' | 'serializable';

export interface KV {
  readonly key: string;
  readonly value: string;
  readonly createRevision: number;
  readonly modRevision: number;
  /** 1 on create, +1 per put; reset by a delete. */
  readonly version: number;
  /** 0 = no lease. */
  readonly lease: number;
}

// ---- key-value

export interface GetOptions {
  /** Read the key as it was at this past revision. */
  readonly revision?: number;
  readonly consistency?: Consistency;
}

export interface RangeOptions extends GetOptions {
  readonly limit?: number;
  readonly keysOnly?: boolean;
  readonly countOnly?: boolean;
  readonly sort?: 'key' | 'createRevision' | 'modRevision';
  readonly order?: 'asc' | 'desc';
}

export interface RangeResult {
  readonly kvs: readonly KV[];
  /** Keys in the range, regardless of `limit`. */
  readonly count: number;
  /** True when `limit` cut the answer short. */
  readonly more: boolean;
  /** The store revision the answer reflects. */
  readonly revision: number;
}

export interface FenceToken {
  readonly lock: string;
  readonly token: number;
}

export interface PutOptions {
  readonly lease?: number;
  readonly prevKv?: boolean;
  /** 0 = only if the key does not exist. */
  readonly ifModRevision?: number;
  readonly ifVersion?: number;
  /** Reject the write (FENCE_REJECTED) unless this token belongs to the lock's current holder. */
  readonly fence?: FenceToken;
}

export interface PutResult {
  readonly revision: number;
  readonly prevKv?: KV;
}

export interface DeleteOptions {
  readonly prefix?: boolean;
  readonly prevKv?: boolean;
  readonly ifModRevision?: number;
}

export interface DeleteResult {
  readonly revision: number;
  readonly deleted: number;
  readonly prevKvs?: readonly KV[];
}

export type Compare =
  | { readonly key: string; readonly target: 'value'; readonly op: CompareOp; readonly value: string }
  | {
      readonly key: string;
      readonly target: 'version' | 'createRevision' | 'modRevision' | 'lease';
      readonly op: CompareOp;
      readonly value: number;
    };

export type CompareOp = '==' | '!=' | '<' | '>';

export type TxnOp =
  | { readonly put: { readonly key: string; readonly value: string; readonly lease?: number } }
  | { readonly delete: { readonly key: string; readonly prefix?: boolean } }
  | { readonly get: { readonly key: string; readonly prefix?: boolean; readonly limit?: number } };

export interface TxnRequest {
  readonly compare?: readonly Compare[];
  readonly success?: readonly TxnOp[];
  readonly failure?: readonly TxnOp[];
}

export type TxnOpResult =
  | { readonly put: { readonly revision: number } }
  | { readonly delete: { readonly deleted: number } }
  | { readonly get: { readonly kvs: readonly KV[]; readonly count: number; readonly more: boolean } };

export interface TxnResult {
  readonly succeeded: boolean;
  readonly revision: number;
  readonly results: readonly TxnOpResult[];
}

export interface CompactResult {
  readonly revision: number;
  readonly compactRevision: number;
}

// ---- watch

export interface WatchEvent {
  readonly type: 'put' | 'delete';
  readonly kv: KV;
  readonly prevKv?: KV;
  readonly revision: number;
}

/** One line of a watch stream, as the server writes it. */
export type WatchLine =
  | WatchEvent
  | { readonly type: 'created'; readonly revision: number }
  | { readonly type: 'progress'; readonly revision: number }
  | { readonly type: 'compacted'; readonly compactRevision: number }
  | { readonly type: 'error'; readonly error: { readonly code: string; readonly message: string; readonly resumeRevision?: number } };

// ---- leases

export interface LeaseGrant {
  readonly id: number;
  readonly ttl: number;
}

export interface LeaseTimeToLive {
  readonly id: number;
  /** Seconds left. */
  readonly ttl: number;
  readonly grantedTtl: number;
  readonly keys: readonly string[];
}

// ---- services

export interface HealthCheck {
  readonly http?: string;
  readonly tcp?: string;
  readonly intervalMs?: number;
  readonly timeoutMs?: number;
  readonly deregisterAfterMs?: number;
}

/** What a service instance registers. */
export interface InstanceSpec {
  readonly id: string;
  readonly address: string;
  readonly port: number;
  readonly tags?: readonly string[];
  readonly meta?: Readonly<Record<string, string>>;
  readonly weight?: number;
  readonly check?: HealthCheck;
}

export interface Instance {
  readonly id: string;
  readonly service: string;
  readonly address: string;
  readonly port: number;
  readonly tags: readonly string[];
  readonly meta: Readonly<Record<string, string>>;
  readonly weight: number;
  readonly status: 'passing' | 'critical';
  readonly lease: number;
  readonly modRevision: number;
}

export interface RegisterResult {
  readonly service: string;
  readonly id: string;
  readonly lease: number;
  readonly revision: number;
}

export interface ServiceSummary {
  readonly name: string;
  readonly instances: number;
  readonly healthy: number;
}

export interface ServiceQuery {
  readonly healthy?: boolean;
  readonly tag?: string;
}

export interface ServiceInstances {
  readonly service: string;
  readonly instances: readonly Instance[];
  /** The revision of the answer; pass it back as `index` for a blocking query. */
  readonly index: number;
}

// ---- locks and elections

export interface LockAcquired {
  readonly name: string;
  readonly key: string;
  readonly fence: number;
  readonly lease: number;
}

export interface LockState {
  readonly name: string;
  readonly holder: { readonly key: string; readonly fence: number; readonly lease: number } | null;
  readonly waiters: number;
}

export interface Elected {
  readonly leaderKey: string;
  readonly fence: number;
  readonly lease: number;
}

export interface ElectionLeader {
  readonly value: string;
  readonly fence: number;
  readonly key: string;
}
