// The interface the replicated state machine (src/store) implements. Raft defines it; raft never imports the store.
import type { Entry, Index, Snapshot } from './types.js';

export interface StateMachine {
  /** The last index applied (durably, atomically with the changes it made). */
  appliedIndex(): Index;
  /** Applies committed entries in order; each entry's effects and appliedIndex are persisted together. */
  apply(entries: readonly Entry[]): Promise<void>;
  /** A consistent image of the state at appliedIndex(). */
  snapshot(): Promise<Uint8Array>;
  /** Replaces the whole state by a snapshot's (appliedIndex becomes its index). */
  restore(snapshot: Snapshot): Promise<void>;
}
