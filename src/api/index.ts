// The public surface of the HTTP API layer.
export { buildApi } from './app.js';
export type { ApiDeps } from './app.js';
export { NodeMetrics } from './metrics.js';
export type { MetricsReadings, MetricsSource } from './metrics.js';
export type { ClusterView, MemberStatus, NodeStatus } from './routes/cluster.js';
export { errorBody, toKeelError } from './error-handler.js';
export { Proposer } from './forward.js';
export type { ForwardSecurity, LeaderView } from './forward.js';
export type { KvBackend } from './routes/kv.js';
export type { WatchBackend } from './routes/watch.js';
export type { LeaseBackend } from './routes/leases.js';
export type { ServiceLeases, ServicesBackend } from './routes/services.js';
export type { AuthBackend } from './routes/auth.js';
export type { AuthHookOptions } from './auth-hook.js';
export type { DefragResult, OperationsBackend } from './routes/operations.js';
export { checkMemberId, internalMembersPath, parseMemberAddress } from './routes/members.js';
export type { MemberInput, MembersBackend } from './routes/members.js';
