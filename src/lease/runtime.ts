// What the lease layer needs from the node it runs in, as small interfaces (node.ts provides them): proposing a
// command through the leader, a view of Raft's role and indexes, and the store to read applied state from.
// The layer never imports the driver or the API: dependencies point api -> lease -> store -> raft.
import type { KvStore } from '../store/index.js';

export interface RaftView {
  /** This node is the leader of the current term. */
  isLeader(): boolean;
  /** The index of the last entry this node applied. */
  appliedIndex(): number;
  /** The index of the last entry in this node's log (applied or not). */
  lastIndex(): number;
  /** Calls `listener` after every batch of applied entries (the driver's 'applied' event); returns an unsubscribe. */
  onApplied(listener: (appliedIndex: number) => void): () => void;
  /** Calls `listener` when this node's role or the known leader changes; returns an unsubscribe. */
  onLeaderChange(listener: () => void): () => void;
}

export interface LeaseRuntime {
  readonly store: KvStore;
  readonly raft: RaftView;
  /**
   * Proposes an encoded command (store codec) through the leader — directly when this node leads, forwarded
   * otherwise — and resolves with the entry's apply result. Rejects with KeelError UNAVAILABLE (not applied) or
   * TIMEOUT (may have been applied). The API's Proposer.propose fits.
   */
  propose(command: Uint8Array): Promise<unknown>;
}
