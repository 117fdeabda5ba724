// buildApi(deps) returns the fastify instance with every area registered as its own plugin. Only bin/keel.ts
// calls listen(); tests use app.inject() or listen on port 0 themselves.
import { Ajv } from 'ajv';
import Fastify, { type FastifyInstance } from 'fastify';
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import { latencyTraceEnabled, traceMark } from '../util/latency-trace.js';
import { limits } from '../util/limits.js';
import type { Logger } from '../util/logger.js';
import { installAuth, type AuthHookOptions } from './auth-hook.js';
import { authRoutes, type AuthBackend } from './routes/auth.js';
import type { PeerAuth } from '../util/peer-auth.js';
import { installInternalAuth } from './internal-auth.js';
import { installErrorHandler, renderClientError, renderFrameworkError } from './error-handler.js';
import type { NodeMetrics } from './metrics.js';
import { clusterRoutes, type ClusterView } from './routes/cluster.js';
import { electionRoutes } from './routes/elections.js';
import { kvRoutes, type KvBackend } from './routes/kv.js';
import { leaseRoutes, type LeaseBackend } from './routes/leases.js';
import { lockRoutes } from './routes/locks.js';
import { operationsRoutes, type OperationsBackend } from './routes/operations.js';
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
  /** Client auth: the hook on every route and the /v1/auth routes (absent: no auth at all). */
  readonly auth?: AuthBackend & Omit<AuthHookOptions, 'state'>;
  /** Serve HTTPS with these TLS options (absent: plain HTTP). */
  readonly https?: HttpsServerOptions;
  /** The cluster secret: /internal/* routes then demand a peer proof (absent: they are open, as the API port is). */
  readonly peerAuth?: PeerAuth;
  /** Backup and maintenance (absent: their routes are not served). */
  readonly operations?: OperationsBackend;
  /** Membership changes and leader transfer (absent: their routes are not served). */
  readonly members?: MembersBackend;
}

// Query strings are text: "true" and "5" are coerced to their schema types. Bodies are JSON: a wrong type
// there is the client's mistake and gets 400, so nothing is coerced.
const queryAjv = new Ajv({ coerceTypes: true, allowUnionTypes: true, allErrors: false, removeAdditional: false, useDefaults: false });
const bodyAjv = new Ajv({ coerceTypes: false, allowUnionTypes: true, allErrors: false, removeAdditional: false, useDefaults: false });

export async function buildApi(deps: ApiDeps): Promise<FastifyInstance> {
  // With `https` fastify types the instance over https.Server; the routes never touch the server itself.
  const app = Fastify({
    ...(deps.https === undefined ? {} : { https: deps.https }),
    logger: false,
    bodyLimit: limits.bodyBytesMax,
    // Keys travel percent-encoded in the path and may be long.
    routerOptions: { maxParamLength: limits.keyBytesMax * 3 + 64 },
    return503OnClosing: true,
    forceCloseConnections: true,
    // Bad input fastify or node:http detect before a route runs gets the documented error body too.
    frameworkErrors: renderFrameworkError,
    clientErrorHandler: renderClientError,
  }) as unknown as FastifyInstance;
  app.setValidatorCompiler(({ schema, httpPart }) => {
    const validate = (httpPart === 'body' ? bodyAjv : queryAjv).compile(schema);
    return (data: unknown) => (validate(data) ? { value: data } : { error: new Error(bodyAjv.errorsText(validate.errors, { dataVar: httpPart ?? 'input' })) });
  });
  installErrorHandler(app, deps.logger);
  if (deps.peerAuth !== undefined) installInternalAuth(app, deps.peerAuth, deps.logger);
  if (latencyTraceEnabled) {
    // The HTTP stages of a write for bench/latency-trace.ts; with tracing off (the default) no hook is added.
    const mark = (stage: string) => (_request: unknown, _reply: unknown, done: () => void): void => {
      traceMark(stage);
      done();
    };
    app.addHook('onRequest', mark('http.request'));
    app.addHook('preHandler', mark('http.handler'));
    app.addHook('onSend', (_request, _reply, payload, done) => {
      traceMark('http.send');
      done(null, payload);
    });
    app.addHook('onResponse', mark('http.sent'));
  }
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    deps.metrics.httpSeconds.observe(
      { method: request.method, route, status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
    done();
  });
  // Before any route: the auth hooks apply to every route registered after them (auth-hook.ts).
  if (deps.auth !== undefined) {
    installAuth(app, { state: deps.auth.state, leaseKeys: deps.auth.leaseKeys, protectMetrics: deps.auth.protectMetrics, peerSecret: deps.auth.peerSecret });
    await app.register(authRoutes, { backend: deps.auth });
  }
  await app.register(clusterRoutes, { cluster: deps.cluster, metrics: deps.metrics });
  await app.register(kvRoutes, { backend: deps.kv });
  await app.register(watchRoutes, { backend: deps.kv });
  if (deps.leases !== undefined) {
    await app.register(leaseRoutes, { backend: deps.leases });
    await app.register(lockRoutes, { backend: deps.leases });
    await app.register(electionRoutes, { backend: deps.leases });
  }
  if (deps.services !== undefined) await app.register(serviceRoutes, { backend: deps.services });
  if (deps.operations !== undefined) await app.register(operationsRoutes, { backend: deps.operations });
  if (deps.members !== undefined) await app.register(memberRoutes, { backend: deps.members });
  return app;
}
