// ReadIndex (Raft §6.4) on the leader. A read records the commit index when it arrives; it may be served once a
// heartbeat round sent after it was recorded is acknowledged by a majority (proof the leader was still leader).
// Reads that arrive between two Readys share one heartbeat round (batching); an ack for round R also confirms
// every earlier round, so released reads are always a prefix of the queue. A round covers every read not yet in
// one, so those are always a suffix of the queue: `sent` counts the reads before it (no scan per read).
import type { Index, NodeId } from './types.js';

export interface PendingRead {
  readonly context: string;
  readonly index: Index;
  /** The node whose client asked: this node, or a follower that forwarded it. */
  readonly from: NodeId;
  /** The heartbeat round that confirms it; '' until that round is sent. */
  round: string;
}

export class ReadOnlyQueue {
  private readonly queue: PendingRead[] = [];
  /** How many reads at the head of the queue are covered by a round; the rest wait for one. */
  private sent = 0;
  /** Per round: voters (and learners, ignored by the quorum count) that acknowledged it. */
  private readonly acks = new Map<string, Set<NodeId>>();
  private roundCounter = 0;

  add(read: Omit<PendingRead, 'round'>): void {
    this.queue.push({ context: read.context, index: read.index, from: read.from, round: '' });
  }

  size(): number {
    return this.queue.length;
  }

  /** Whether some read waits for a heartbeat round to be opened (and sent with the next Ready). */
  hasUnsentReads(): boolean {
    return this.sent < this.queue.length;
  }

  /** Opens a heartbeat round for the reads not yet covered by one; returns its tag, or null if none is needed. */
  openRound(term: number, self: NodeId): string | null {
    if (this.sent === this.queue.length) return null;
    const round = `${term}.${++this.roundCounter}`;
    for (let i = this.sent; i < this.queue.length; i++) this.queue[i]!.round = round;
    this.sent = this.queue.length;
    this.acks.set(round, new Set([self]));
    return round;
  }

  /**
   * The latest round already sent whose reads still wait ('' if none). Re-sending it with a later heartbeat is
   * safe: an ack of a later heartbeat proves leadership after every read of the round was recorded.
   */
  lastRound(): string {
    return this.sent === 0 ? '' : this.queue[this.sent - 1]!.round;
  }

  /** Records an ack of `round` by `from`; returns the number of distinct acknowledgers, or 0 if unknown. */
  recordAck(round: string, from: NodeId, countsFor: (id: NodeId) => boolean): number {
    const set = this.acks.get(round);
    if (set === undefined) return 0;
    set.add(from);
    let count = 0;
    for (const id of set) if (countsFor(id)) count++;
    return count;
  }

  /** Releases every read up to and including the last one of `round`. */
  release(round: string): PendingRead[] {
    let last = -1;
    for (let i = 0; i < this.sent; i++) if (this.queue[i]!.round === round) last = i;
    if (last < 0) return [];
    const released = this.queue.splice(0, last + 1);
    this.sent -= released.length;
    for (const read of released) this.acks.delete(read.round);
    return released;
  }

  /** Empties the queue (leadership lost); returns the reads that can no longer be served. */
  drain(): PendingRead[] {
    const all = this.queue.splice(0);
    this.sent = 0;
    this.acks.clear();
    return all;
  }
}
