// Cluster and operations routes: GET /v1/status, GET /health, GET /metrics (shared/API.md).
import type { FastifyPluginAsync } from 'fastify';
import type { NodeMetrics } from '../metrics.js';

export interface MemberStatus {
  readonly id: string;
  readonly peerUrl: string;
  readonly clientUrl: string;
  readonly role: 'leader' | 'follower' | 'candidate' | 'learner';
  readonly voter: boolean;
  readonly reachable: boolean;
  readonly matchIndex: number | null;
  readonly lag: number | null;
}

export interface NodeStatus {
  readonly id: string;
  readonly name: string;
  readonly cluster: string;
  readonly version: string;
  readonly role: 'leader' | 'follower' | 'candidate' | 'learner';
  readonly leader: string | null;
  readonly term: number;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly revision: number;
  readonly compactRevision: number;
  readonly dbSizeBytes: number;
  readonly uptimeMs: number;
  readonly members: readonly MemberStatus[];
  /** Raised alarms: "NOSPACE" while the store is over limits.quotaBytes. */
  readonly alarms?: readonly string[];
  /** Bytes of the store's LevelDB directory at the last measurement (what the quota is checked against). */
  readonly storeSizeBytes?: number;
  readonly quotaBytes?: number;
}

export interface ClusterView {
  status(): Promise<NodeStatus>;
  /** Knows a leader and has applied up to the commit index it last heard. */
  isHealthy(): boolean;
  revision(): number;
}

export const clusterRoutes: FastifyPluginAsync<{ cluster: ClusterView; metrics: NodeMetrics }> = async (app, opts) => {
  app.get('/v1/status', async (_request, reply) => {
    const status = await opts.cluster.status();
    return reply.header('X-Keel-Revision', String(status.revision)).send(status);
  });

  app.get('/health', async (_request, reply) => {
    const ok = opts.cluster.isHealthy();
    return reply.code(ok ? 200 : 503).send(ok ? { ok: true } : { ok: false, error: { code: 'UNAVAILABLE', message: 'no leader or not caught up' } });
  });

  app.get('/metrics', async (_request, reply) => {
    const text = await opts.metrics.render();
    return reply.type(opts.metrics.contentType()).send(text);
  });
};
