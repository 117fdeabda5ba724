// Bounds of the lease layer: every queue has a limit, every wait a timeout, every limit an error code.
export const leaseLimits = {
  /** Largest ttl a lease may be granted, in seconds (one year). */
  ttlSecondsMax: 365 * 24 * 3600,
  /** Lease ids in one lease.keepalive or lease.revoke entry. */
  idsPerEntryMax: 10_000,
  /** Keepalive requests waiting on one node for their entry; one more is answered 503 UNAVAILABLE. */
  keepaliveQueueMax: 100_000,
  /** Keepalive entries of one node in flight at once; further requests wait in the queue. */
  keepaliveEntriesInFlightMax: 4,
  /** Waiters (holder included) of one lock or election; one more acquire is answered 503 UNAVAILABLE. */
  waitersPerLockMax: 1_000,
  /** Default and largest waitMs of a lock acquire or election campaign. */
  waitMsDefault: 30_000,
  waitMsMax: 600_000,
  /** Lock or election values (the candidate's value), bytes. */
  valueBytesMax: 64 * 1024,
} as const;
