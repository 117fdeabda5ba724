// One simulated node: the real RaftNode on a simulated disk, driven the way src/raft/io/driver.ts drives it. A
// Ready is persisted (taking virtual time; synced iff mustSync), then its messages are sent (a leader's appends and
// heartbeats before the write, as the driver does), then it is applied (taking virtual time), then advance(). While
// a Ready is in flight, messages and ticks keep stepping the core, exactly as in the real driver. A crash at any
// moment drops the Ready in flight and everything not synced; a restart rebuilds the node from what the disk
// kept, restoring the state machine from the log's snapshot first when a crash hit between installing a snapshot
// and restoring the state from it (as src/node.ts does).
import { RaftNode, bootstrapEntry, raftConfig, sendsBeforePersist } from '../../src/raft/index.js';
import type { Entry, NodeId, PeerMessage, Ready, Snapshot } from '../../src/raft/index.js';
import type { Logger } from '../../src/util/logger.js';
import type { Prng } from '../../src/util/prng.js';
import { SimDisk, type WriteEffects } from './disk.js';
import { streamPrng, type SimParams } from './params.js';
import { applyEntry, emptySmState, encodeSmState, snapshotState, type SmState } from './state-machine.js';

export type NodeEvent = { readonly kind: 'tick' | 'persisted' | 'applied'; readonly node: NodeId; readonly incarnation: number };

/** A Ready the core handed out and the driver has not yet advanced past. */
interface InFlight {
  readonly rd: Ready;
  /** The node's term if it was leader when the Ready was made (for S2), else null. */
  readonly leaderTerm: number | null;
}

export interface NodeHost {
  readonly params: SimParams;
  now(): number;
  schedule(at: number, event: NodeEvent): void;
  /** Sends messages; returns the peers the transport noticed were unreachable. */
  send(from: SimNode, messages: readonly PeerMessage[]): NodeId[];
  onReady(node: SimNode, rd: Ready): void;
  onPersisted(node: SimNode, rd: Ready, leaderTerm: number | null, effects: WriteEffects): void;
  onRestored(node: SimNode, snapshot: Snapshot, state: SmState): void;
  onApplied(node: SimNode, entry: Entry, state: SmState): void;
  onReadServed(node: SimNode, context: string, readIndex: number, state: SmState): void;
  onReadFailed(node: SimNode, context: string): void;
  fail(message: string): never;
  logger(node: SimNode): Logger;
}

export class SimNode {
  readonly id: NodeId;
  readonly disk = new SimDisk();
  readonly tickMs: number;
  private readonly host: NodeHost;
  private readonly crashPrng: Prng;
  raft: RaftNode | null = null;
  incarnation = 0;
  alive = false;
  decommissioned = false;
  pausedUntil = 0;
  sm: SmState = emptySmState;
  private inFlight: InFlight | null = null;
  private readonly pendingReads = new Set<string>();
  private readsAwaitingApply: { index: number; context: string }[] = [];
  private lastSnapshotIndex = 0;
  readyCount = 0;

  constructor(id: NodeId, host: NodeHost, tickMs: number) {
    this.id = id;
    this.host = host;
    this.tickMs = tickMs;
    this.crashPrng = streamPrng(host.params.seed, 'crash', id);
  }

  /** First start. A founding member writes the bootstrap entry; a member added later starts empty. */
  boot(founders: readonly NodeId[] | null): void {
    if (founders !== null) {
      const { entry, hardState } = bootstrapEntry(founders);
      this.disk.write({ kind: 'ready', snapshot: null, entries: [entry], hardState }, true);
    }
    this.start();
  }

  get isPaused(): boolean {
    return this.pausedUntil > this.host.now();
  }

  /** Whether the core may be stepped now. */
  get isRunning(): boolean {
    return this.alive && !this.isPaused;
  }

  crash(): { lostWrites: number } {
    this.alive = false;
    this.inFlight = null;
    for (const context of this.pendingReads) this.host.onReadFailed(this, context);
    for (const read of this.readsAwaitingApply) this.host.onReadFailed(this, read.context);
    this.pendingReads.clear();
    this.readsAwaitingApply = [];
    const { sm, lostWrites } = this.disk.crash(this.crashPrng);
    this.sm = sm;
    return { lostWrites };
  }

  restart(): void {
    this.start();
  }

  private start(): void {
    const storage = this.disk.live;
    const metadata = storage.snapshotMetadata();
    if (this.sm.index < metadata.index) {
      // A crash hit after a received snapshot was persisted but before the state was restored from it. One taken
      // without data is never ahead of the state machine: the disk keeps a prefix of its writes.
      if (!storage.snapshotExported()) {
        this.host.fail(`node ${this.id}: state machine at ${this.sm.index} is behind the snapshot at ${metadata.index} taken without data`);
      }
      this.sm = snapshotState(storage.snapshot());
      this.disk.write({ kind: 'sm', state: this.sm }, false);
    }
    this.lastSnapshotIndex = metadata.index;
    this.incarnation++;
    const params = this.host.params;
    this.raft = new RaftNode(
      raftConfig({
        id: this.id,
        storage,
        prng: streamPrng(params.seed, 'raft', this.id, this.incarnation),
        logger: this.host.logger(this),
        applied: this.sm.index,
        electionTicks: params.electionTicks,
        heartbeatTicks: params.heartbeatTicks,
        preVote: params.preVote,
        checkQuorum: params.checkQuorum,
        inflightMessagesMax: params.inflightMessagesMax,
        appendBytesMax: params.appendBytesMax,
        proposalQueueMax: params.proposalQueueMax,
        snapshotChunkBytes: params.snapshotChunkBytes,
      }),
    );
    this.alive = true;
    this.pausedUntil = 0; // a restarted process is not stopped
    this.host.schedule(this.host.now() + this.crashPrng.next() * this.tickMs, this.event('tick'));
  }

  private event(kind: NodeEvent['kind']): NodeEvent {
    return { kind, node: this.id, incarnation: this.incarnation };
  }

  /** The running core (asserts the node is up). */
  get core(): RaftNode {
    if (this.raft === null || !this.alive) this.host.fail(`node ${this.id} is not running`);
    return this.raft;
  }

  // ---- inputs -----------------------------------------------------------------------------------------------

  onEvent(event: NodeEvent): void {
    if (event.incarnation !== this.incarnation || !this.alive) return;
    switch (event.kind) {
      case 'tick':
        this.host.schedule(this.host.now() + this.tickMs, this.event('tick'));
        if (this.isPaused) return; // a stopped process misses its timer ticks
        this.core.tick();
        // The core found a follower needing a snapshot while stepping a heartbeat response (no Ready for it).
        if (this.inFlight === null && this.disk.live.snapshotRequested()) this.maybeSnapshot();
        this.pump();
        return;
      case 'persisted':
        if (this.finishPersist()) this.pump();
        return;
      case 'applied':
        this.finishApply();
        this.pump();
        return;
    }
  }

  deliver(message: PeerMessage): void {
    this.core.step(message);
    this.pump();
  }

  /** A linearizable read through ReadIndex; the answer comes back through the host. */
  read(context: string): void {
    this.pendingReads.add(context);
    this.core.readIndex(context);
    this.pump();
  }

  // ---- the Ready loop ---------------------------------------------------------------------------------------

  /** Starts the next Ready if none is in flight; runs zero-latency Readys to completion at once. */
  pump(): void {
    // An empty Ready now and then only wastes a loop; several in a row mean hasReady() never turns false and
    // a real driver would spin forever.
    let empty = 0;
    for (let loops = 0; ; loops++) {
      if (!this.isRunning || this.inFlight !== null || !this.core.hasReady()) return;
      if (loops > 10_000) this.host.fail(`node ${this.id}: the Ready loop does not settle`);
      const raft = this.core;
      const rd = raft.ready();
      this.readyCount++;
      this.host.onReady(this, rd);
      empty = isEmptyReady(rd) ? empty + 1 : 0;
      if (empty >= 3) this.host.fail(`node ${this.id}: hasReady() stays true with empty Readys (a driver would spin forever)`);
      this.inFlight = { rd, leaderTerm: raft.role === 'leader' ? raft.term : null };
      // A leader's appends and heartbeats leave before its own write, as the real driver sends them.
      this.sendMessages(rd.messages.filter(sendsBeforePersist));
      const delay = this.persistDelay(rd);
      if (delay > 0) {
        this.host.schedule(this.host.now() + delay, this.event('persisted'));
        return;
      }
      if (!this.finishPersist()) return;
    }
  }

  private persistDelay(rd: Ready): number {
    const hasWrite = rd.snapshot !== null || rd.entries.length > 0 || rd.hardState !== null;
    if (!hasWrite) return 0;
    const max = rd.mustSync ? this.host.params.syncMsMax : this.host.params.writeMsMax;
    return max === 0 ? 0 : this.crashPrng.next() * max;
  }

  /** Persist, then send. Returns true if the Ready also completed (no apply latency). */
  private finishPersist(): boolean {
    const inFlight = this.inFlight;
    if (inFlight === null) this.host.fail(`node ${this.id}: persisted without a Ready in flight`);
    const { rd } = inFlight;
    if (rd.snapshot !== null || rd.entries.length > 0 || rd.hardState !== null) {
      const effects = this.disk.write(
        { kind: 'ready', snapshot: rd.snapshot, entries: rd.entries, hardState: rd.hardState },
        rd.mustSync,
      );
      this.host.onPersisted(this, rd, inFlight.leaderTerm, effects);
    }
    this.sendMessages(rd.messages.filter((m) => !sendsBeforePersist(m)));
    const hasApply = rd.snapshot !== null || rd.committedEntries.length > 0;
    const max = this.host.params.applyMsMax;
    if (hasApply && max > 0) {
      this.host.schedule(this.host.now() + this.crashPrng.next() * max, this.event('applied'));
      return false;
    }
    this.finishApply();
    return true;
  }

  private sendMessages(messages: readonly PeerMessage[]): void {
    if (messages.length === 0) return;
    for (const peer of this.host.send(this, messages)) this.core.step({ type: 'unreachable', peer });
  }

  /** Apply (snapshot restore, committed entries, read states), then advance(), then maybe snapshot. */
  private finishApply(): void {
    const inFlight = this.inFlight;
    if (inFlight === null) this.host.fail(`node ${this.id}: applied without a Ready in flight`);
    const { rd } = inFlight;
    if (rd.snapshot !== null) {
      this.sm = snapshotState(rd.snapshot);
      this.disk.write({ kind: 'sm', state: this.sm }, false);
      this.lastSnapshotIndex = rd.snapshot.metadata.index;
      this.host.onRestored(this, rd.snapshot, this.sm);
    }
    for (const entry of rd.committedEntries) {
      if (entry.index !== this.sm.index + 1) {
        this.host.fail(`node ${this.id} was handed entry ${entry.index} to apply after applying ${this.sm.index} (applied twice or skipped)`);
      }
      this.sm = applyEntry(this.sm, entry);
      this.disk.write({ kind: 'sm', state: this.sm }, false);
      this.host.onApplied(this, entry, this.sm);
    }
    for (const context of rd.droppedReads) {
      if (this.pendingReads.delete(context)) this.host.onReadFailed(this, context);
    }
    for (const state of rd.readStates) {
      if (!this.pendingReads.delete(state.context)) continue;
      this.readsAwaitingApply.push({ index: state.index, context: state.context });
    }
    const raft = this.core;
    raft.advance();
    this.inFlight = null;
    if (raft.log.applied !== this.sm.index) {
      this.host.fail(`node ${this.id}: the core says applied ${raft.log.applied}, the state machine applied ${this.sm.index}`);
    }
    this.serveReads();
    this.maybeSnapshot();
  }

  private serveReads(): void {
    if (this.readsAwaitingApply.length === 0) return;
    const ready = this.readsAwaitingApply.filter((read) => read.index <= this.sm.index);
    this.readsAwaitingApply = this.readsAwaitingApply.filter((read) => read.index > this.sm.index);
    for (const read of ready) this.host.onReadServed(this, read.context, read.index, this.sm);
  }

  /**
   * The driver's snapshots, then compaction behind them: periodically one without data (the state machine's
   * writes stand for it), and one with the state machine's image at appliedIndex when the core asked for a
   * snapshot to send and the latest had no data.
   */
  private maybeSnapshot(): void {
    const { snapshotEvery, snapshotKeep } = this.host.params;
    const exporting = this.disk.live.snapshotRequested();
    if (!exporting && this.sm.index - this.lastSnapshotIndex < snapshotEvery) return;
    const index = this.sm.index;
    const data = exporting ? encodeSmState(this.sm) : null;
    this.disk.write({ kind: 'snapshot', index, conf: this.core.conf, data, compactTo: index - snapshotKeep }, false);
    this.lastSnapshotIndex = index;
  }

  /** Reads asked on this node that have not been answered yet (for the end-of-run bookkeeping). */
  pendingReadCount(): number {
    return this.pendingReads.size + this.readsAwaitingApply.length;
  }
}

function isEmptyReady(rd: Ready): boolean {
  return (
    rd.softState === null &&
    rd.hardState === null &&
    rd.entries.length === 0 &&
    rd.snapshot === null &&
    rd.committedEntries.length === 0 &&
    rd.messages.length === 0 &&
    rd.readStates.length === 0 &&
    rd.droppedReads.length === 0
  );
}
