// Lock routes (shared/API.md "Locks and elections"): acquire (blocking up to waitMs, FIFO), release, read.
// A lock's fence strictly increases with every new holder, forever; PUT /v1/kv with "fence": {lock, token} is
// refused with 412 FENCE_REJECTED unless the token is the current holder's (checked when the write is applied).
import type { FastifyPluginAsync, FastifyReply } from 'fastify';

import {
  acquireBodySchema,
  consistencyQuerySchema,
  nameParamsSchema,
  releaseBodySchema,
  type AcquireBody,
  type ConsistencyQuery,
  type NameParams,
  type ReleaseBody,
} from '../schemas/leases.js';
import { authGuardOf, guardOption } from '../auth-hook.js';
import { requestIdOf } from './kv.js';
import { barrier, type LeaseBackend } from './leases.js';

/** Aborted when the client goes away before its answer was sent: a blocked acquire then withdraws its waiter. */
export function clientGone(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort();
  });
  return controller.signal;
}

export const lockRoutes: FastifyPluginAsync<{ backend: LeaseBackend }> = async (app, { backend }) => {
  const { locks } = backend;

  app.post<{ Params: NameParams; Body: AcquireBody }>(
    '/v1/locks/:name/acquire',
    { schema: { params: nameParamsSchema, body: acquireBodySchema } },
    async (request, reply) => {
      const { name } = request.params;
      const { ttl, lease, waitMs } = request.body;
      const held = await locks.acquire('locks', name, {
        ...(ttl !== undefined && { ttl }),
        ...(lease !== undefined && { lease }),
        ...(waitMs !== undefined && { waitMs }),
        requestId: requestIdOf(request),
        ...guardOption(request),
        signal: clientGone(reply),
      });
      // The grant is applied on this node by now: the store's revision reflects it.
      return reply.header('X-Keel-Revision', String(backend.store.revision())).send({ name, key: held.key, fence: held.fence, lease: held.lease });
    },
  );

  app.post<{ Params: NameParams; Body: ReleaseBody }>(
    '/v1/locks/:name/release',
    { schema: { params: nameParamsSchema, body: releaseBodySchema } },
    async (request, reply) => {
      const { name } = request.params;
      const released = await locks.release('locks', name, request.body.key, requestIdOf(request), authGuardOf(request));
      return reply.header('X-Keel-Revision', String(released.revision)).send({ name, key: request.body.key, revision: released.revision });
    },
  );

  app.get<{ Params: NameParams; Querystring: ConsistencyQuery }>(
    '/v1/locks/:name',
    { schema: { params: nameParamsSchema, querystring: consistencyQuerySchema } },
    async (request, reply) => {
      const { name } = request.params;
      await barrier(backend, request.query.consistency);
      const state = await locks.state('locks', name);
      const holder = state.holder === null ? null : { key: state.holder.key, fence: state.holder.fence, lease: state.holder.lease };
      return reply.header('X-Keel-Revision', String(state.revision)).send({ name, holder, waiters: state.waiters });
    },
  );
};


