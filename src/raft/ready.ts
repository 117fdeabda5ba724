// The Ready record: everything the core wants done, handed out by `ready()` and acknowledged by `advance()`.
// The driver must, in this order:
//   1. persist: if `snapshot`, install it in storage; append `entries` (truncating any conflicting suffix);
//      write `hardState`; all in one batch, synced when `mustSync`;
//   2. send `messages` (only now: a vote or an append ack must never leave before what it promises is durable);
//   3. apply: if `snapshot`, restore the state machine from it; then apply `committedEntries` in order;
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
