// The reserved keyspace of the lease layer. Everything it stores is an ordinary MVCC key under `_keel/`, so
// the generic watch (GET /v1/watch/_keel/services/web?prefix=true, ...) sees registrations, lock holders and
// election leaders, and snapshots carry them. User writes (PUT/DELETE/txn through /v1/kv) may not touch `_keel/`:
// only the layer's own commands write there. Keys are built only through these helpers.
//
//   _keel/leases/<id>                          lease record {id, ttl}                     (id: decimal)
//   _keel/services/<service>/<instanceId>      instance record (API.md Instance, JSON)   (lease-attached with ttl)
//   _keel/locks/<name>/holder                  {key, fence, lease} | {key: null, fence}   (fence kept forever)
//   _keel/locks/<name>/waiters/<seq>           waiter {lease, value}, lease-attached      (seq: 16-digit, FIFO)
//   _keel/elections/<name>/...                 the same layout as locks, with the candidate's value
//   _keel/auth/...                             users, roles, token hashes (src/auth/extension.ts); the KV API
//                                              hides this prefix from reads and watches (src/api/auth-hook.ts)
//
// Names (<service>, <instanceId>, <name>) are 1..256 bytes of [A-Za-z0-9._:-] so a prefix never matches a
// longer sibling name by accident.

export const reservedPrefix = '_keel/';
export const namePattern = /^[A-Za-z0-9._:-]{1,256}$/;

export const extensionNames = {
  leaseGrant: 'lease.grant',
  leaseKeepalive: 'lease.keepalive',
  leaseRevoke: 'lease.revoke',
  serviceRegister: 'service.register',
  serviceDeregister: 'service.deregister',
  serviceStatus: 'service.status',
  lockAcquire: 'lock.acquire',
  lockRelease: 'lock.release',
  lockGrant: 'lock.grant',
  electionProclaim: 'election.proclaim',
} as const;

export function isReservedKey(key: string): boolean {
  return key.startsWith(reservedPrefix);
}

export const leaseKeys = {
  prefix: `${reservedPrefix}leases/`,
  lease: (id: number): string => `${reservedPrefix}leases/${id}`,
};

export const serviceKeys = {
  prefix: `${reservedPrefix}services/`,
  service: (service: string): string => `${reservedPrefix}services/${service}/`,
  instance: (service: string, instanceId: string): string => `${reservedPrefix}services/${service}/${instanceId}`,
};

export type LockKind = 'locks' | 'elections';

export const lockKeys = {
  root: (kind: LockKind, name: string): string => `${reservedPrefix}${kind}/${name}/`,
  holder: (kind: LockKind, name: string): string => `${reservedPrefix}${kind}/${name}/holder`,
  waitersPrefix: (kind: LockKind, name: string): string => `${reservedPrefix}${kind}/${name}/waiters/`,
  waiter: (kind: LockKind, name: string, seq: number): string =>
    `${reservedPrefix}${kind}/${name}/waiters/${String(seq).padStart(16, '0')}`,
};

/** Whether a user write of `key` (or, with `prefix`, of every key starting with it) would touch `_keel/`. */
export function touchesReserved(key: string, prefix: boolean): boolean {
  if (!prefix) return isReservedKey(key);
  // The prefix range [key, key+) meets [_keel/, _keel0) iff one of the two prefixes starts with the other.
  return key.startsWith(reservedPrefix) || reservedPrefix.startsWith(key);
}

/** The lock (or election) a waiter key belongs to, or null when `key` is not a waiter key. */
export function parseWaiterKey(key: string): { kind: LockKind; name: string } | null {
  const match = /^_keel\/(locks|elections)\/([A-Za-z0-9._:-]{1,256})\/waiters\/\d{16}$/.exec(key);
  if (match === null) return null;
  return { kind: match[1] as LockKind, name: match[2]! };
}
