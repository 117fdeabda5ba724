// The public surface of the lease layer: leases, the service registry with health checks, locks and elections,
// and the reserved key layout they store under (prefixes.ts).
export {
  extensionNames,
  isReservedKey,
  leaseKeys,
  lockKeys,
  namePattern,
  parseWaiterKey,
  reservedPrefix,
  serviceKeys,
  touchesReserved,
} from './prefixes.js';
export type { LockKind } from './prefixes.js';

// ---- leases, locks, elections (lessor.ts, locks.ts, elections.ts, layer.ts)
export type { LeaseRuntime, RaftView } from './runtime.js';
export type { GrantedLease, KeptAlive, LeaseStatus, LessorOptions, RevokeApplyHandler, RevokeReason, RevokedLease } from './lessor.js';
export { Lessor, checkLeaseId, checkTtl } from './lessor.js';
export type { AcquireRequest, Held, HolderRecord, LockServiceOptions, LockState } from './locks.js';
export { LockService } from './locks.js';
export type { ElectionLeader, Leadership } from './elections.js';
export { ElectionService } from './elections.js';
export type { LeaseLayerOptions } from './layer.js';
export { LeaseLayer } from './layer.js';

// ---- service registry (registry.ts, discovery.ts, health-checker.ts)
export type {
  DeregisterBody,
  HealthCheck,
  Instance,
  InstanceRecord,
  InstanceStatus,
  LeaseGranter,
  RegisterBody,
  StatusBody,
} from './registry.js';
export {
  deregisterCommand,
  instanceFromKv,
  registerCommand,
  registryExtensions,
  registryLimits,
  statusCommand,
  validateDeregister,
  validateRegister,
  validateStatus,
} from './registry.js';
export type { InstanceFilter, ServiceSummary, WaitOutcome } from './discovery.js';
export { filterInstances, readInstance, readInstances, readServices, waitForChange } from './discovery.js';
export type { HealthCheckerOptions, HealthCheckerStats } from './health-checker.js';
export { HealthChecker, healthCheckerDefaults } from './health-checker.js';
export type { Prober, ProbeResult } from './probe.js';
export { NetworkProber } from './probe.js';
export { leaseLimits } from './limits.js';
