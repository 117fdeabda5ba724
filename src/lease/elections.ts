// Elections: the lock machinery of locks.ts under `_keel/elections/<name>/`, with a value. A campaign is an
// acquire that carries the candidate's value; the holder is the leader, its fence the leadership's term-like
// token (strictly increasing per election, forever). The leader may change its value (proclaim) and resign.
//
// Observing an election = watching its prefix: GET /v1/watch/_keel/elections/<name>/?prefix=true. The record
// `_keel/elections/<name>/holder` holds {key, fence, lease, value} while there is a leader and {key: null, fence}
// while there is none; `_keel/elections/<name>/waiters/<seq>` are the candidates in campaign order.
import type { CommandGuard } from '../store/index.js';
import type { AcquireRequest, LockService } from './locks.js';

export interface Leadership {
  readonly leaderKey: string;
  readonly fence: number;
  readonly lease: number;
}

export interface ElectionLeader {
  readonly key: string;
  readonly value: string;
  readonly fence: number;
  readonly lease: number;
}

export class ElectionService {
  constructor(private readonly locks: LockService) {}

  /** Resolves once this candidate is the leader (408 WAIT_TIMEOUT after waitMs; the candidacy is withdrawn). */
  async campaign(name: string, request: AcquireRequest & { value: string }): Promise<Leadership> {
    const held = await this.locks.acquire('elections', name, request);
    return { leaderKey: held.key, fence: held.fence, lease: held.lease };
  }

  /** The leader steps down (404 unknown key, 409 a candidate that is not the leader). */
  async resign(name: string, leaderKey: string, requestId: string, guard?: CommandGuard): Promise<{ revision: number }> {
    return this.locks.release('elections', name, leaderKey, requestId, guard);
  }

  /** The leader changes its value (404 unknown key, 409 not the leader). */
  async proclaim(name: string, leaderKey: string, value: string, requestId: string, guard?: CommandGuard): Promise<{ revision: number }> {
    return this.locks.proclaim(name, leaderKey, value, requestId, guard);
  }

  /** The current leader as this node applied it (the API puts a ReadIndex barrier in front). */
  async leader(name: string): Promise<{ leader: ElectionLeader | null; revision: number }> {
    const state = await this.locks.state('elections', name);
    const holder = state.holder;
    if (holder === null || holder.key === null) return { leader: null, revision: state.revision };
    return { leader: { key: holder.key, value: holder.value, fence: holder.fence, lease: holder.lease }, revision: state.revision };
  }
}
