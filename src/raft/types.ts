// The vocabulary of the consensus core. Terms and indexes are plain numbers, asserted to be safe integers
// where they enter the core (messages, storage, proposals).
export type NodeId = string;
export type Term = number;
export type Index = number;

/** The persistent part of a node's Raft state; written (synced) before any message that depends on it leaves. */
export interface HardState {
  readonly term: Term;
  /** The candidate this node voted for in `term`, or null. */
  readonly vote: NodeId | null;
  readonly commit: Index;
}

export const emptyHardState: HardState = { term: 0, vote: null, commit: 0 };

/** Cluster membership: voters decide elections and commitment; learners only receive the log. */
export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
}

/**
 * A membership change, one server at a time. `init` is the bootstrap entry at index 1 that every founding
 * member writes identically; the others are proposed at run time. `context` is opaque to the core (the node
 * runtime stores the member's addresses there).
 */
export type ConfChange =
  | { readonly type: 'init'; readonly voters: readonly NodeId[]; readonly context?: Uint8Array }
  | { readonly type: 'addLearner'; readonly id: NodeId; readonly context?: Uint8Array }
  | { readonly type: 'promote'; readonly id: NodeId; readonly context?: Uint8Array }
  | { readonly type: 'remove'; readonly id: NodeId; readonly context?: Uint8Array };

export type Entry =
  /** An application command (`data` may be empty: the no-op a new leader appends). */
  | { readonly type: 'normal'; readonly term: Term; readonly index: Index; readonly data: Uint8Array }
  | { readonly type: 'conf'; readonly term: Term; readonly index: Index; readonly change: ConfChange };

export interface SnapshotMetadata {
  readonly index: Index;
  readonly term: Term;
  readonly conf: ConfState;
}

export interface Snapshot {
  readonly metadata: SnapshotMetadata;
  /** The state machine's bytes at `metadata.index`. */
  readonly data: Uint8Array;
}

export const emptySnapshot: Snapshot = {
  metadata: { index: 0, term: 0, conf: { voters: [], learners: [] } },
  data: new Uint8Array(0),
};

export type Role = 'follower' | 'candidate' | 'precandidate' | 'leader';

/** Volatile state worth reporting (status endpoint, metrics); changes are surfaced in Ready.softState. */
export interface SoftState {
  readonly leader: NodeId | null;
  readonly role: Role;
}

/** A linearizable read point: once appliedIndex >= index, the read tagged `context` may be served locally. */
export interface ReadState {
  readonly index: Index;
  readonly context: string;
}

/** Approximate size of an entry, for batching limits. */
export function entryBytes(entry: Entry): number {
  return 24 + (entry.type === 'normal' ? entry.data.byteLength : 64 + (entry.change.context?.byteLength ?? 0));
}
