// The public surface of the consensus core.
export type { RaftConfig, RaftOptions } from './config.js';
export { raftConfig } from './config.js';
export type * from './messages.js';
export { isPeerMessage } from './messages.js';
export { applyConfChange, isMember, isVoter, members } from './membership.js';
export { RaftNode } from './raft.js';
export type { ProgressStatus, ProposalTicket, RaftStatus } from './raft.js';
export type { Ready } from './ready.js';
export { sendsBeforePersist } from './ready.js';
export type { DurableLogStorage, InitialState, LogStorage, LogWrite, WritableLogStorage } from './storage.js';
export { LogCompactedError, LogUnavailableError, MemoryLogStorage, SnapshotUnavailableError } from './storage.js';
export { bootstrapEntry } from './bootstrap.js';
export type * from './types.js';
export { emptyHardState, emptySnapshot, entryBytes } from './types.js';
export type { StateMachine } from './state-machine.js';
