// The Ready record: everything the core wants done, handed out by `ready()` and acknowledged by `advance()`.
// The driver must, in this order:
//   1. persist: if `snapshot`, install it in storage; append `entries` (truncating any conflicting suffix);
//      write `hardState`; all in one batch, synced when `mustSync`;
//   2. send `messages` (only now: a vote or an append ack must never leave before what it promises is durable);
//      the messages for which sendsBeforePersist() holds may instead leave before step 1, in parallel with it;
//   3. apply: if `snapshot`, restore the state machine from it; then apply `committedEntries` in order
//      (committed entries already in the durable log may be applied while step 1 runs: they are on a quorum's
//      disks and in this node's, and committed entries are never truncated);
//      answer `readStates` once appliedIndex >= their index, and fail `droppedReads` as unavailable;
//   4. call `advance()`.
// A second `ready()` before `advance()` is a bug and throws.
import type { PeerMessage } from './messages.js';
import type { Entry, HardState, ReadState, Snapshot, SoftState } from './types.js';

export interface Ready {
  /** Set when leader or role changed since the last Ready. */
  readonly softState: SoftState | null;
  /** Set when term, vote or commit changed since the last Ready. */
  readonly hardState: HardState | null;
  readonly entries: readonly Entry[];
  readonly snapshot: Snapshot | null;
  readonly committedEntries: readonly Entry[];
  readonly messages: readonly PeerMessage[];
  readonly readStates: readonly ReadState[];
  /** Read contexts that will never get a ReadState (no leader, lost leadership): answer them UNAVAILABLE. */
  readonly droppedReads: readonly string[];
  /** True when entries, a snapshot, or a term/vote change must reach the disk before messages are sent. */
  readonly mustSync: boolean;
}

/**
 * Whether a message of the Ready may be sent before the Ready is persisted. A leader's appends and heartbeats
 * promise nothing about its own disk: the leader counts its own copy towards a quorum only in advance(), after
 * the write (Raft thesis §10.2.1, etcd/raft's "the leader can write to its disk in parallel with replicating").
 * If it crashes before the write, followers may hold entries it lost, but it can never write other entries of
 * that term (it comes back a follower, and a new leader has a new term). Votes, vote grants and append acks do
 * promise what is on disk, and leave only after the write.
 */
export function sendsBeforePersist(message: PeerMessage): boolean {
  return message.type === 'append' || message.type === 'heartbeat';
}
