// The chaos suite's checkers: each takes the recorded operations (ops of other workloads' f-names are ignored) or
// the nodes' applied-entries dumps and returns the anomalies it found, with the smallest evidence it can give.
// A request applied twice (double-apply) is reported by checkAppliedLogs only, not again by checkRevisions.
export { checkAppliedLogs, mergeApplied } from './applied.js';
export { checkRegisterLinearizable } from './wgl.js';
export type { RegisterCheckOptions } from './wgl.js';
export { checkRevisions } from './revisions.js';
export { checkRevokesAtomic, checkWatches } from './watches.js';
export type { WatchSelection } from './watches.js';
export { checkLeases } from './leases.js';
export type { LeaseCheckOptions } from './leases.js';
export { checkLockCounter } from './locks.js';
