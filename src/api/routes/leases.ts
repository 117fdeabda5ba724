// Lease routes (shared/API.md "Leases"): grant, keepalive, read, list and revoke. Grants and revokes are entries
// proposed through the leader; keepalives are coalesced by the lessor into one entry per ~50 ms per node and
// answered when it is applied. Reads answer the remaining ttl from this node's own deadline (seconds, rounded up),
// after a ReadIndex barrier unless `consistency=serializable`.
import type { FastifyPluginAsync } from 'fastify';
import type { ElectionService, Lessor, LockService } from '../../lease/index.js';
import type { KvStore } from '../../store/index.js';
import { KeelError, isKeelError } from '../../util/errors.js';
import { checkedLeaseKeysOf, guardOption } from '../auth-hook.js';
import {
  consistencyQuerySchema,
  grantBodySchema,
  keepaliveManyBodySchema,
  leaseParamsSchema,
  type ConsistencyQuery,
  type GrantBody,
  type KeepaliveManyBody,
  type LeaseParams,
} from '../schemas/leases.js';
import { requestIdOf } from './kv.js';

export interface LeaseBackend {
  readonly lessor: Lessor;
  readonly locks: LockService;
  readonly elections: ElectionService;
  readonly store: KvStore;
  /** Resolves once this node may serve a linearizable read (ReadIndex confirmed and applied). */
  readBarrier(): Promise<void>;
}

/** Remaining ms → the API's ttl: whole seconds, rounded up (a lease with 1 ms left still has "1"). */
export function secondsLeft(remainingMs: number): number {
  return Math.ceil(remainingMs / 1000);
}

export async function barrier(backend: LeaseBackend, consistency: string | undefined): Promise<void> {
  if (consistency !== 'serializable') await backend.readBarrier();
}

export const leaseRoutes: FastifyPluginAsync<{ backend: LeaseBackend }> = async (app, { backend }) => {
  const { lessor, store } = backend;

  app.post<{ Body: GrantBody }>('/v1/leases', { schema: { body: grantBodySchema } }, async (request, reply) => {
    const { ttl, id } = request.body;
    const granted = await lessor.grant(ttl, { ...(id !== undefined && { id }), requestId: requestIdOf(request), ...guardOption(request) });
    return reply.code(201).header('X-Keel-Revision', String(granted.revision)).send({ id: granted.id, ttl: granted.ttl });
  });

  app.post<{ Params: LeaseParams }>('/v1/leases/:id/keepalive', { schema: { params: leaseParamsSchema } }, async (request, reply) => {
    const kept = await lessor.keepalive(request.params.id);
    return reply.header('X-Keel-Revision', String(kept.revision)).send({ id: kept.id, ttl: kept.ttl });
  });

  // Many leases in one request: each id rides the same coalesced entries as single keepalives.
  app.post<{ Body: KeepaliveManyBody }>('/v1/leases/keepalive', { schema: { body: keepaliveManyBodySchema } }, async (request, reply) => {
    const outcomes = await Promise.allSettled([...new Set(request.body.ids)].map((id) => lessor.keepalive(id)));
    const leases: { id: number; ttl: number }[] = [];
    const notFound: number[] = [];
    let revision = 0;
    for (const outcome of outcomes) {
      if (outcome.status === 'fulfilled') {
        leases.push({ id: outcome.value.id, ttl: outcome.value.ttl });
        revision = Math.max(revision, outcome.value.revision);
      } else if (isKeelError(outcome.reason, 'LEASE_NOT_FOUND')) notFound.push(outcome.reason.details['lease'] as number);
      else throw outcome.reason; // 503/504: the same for every id of the request
    }
    return reply.header('X-Keel-Revision', String(revision === 0 ? store.revision() : revision)).send({ leases, notFound });
  });

  app.get<{ Params: LeaseParams; Querystring: ConsistencyQuery }>(
    '/v1/leases/:id',
    { schema: { params: leaseParamsSchema, querystring: consistencyQuerySchema } },
    async (request, reply) => {
      const id = request.params.id;
      await barrier(backend, request.query.consistency);
      const status = lessor.status(id);
      const { keys, revision } = await store.leaseKeys(id);
      if (status === null) throw new KeelError('LEASE_NOT_FOUND', `lease ${id} not found`, { lease: id, revision });
      return reply
        .header('X-Keel-Revision', String(revision))
        .send({ id, ttl: secondsLeft(status.remainingMs), grantedTtl: status.grantedTtl, keys });
    },
  );

  app.get<{ Querystring: ConsistencyQuery }>('/v1/leases', { schema: { querystring: consistencyQuerySchema } }, async (request, reply) => {
    await barrier(backend, request.query.consistency);
    const revision = store.revision();
    const leases = lessor.list().map((lease) => ({ id: lease.id, ttl: secondsLeft(lease.remainingMs), grantedTtl: lease.grantedTtl }));
    return reply.header('X-Keel-Revision', String(revision)).send({ leases });
  });

  app.delete<{ Params: LeaseParams }>('/v1/leases/:id', { schema: { params: leaseParamsSchema } }, async (request, reply) => {
    const checkedKeys = checkedLeaseKeysOf(request);
    const revoked = await lessor.revoke(request.params.id, { requestId: requestIdOf(request), ...(checkedKeys !== null && { checkedKeys }), ...guardOption(request) });
    return reply.header('X-Keel-Revision', String(revoked.revision)).send(revoked);
  });
};
