// RaftConfig: everything the core needs besides its storage, with defaults and validation.
import { assert } from '../util/assert.js';
import type { Logger } from '../util/logger.js';
import type { Prng } from '../util/prng.js';
import { limits } from '../util/limits.js';
import type { Index, NodeId } from './types.js';
import type { LogStorage } from './storage.js';

export interface RaftConfig {
  readonly id: NodeId;
  readonly storage: LogStorage;
  readonly prng: Prng;
  readonly logger: Logger;
  /** Ticks without hearing a leader before campaigning; the actual timeout is drawn in [electionTicks, 2*electionTicks). */
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  /** The last index the state machine applied before this start (0 for a fresh node). */
  readonly applied: Index;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly appendBytesMax: number;
  readonly inflightMessagesMax: number;
  /** Uncommitted entries the leader holds before refusing proposals (bounded proposal queue). */
  readonly proposalQueueMax: number;
  readonly snapshotChunkBytes: number;
  /** Bytes of committed entries handed out in one Ready. */
  readonly committedBytesMax: number;
}

export type RaftOptions = Pick<RaftConfig, 'id' | 'storage' | 'prng' | 'logger'> & Partial<RaftConfig>;

export function raftConfig(options: RaftOptions): RaftConfig {
  const config: RaftConfig = {
    electionTicks: 10,
    heartbeatTicks: 1,
    applied: 0,
    preVote: true,
    checkQuorum: true,
    appendBytesMax: limits.appendBytesMax,
    inflightMessagesMax: limits.inflightMessagesMax,
    proposalQueueMax: limits.proposalQueueMax,
    snapshotChunkBytes: limits.snapshotChunkBytes,
    committedBytesMax: 16 * 1024 * 1024,
    ...options,
  };
  validateRaftConfig(config);
  return config;
}

export function validateRaftConfig(config: RaftConfig): void {
  assert(config.id.length > 0, 'raft: id must not be empty');
  assert(config.heartbeatTicks >= 1, 'raft: heartbeatTicks must be >= 1');
  assert(config.electionTicks > config.heartbeatTicks, 'raft: electionTicks must exceed heartbeatTicks');
  assert(config.inflightMessagesMax >= 1, 'raft: inflightMessagesMax must be >= 1');
  assert(config.proposalQueueMax >= 1, 'raft: proposalQueueMax must be >= 1');
  assert(config.snapshotChunkBytes >= 1, 'raft: snapshotChunkBytes must be >= 1');
  assert(config.appendBytesMax >= 1, 'raft: appendBytesMax must be >= 1');
}
