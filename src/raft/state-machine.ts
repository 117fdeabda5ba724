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
   *
   * `answer`, when given, may be called once, before the promise settles, with the same results: they are final
   * (the entries are committed, so a crash before the call ends replays them to the same results) and every read
   * the state machine serves from then on reflects them. The driver answers the proposers then, without waiting
   * for the rest of the call (the state machine's own write landing). The driver's applied index, which reads
   * after ReadIndex wait for, still moves only when the promise resolves.
   */
  apply(entries: readonly Entry[], answer?: (results: readonly unknown[]) => void): Promise<readonly unknown[]>;
  /**
   * A consistent image of the state at appliedIndex() as of the call. The image is fixed synchronously, before
   * the call returns, so apply() may run while the promise is pending (the driver exports snapshots off its loop).
   */
  snapshot(): Promise<Uint8Array>;
  /**
   * Makes every apply() that has returned durable (a synced write behind them). The driver then records a
   * snapshot at its applied index without exporting any data: the state machine's own state stands for it.
   * Resolves false, having done nothing, when it cannot now without a long wait (a maintenance task runs): the
   * driver tries again later.
   */
  persist(): Promise<boolean>;
  /** Replaces the whole state by a snapshot's (appliedIndex becomes its index). */
  restore(snapshot: Snapshot): Promise<void>;
}
