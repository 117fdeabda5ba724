// What the lease layer needs from the node it runs in, as small interfaces (node.ts provides them): proposing a
// command through the leader, a view of Raft's role and indexes, and the store to read applied state from.
// The layer never imports the driver or the API: dependencies point api -> lease -> store -> raft.
import type { CommandExtension, CommandGuard, KvStore } from '../store/index.js';
import { encodeCommand, failureToError, isApplyFailure } from '../store/index.js';

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

/**
 * Proposes one of the layer's extension commands and resolves with its result; a refusal recorded at apply is
 * thrown as the KeelError it stands for. The body is validated here too, so bad input never reaches the log
 * (apply checks it again).
 */
export async function proposeExtension<T>(
  runtime: LeaseRuntime,
  extensions: readonly CommandExtension[],
  command: { readonly name: string; readonly body: unknown; readonly requestId: string; readonly guard?: CommandGuard | undefined },
): Promise<T> {
  const { name, body, requestId, guard } = command;
  extensions.find((extension) => extension.name === name)?.validate(body);
  const result = await runtime.propose(encodeCommand({ requestId, cmd: { kind: 'ext', name, body }, ...(guard !== undefined && { guard }) }));
  if (isApplyFailure(result)) throw failureToError(result);
  return result as T;
}
