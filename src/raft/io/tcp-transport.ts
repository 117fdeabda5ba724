// TcpTransport: Raft messages between nodes over TCP.
//
// Each node keeps ONE persistent outbound connection per peer and sends on it only; it receives on the
// connections its peers open to it. Every frame is a 4-byte big-endian length and a codec record. The first frame
// on a connection is a handshake naming the cluster, the sender and the intended receiver; a connection from
// another cluster, to another node, or carrying anything that does not decode is closed (with a warning) and
// nothing from it reaches the core. Sending never waits for a reply (pipelining): send() encodes into a bounded
// per-peer queue and a flush on the next microtask writes everything queued as one buffer (one write).
// The socket's own buffer is only refilled after 'drain', so memory stays bounded by the queue limits.
// A connection that fails or drops is reported through onUnreachable and retried with capped exponential back-off.
//
// Security (both optional, see peer-security.ts): with `tls` every connection is TLS (mutual when asked: the
// listener demands a certificate signed by the cluster CA); with `auth` (the cluster secret) the listener first
// sends a challenge and the dialer must answer it with an HMAC proof right after its handshake, before anything it
// sends reaches the core.
import net from 'node:net';
import { assert } from '../../util/assert.js';
import { silentLogger, type Logger } from '../../util/logger.js';
import { CodecError, decodeHandshake, decodeMessage, encodeHandshake, encodeMessage } from '../codec.js';
import type { PeerMessage } from '../messages.js';
import type { NodeId } from '../types.js';
import { PeerSecurity, type PeerAuth, type PeerTlsOptions } from './peer-security.js';
import {
  BoundedQueue, emptyTransportStats, formatHostPort, parseHostPort, transportDefaults, UnreachableReporter,
  type Transport, type TransportOptions, type TransportStats,
} from './transport.js';

export interface TcpTransportOptions extends TransportOptions {
  /** First retry delay after a failed or dropped connection; doubles on each failure up to the max. */
  readonly reconnectDelayMinMs?: number;
  readonly reconnectDelayMaxMs?: number;
  /** A connection attempt that has not completed by then is abandoned (a blackholed peer would take minutes). */
  readonly connectTimeoutMs?: number;
  /** An inbound connection must present its handshake within this time. */
  readonly handshakeTimeoutMs?: number;
  readonly inboundConnectionsMax?: number;
  /** close() waits this long for queued frames to drain before cutting connections. */
  readonly closeTimeoutMs?: number;
  /** TLS for the peer port (absent: plain TCP). */
  readonly tls?: PeerTlsOptions;
  /** The cluster secret's authenticator (absent: peers are not authenticated). */
  readonly auth?: PeerAuth;
}

export const tcpTransportDefaults = {
  reconnectDelayMinMs: 50,
  reconnectDelayMaxMs: 1000,
  connectTimeoutMs: 3000,
  handshakeTimeoutMs: 5000,
  inboundConnectionsMax: 64,
  closeTimeoutMs: 1000,
  /** Bytes written per flush before yielding until the socket drains. */
  flushBytesMax: 1024 * 1024,
  keepAliveDelayMs: 5000,
} as const;

const lengthPrefixBytes = 4;
/**
 * Largest handshake frame. Until a connection has named a peer of this cluster it may not make us buffer more
 * than this; only then does the limit rise to messageBytesMax.
 */
const handshakeBytesMax = 4096;

/** A frame that cannot be accepted: the connection carrying it is closed. */
export class FrameError extends Error {
  override readonly name = 'FrameError';
}

/** Splits a byte stream into length-prefixed frames, holding at most one partial frame (<= frameBytesMax). */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private frameBytes: number | null = null;

  constructor(private frameBytesMax: number) {}

  /** Changes the largest acceptable frame (a connection starts with a small limit until its handshake passes). */
  setFrameBytesMax(bytes: number): void {
    this.frameBytesMax = bytes;
  }

  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.buffered += chunk.byteLength;
  }

  /** The next complete frame, or null until more bytes arrive. Throws FrameError for an impossible length. */
  next(): Buffer | null {
    if (this.frameBytes === null) {
      if (this.buffered < lengthPrefixBytes) return null;
      const length = this.take(lengthPrefixBytes).readUInt32BE(0);
      if (length === 0 || length > this.frameBytesMax) {
        throw new FrameError(`frame length ${length} outside 1..${this.frameBytesMax}`);
      }
      this.frameBytes = length;
    }
    if (this.buffered < this.frameBytes) return null;
    const frame = this.take(this.frameBytes);
    this.frameBytes = null;
    return frame;
  }

  private take(bytes: number): Buffer {
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.byteLength >= bytes) {
      out = first.subarray(0, bytes);
      if (first.byteLength === bytes) this.chunks.shift();
      else this.chunks[0] = first.subarray(bytes);
    } else {
      const all = Buffer.concat(this.chunks);
      out = all.subarray(0, bytes);
      this.chunks = all.byteLength > bytes ? [all.subarray(bytes)] : [];
    }
    this.buffered -= bytes;
    return out;
  }
}

/** The frames, each behind its 4-byte length, in one buffer of `bytes` bytes. */
function framed(frames: readonly Uint8Array[], bytes: number): Buffer {
  const out = Buffer.allocUnsafe(bytes);
  let at = 0;
  for (const frame of frames) {
    out.writeUInt32BE(frame.byteLength, at);
    out.set(frame, at + lengthPrefixBytes);
    at += lengthPrefixBytes + frame.byteLength;
  }
  return out;
}

function lengthPrefix(bytes: number): Buffer {
  const prefix = Buffer.allocUnsafe(lengthPrefixBytes);
  prefix.writeUInt32BE(bytes, 0);
  return prefix;
}

type Settings = Required<Omit<TcpTransportOptions, 'peers' | 'logger' | 'tls' | 'auth'>>;

interface Shared {
  readonly settings: Settings;
  readonly security: PeerSecurity;
  readonly logger: Logger;
  readonly counters: TransportStats;
  readonly unreachable: UnreachableReporter;
}

/** The outbound side for one peer: its queue, its connection, its back-off. */
class PeerLink {
  private readonly queue: BoundedQueue<Uint8Array>;
  private socket: net.Socket | null = null;
  private isOpen = false;
  private delayMs: number;
  private timer: NodeJS.Timeout | null = null;
  private flushScheduled = false;
  private connectedAtMs = 0;
  private isClosed = false;

  constructor(
    readonly peer: NodeId,
    readonly address: string,
    private readonly handshake: Uint8Array,
    private readonly shared: Shared,
  ) {
    const { settings } = shared;
    this.queue = new BoundedQueue(settings.outboundQueueMessagesMax, settings.outboundQueueBytesMax, (f) => f.byteLength);
    this.delayMs = settings.reconnectDelayMinMs;
  }

  get isConnected(): boolean {
    return this.isOpen;
  }

  enqueue(frame: Uint8Array): void {
    const dropped = this.queue.push(frame);
    if (dropped > 0) {
      this.shared.counters.messagesDropped += dropped;
      this.shared.unreachable.report(this.peer);
    }
    if (!this.flushScheduled && this.isOpen) {
      this.flushScheduled = true;
      // Everything sent in this turn goes out together.
      queueMicrotask(() => this.flush());
    }
  }

  connect(): void {
    if (this.isClosed || this.socket !== null) return;
    this.timer = null;
    const { host, port } = parseHostPort(this.address);
    const { security } = this.shared;
    const { socket, readyEvent } = security.dial(host, port);
    this.socket = socket;
    socket.setTimeout(this.shared.settings.connectTimeoutMs, () => socket.destroy(new Error('connect timed out')));
    // With the cluster secret the listener speaks first (its challenge); the handshake and proof answer it.
    const challenge = security.auth === null ? null : new FrameDecoder(handshakeBytesMax);
    const open = (proof: Uint8Array | null): void => {
      socket.setTimeout(0);
      this.isOpen = true;
      this.connectedAtMs = performance.now();
      this.shared.logger.debug({ peer: this.peer, address: this.address }, 'connected to peer');
      socket.write(lengthPrefix(this.handshake.byteLength));
      socket.write(this.handshake);
      if (proof !== null) {
        socket.write(lengthPrefix(proof.byteLength));
        socket.write(proof);
      }
      this.flush();
    };
    socket.once(readyEvent, () => {
      socket.setKeepAlive(true, tcpTransportDefaults.keepAliveDelayMs);
      if (challenge === null) open(null);
    });
    socket.on('drain', () => this.flush());
    socket.on('data', (chunk: Buffer) => {
      if (challenge !== null && !this.isOpen) {
        challenge.push(chunk);
        let frame: Buffer | null = null;
        try {
          frame = challenge.next();
        } catch (err) {
          if (!(err instanceof FrameError)) throw err;
          socket.destroy(err);
          return;
        }
        if (frame === null) return;
        const proof = security.answerChallenge(this.peer, frame);
        if (proof === null) socket.destroy(new Error('malformed challenge from the peer'));
        else open(proof);
        return;
      }
      // Peers never answer on our outbound connection: anything arriving here breaks the protocol. The one
      // expected case is a misconfiguration: a listener with a cluster secret sends its challenge.
      if (security.auth === null) {
        this.shared.logger.warn({ peer: this.peer, address: this.address }, 'the peer sent data first: it probably demands a cluster secret (peerSecret) this node lacks');
      }
      socket.destroy(new Error('unexpected data on an outbound connection'));
    });
    socket.on('error', (err) => {
      this.shared.logger.debug({ peer: this.peer, address: this.address, err: err.message }, 'peer connection error');
    });
    socket.on('close', () => this.onClose(socket));
  }

  private onClose(socket: net.Socket): void {
    if (this.socket !== socket) return;
    const wasOpen = this.isOpen;
    this.socket = null;
    this.isOpen = false;
    if (this.isClosed) return;
    this.shared.counters.connectFailures++;
    this.shared.unreachable.report(this.peer);
    // A connection that lived a while was healthy: start over from the shortest delay. One that closed at once
    // (refused, or dropped right after the handshake) keeps backing off so a misconfigured peer is not hammered.
    const { reconnectDelayMinMs, reconnectDelayMaxMs } = this.shared.settings;
    if (wasOpen && performance.now() - this.connectedAtMs > reconnectDelayMaxMs) this.delayMs = reconnectDelayMinMs;
    if (wasOpen) this.shared.logger.warn({ peer: this.peer, address: this.address }, 'lost the connection to a peer');
    this.timer = setTimeout(() => this.connect(), this.delayMs);
    this.delayMs = Math.min(this.delayMs * 2, reconnectDelayMaxMs);
  }

  /**
   * Writes queued frames as ONE buffer (each with its length prefix), up to flushBytesMax, then waits for 'drain'
   * before the next. One write() per flush instead of two per frame: the stream bookkeeping per write cost more
   * than copying the few kilobytes a flush carries.
   */
  private flush(): void {
    this.flushScheduled = false;
    const socket = this.socket;
    if (socket === null || !this.isOpen || socket.writableNeedDrain || this.queue.length === 0) return;
    const frames: Uint8Array[] = [];
    let bytes = 0;
    while (bytes < tcpTransportDefaults.flushBytesMax) {
      const frame = this.queue.shift();
      if (frame === undefined) break;
      frames.push(frame);
      bytes += lengthPrefixBytes + frame.byteLength;
    }
    socket.write(framed(frames, bytes));
    const count = frames.length;
    this.shared.counters.messagesSent += count;
    this.shared.counters.bytesSent += bytes;
    if (this.queue.length > 0 && !socket.writableNeedDrain) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Sends what is queued (bounded by timeoutMs), then closes. */
  async close(timeoutMs: number): Promise<void> {
    this.isClosed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    const socket = this.socket;
    if (socket === null || !this.isOpen) {
      this.shared.counters.messagesDropped += this.queue.clear();
      socket?.destroy();
      return;
    }
    // Hand everything still queued to the socket (bounded by the queue limits); end() sends it before the FIN.
    socket.cork();
    for (let frame = this.queue.shift(); frame !== undefined; frame = this.queue.shift()) {
      socket.write(lengthPrefix(frame.byteLength));
      socket.write(frame);
      this.shared.counters.messagesSent++;
      this.shared.counters.bytesSent += lengthPrefixBytes + frame.byteLength;
    }
    socket.uncork();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => socket.destroy(), timeoutMs);
      socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      socket.end();
      if (socket.destroyed) resolve();
    });
  }
}

export class TcpTransport implements Transport {
  private readonly id: NodeId;
  private readonly cluster: string;
  private readonly listen: string;
  private readonly shared: Shared;
  private readonly server: net.Server;
  private readonly links = new Map<NodeId, PeerLink>();
  private readonly inbound = new Set<net.Socket>();
  /** The newest inbound connection per peer: a reconnecting peer replaces its old (possibly half-open) one. */
  private readonly inboundByPeer = new Map<NodeId, net.Socket>();
  private peers = new Map<NodeId, string>();
  private handler: (message: PeerMessage) => void = () => {};
  private isStarted = false;
  private isClosed = false;

  constructor(options: TcpTransportOptions) {
    assert(options.id.length > 0, 'transport: id must not be empty');
    this.id = options.id;
    this.cluster = options.cluster;
    this.listen = options.listen;
    const settings: Settings = {
      ...transportDefaults,
      ...tcpTransportDefaults,
      ...definedOnly(options),
      id: options.id,
      cluster: options.cluster,
      listen: options.listen,
    };
    assert(settings.messageBytesMax >= 1, 'transport: messageBytesMax must be >= 1');
    assert(settings.reconnectDelayMinMs >= 1, 'transport: reconnectDelayMinMs must be >= 1');
    assert(settings.reconnectDelayMaxMs >= settings.reconnectDelayMinMs, 'transport: reconnectDelayMaxMs below the min');
    const logger = options.logger ?? silentLogger;
    const counters = emptyTransportStats();
    const security = new PeerSecurity(options.id, options.tls ?? null, options.auth ?? null);
    this.shared = { settings, security, logger, counters, unreachable: new UnreachableReporter() };
    const onRefused = (why: string, remote: string): void => {
      counters.connectionsRejected++;
      logger.warn({ remote, why }, 'refused a peer connection in the TLS handshake');
    };
    this.server = security.createServer((socket) => this.accept(socket), onRefused, settings.handshakeTimeoutMs);
    this.server.maxConnections = settings.inboundConnectionsMax;
    this.server.on('drop', () => this.shared.counters.connectionsRejected++);
    if (options.peers !== undefined) this.peers = withoutSelf(options.peers, this.id);
  }

  async start(): Promise<void> {
    assert(!this.isStarted && !this.isClosed, 'TcpTransport started twice');
    this.isStarted = true;
    const { host, port } = parseHostPort(this.listen);
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host, port, exclusive: true }, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.server.on('error', (err) => this.shared.logger.error({ err: err.message }, 'peer listener error'));
    this.setPeers(this.peers);
  }

  address(): string {
    const address = this.server.address();
    assert(address !== null && typeof address === 'object', 'TcpTransport is not listening');
    return formatHostPort(address.address, address.port);
  }

  onMessage(handler: (message: PeerMessage) => void): void {
    this.handler = handler;
  }

  onUnreachable(handler: (peer: NodeId) => void): void {
    this.shared.unreachable.setHandler(handler);
  }

  setPeers(peers: ReadonlyMap<NodeId, string>): void {
    for (const address of peers.values()) parseHostPort(address); // a bad address throws before anything changes
    this.peers = withoutSelf(peers, this.id);
    if (!this.isStarted || this.isClosed) return;
    for (const [id, link] of this.links) {
      if (this.peers.get(id) !== link.address) {
        this.links.delete(id);
        void link.close(0);
      }
    }
    const handshake = (to: NodeId): Uint8Array => encodeHandshake({ clusterName: this.cluster, from: this.id, to });
    for (const [id, address] of this.peers) {
      if (this.links.has(id)) continue;
      const link = new PeerLink(id, address, handshake(id), this.shared);
      this.links.set(id, link);
      link.connect();
    }
  }

  isConnected(peer: NodeId): boolean {
    return this.links.get(peer)?.isConnected ?? false;
  }

  send(messages: readonly PeerMessage[]): void {
    if (this.isClosed) return;
    const { counters, settings, logger, unreachable } = this.shared;
    for (const message of messages) {
      const link = this.links.get(message.to);
      if (link === undefined) {
        counters.messagesDropped++;
        unreachable.report(message.to);
        continue;
      }
      const frame = encodeMessage(message);
      if (frame.byteLength > settings.messageBytesMax) {
        counters.messagesDropped++;
        logger.error({ to: message.to, type: message.type, bytes: frame.byteLength }, 'message over messageBytesMax dropped');
        continue;
      }
      link.enqueue(frame);
    }
  }

  stats(): TransportStats {
    return { ...this.shared.counters };
  }

  async close(): Promise<void> {
    if (this.isClosed) return;
    this.isClosed = true;
    this.shared.unreachable.stop();
    const serverClosed = this.isStarted
      ? new Promise<void>((resolve) => this.server.close(() => resolve()))
      : Promise.resolve();
    for (const socket of this.inbound) socket.destroy();
    const links = [...this.links.values()];
    this.links.clear();
    await Promise.all(links.map((link) => link.close(this.shared.settings.closeTimeoutMs)));
    await serverClosed;
  }

  // ---- inbound -------------------------------------------------------------------------------------------------

  private accept(socket: net.Socket): void {
    if (this.isClosed) {
      socket.destroy();
      return;
    }
    const { settings, logger, counters } = this.shared;
    const remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    this.inbound.add(socket);
    socket.setKeepAlive(true, tcpTransportDefaults.keepAliveDelayMs);
    const decoder = new FrameDecoder(handshakeBytesMax);
    const { security } = this.shared;
    // The peer named in the handshake; trusted (and its messages delivered) only once `isAuthenticated`.
    let peer: NodeId | null = null;
    let isAuthenticated = false;
    const challenge = security.auth === null ? null : security.auth.newChallenge();
    let isRefused = false;
    const refuse = (why: string): void => {
      if (isRefused) return;
      isRefused = true;
      counters.connectionsRejected++;
      logger.warn({ remote, peer, why }, 'closing a peer connection');
      socket.destroy();
    };
    const handshakeTimer = setTimeout(() => refuse('no handshake in time'), settings.handshakeTimeoutMs);
    if (challenge !== null) {
      socket.write(lengthPrefix(challenge.byteLength));
      socket.write(challenge);
    }
    const authenticated = (from: NodeId): void => {
      isAuthenticated = true;
      clearTimeout(handshakeTimer);
      this.registerInbound(from, socket);
      decoder.setFrameBytesMax(settings.messageBytesMax);
    };
    socket.on('data', (chunk: Buffer) => {
      counters.bytesReceived += chunk.byteLength;
      decoder.push(chunk);
      try {
        for (let frame = decoder.next(); frame !== null && !socket.destroyed; frame = decoder.next()) {
          if (peer === null) {
            peer = this.acceptHandshake(frame);
            if (challenge === null) authenticated(peer);
          } else if (!isAuthenticated) {
            if (!security.checkProof(peer, challenge!, frame)) throw new FrameError(`wrong cluster-secret proof from "${peer}"`);
            authenticated(peer);
          } else {
            this.deliver(frame, peer);
          }
        }
      } catch (err) {
        if (!(err instanceof FrameError || err instanceof CodecError)) throw err;
        refuse(err.message);
      }
    });
    socket.on('error', (err) => logger.debug({ remote, err: err.message }, 'inbound peer connection error'));
    socket.on('close', () => {
      clearTimeout(handshakeTimer);
      if (peer !== null && !isAuthenticated && !isRefused && security.auth !== null && !this.isClosed) {
        // A peer that named itself and hung up instead of proving: most likely one without the secret.
        security.auth.rejections.raft++;
        refuse('closed without a cluster-secret proof');
      }
      this.inbound.delete(socket);
      if (peer !== null && this.inboundByPeer.get(peer) === socket) this.inboundByPeer.delete(peer);
    });
  }

  /** Checks the first frame; returns the peer's id. Throws FrameError/CodecError to refuse the connection. */
  private acceptHandshake(frame: Uint8Array): NodeId {
    const handshake = decodeHandshake(frame);
    if (handshake.clusterName !== this.cluster) {
      throw new FrameError(`handshake from cluster "${handshake.clusterName}", this is "${this.cluster}"`);
    }
    if (handshake.to !== this.id) throw new FrameError(`handshake for node "${handshake.to}", this is "${this.id}"`);
    return handshake.from;
  }

  /** An authenticated connection replaces the peer's previous one (only now: a stranger cannot evict a peer). */
  private registerInbound(peer: NodeId, socket: net.Socket): void {
    const previous = this.inboundByPeer.get(peer);
    this.inboundByPeer.set(peer, socket);
    if (previous !== undefined) previous.destroy();
  }

  private deliver(frame: Uint8Array, peer: NodeId): void {
    const message = decodeMessage(frame);
    if (message.from !== peer) throw new FrameError(`message from "${message.from}" on ${peer}'s connection`);
    if (message.to !== this.id) throw new FrameError(`message for "${message.to}" on a connection to ${this.id}`);
    this.shared.counters.messagesReceived++;
    this.handler(message);
  }
}

function withoutSelf(peers: ReadonlyMap<NodeId, string>, self: NodeId): Map<NodeId, string> {
  return new Map([...peers].filter(([id]) => id !== self));
}

/** Options with undefined values removed, so spreading them never overrides a default with undefined. */
function definedOnly(options: TcpTransportOptions): Partial<Settings> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(options)) {
    if (value !== undefined && key !== 'peers' && key !== 'logger' && key !== 'tls' && key !== 'auth') out[key] = value;
  }
  return out as Partial<Settings>;
}
