// The Message union: peer RPCs and local intents go through the same `step`. Every switch over `type`
// ends with an exhaustiveness check.
import type { Entry, Index, NodeId, SnapshotMetadata, Term } from './types.js';

interface PeerBase {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: Term;
}

/** RequestVote (pre-vote when `type` is 'preVote': the term is the one the sender would campaign with). */
export interface VoteRequest extends PeerBase {
  readonly type: 'vote' | 'preVote';
  readonly lastLogIndex: Index;
  readonly lastLogTerm: Term;
  /** Set by a candidate campaigning because of TimeoutNow: voters ignore their leader lease. */
  readonly transfer: boolean;
}

export interface VoteResponse extends PeerBase {
  readonly type: 'voteResp' | 'preVoteResp';
  readonly granted: boolean;
}

export interface AppendRequest extends PeerBase {
  readonly type: 'append';
  readonly prevLogIndex: Index;
  readonly prevLogTerm: Term;
  readonly entries: readonly Entry[];
  readonly commit: Index;
}

export interface AppendResponse extends PeerBase {
  readonly type: 'appendResp';
  /** Accepted: the last index now known to match the leader. Rejected: the prevLogIndex that was rejected. */
  readonly index: Index;
  readonly reject: boolean;
  /** Rejected only: a hint for fast back-off: the follower's best guess of the last index that can match. */
  readonly rejectHint: Index;
  /** Rejected only: the follower's term at rejectHint. */
  readonly hintTerm: Term;
}

export interface HeartbeatRequest extends PeerBase {
  readonly type: 'heartbeat';
  readonly commit: Index;
  /** ReadIndex round tag, echoed back ('' when the heartbeat serves no read). */
  readonly context: string;
}

export interface HeartbeatResponse extends PeerBase {
  readonly type: 'heartbeatResp';
  readonly context: string;
}

/** One chunk of InstallSnapshot. Chunks of one snapshot are sent in order; `offset` is the chunk's byte offset. */
export interface SnapshotChunk extends PeerBase {
  readonly type: 'snapshot';
  readonly metadata: SnapshotMetadata;
  readonly offset: number;
  readonly data: Uint8Array;
  readonly totalBytes: number;
  readonly done: boolean;
}

/** The follower's answer to one chunk: the offset it expects next (a mismatch makes the leader resend from it). */
export interface SnapshotChunkResponse extends PeerBase {
  readonly type: 'snapshotResp';
  readonly snapshotIndex: Index;
  readonly nextOffset: number;
}

export interface TimeoutNow extends PeerBase {
  readonly type: 'timeoutNow';
}

/** A follower asks the leader for a read index on behalf of a local read. */
export interface ReadIndexRequest extends PeerBase {
  readonly type: 'readIndex';
  readonly context: string;
}

export interface ReadIndexResponse extends PeerBase {
  readonly type: 'readIndexResp';
  readonly context: string;
  /** 0 with `ok: false` when the leader could not serve it (not leader any more, or not yet committed in its term). */
  readonly index: Index;
  readonly ok: boolean;
}

export type PeerMessage =
  | VoteRequest
  | VoteResponse
  | AppendRequest
  | AppendResponse
  | HeartbeatRequest
  | HeartbeatResponse
  | SnapshotChunk
  | SnapshotChunkResponse
  | TimeoutNow
  | ReadIndexRequest
  | ReadIndexResponse;

export type PeerMessageType = PeerMessage['type'];

/** Local intents: they never cross the network. */
export type LocalMessage =
  /** Start an election now (pre-vote first when enabled). */
  | { readonly type: 'campaign' }
  /** Leader only: hand leadership to `to`. */
  | { readonly type: 'transferLeader'; readonly to: NodeId }
  /** The transport could not reach `peer`: the leader slows down to probing it. */
  | { readonly type: 'unreachable'; readonly peer: NodeId }
  /** Ask for a linearizable read point tagged `context`; the answer comes as a ReadState in a later Ready. */
  | { readonly type: 'readIndexLocal'; readonly context: string };

export type Message = PeerMessage | LocalMessage;

export function isPeerMessage(message: Message): message is PeerMessage {
  return 'from' in message;
}
