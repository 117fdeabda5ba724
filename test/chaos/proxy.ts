// A TCP proxy on loopback for fault injection: one per DIRECTED node pair and port kind (peer or client), so a
// cut of one proxy is a one-way cut (each node sends Raft messages only on its own outbound connection, and its
// forwarded HTTP requests only on connections it opened). Modes:
//   pass      — bytes flow (optionally delayed by delayMs + up to jitterMs, order kept);
//   blackhole — bytes are held: both sides stop being read, so TCP back-pressure stalls the sender as a lost
//               network would; new connections are accepted but not forwarded. Healing releases what was held.
// reset() tears every open connection down with a TCP RST.
import net from 'node:net';
import type { Prng } from '../../src/util/prng.js';

export type ProxyMode = 'pass' | 'blackhole';

interface Pipe {
  readonly from: net.Socket;
  readonly to: net.Socket;
  /** Release time of the last chunk scheduled (delays keep order). */
  lastReleaseMs: number;
}

interface Link {
  readonly client: net.Socket;
  upstream: net.Socket | null;
  readonly pipes: Pipe[];
}

export class FaultProxy {
  readonly name: string;
  private readonly target: { host: string; port: number };
  private readonly server: net.Server;
  private readonly links = new Set<Link>();
  private mode: ProxyMode = 'pass';
  private delayMs = 0;
  private jitterMs = 0;
  private readonly prng: Prng;
  port = 0;

  constructor(name: string, target: string, prng: Prng) {
    this.name = name;
    const at = target.lastIndexOf(':');
    this.target = { host: target.slice(0, at), port: Number(target.slice(at + 1)) };
    this.prng = prng;
    this.server = net.createServer((socket) => this.accept(socket));
    this.server.on('error', () => undefined);
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Listens on an ephemeral port not in `avoid` (the nodes' ports, known but not yet bound by them). */
  async listen(avoid: ReadonlySet<number> = new Set()): Promise<void> {
    for (;;) {
      await new Promise<void>((resolve, reject) => {
        this.server.once('error', reject);
        this.server.listen(0, '127.0.0.1', () => {
          this.server.off('error', reject);
          resolve();
        });
      });
      this.port = (this.server.address() as net.AddressInfo).port;
      if (!avoid.has(this.port)) return;
      await new Promise<void>((resolve) => this.server.close(() => resolve()));
    }
  }

  setMode(mode: ProxyMode): void {
    if (this.mode === mode) return;
    this.mode = mode;
    for (const link of this.links) {
      if (mode === 'pass') {
        if (link.upstream === null) this.connectUpstream(link);
        for (const pipe of link.pipes) pipe.from.resume();
      } else {
        for (const pipe of link.pipes) pipe.from.pause();
      }
    }
    if (mode === 'pass') for (const link of this.links) link.client.resume();
  }

  getMode(): ProxyMode {
    return this.mode;
  }

  setDelay(delayMs: number, jitterMs: number): void {
    this.delayMs = delayMs;
    this.jitterMs = jitterMs;
  }

  /** Resets (RST) every open connection; new ones are accepted as the mode says. */
  reset(): number {
    const count = this.links.size;
    for (const link of [...this.links]) this.drop(link, true);
    return count;
  }

  heal(): void {
    this.setDelay(0, 0);
    this.setMode('pass');
  }

  async close(): Promise<void> {
    for (const link of [...this.links]) this.drop(link, false);
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    const link: Link = { client, upstream: null, pipes: [] };
    this.links.add(link);
    client.on('error', () => this.drop(link, false));
    client.on('close', () => this.drop(link, false));
    if (this.mode === 'blackhole') {
      client.pause();
      return;
    }
    this.connectUpstream(link);
  }

  private connectUpstream(link: Link): void {
    const upstream = net.connect(this.target.port, this.target.host);
    link.upstream = upstream;
    upstream.setNoDelay(true);
    link.client.setNoDelay(true);
    upstream.on('error', () => this.drop(link, false));
    upstream.on('close', () => this.drop(link, false));
    const up: Pipe = { from: link.client, to: upstream, lastReleaseMs: 0 };
    const down: Pipe = { from: upstream, to: link.client, lastReleaseMs: 0 };
    link.pipes.push(up, down);
    for (const pipe of [up, down]) {
      pipe.from.on('data', (chunk: Buffer) => this.forward(pipe, chunk));
      if (this.mode === 'blackhole') pipe.from.pause();
    }
    link.client.resume();
  }

  private forward(pipe: Pipe, chunk: Buffer): void {
    if (this.delayMs === 0 && this.jitterMs === 0 && pipe.lastReleaseMs <= performance.now()) {
      if (!pipe.to.destroyed) pipe.to.write(chunk);
      return;
    }
    const now = performance.now();
    const release = Math.max(pipe.lastReleaseMs, now + this.delayMs + this.prng.next() * this.jitterMs);
    pipe.lastReleaseMs = release;
    setTimeout(() => {
      if (!pipe.to.destroyed) pipe.to.write(chunk);
    }, release - now);
  }

  private drop(link: Link, rst: boolean): void {
    if (!this.links.delete(link)) return;
    for (const socket of [link.client, link.upstream]) {
      if (socket === null || socket.destroyed) continue;
      if (rst) socket.resetAndDestroy();
      else socket.destroy();
    }
  }
}
