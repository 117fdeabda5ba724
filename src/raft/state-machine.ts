// The interface the replicated state machine (src/store) implements. Raft defines it; raft never imports the store.
import type { Entry, Index, Snapshot } from './types.js';

export interface StateMachine {
  /** The last index applied (durably, atomically with the changes it made). */
  appliedIndex(): Index;
  /**
   * Applies committed entries in order and returns one result per entry (what the proposer is answered with;
   * undefined for no-ops and conf entries). Each entry's effects and appliedIndex are persisted together.
   * Entries at or below appliedIndex() are skipped (their result is undefined), so a replay after a restart
   * never applies an entry twice.
   */
  apply(entries: readonly Entry[]): Promise<readonly unknown[]>;
  /**
   * A consistent image of the state at appliedIndex() as of the call. The image is fixed synchronously, before
   * the call returns, so apply() may run while the promise is pending (the driver exports snapshots off its loop).
   */
  snapshot(): Promise<Uint8Array>;
  /** Replaces the whole state by a snapshot's (appliedIndex becomes its index). */
  restore(snapshot: Snapshot): Promise<void>;
}
