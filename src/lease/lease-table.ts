// The node-local deadline table of the leases: one entry per lease record in the store (the set of ids mirrors
// the records exactly: it is loaded from the store and changed only when a grant or revoke entry commits), with a
// deadline on this node's monotonic clock. Deadlines are not replicated and never decide anything at apply time:
// only the leader reads them, to decide when to propose a revoke.
import { assert } from '../util/assert.js';
import type { Clock } from '../util/clock.js';

export interface LeaseStatus {
  readonly id: number;
  /** The ttl the lease was granted with, seconds. */
  readonly grantedTtl: number;
  /** Time left before this node considers it expired, ms (0 once past the deadline). */
  readonly remainingMs: number;
}

interface Deadline {
  readonly ttl: number;
  /** clock.nowMs() at which the lease expires on this node. */
  deadlineMs: number;
}

export class LeaseTable {
  private readonly leases = new Map<number, Deadline>();

  constructor(private readonly clock: Clock) {}

  /** Replaces the table by the records of the store; every deadline is now + ttl (a restart is never early). */
  load(records: readonly { id: number; ttl: number }[]): void {
    this.leases.clear();
    const now = this.clock.nowMs();
    for (const { id, ttl } of records) this.leases.set(id, { ttl, deadlineMs: now + ttl * 1000 });
  }

  /** A grant or keepalive entry was applied on this node now: the deadline becomes now + ttl. */
  refresh(id: number, ttl: number): void {
    assert(ttl >= 1, `lease ${id} refreshed with ttl ${ttl}`);
    this.leases.set(id, { ttl, deadlineMs: this.clock.nowMs() + ttl * 1000 });
  }

  remove(id: number): void {
    this.leases.delete(id);
  }

  has(id: number): boolean {
    return this.leases.has(id);
  }

  size(): number {
    return this.leases.size;
  }

  status(id: number): LeaseStatus | null {
    const lease = this.leases.get(id);
    if (lease === undefined) return null;
    return { id, grantedTtl: lease.ttl, remainingMs: Math.max(0, lease.deadlineMs - this.clock.nowMs()) };
  }

  list(): LeaseStatus[] {
    const now = this.clock.nowMs();
    return [...this.leases.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([id, lease]) => ({ id, grantedTtl: lease.ttl, remainingMs: Math.max(0, lease.deadlineMs - now) }));
  }

  /** Ids whose deadline has passed on this node, at most `max`, earliest deadline first. */
  expired(max: number): number[] {
    const now = this.clock.nowMs();
    const due: [number, number][] = [];
    for (const [id, lease] of this.leases) if (lease.deadlineMs <= now) due.push([id, lease.deadlineMs]);
    return due
      .sort((a, b) => a[1] - b[1])
      .slice(0, max)
      .map(([id]) => id);
  }

  /** Remaining ms of a lease on this node (0 when past), or null when unknown. */
  remainingMs(id: number): number | null {
    const lease = this.leases.get(id);
    return lease === undefined ? null : Math.max(0, lease.deadlineMs - this.clock.nowMs());
  }
}
