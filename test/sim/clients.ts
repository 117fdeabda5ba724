// Simulated clients, closed-loop like real ones: each client has one operation outstanding; after its answer (or
// a time-out) and a random think time, it writes (one command, or a batch) through a node it believes is the
// leader (sometimes any node), or reads through ReadIndex on any running node. A write's outcome
// is decided like the real driver decides it: once the proposing node applies the ticket's index, it is OK iff the
// entry there has the ticket's term, and definitely not applied otherwise; a crash of that node or a snapshot
// covering the index leaves it unknown. Every outcome is recorded for the history checker.
import { isKeelError } from '../../src/util/errors.js';
import type { Entry, NodeId } from '../../src/raft/index.js';
import type { Prng } from '../../src/util/prng.js';
import type { SimNode } from './node.js';
import type { SimParams } from './params.js';
import { encodeCommand, entryContent, type SmState } from './state-machine.js';

export interface WriteRecord {
  readonly id: string;
  readonly client: number;
  readonly node: NodeId;
  readonly proposedAt: number;
  index: number;
  term: number;
  status: 'pending' | 'ok' | 'failed' | 'unknown';
  reason: string;
  ackAt: number;
}

export interface ReadRecord {
  readonly context: string;
  readonly client: number;
  readonly node: NodeId;
  readonly startedAt: number;
  /** The highest index of a write acknowledged before the read started. */
  readonly minIndex: number;
  status: 'pending' | 'ok' | 'failed';
}

/** A client gives up waiting for an answer after this long (the write's outcome is then unknown to it). */
const opTimeoutMs = 1000;
const probeClient = -1;

export interface WorkloadHost {
  readonly params: SimParams;
  now(): number;
  nodes(): readonly SimNode[];
  scheduleClient(at: number, client: number, generation: number): void;
  onWriteAcked(write: WriteRecord): void;
  checkRead(read: ReadRecord, readIndex: number, state: SmState): void;
  /** The node a client touched (so the cluster runs its checks). */
  touched(node: SimNode): void;
  /** Traces client operations in verbose replays only (the text is built only then). */
  note(text: () => string): void;
}

export class Workload {
  readonly writes: WriteRecord[] = [];
  readonly reads: ReadRecord[] = [];
  private readonly host: WorkloadHost;
  private readonly prng: Prng;
  /** Pending tickets per node incarnation (`id#incarnation`), by index. */
  private readonly pending = new Map<string, Map<number, WriteRecord>>();
  private readonly readsByContext = new Map<string, ReadRecord>();
  private sequence = 0;
  /** Per client: the operation it waits for, and a generation that invalidates its stale wake-ups. */
  private readonly clients: { waiting: WriteRecord | ReadRecord | null; generation: number }[] = [];
  maxAckedIndex = 0;
  stopped = false;

  constructor(host: WorkloadHost, prng: Prng) {
    this.host = host;
    this.prng = prng;
  }

  start(): void {
    for (let client = 0; client < this.host.params.clients; client++) {
      this.clients.push({ waiting: null, generation: 0 });
      this.wakeAfter(client, this.think());
    }
  }

  private think(): number {
    return this.prng.next() * this.host.params.thinkMsMax;
  }

  private wakeAfter(client: number, ms: number): void {
    const state = this.clients[client]!;
    state.generation++;
    this.host.scheduleClient(this.host.now() + ms, client, state.generation);
  }

  /** The client's operation got its answer: think, then go on. */
  private answered(record: WriteRecord | ReadRecord): void {
    const state = this.clients[record.client];
    if (state === undefined || state.waiting !== record) return;
    state.waiting = null;
    this.wakeAfter(record.client, this.think());
  }

  /** A client wakes up: after thinking, or because its operation timed out (it gives up waiting). */
  step(client: number, generation: number): void {
    const state = this.clients[client]!;
    if (generation !== state.generation) return;
    state.waiting = null;
    if (this.stopped) return;
    const running = this.host.nodes().filter((n) => n.isRunning && !n.decommissioned);
    if (running.length === 0) {
      this.wakeAfter(client, this.think());
      return;
    }
    // The time-out first: an answer (even one given at once, inside the call) supersedes it.
    this.wakeAfter(client, opTimeoutMs);
    if (this.prng.next() < this.host.params.readRatio) {
      this.read(client, running[this.prng.int(0, running.length - 1)]!);
    } else {
      const leaders = running.filter((n) => n.core.role === 'leader');
      const pool = leaders.length > 0 && this.prng.next() < 0.9 ? leaders : running;
      this.write(client, pool[this.prng.int(0, pool.length - 1)]!);
    }
  }

  /**
   * The liveness probe (L3): a write through the current leader, from the probe client (-1), which does not wait
   * for answers. The cluster sends one every few ticks after the heal until one is acknowledged.
   */
  probe(): void {
    const leaders = this.host.nodes().filter((n) => n.isRunning && !n.decommissioned && n.core.role === 'leader');
    if (leaders.length > 0) this.write(probeClient, leaders[this.prng.int(0, leaders.length - 1)]!);
  }

  /** Proposes a command or a batch; the client waits for the last one. */
  private write(client: number, node: SimNode): void {
    const count = client !== probeClient && this.prng.next() < this.host.params.batchRatio ? this.prng.int(2, 4) : 1;
    const now = this.host.now();
    const records: WriteRecord[] = [];
    for (let i = 0; i < count; i++) {
      const id = `c${client}.${++this.sequence}`;
      records.push({ id, client, node: node.id, proposedAt: now, index: 0, term: 0, status: 'pending', reason: '', ackAt: 0 });
    }
    this.writes.push(...records);
    const state = this.clients[client];
    if (state !== undefined) state.waiting = records[records.length - 1]!;
    let ticket: { index: number; term: number };
    try {
      const data = records.map((r) => encodeCommand(r.id));
      ticket = count === 1 ? node.core.propose(data[0]!) : node.core.proposeBatch(data);
    } catch (err) {
      if (!isKeelError(err, 'UNAVAILABLE')) throw err;
      for (const record of records) this.settle(record, 'failed', `refused: ${err.message}`);
      this.host.note(() => `client ${client}: ${node.id} refused ${records.map((r) => r.id).join(',')}: ${err.message}`);
      return;
    }
    this.host.note(() => `client ${client}: ${node.id} took ${records.map((r) => r.id).join(',')} at (${ticket.index}, ${ticket.term})`);
    const pending = this.pendingOf(node);
    records.forEach((record, i) => {
      record.index = ticket.index + i;
      record.term = ticket.term;
      pending.set(record.index, record);
    });
    node.pump();
    this.host.touched(node);
  }

  private read(client: number, node: SimNode): void {
    const context = `r${client}.${++this.sequence}`;
    const record: ReadRecord = {
      context, client, node: node.id, startedAt: this.host.now(), minIndex: this.maxAckedIndex, status: 'pending',
    };
    this.reads.push(record);
    this.readsByContext.set(context, record);
    this.clients[client]!.waiting = record;
    this.host.note(() => `client ${client}: read ${context} on ${node.id} (must see ${record.minIndex})`);
    node.read(context);
    this.host.touched(node);
  }

  private pendingOf(node: SimNode): Map<number, WriteRecord> {
    const key = `${node.id}#${node.incarnation}`;
    let map = this.pending.get(key);
    if (map === undefined) {
      map = new Map();
      this.pending.set(key, map);
    }
    return map;
  }

  private settle(record: WriteRecord, status: WriteRecord['status'], reason: string): void {
    record.status = status;
    record.reason = reason;
    if (status !== 'failed' || record.index > 0) this.host.note(() => `write ${record.id}: ${status} ${reason}`);
    this.answered(record);
    if (status !== 'ok') return;
    record.ackAt = this.host.now();
    if (record.index > this.maxAckedIndex) this.maxAckedIndex = record.index;
    this.host.onWriteAcked(record);
  }

  // ---- outcomes, reported by the nodes ----------------------------------------------------------------------

  onApplied(node: SimNode, entry: Entry): void {
    const pending = this.pending.get(`${node.id}#${node.incarnation}`);
    const record = pending?.get(entry.index);
    if (pending === undefined || record === undefined) return;
    pending.delete(entry.index);
    if (entry.term === record.term) this.settle(record, 'ok', '');
    else this.settle(record, 'failed', `overwritten by ${entryContent(entry)} of term ${entry.term}`);
  }

  onRestored(node: SimNode, index: number): void {
    const pending = this.pending.get(`${node.id}#${node.incarnation}`);
    if (pending === undefined) return;
    for (const [at, record] of pending) {
      if (at > index) continue;
      pending.delete(at);
      this.settle(record, 'unknown', 'covered by a snapshot');
    }
  }

  onCrashed(node: SimNode): void {
    const key = `${node.id}#${node.incarnation}`;
    for (const record of this.pending.get(key)?.values() ?? []) this.settle(record, 'unknown', 'node crashed');
    this.pending.delete(key);
  }

  onReadServed(context: string, readIndex: number, state: SmState): void {
    const read = this.readsByContext.get(context);
    if (read === undefined) return;
    this.readsByContext.delete(context);
    read.status = 'ok';
    this.host.note(() => `read ${context}: read index ${readIndex}, served at ${state.index}`);
    this.host.checkRead(read, readIndex, state);
    this.answered(read);
  }

  onReadFailed(context: string): void {
    const read = this.readsByContext.get(context);
    if (read === undefined) return;
    this.readsByContext.delete(context);
    read.status = 'failed';
    this.host.note(() => `read ${context}: failed`);
    this.answered(read);
  }

  /** End of run: whatever is still pending is unknown. */
  finish(): void {
    for (const map of this.pending.values()) for (const record of map.values()) this.settle(record, 'unknown', 'run ended');
    this.pending.clear();
  }
}
