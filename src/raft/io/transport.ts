// The peer transport: how Raft messages travel between nodes. The core tolerates loss, duplication and reordering,
// so a transport promises little: messages to one peer arrive in the order they were sent or not at all; every
// queue is bounded and overflow drops (and counts) messages instead of growing; a peer that cannot be reached is
// reported through onUnreachable so the leader stops pipelining into the void.
//
// Two implementations pass one contract suite (test/contract/transport.test.ts): TcpTransport (tcp-transport.ts)
// for real nodes, and MemoryTransport here, a hub inside one process for tests. MemoryTransport still encodes and
// decodes every message with the codec, so what crosses it has exactly the wire's constraints.
import { assert } from '../../util/assert.js';
import { limits } from '../../util/limits.js';
import { silentLogger, type Logger } from '../../util/logger.js';
import { CodecError, decodeMessage, encodeMessage } from '../codec.js';
import type { PeerMessage } from '../messages.js';
import type { NodeId } from '../types.js';

export interface Transport {
  /** Starts listening (and connecting to the known peers). */
  start(): Promise<void>;
  /** Queues messages for their `to` peers and returns at once; never waits for the network. */
  send(messages: readonly PeerMessage[]): void;
  /** The one receiver of decoded, validated messages addressed to this node. */
  onMessage(handler: (message: PeerMessage) => void): void;
  /** Called (asynchronously, never inside send) when messages to a peer were or may have been lost. */
  onUnreachable(handler: (peer: NodeId) => void): void;
  /** Replaces the peer table (id -> host:port) after a membership change; this node's own id is ignored. */
  setPeers(peers: ReadonlyMap<NodeId, string>): void;
  /** Whether messages to `peer` currently have a working path. */
  isConnected(peer: NodeId): boolean;
  /** The address actually listened on (a requested port 0 is resolved), as host:port. */
  address(): string;
  stats(): TransportStats;
  /** Stops listening, closes every connection and timer; idempotent. */
  close(): Promise<void>;
}

/** Counters for metrics; totals since start. */
export interface TransportStats {
  messagesSent: number;
  messagesReceived: number;
  bytesSent: number;
  bytesReceived: number;
  /** Messages given up: outbound queue full, unknown peer, over messageBytesMax, peer gone. */
  messagesDropped: number;
  /** Inbound connections (or memory deliveries) refused: garbage, oversized frame, wrong cluster or receiver. */
  connectionsRejected: number;
  /** Outbound connection attempts that failed, and established connections that dropped. */
  connectFailures: number;
}

export const emptyTransportStats = (): TransportStats => ({
  messagesSent: 0, messagesReceived: 0, bytesSent: 0, bytesReceived: 0,
  messagesDropped: 0, connectionsRejected: 0, connectFailures: 0,
});

/** Options both transports take. */
export interface TransportOptions {
  readonly id: NodeId;
  /** The cluster's name: peers from another cluster are refused. */
  readonly cluster: string;
  /** host:port to listen on; port 0 picks a free port (see address()). */
  readonly listen: string;
  readonly peers?: ReadonlyMap<NodeId, string>;
  readonly logger?: Logger;
  /** Largest encoded message sent or accepted. */
  readonly messageBytesMax?: number;
  /** Messages queued per peer before the oldest are dropped. */
  readonly outboundQueueMessagesMax?: number;
  /** Bytes queued per peer before the oldest messages are dropped. */
  readonly outboundQueueBytesMax?: number;
}

export const transportDefaults = {
  messageBytesMax: limits.messageBytesMax,
  outboundQueueMessagesMax: 4096,
  outboundQueueBytesMax: limits.messageBytesMax,
} as const;

/** Splits host:port; IPv6 hosts are written in brackets ([::1]:7000). */
export function parseHostPort(address: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(address);
  const port = Number(match?.[3]);
  if (match === null || port > 65535) throw new Error(`invalid host:port address "${address}"`);
  return { host: match[1] ?? match[2] ?? '', port };
}

export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * A FIFO bounded by item count and total bytes. When a push goes over a bound the OLDEST items are dropped: the
 * freshest Raft messages (latest term, commit index, heartbeats) are the useful ones, and a gap in appends is
 * repaired by the leader's back-off. An item larger than the whole byte budget is itself dropped.
 */
export class BoundedQueue<T> {
  private items: (T | undefined)[] = [];
  private head = 0;
  private totalBytes = 0;

  constructor(
    private readonly itemsMax: number,
    private readonly bytesMax: number,
    private readonly sizeOf: (item: T) => number,
  ) {
    assert(itemsMax >= 1 && bytesMax >= 1, 'queue bounds must be positive');
  }

  get length(): number {
    return this.items.length - this.head;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  /** Appends `item`; returns how many items were dropped to respect the bounds. */
  push(item: T): number {
    const size = this.sizeOf(item);
    if (size > this.bytesMax) return 1;
    let dropped = 0;
    while (this.length > 0 && (this.length >= this.itemsMax || this.totalBytes + size > this.bytesMax)) {
      this.shift();
      dropped++;
    }
    this.items.push(item);
    this.totalBytes += size;
    return dropped;
  }

  shift(): T | undefined {
    if (this.length === 0) return undefined;
    const item = this.items[this.head] as T;
    this.items[this.head++] = undefined;
    this.totalBytes -= this.sizeOf(item);
    // Reclaim the consumed prefix now and then, keeping shift O(1) amortized.
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  /** Empties the queue; returns how many items it held. */
  clear(): number {
    const count = this.length;
    this.items = [];
    this.head = 0;
    this.totalBytes = 0;
    return count;
  }
}

/** Collects unreachable peers and reports each once per turn of the event loop, outside the caller's stack. */
export class UnreachableReporter {
  private handler: (peer: NodeId) => void = () => {};
  private readonly pending = new Set<NodeId>();
  private isStopped = false;

  setHandler(handler: (peer: NodeId) => void): void {
    this.handler = handler;
  }

  report(peer: NodeId): void {
    if (this.isStopped) return;
    if (this.pending.size === 0) setImmediate(() => this.flush());
    this.pending.add(peer);
  }

  /** No report is made after this (the transport is closing; its owner may be gone). */
  stop(): void {
    this.isStopped = true;
  }

  private flush(): void {
    if (this.isStopped) return;
    const peers = [...this.pending];
    this.pending.clear();
    for (const peer of peers) this.handler(peer);
  }
}

// ---- the in-memory hub -----------------------------------------------------------------------------------------

/** The "network" MemoryTransports listen on: addresses are `memory:<n>`, allocated like ephemeral ports. */
export class MemoryNetwork {
  private readonly listeners = new Map<string, MemoryTransport>();
  private nextPort = 1;

  /** Binds `address` (memory:0 picks a free one); throws if it is taken, like EADDRINUSE. */
  bind(address: string, transport: MemoryTransport): string {
    const match = /^memory:(\d+)$/.exec(address);
    if (match === null) throw new Error(`invalid memory address "${address}"`);
    const bound = match[1] === '0' ? `memory:${this.nextPort++}` : address;
    if (this.listeners.has(bound)) throw new Error(`address ${bound} is already in use`);
    this.listeners.set(bound, transport);
    return bound;
  }

  unbind(address: string, transport: MemoryTransport): void {
    if (this.listeners.get(address) === transport) this.listeners.delete(address);
  }

  lookup(address: string): MemoryTransport | undefined {
    return this.listeners.get(address);
  }

  /** Test hook: delivers raw frame bytes to the transport at `address` as if `from` had sent them. */
  inject(address: string, from: NodeId, cluster: string, frame: Uint8Array): void {
    this.lookup(address)?.receive(from, cluster, frame);
  }
}

export class MemoryTransport implements Transport {
  private readonly network: MemoryNetwork;
  private readonly id: NodeId;
  private readonly cluster: string;
  private readonly requestedAddress: string;
  private readonly logger: Logger;
  private readonly messageBytesMax: number;
  private readonly queueLimits: { messages: number; bytes: number };
  private readonly counters = emptyTransportStats();
  private readonly unreachable = new UnreachableReporter();
  private readonly queues = new Map<NodeId, BoundedQueue<Uint8Array>>();
  private peers = new Map<NodeId, string>();
  private handler: (message: PeerMessage) => void = () => {};
  private bound: string | null = null;
  private flushScheduled = false;
  private isClosed = false;

  constructor(network: MemoryNetwork, options: TransportOptions) {
    this.network = network;
    this.id = options.id;
    this.cluster = options.cluster;
    this.requestedAddress = options.listen;
    this.logger = options.logger ?? silentLogger;
    this.messageBytesMax = options.messageBytesMax ?? transportDefaults.messageBytesMax;
    this.queueLimits = {
      messages: options.outboundQueueMessagesMax ?? transportDefaults.outboundQueueMessagesMax,
      bytes: options.outboundQueueBytesMax ?? transportDefaults.outboundQueueBytesMax,
    };
    if (options.peers !== undefined) this.setPeers(options.peers);
  }

  async start(): Promise<void> {
    assert(this.bound === null && !this.isClosed, 'MemoryTransport started twice');
    this.bound = this.network.bind(this.requestedAddress, this);
  }

  address(): string {
    assert(this.bound !== null, 'MemoryTransport not started');
    return this.bound;
  }

  onMessage(handler: (message: PeerMessage) => void): void {
    this.handler = handler;
  }

  onUnreachable(handler: (peer: NodeId) => void): void {
    this.unreachable.setHandler(handler);
  }

  setPeers(peers: ReadonlyMap<NodeId, string>): void {
    this.peers = new Map([...peers].filter(([id]) => id !== this.id));
    for (const id of this.queues.keys()) {
      if (!this.peers.has(id)) this.counters.messagesDropped += this.queues.get(id)?.clear() ?? 0;
      if (!this.peers.has(id)) this.queues.delete(id);
    }
  }

  isConnected(peer: NodeId): boolean {
    const address = this.peers.get(peer);
    const target = address === undefined ? undefined : this.network.lookup(address);
    return target !== undefined && target.cluster === this.cluster;
  }

  send(messages: readonly PeerMessage[]): void {
    if (this.isClosed) return;
    for (const message of messages) {
      if (!this.peers.has(message.to)) {
        this.counters.messagesDropped++;
        this.unreachable.report(message.to);
        continue;
      }
      const frame = encodeMessage(message);
      if (frame.byteLength > this.messageBytesMax) {
        this.counters.messagesDropped++;
        this.logger.error({ to: message.to, type: message.type, bytes: frame.byteLength }, 'message over messageBytesMax dropped');
        continue;
      }
      let queue = this.queues.get(message.to);
      if (queue === undefined) {
        queue = new BoundedQueue<Uint8Array>(this.queueLimits.messages, this.queueLimits.bytes, (f) => f.byteLength);
        this.queues.set(message.to, queue);
      }
      const dropped = queue.push(frame);
      if (dropped > 0) {
        this.counters.messagesDropped += dropped;
        this.unreachable.report(message.to);
      }
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      // Delivery happens on a later turn, as on a real network: a receiver never runs inside the sender's send().
      setImmediate(() => this.flush());
    }
  }

  stats(): TransportStats {
    return { ...this.counters };
  }

  async close(): Promise<void> {
    if (this.isClosed) return;
    this.isClosed = true;
    this.unreachable.stop();
    for (const queue of this.queues.values()) this.counters.messagesDropped += queue.clear();
    if (this.bound !== null) this.network.unbind(this.bound, this);
  }

  /** The receiving end: the same checks as an inbound TCP connection, one frame at a time. */
  receive(from: NodeId, cluster: string, frame: Uint8Array): boolean {
    if (this.isClosed) return false;
    if (cluster !== this.cluster) {
      this.counters.connectionsRejected++;
      this.logger.warn({ from, cluster }, 'refused a peer from another cluster');
      return false;
    }
    let message: PeerMessage;
    try {
      message = decodeMessage(frame);
    } catch (err) {
      if (!(err instanceof CodecError)) throw err;
      this.counters.connectionsRejected++;
      this.logger.warn({ from, err: err.message }, 'refused an undecodable frame');
      return false;
    }
    if (message.from !== from || message.to !== this.id) {
      this.counters.connectionsRejected++;
      this.logger.warn({ from, to: message.to }, 'refused a misaddressed message');
      return false;
    }
    this.counters.messagesReceived++;
    this.counters.bytesReceived += frame.byteLength;
    this.handler(message);
    return true;
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.isClosed) return;
    for (const [peer, queue] of this.queues) {
      const address = this.peers.get(peer);
      const target = address === undefined ? undefined : this.network.lookup(address);
      if (target === undefined && queue.length > 0) this.counters.connectFailures++;
      for (let frame = queue.shift(); frame !== undefined; frame = queue.shift()) {
        if (target !== undefined && target.receive(this.id, this.cluster, frame)) {
          this.counters.messagesSent++;
          this.counters.bytesSent += frame.byteLength;
        } else {
          // Nobody listening, or the peer refused us (another cluster): lost, as a dropped connection would be.
          this.counters.messagesDropped++;
          this.unreachable.report(peer);
        }
      }
    }
  }
}
