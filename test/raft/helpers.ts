// Goal: a tiny synchronous harness for the Raft core's rule tests and scenario scripts.
// Method: a few RaftNodes, each on its own MemoryLogStorage with a seeded PRNG and a silent logger. A node's
// Ready is processed exactly as ready.ts prescribes (persist snapshot, entries and hard state; collect the
// messages; apply the snapshot and the committed entries; advance()). Sent messages wait in one in-flight queue
// until a test delivers or drops them; links can be cut to model partitions. No clock, no timers, no promises:
// every test is a deterministic sequence of calls.
import { KeelError } from '../../src/util/errors.js';
import { silentLogger } from '../../src/util/logger.js';
import { SeededPrng } from '../../src/util/prng.js';
import {
  MemoryLogStorage,
  RaftNode,
  bootstrapEntry,
  raftConfig,
  type Entry,
  type NodeId,
  type PeerMessage,
  type RaftConfig,
  type ReadState,
  type Ready,
} from '../../src/raft/index.js';

/** Config knobs a test may set; identity, storage, PRNG and logger come from the harness. */
export type NodeOptions = Partial<Omit<RaftConfig, 'id' | 'storage' | 'prng' | 'logger'>>;

export interface TestNode {
  readonly id: NodeId;
  raft: RaftNode;
  storage: MemoryLogStorage;
  readonly options: NodeOptions;
  readonly seed: number;
  /** The toy state machine: the commands applied so far, with their indexes (restored wholesale from snapshots). */
  state: { index: number; command: string }[];
  /** Index of the last entry (or snapshot) applied; the harness asserts entries arrive exactly in order. */
  appliedIndex: number;
  /** Every committed entry applied, in order (no-ops and conf entries included). */
  appliedEntries: Entry[];
  readStates: ReadState[];
  droppedReads: string[];
  /** Every Ready this node produced, in order. */
  readies: Ready[];
  snapshotsRestored: number;
}

export type MessageFilter = (message: PeerMessage) => boolean;

export const encoder = new TextEncoder();
export const decoder = new TextDecoder();

export function bytes(text: string): Uint8Array {
  return encoder.encode(text);
}

/** The command carried by a normal entry ('' for a no-op), or a short description of a conf entry. */
export function describeData(entry: Entry): string {
  if (entry.type === 'normal') return decoder.decode(entry.data);
  const change = entry.change;
  return change.type === 'init' ? `conf:init(${change.voters.join(',')})` : `conf:${change.type}(${change.id})`;
}

export function encodeState(state: readonly { index: number; command: string }[]): Uint8Array {
  return encoder.encode(JSON.stringify(state));
}

export function decodeState(data: Uint8Array): { index: number; command: string }[] {
  return JSON.parse(decoder.decode(data)) as { index: number; command: string }[];
}

/**
 * Handles one Ready exactly as the driver contract (ready.ts) prescribes and returns it; its messages are the
 * caller's to deliver. Throws if the node has no Ready.
 */
export function processReady(node: TestNode): Ready {
  const rd = node.raft.ready();
  // 1. Persist: the snapshot, then the entries (MemoryLogStorage truncates a conflicting suffix), then the hard state.
  if (rd.snapshot !== null) node.storage.applySnapshot(rd.snapshot);
  node.storage.append(rd.entries);
  if (rd.hardState !== null) node.storage.setHardState(rd.hardState);
  // 2. Messages are collected by the caller (only after the persist above).
  // 3. Apply the snapshot, then the committed entries, in order.
  if (rd.snapshot !== null) {
    node.state = decodeState(rd.snapshot.data);
    node.appliedIndex = rd.snapshot.metadata.index;
    node.snapshotsRestored++;
  }
  for (const entry of rd.committedEntries) {
    if (entry.index !== node.appliedIndex + 1) {
      throw new Error(`${node.id}: applied ${entry.index} after ${node.appliedIndex} (out of order)`);
    }
    if (entry.type === 'normal' && entry.data.byteLength > 0) {
      node.state.push({ index: entry.index, command: decoder.decode(entry.data) });
    }
    node.appliedEntries.push(entry);
    node.appliedIndex = entry.index;
  }
  node.readStates.push(...rd.readStates);
  node.droppedReads.push(...rd.droppedReads);
  node.readies.push(rd);
  // 4. Acknowledge.
  node.raft.advance();
  return rd;
}

function nodeIds(count: number): NodeId[] {
  return Array.from({ length: count }, (_, i) => `n${i + 1}`);
}

/**
 * Writes a preset log into fresh storage: the bootstrap entry at index 1 (term 1), then one entry per element of
 * `terms` (at indexes 2, 3, ...) carrying the command `e<index>`. Only the bootstrap entry is committed.
 */
export function presetStorage(voters: readonly NodeId[], terms: readonly number[], term: number, vote: NodeId | null = null): MemoryLogStorage {
  const storage = new MemoryLogStorage();
  const { entry } = bootstrapEntry(voters);
  const rest: Entry[] = terms.map((t, i) => ({ type: 'normal', term: t, index: i + 2, data: bytes(`e${i + 2}`) }));
  storage.append([entry, ...rest]);
  storage.setHardState({ term: Math.max(term, 1), vote, commit: 1 });
  return storage;
}

export function bootstrappedStorage(voters: readonly NodeId[]): MemoryLogStorage {
  const storage = new MemoryLogStorage();
  const { entry, hardState } = bootstrapEntry(voters);
  storage.append([entry]);
  storage.setHardState(hardState);
  return storage;
}

export interface ClusterOptions {
  /** Config for every node. */
  readonly options?: NodeOptions;
  /** Config per node (merged over `options`). */
  readonly perNode?: Readonly<Record<NodeId, NodeOptions>>;
  /** Preset storage per node (default: bootstrapped with all the ids as voters). */
  readonly storage?: Readonly<Record<NodeId, MemoryLogStorage>>;
  /** Base seed; node i gets seed + i. */
  readonly seed?: number;
  /**
   * Process every node's first Ready at once (default true), as a driver does at start-up: a founding member
   * learns its membership only by applying the bootstrap entry, and cannot campaign before that.
   */
  readonly settle?: boolean;
}

/** A few nodes wired by an in-memory, test-controlled network. */
export class Cluster {
  readonly nodes = new Map<NodeId, TestNode>();
  /** Messages sent and not yet delivered or dropped, in send order. */
  inflight: PeerMessage[] = [];
  /** Every message ever sent, in send order. */
  readonly sent: PeerMessage[] = [];
  /** Directed links that lose every message ("a->b"). */
  private readonly cuts = new Set<string>();
  private readonly baseOptions: NodeOptions;
  private readonly baseSeed: number;

  constructor(ids: number | readonly NodeId[], options: ClusterOptions = {}) {
    const list = typeof ids === 'number' ? nodeIds(ids) : ids;
    this.baseOptions = options.options ?? {};
    this.baseSeed = options.seed ?? 1;
    for (const id of list) {
      const storage = options.storage?.[id] ?? bootstrappedStorage(list);
      this.addNode(id, storage, { ...this.baseOptions, ...(options.perNode?.[id] ?? {}) });
    }
    if (options.settle ?? true) this.stabilize();
  }

  /** Adds a node on the given storage (pass `new MemoryLogStorage()` for a member that joins later). */
  addNode(id: NodeId, storage: MemoryLogStorage, options: NodeOptions = this.baseOptions): TestNode {
    const seed = this.baseSeed + this.nodes.size;
    const node: TestNode = {
      id,
      raft: createRaft(id, storage, seed, options),
      storage,
      options,
      seed,
      state: [],
      appliedIndex: options.applied ?? 0,
      appliedEntries: [],
      readStates: [],
      droppedReads: [],
      readies: [],
      snapshotsRestored: 0,
    };
    this.nodes.set(id, node);
    return node;
  }

  /**
   * Rebuilds a node from its storage, as after a crash (all of its storage was synced). The state machine is
   * durable up to `applied` (default: what it applied before the crash); commands above it are forgotten.
   */
  restart(id: NodeId, applied?: number): TestNode {
    const node = this.node(id);
    const appliedIndex = applied ?? node.appliedIndex;
    node.state = node.state.filter((item) => item.index <= appliedIndex);
    node.appliedIndex = appliedIndex;
    node.raft = createRaft(id, node.storage, node.seed + 1000, { ...node.options, applied: appliedIndex });
    return node;
  }

  node(id: NodeId): TestNode {
    const node = this.nodes.get(id);
    if (node === undefined) throw new Error(`no node ${id}`);
    return node;
  }

  raft(id: NodeId): RaftNode {
    return this.node(id).raft;
  }

  ids(): NodeId[] {
    return [...this.nodes.keys()].sort();
  }

  /** Processes the node's Ready if it has one (its messages join the in-flight queue); returns it or null. */
  processReady(id: NodeId): Ready | null {
    const node = this.node(id);
    if (!node.raft.hasReady()) return null;
    const rd = processReady(node);
    this.inflight.push(...rd.messages);
    this.sent.push(...rd.messages);
    return rd;
  }

  /** Processes one Ready of every node that has one, in id order; returns how many were processed. */
  processAll(): number {
    let count = 0;
    for (const id of this.ids()) if (this.processReady(id) !== null) count++;
    return count;
  }

  /**
   * Delivers the in-flight messages that match `filter` (all by default), in send order; the others stay queued.
   * Messages on a cut link or to an unknown node are lost. Returns the messages that reached their node.
   */
  deliver(filter: MessageFilter = () => true): PeerMessage[] {
    const now = this.inflight.filter(filter);
    this.inflight = this.inflight.filter((m) => !filter(m));
    const delivered: PeerMessage[] = [];
    for (const message of now) {
      const target = this.nodes.get(message.to);
      if (target === undefined || this.cuts.has(`${message.from}->${message.to}`)) continue;
      target.raft.step(message);
      delivered.push(message);
    }
    return delivered;
  }

  /** Drops the in-flight messages that match `filter` (all by default); returns them. */
  drop(filter: MessageFilter = () => true): PeerMessage[] {
    const dropped = this.inflight.filter(filter);
    this.inflight = this.inflight.filter((m) => !filter(m));
    return dropped;
  }

  /** Cuts both directions between a and b. */
  cut(a: NodeId, b: NodeId): void {
    this.cuts.add(`${a}->${b}`);
    this.cuts.add(`${b}->${a}`);
  }

  /** Cuts every link of `id`. */
  isolate(id: NodeId): void {
    for (const other of this.ids()) if (other !== id) this.cut(id, other);
  }

  heal(): void {
    this.cuts.clear();
  }

  /**
   * Processes Readys and delivers messages until no node has a Ready and nothing is in flight. Throws if that
   * takes more than `roundsMax` rounds (a livelock or a Ready that never goes away).
   */
  stabilize(roundsMax = 1000): void {
    for (let round = 0; round < roundsMax; round++) {
      const processed = this.processAll();
      if (processed === 0 && this.inflight.length === 0) return;
      this.deliver();
    }
    throw new Error(`cluster did not stabilize within ${roundsMax} rounds`);
  }

  tick(id: NodeId, count = 1): void {
    for (let i = 0; i < count; i++) this.raft(id).tick();
  }

  tickAll(count = 1): void {
    for (let i = 0; i < count; i++) for (const id of this.ids()) this.raft(id).tick();
  }

  /** Ticks every node once and stabilizes, `count` times (time passing in a healthy cluster). */
  tickAndStabilize(count = 1): void {
    for (let i = 0; i < count; i++) {
      this.tickAll();
      this.stabilize();
    }
  }

  /** Makes `id` campaign and stabilizes; throws unless it became leader. */
  elect(id: NodeId): void {
    this.raft(id).campaign();
    this.stabilize();
    if (this.raft(id).role !== 'leader') throw new Error(`${id} did not become leader (role ${this.raft(id).role})`);
  }

  /** The ids of the nodes that currently consider themselves leader. */
  leaders(): NodeId[] {
    return this.ids().filter((id) => this.raft(id).role === 'leader');
  }

  /** Proposes a command on `id` (must be leader). */
  propose(id: NodeId, command: string): void {
    this.raft(id).propose(bytes(command));
  }

  /** The node's whole log as "index/term" strings (storage and unstable tail). */
  logOf(id: NodeId): string[] {
    const log = this.raft(id).log;
    return log.slice(log.firstIndex(), log.lastIndex() + 1, Number.MAX_SAFE_INTEGER).map((e) => `${e.index}/${e.term}`);
  }

  /** The commands a node's state machine holds, in order. */
  commands(id: NodeId): string[] {
    return this.node(id).state.map((item) => item.command);
  }

  /**
   * Takes a snapshot of `id`'s applied state at `index` and compacts its log up to it, as the node runtime would
   * after applying (index must be <= the node's applied index).
   */
  compact(id: NodeId, index: number): void {
    const node = this.node(id);
    if (index > node.appliedIndex) throw new Error(`${id}: cannot snapshot ${index} above applied ${node.appliedIndex}`);
    const state = node.state.filter((item) => item.index <= index);
    node.storage.createSnapshot(index, node.raft.conf, encodeState(state));
    node.storage.compact(index);
  }
}

export function createRaft(id: NodeId, storage: MemoryLogStorage, seed: number, options: NodeOptions = {}): RaftNode {
  return new RaftNode(
    raftConfig({ applied: 0, ...options, id, storage, prng: new SeededPrng(seed), logger: silentLogger }),
  );
}

// ---- message filters -------------------------------------------------------------------------------------------

export const ofType =
  (...types: PeerMessage['type'][]): MessageFilter =>
  (m) => types.includes(m.type);
export const fromNode =
  (id: NodeId): MessageFilter =>
  (m) => m.from === id;
export const toNode =
  (id: NodeId): MessageFilter =>
  (m) => m.to === id;
export const link =
  (from: NodeId, to: NodeId): MessageFilter =>
  (m) => m.from === from && m.to === to;
export const both =
  (...filters: MessageFilter[]): MessageFilter =>
  (m) => filters.every((f) => f(m));

/** Runs `fn` and returns the KeelError it throws (or fails if it throws something else or nothing). */
export function keelErrorOf(fn: () => unknown): KeelError {
  try {
    fn();
  } catch (err) {
    if (err instanceof KeelError) return err;
    throw err;
  }
  throw new Error('expected a KeelError, nothing was thrown');
}
