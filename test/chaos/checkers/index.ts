// The chaos suite's checkers: each takes the recorded operations (ops of other workloads' f-names are ignored) or
// the nodes' applied-entries dumps and returns the anomalies it found, with the smallest evidence it can give.
export { checkAppliedLogs, mergeApplied } from './applied.js';
export { checkRegisterLinearizable } from './wgl.js';
export type { RegisterCheckOptions } from './wgl.js';
export { checkRevisions } from './revisions.js';
export { checkWatches } from './watches.js';
export type { WatchSelection } from './watches.js';
export { checkLeases } from './leases.js';
export type { LeaseCheckOptions } from './leases.js';
export { checkLockCounter } from './locks.js';
