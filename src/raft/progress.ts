// The leader's view of one follower's log.
//   probe:     nextIndex is a guess; send one append per heartbeat interval until one is accepted.
//   replicate: optimistic pipelining; nextIndex advances as soon as entries are sent, bounded by inflights.
//   snapshot:  an InstallSnapshot is streaming; no appends until it is acknowledged.
// Invariant: matchIndex < nextIndex.
import { assert } from '../util/assert.js';
import { Inflights } from './inflights.js';
import type { Index, SnapshotMetadata } from './types.js';

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

export interface SnapshotTransfer {
  readonly metadata: SnapshotMetadata;
  readonly data: Uint8Array;
  /** Next byte offset to send. */
  nextOffset: number;
  /** Ticks since the last chunk was acknowledged; the transfer restarts from the last ack when it stalls. */
  idleTicks: number;
}

export class Progress {
  matchIndex: Index = 0;
  nextIndex: Index;
  state: ProgressState = 'probe';
  /** In probe state: an append was sent and we wait for its answer or the next heartbeat. */
  probeSent = false;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  isLearner: boolean;
  readonly inflights: Inflights;
  snapshot: SnapshotTransfer | null = null;

  constructor(nextIndex: Index, inflightMax: number, isLearner: boolean) {
    this.nextIndex = nextIndex;
    this.inflights = new Inflights(inflightMax);
    this.isLearner = isLearner;
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.snapshot = null;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    if (this.state === 'snapshot' && this.snapshot !== null) {
      const pending = this.snapshot.metadata.index;
      this.resetState('probe');
      this.nextIndex = Math.max(this.matchIndex + 1, pending + 1);
    } else {
      this.resetState('probe');
      this.nextIndex = this.matchIndex + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState('replicate');
    this.nextIndex = this.matchIndex + 1;
  }

  becomeSnapshot(transfer: SnapshotTransfer): void {
    this.resetState('snapshot');
    this.snapshot = transfer;
  }

  /** An append was acknowledged up to `index`; returns whether matchIndex moved. */
  maybeUpdate(index: Index): boolean {
    let updated = false;
    if (this.matchIndex < index) {
      this.matchIndex = index;
      updated = true;
      this.probeSent = false;
    }
    this.nextIndex = Math.max(this.nextIndex, index + 1);
    return updated;
  }

  /** Records that entries up to `lastIndex` were sent (optimistically, in replicate state). */
  sentEntries(count: number, lastIndex: Index): void {
    if (this.state === 'replicate') {
      if (count > 0) {
        this.nextIndex = lastIndex + 1;
        this.inflights.add(lastIndex);
      }
    } else if (this.state === 'probe') {
      this.probeSent = true;
    }
    assert(this.matchIndex < this.nextIndex, 'progress: matchIndex must stay below nextIndex');
  }

  /**
   * An append at `rejected` was refused; `hint` is the follower's guess of the last index that can match.
   * Returns false if the rejection is stale (from an earlier, already superseded attempt).
   */
  maybeDecrease(rejected: Index, hint: Index): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.matchIndex) return false;
      this.nextIndex = this.matchIndex + 1;
      return true;
    }
    if (this.nextIndex - 1 !== rejected) return false;
    this.nextIndex = Math.max(Math.min(rejected, hint + 1), this.matchIndex + 1);
    this.probeSent = false;
    return true;
  }

  /** Whether the leader should hold back appends to this follower. */
  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.isFull();
      case 'snapshot':
        return true;
    }
  }
}
