// Election routes (shared/API.md "Locks and elections"): campaign (blocking up to waitMs), read the leader,
// resign, proclaim. Observing an election = watching its documented prefix:
// GET /v1/watch/_keel/elections/<name>/?prefix=true (the `holder` record carries {key, fence, lease, value}).
import type { FastifyPluginAsync } from 'fastify';
import {
  campaignBodySchema,
  consistencyQuerySchema,
  nameParamsSchema,
  proclaimBodySchema,
  resignBodySchema,
  type CampaignBody,
  type ConsistencyQuery,
  type NameParams,
  type ProclaimBody,
  type ResignBody,
} from '../schemas/leases.js';
import { authGuardOf, guardOption } from '../auth-hook.js';
import { requestIdOf } from './kv.js';
import { barrier, type LeaseBackend } from './leases.js';
import { clientGone } from './locks.js';

export const electionRoutes: FastifyPluginAsync<{ backend: LeaseBackend }> = async (app, { backend }) => {
  const { elections } = backend;

  app.post<{ Params: NameParams; Body: CampaignBody }>(
    '/v1/elections/:name/campaign',
    { schema: { params: nameParamsSchema, body: campaignBodySchema } },
    async (request, reply) => {
      const { value, ttl, lease, waitMs } = request.body;
      const leadership = await elections.campaign(request.params.name, {
        value,
        ...(ttl !== undefined && { ttl }),
        ...(lease !== undefined && { lease }),
        ...(waitMs !== undefined && { waitMs }),
        requestId: requestIdOf(request),
        ...guardOption(request),
        signal: clientGone(reply),
      });
      // The election is applied on this node by now: the store's revision reflects it.
      return reply.header('X-Keel-Revision', String(backend.store.revision())).send(leadership);
    },
  );

  app.get<{ Params: NameParams; Querystring: ConsistencyQuery }>(
    '/v1/elections/:name',
    { schema: { params: nameParamsSchema, querystring: consistencyQuerySchema } },
    async (request, reply) => {
      await barrier(backend, request.query.consistency);
      const { leader, revision } = await elections.leader(request.params.name);
      return reply.header('X-Keel-Revision', String(revision)).send({ name: request.params.name, leader });
    },
  );

  app.post<{ Params: NameParams; Body: ResignBody }>(
    '/v1/elections/:name/resign',
    { schema: { params: nameParamsSchema, body: resignBodySchema } },
    async (request, reply) => {
      const result = await elections.resign(request.params.name, request.body.leaderKey, requestIdOf(request), authGuardOf(request));
      return reply.header('X-Keel-Revision', String(result.revision)).send({ name: request.params.name, revision: result.revision });
    },
  );

  app.post<{ Params: NameParams; Body: ProclaimBody }>(
    '/v1/elections/:name/proclaim',
    { schema: { params: nameParamsSchema, body: proclaimBodySchema } },
    async (request, reply) => {
      const { leaderKey, value } = request.body;
      const result = await elections.proclaim(request.params.name, leaderKey, value, requestIdOf(request), authGuardOf(request));
      return reply.header('X-Keel-Revision', String(result.revision)).send({ name: request.params.name, revision: result.revision });
    },
  );
};
