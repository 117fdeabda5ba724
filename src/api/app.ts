// buildApi(deps) returns the fastify instance with every area registered as its own plugin. Only bin/keel.ts
// calls listen(); tests use app.inject() or listen on port 0 themselves.
import { Ajv } from 'ajv';
import Fastify, { type FastifyInstance } from 'fastify';
import { limits } from '../util/limits.js';
import type { Logger } from '../util/logger.js';
import { installErrorHandler, renderClientError, renderFrameworkError } from './error-handler.js';
import type { NodeMetrics } from './metrics.js';
import { clusterRoutes, type ClusterView } from './routes/cluster.js';
import { electionRoutes } from './routes/elections.js';
import { kvRoutes, type KvBackend } from './routes/kv.js';
import { leaseRoutes, type LeaseBackend } from './routes/leases.js';
import { lockRoutes } from './routes/locks.js';
import { memberRoutes, type MembersBackend } from './routes/members.js';
import { serviceRoutes, type ServicesBackend } from './routes/services.js';
import { watchRoutes, type WatchBackend } from './routes/watch.js';

export interface ApiDeps {
  readonly cluster: ClusterView;
  readonly metrics: NodeMetrics;
  readonly logger: Logger;
  readonly kv: KvBackend & WatchBackend;
  /** Leases, locks and elections (absent: their routes are not served). */
  readonly leases?: LeaseBackend;
  /** The service registry (absent: its routes are not served). */
  readonly services?: ServicesBackend;
  /** Membership changes and leader transfer (absent: their routes are not served). */
  readonly members?: MembersBackend;
}

// Query strings are text: "true" and "5" are coerced to their schema types. Bodies are JSON: a wrong type
// there is the client's mistake and gets 400, so nothing is coerced.
const queryAjv = new Ajv({ coerceTypes: true, allowUnionTypes: true, allErrors: false, removeAdditional: false, useDefaults: false });
const bodyAjv = new Ajv({ coerceTypes: false, allowUnionTypes: true, allErrors: false, removeAdditional: false, useDefaults: false });

export async function buildApi(deps: ApiDeps): Promise<FastifyInstance> {
  const app = Fastify({
    logger: false,
    bodyLimit: limits.bodyBytesMax,
    // Keys travel percent-encoded in the path and may be long.
    routerOptions: { maxParamLength: limits.keyBytesMax * 3 + 64 },
    return503OnClosing: true,
    forceCloseConnections: true,
    // Bad input fastify or node:http detect before a route runs gets the documented error body too.
    frameworkErrors: renderFrameworkError,
    clientErrorHandler: renderClientError,
  });
  app.setValidatorCompiler(({ schema, httpPart }) => {
    const validate = (httpPart === 'body' ? bodyAjv : queryAjv).compile(schema);
    return (data: unknown) => (validate(data) ? { value: data } : { error: new Error(bodyAjv.errorsText(validate.errors, { dataVar: httpPart ?? 'input' })) });
  });
  installErrorHandler(app, deps.logger);
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    deps.metrics.httpSeconds.observe(
      { method: request.method, route, status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
    done();
  });
  await app.register(clusterRoutes, { cluster: deps.cluster, metrics: deps.metrics });
  await app.register(kvRoutes, { backend: deps.kv });
  await app.register(watchRoutes, { backend: deps.kv });
  if (deps.leases !== undefined) {
    await app.register(leaseRoutes, { backend: deps.leases });
    await app.register(lockRoutes, { backend: deps.leases });
    await app.register(electionRoutes, { backend: deps.leases });
  }
  if (deps.services !== undefined) await app.register(serviceRoutes, { backend: deps.services });
  if (deps.members !== undefined) await app.register(memberRoutes, { backend: deps.members });
  return app;
}
