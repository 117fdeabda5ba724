// The package's public surface: `import { KeelClient } from 'keel'`. The client, its option and result types,
// the pure discovery strategies, and the typed error every call rejects with (branch on `code`).
export { KeelClient, type KeelClientOptions } from './keel-client.js';
export type { CallOptions, ClientOptions } from './client.js';
export { KeelError, errorCatalog, isKeelError, type ErrorCode } from './util/errors.js';
export { Watch, type ReconnectInfo, type WatchOptions } from './client/watch.js';
export { Lease, LeasesApi, type LeaseEvents } from './client/lease.js';
export { ServiceRegistration, ServicesApi, type BlockingQuery, type RegisterOptions, type RegistrationEvents } from './client/services.js';
export { ServicePicker, type PickStrategy, type PickerEvents, type PickerOptions } from './client/discovery.js';
export { HashRing, RoundRobin, WeightedRoundRobin, hash32, type Balancer, type HashRingOptions } from './client/balancers.js';
export { LockHandle, LocksApi, type LockContext, type LockOptions } from './client/locks.js';
export { ElectionsApi, Leadership, electionPrefix, type CampaignOptions } from './client/elections.js';
export type * from './client/types.js';
