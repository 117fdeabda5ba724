// buildApi(deps) returns the fastify instance with every area registered as its own plugin. Only bin/keel.ts
// calls listen(); tests use app.inject() or listen on port 0 themselves.
import Fastify, { type FastifyInstance } from 'fastify';
import { limits } from '../util/limits.js';
import type { Logger } from '../util/logger.js';
import { installErrorHandler } from './error-handler.js';
import type { NodeMetrics } from './metrics.js';
import { clusterRoutes, type ClusterView } from './routes/cluster.js';

export interface ApiDeps {
  readonly cluster: ClusterView;
  readonly metrics: NodeMetrics;
  readonly logger: Logger;
}

export async function buildApi(deps: ApiDeps): Promise<FastifyInstance> {
  const app = Fastify({
    logger: false,
    bodyLimit: limits.bodyBytesMax,
    // Keys travel percent-encoded in the path and may be long.
    routerOptions: { maxParamLength: limits.keyBytesMax * 3 },
    return503OnClosing: true,
    forceCloseConnections: true,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', allErrors: false } },
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
  return app;
}
