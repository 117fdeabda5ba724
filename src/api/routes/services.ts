// Service registry routes (shared/API.md "Service registry"): register / deregister / heartbeat an instance,
// list services, discover a service's instances (filters, blocking queries). Registrations, removals and status
// changes are store extension commands proposed through the leader (lease/registry.ts); reads are local after
// the same ReadIndex barrier as KV GET (or none with consistency=serializable). Health checks run on the leader
// (lease/health-checker.ts) and are not routes.
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import type { Instance, RegisterBody as RegisterCommandBody } from '../../lease/index.js';
import {
  deregisterCommand,
  filterInstances,
  readInstance,
  readInstances,
  readServices,
  registerCommand,
  serviceKeys,
  waitForChange,
} from '../../lease/index.js';
import { KeelError } from '../../util/errors.js';
import {
  discoveryQuerySchema,
  instanceParamsSchema,
  instanceQuerySchema,
  listQuerySchema,
  registerBodySchema,
  serviceParamsSchema,
  waitMsMax,
  type DiscoveryQuery,
  type InstanceParams,
  type InstanceQuery,
  type ListQuery,
  type RegisterBody,
  type ServiceParams,
} from '../schemas/services.js';
import { readBarrierFor, write, type KvBackend } from './kv.js';

/** What the registry routes need from the lessor. */
export interface ServiceLeases {
  /** A fresh random lease id (the lease a registration with ttl grants in its own entry). */
  newLeaseId(): number;
  /** Refreshes a lease through the log; LEASE_NOT_FOUND when it is gone. */
  keepalive(id: number): Promise<{ id: number; ttl: number; revision?: number }>;
}

export interface ServicesBackend extends KvBackend {
  readonly leases: ServiceLeases;
}

function withRevision(reply: FastifyReply, revision: number): FastifyReply {
  return reply.header('X-Keel-Revision', String(revision));
}

/**
 * The wait of a blocking query: none without `index`; `waitMs` (default and cap waitMsMax) with it. Resolves
 * once the keys under `prefix` changed after `index`, the wait is over, or the client went away.
 */
async function block(backend: KvBackend, reply: FastifyReply, prefix: string, query: ListQuery): Promise<void> {
  if (query.index === undefined) return;
  const waitMs = Math.min(query.waitMs ?? waitMsMax, waitMsMax);
  if (waitMs === 0) return;
  const gone = new AbortController();
  const onClose = (): void => gone.abort();
  reply.raw.once('close', onClose);
  try {
    await waitForChange(backend.store, prefix, query.index, waitMs, gone.signal);
  } finally {
    reply.raw.off('close', onClose);
  }
}

function registerBodyOf(params: InstanceParams, body: RegisterBody, newLeaseId: () => number): RegisterCommandBody {
  const check = body.check;
  const command: RegisterCommandBody = {
    service: params.service,
    id: params.id,
    address: body.address,
    port: body.port,
    tags: body.tags ?? [],
    meta: body.meta ?? {},
    weight: body.weight ?? 1,
    lease: body.ttl !== undefined ? newLeaseId() : (body.lease ?? 0),
    ...(body.ttl !== undefined && { ttl: body.ttl }),
  };
  if (check === undefined) return command;
  return {
    ...command,
    check: {
      ...(check.http !== undefined && { http: check.http }),
      ...(check.tcp !== undefined && { tcp: check.tcp }),
      intervalMs: check.intervalMs,
      timeoutMs: check.timeoutMs,
      ...(check.deregisterAfterMs !== undefined && { deregisterAfterMs: check.deregisterAfterMs }),
    },
  };
}

export const serviceRoutes: FastifyPluginAsync<{ backend: ServicesBackend }> = async (app, { backend }) => {
  const { store } = backend;

  app.put<{ Params: InstanceParams; Body: RegisterBody }>(
    '/v1/services/:service/instances/:id',
    { schema: { params: instanceParamsSchema, body: registerBodySchema } },
    async (request, reply) => {
      const cmd = registerCommand(registerBodyOf(request.params, request.body, () => backend.leases.newLeaseId()));
      const result = await write<{ service: string; id: string; lease: number; revision: number }>(backend, request, cmd);
      return withRevision(reply, result.revision).send({ service: result.service, id: result.id, lease: result.lease, revision: result.revision });
    },
  );

  app.delete<{ Params: InstanceParams }>(
    '/v1/services/:service/instances/:id',
    { schema: { params: instanceParamsSchema } },
    async (request, reply) => {
      const { service, id } = request.params;
      const result = await write<{ revision: number }>(backend, request, deregisterCommand({ service, id }));
      return withRevision(reply, result.revision).send({ service, id, revision: result.revision });
    },
  );

  app.post<{ Params: InstanceParams }>(
    '/v1/services/:service/instances/:id/heartbeat',
    { schema: { params: instanceParamsSchema } },
    async (request, reply) => {
      const { service, id } = request.params;
      await backend.readBarrier();
      const { instance, revision } = await readInstance(store, service, id);
      if (instance === null) throw new KeelError('NOT_FOUND', `instance ${id} of service ${service} not found`, { revision });
      if (instance.lease === 0) throw new KeelError('LEASE_NOT_FOUND', `instance ${id} of service ${service} has no lease`, { revision });
      const kept = await backend.leases.keepalive(instance.lease);
      return withRevision(reply, Math.max(revision, kept.revision ?? 0)).send({ service, id, lease: kept.id, ttl: kept.ttl });
    },
  );

  app.get<{ Params: InstanceParams; Querystring: InstanceQuery }>(
    '/v1/services/:service/instances/:id',
    { schema: { params: instanceParamsSchema, querystring: instanceQuerySchema } },
    async (request, reply) => {
      const { service, id } = request.params;
      await readBarrierFor(backend, request.query.consistency);
      const { instance, revision } = await readInstance(store, service, id);
      if (instance === null) throw new KeelError('NOT_FOUND', `instance ${id} of service ${service} not found`, { revision });
      return withRevision(reply, revision).send({ instance });
    },
  );

  app.get<{ Querystring: ListQuery }>('/v1/services', { schema: { querystring: listQuerySchema } }, async (request, reply) => {
    await readBarrierFor(backend, request.query.consistency);
    await block(backend, reply, serviceKeys.prefix, request.query);
    const { services, revision } = await readServices(store);
    return withRevision(reply, revision).send({ services, index: revision });
  });

  app.get<{ Params: ServiceParams; Querystring: DiscoveryQuery }>(
    '/v1/services/:service',
    { schema: { params: serviceParamsSchema, querystring: discoveryQuerySchema } },
    async (request, reply) => {
      const { service } = request.params;
      const query = request.query;
      await readBarrierFor(backend, query.consistency);
      await block(backend, reply, serviceKeys.service(service), query);
      const { instances, revision } = await readInstances(store, service);
      const filter = { ...(query.healthy === true && { isHealthyOnly: true }), ...(query.tag !== undefined && { tag: query.tag }) };
      const selected: Instance[] = filterInstances(instances, filter);
      return withRevision(reply, revision).send({ service, instances: selected, index: revision });
    },
  );
};
