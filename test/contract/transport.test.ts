// Goal: MemoryTransport and TcpTransport keep the same contract: per-peer order, large messages, bounded queues,
// unreachable reports, reconnection after a peer restarts, refusal of foreign or broken peers, and close() freeing
// the address. TcpTransport additionally survives hostile bytes on its peer port.
// Method: the same cases run against both implementations (TCP on 127.0.0.1 with ephemeral ports); TCP-only cases
// open raw sockets and send garbage, an oversized length prefix, wrong handshakes and forged senders, then check
// that connection is closed, nothing reached the handler, and the transport still delivers. Every transport and
// socket is closed in t.teardown.
import net from 'node:net';
import t from 'tap';
import { encodeHandshake, encodeMessage } from '../../src/raft/codec.js';
import { FrameDecoder, TcpTransport } from '../../src/raft/io/tcp-transport.js';
import { MemoryNetwork, MemoryTransport, parseHostPort, type Transport, type TransportOptions } from '../../src/raft/io/transport.js';
import type { PeerMessage } from '../../src/raft/messages.js';
import type { NodeId } from '../../src/raft/types.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];
type MakeOptions = Partial<TransportOptions> & { id: NodeId };

interface Harness {
  readonly anyAddress: string;
  /** A started transport, closed at teardown. */
  make(options: MakeOptions): Promise<Transport>;
}

interface Implementation {
  readonly name: string;
  harness(t: Test): Harness;
}

const implementations: Implementation[] = [
  {
    name: 'MemoryTransport',
    harness: (t) => {
      const network = new MemoryNetwork();
      return {
        anyAddress: 'memory:0',
        make: async (options) => {
          const transport = new MemoryTransport(network, { cluster: 'test', listen: 'memory:0', ...options });
          t.teardown(() => transport.close());
          await transport.start();
          return transport;
        },
      };
    },
  },
  {
    name: 'TcpTransport',
    harness: (t) => ({
      anyAddress: '127.0.0.1:0',
      make: async (options) => {
        const transport = new TcpTransport({
          cluster: 'test', listen: '127.0.0.1:0', reconnectDelayMinMs: 10, reconnectDelayMaxMs: 100, ...options,
        });
        t.teardown(() => transport.close());
        await transport.start();
        return transport;
      },
    }),
  },
];

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function eventually(what: string, condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** Collects what a transport delivers and what it reports unreachable. */
function listen(transport: Transport): { messages: PeerMessage[]; unreachable: NodeId[] } {
  const inbox = { messages: [] as PeerMessage[], unreachable: [] as NodeId[] };
  transport.onMessage((message) => inbox.messages.push(message));
  transport.onUnreachable((peer) => inbox.unreachable.push(peer));
  return inbox;
}

const heartbeat = (from: NodeId, to: NodeId, context: string): PeerMessage => ({ type: 'heartbeat', from, to, term: 1, commit: 0, context });
const contexts = (messages: readonly PeerMessage[]): string[] => messages.map((m) => ('context' in m ? m.context : '?'));

/** Two started transports a and b that know each other. */
async function pair(h: Harness, options: Partial<TransportOptions> = {}): Promise<{ a: Transport; b: Transport }> {
  const a = await h.make({ id: 'a', ...options });
  const b = await h.make({ id: 'b', ...options });
  a.setPeers(new Map([['b', b.address()]]));
  b.setPeers(new Map([['a', a.address()]]));
  return { a, b };
}

/** Sends from `from` (node "a") every few milliseconds until `inbox` holds a message with `context`. */
async function sendUntilDelivered(from: Transport, to: NodeId, inbox: { messages: PeerMessage[] }, context: string): Promise<void> {
  await eventually(`delivery of ${context}`, () => {
    from.send([heartbeat('a', to, context)]);
    return contexts(inbox.messages).includes(context);
  });
}

for (const impl of implementations) {
  void t.test(impl.name, async (t) => {
    void t.test('delivery in order per peer, both ways, batched and one by one', async (t) => {
      const h = impl.harness(t);
      const { a, b } = await pair(h);
      const atB = listen(b);
      const atA = listen(a);
      const expected = Array.from({ length: 3000 }, (_, i) => `m${i}`);
      for (let i = 0; i < 1000; i++) a.send([heartbeat('a', 'b', expected[i]!)]);
      a.send(expected.slice(1000, 2500).map((c) => heartbeat('a', 'b', c)));
      await sleep(1);
      a.send(expected.slice(2500).map((c) => heartbeat('a', 'b', c)));
      b.send(expected.slice(0, 500).map((c) => heartbeat('b', 'a', c)));
      await eventually('3000 messages at b', () => atB.messages.length >= 3000);
      await eventually('500 messages at a', () => atA.messages.length >= 500);
      t.same(contexts(atB.messages), expected, 'every message, in order');
      t.same(contexts(atA.messages), expected.slice(0, 500));
      t.ok(atB.messages.every((m) => m.from === 'a' && m.to === 'b'));
      t.equal(a.stats().messagesSent, 3000);
      t.equal(b.stats().messagesReceived, 3000);
      t.equal(a.stats().messagesDropped, 0);
      t.ok(a.isConnected('b'));
      t.notOk(a.isConnected('zz'));
    });

    void t.test('a 2 MiB snapshot chunk arrives intact', async (t) => {
      const h = impl.harness(t);
      const { a, b } = await pair(h);
      const atB = listen(b);
      const data = new Uint8Array(2 * 1024 * 1024).map((_, i) => (i * 31) & 0xff);
      const chunk: PeerMessage = {
        type: 'snapshot', from: 'a', to: 'b', term: 3, offset: 0, data, totalBytes: data.byteLength, done: true,
        metadata: { index: 100, term: 3, conf: { voters: ['a', 'b'], learners: [] } },
      };
      a.send([heartbeat('a', 'b', 'before'), chunk, heartbeat('a', 'b', 'after')]);
      await eventually('three messages', () => atB.messages.length >= 3);
      const received = atB.messages[1]!;
      // Bytes compared with Buffer.equals: a deep comparison of 2 MiB element by element takes seconds.
      t.ok(received.type === 'snapshot' && Buffer.from(received.data).equals(data), 'the data, byte for byte');
      t.same({ ...received, data: null }, { ...chunk, data: null }, 'and every other field');
      t.same(contexts([atB.messages[0]!, atB.messages[2]!]), ['before', 'after']);
    });

    void t.test('messages over messageBytesMax are dropped at the sender', async (t) => {
      const h = impl.harness(t);
      const { a, b } = await pair(h, { messageBytesMax: 1024 * 1024 });
      const atB = listen(b);
      const data = new Uint8Array(2 * 1024 * 1024);
      a.send([{ type: 'append', from: 'a', to: 'b', term: 1, prevLogIndex: 0, prevLogTerm: 0, commit: 0, entries: [{ type: 'normal', term: 1, index: 1, data }] }]);
      a.send([heartbeat('a', 'b', 'small')]);
      await eventually('the small message', () => atB.messages.length >= 1);
      t.same(contexts(atB.messages), ['small']);
      t.equal(a.stats().messagesDropped, 1);
    });

    void t.test('the outbound queue is bounded: the oldest messages are dropped and counted', async (t) => {
      const h = impl.harness(t);
      const a = await h.make({ id: 'a', outboundQueueMessagesMax: 100 });
      const inbox = listen(a);
      const b = await h.make({ id: 'b' });
      const address = b.address();
      await b.close(); // nobody listens there now
      a.setPeers(new Map([['b', address]]));
      a.send(Array.from({ length: 10_000 }, (_, i) => heartbeat('a', 'b', `m${i}`)));
      t.ok(a.stats().messagesDropped >= 9900, `dropped ${a.stats().messagesDropped}`);
      await eventually('an unreachable report', () => inbox.unreachable.includes('b'));
      t.notOk(a.isConnected('b'));
    });

    void t.test('unknown peers are reported unreachable', async (t) => {
      const h = impl.harness(t);
      const { a } = await pair(h);
      const atA = listen(a);
      a.send([heartbeat('a', 'nobody', 'x')]);
      await eventually('an unreachable report', () => atA.unreachable.includes('nobody'));
      t.equal(a.stats().messagesDropped, 1);
    });

    void t.test('a peer that restarts on the same address is reached again', async (t) => {
      const h = impl.harness(t);
      const { a, b } = await pair(h);
      const atA = listen(a);
      const atB = listen(b);
      await sendUntilDelivered(a, 'b', atB, 'first');
      const address = b.address();
      await b.close();
      await eventually('an unreachable report', () => {
        a.send([heartbeat('a', 'b', 'lost')]);
        return atA.unreachable.includes('b');
      });
      const b2 = await h.make({ id: 'b', listen: address });
      const atB2 = listen(b2);
      await sendUntilDelivered(a, 'b', atB2, 'second');
      t.ok(a.isConnected('b'));
      t.ok(a.stats().connectFailures >= 1);
    });

    void t.test('setPeers: a moved peer is followed, a removed one is dropped', async (t) => {
      const h = impl.harness(t);
      const { a, b } = await pair(h);
      const atB = listen(b);
      await sendUntilDelivered(a, 'b', atB, 'one');
      const b2 = await h.make({ id: 'b' });
      const atB2 = listen(b2);
      a.setPeers(new Map([['b', b2.address()]]));
      await sendUntilDelivered(a, 'b', atB2, 'two');
      t.notOk(contexts(atB.messages).includes('two'));
      a.setPeers(new Map());
      const atA = listen(a);
      a.send([heartbeat('a', 'b', 'three')]);
      await eventually('an unreachable report', () => atA.unreachable.includes('b'));
    });

    void t.test('a peer from another cluster is refused; the transport keeps working', async (t) => {
      const h = impl.harness(t);
      const { a, b } = await pair(h);
      const atB = listen(b);
      const stranger = await h.make({ id: 'a', cluster: 'other' });
      const atStranger = listen(stranger);
      stranger.setPeers(new Map([['b', b.address()]]));
      await eventually('the stranger is refused', () => {
        stranger.send([heartbeat('a', 'b', 'foreign')]);
        return atStranger.unreachable.includes('b') && b.stats().connectionsRejected > 0;
      });
      await sendUntilDelivered(a, 'b', atB, 'native');
      t.notOk(contexts(atB.messages).includes('foreign'));
    });

    void t.test('close() frees the address and is idempotent', async (t) => {
      const h = impl.harness(t);
      const a = await h.make({ id: 'a' });
      const address = a.address();
      await t.rejects(h.make({ id: 'x', listen: address }), { message: /in use/ }, 'the address is taken while open');
      await a.close();
      await a.close();
      const again = await h.make({ id: 'a', listen: address });
      t.equal(again.address(), address);
    });
  });
}

// ---- TCP only: hostile bytes on the peer port -----------------------------------------------------------------

/** A raw client socket; resolves `closed` when the server hangs up. */
async function rawConnect(t: Test, address: string): Promise<{ socket: net.Socket; closed: Promise<void> }> {
  const { host, port } = parseHostPort(address);
  const socket = net.connect({ host, port });
  t.teardown(() => socket.destroy());
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  return { socket, closed };
}

const frame = (payload: Uint8Array): Buffer => {
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(payload.byteLength);
  return Buffer.concat([prefix, payload]);
};

async function tcpPair(t: Test, extra: Partial<TransportOptions> & { handshakeTimeoutMs?: number } = {}): Promise<{ a: TcpTransport; b: TcpTransport }> {
  const make = async (id: NodeId): Promise<TcpTransport> => {
    const transport = new TcpTransport({ id, cluster: 'test', listen: '127.0.0.1:0', reconnectDelayMinMs: 10, ...extra });
    t.teardown(() => transport.close());
    await transport.start();
    return transport;
  };
  const a = await make('a');
  const b = await make('b');
  a.setPeers(new Map([['b', b.address()]]));
  b.setPeers(new Map([['a', a.address()]]));
  return { a, b };
}

void t.test('TcpTransport on hostile input', async (t) => {
  // Raw peers call themselves "c": claiming to be "a" would replace a's own connection (the newest per peer wins).
  const cases: [string, (socket: net.Socket) => void][] = [
    ['random garbage', (s) => s.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))],
    ['an oversized length prefix', (s) => s.write(Buffer.from([0xff, 0xff, 0xff, 0xff]))],
    ['a zero length prefix', (s) => s.write(Buffer.from([0, 0, 0, 0]))],
    ['a 5000-byte frame before any handshake (limit 4096)', (s) => s.write(Buffer.from([0, 0, 0x13, 0x88]))],
    ['a garbage frame instead of a handshake', (s) => s.write(frame(Buffer.from('not a handshake at all')))],
    ['a handshake from another cluster', (s) => s.write(frame(encodeHandshake({ clusterName: 'other', from: 'c', to: 'b' })))],
    ['a handshake for another node', (s) => s.write(frame(encodeHandshake({ clusterName: 'test', from: 'c', to: 'z' })))],
    ['a message where the handshake belongs', (s) => s.write(frame(encodeMessage(heartbeat('c', 'b', 'x'))))],
    ['a garbage frame after the handshake', (s) => {
      s.write(frame(encodeHandshake({ clusterName: 'test', from: 'c', to: 'b' })));
      s.write(frame(Buffer.alloc(100, 0xab)));
    }],
    ['an oversized frame after the handshake', (s) => {
      s.write(frame(encodeHandshake({ clusterName: 'test', from: 'c', to: 'b' })));
      s.write(Buffer.from([0x00, 0x20, 0x00, 0x01])); // 2 MiB + 1 > messageBytesMax of 2 MiB
    }],
    ['a message from a sender other than the handshake named', (s) => {
      s.write(frame(encodeHandshake({ clusterName: 'test', from: 'c', to: 'b' })));
      s.write(frame(encodeMessage(heartbeat('d', 'b', 'forged'))));
    }],
    ['a message addressed to another node', (s) => {
      s.write(frame(encodeHandshake({ clusterName: 'test', from: 'c', to: 'b' })));
      s.write(frame(encodeMessage(heartbeat('c', 'z', 'misaddressed'))));
    }],
    ['no handshake at all', () => {}],
  ];
  const { a, b } = await tcpPair(t, { messageBytesMax: 2 * 1024 * 1024, handshakeTimeoutMs: 200 });
  const atB = listen(b);
  for (const [what, attack] of cases) {
    const rejectedBefore = b.stats().connectionsRejected;
    const { socket, closed } = await rawConnect(t, b.address());
    attack(socket);
    await closed;
    t.equal(b.stats().connectionsRejected, rejectedBefore + 1, `${what}: that connection was closed`);
    await sendUntilDelivered(a, 'b', atB, `after ${what}`);
  }
  t.same(
    atB.messages.filter((m) => m.type !== 'heartbeat' || !m.context.startsWith('after ')),
    [],
    'nothing from the hostile connections reached the handler',
  );
});

void t.test('TcpTransport: a valid raw peer is accepted and frames may arrive split anyhow', async (t) => {
  const { b } = await tcpPair(t);
  const atB = listen(b);
  const { socket } = await rawConnect(t, b.address());
  // As node "c": a second connection claiming to be "a" would replace a's own (the newest one per peer wins).
  const bytes = Buffer.concat([
    frame(encodeHandshake({ clusterName: 'test', from: 'c', to: 'b' })),
    ...['x', 'y', 'z'].map((c) => frame(encodeMessage(heartbeat('c', 'b', c)))),
  ]);
  for (let i = 0; i < bytes.byteLength; i += 3) {
    socket.write(bytes.subarray(i, i + 3));
    await sleep(0);
  }
  await eventually('three messages', () => atB.messages.length >= 3);
  t.same(contexts(atB.messages), ['x', 'y', 'z']);
});

void t.test('TcpTransport: close() frees the port for anyone', async (t) => {
  const { b } = await tcpPair(t);
  const { port } = parseHostPort(b.address());
  await b.close();
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => server.close(() => resolve()));
  t.pass(`port ${port} was free again`);
});

void t.test('FrameDecoder: frames across and within chunks; bad lengths throw', async (t) => {
  const decoder = new FrameDecoder(16);
  const data = Buffer.concat([frame(Buffer.from('hello')), frame(Buffer.from('w')), frame(Buffer.from('0123456789abcdef'))]);
  const out: string[] = [];
  for (const byte of data) {
    decoder.push(Buffer.from([byte]));
    for (let f = decoder.next(); f !== null; f = decoder.next()) out.push(f.toString());
  }
  decoder.push(data);
  for (let f = decoder.next(); f !== null; f = decoder.next()) out.push(f.toString());
  t.same(out, ['hello', 'w', '0123456789abcdef', 'hello', 'w', '0123456789abcdef']);
  const tooBig = new FrameDecoder(16);
  tooBig.push(frame(Buffer.alloc(17)));
  t.throws(() => tooBig.next(), { name: 'FrameError' });
});

void t.test('MemoryTransport: a corrupt frame is refused and never delivered', async (t) => {
  const network = new MemoryNetwork();
  const b = new MemoryTransport(network, { id: 'b', cluster: 'test', listen: 'memory:0' });
  t.teardown(() => b.close());
  await b.start();
  const atB = listen(b);
  const good = encodeMessage(heartbeat('a', 'b', 'ok'));
  const bad = good.slice();
  bad[bad.byteLength - 1]! ^= 1;
  network.inject(b.address(), 'a', 'test', bad);
  network.inject(b.address(), 'c', 'test', good); // the frame's sender is not who sent it
  network.inject(b.address(), 'a', 'test', good);
  t.same(contexts(atB.messages), ['ok']);
  t.equal(b.stats().connectionsRejected, 2);
});

void t.test('TcpTransport: reconnection backs off exponentially up to the cap', async (t) => {
  // A listener that accepts and hangs up at once, as a peer refusing us would: each accept is one attempt.
  const attemptsAtMs: number[] = [];
  const server = net.createServer((socket) => {
    attemptsAtMs.push(performance.now());
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  const { port } = server.address() as net.AddressInfo;
  const a = new TcpTransport({ id: 'a', cluster: 'test', listen: '127.0.0.1:0', reconnectDelayMinMs: 10, reconnectDelayMaxMs: 80 });
  t.teardown(() => a.close());
  const unreachable: NodeId[] = [];
  a.onUnreachable((peer) => unreachable.push(peer));
  await a.start();
  a.setPeers(new Map([['b', `127.0.0.1:${port}`]]));
  await sleep(700);
  const gaps = attemptsAtMs.slice(1).map((at, i) => at - attemptsAtMs[i]!);
  // Delays 10, 20, 40, 80, 80, ...: about 11 attempts in 700 ms; without back-off there would be hundreds.
  t.ok(attemptsAtMs.length >= 5 && attemptsAtMs.length <= 14, `${attemptsAtMs.length} attempts`);
  t.ok(gaps.slice(3).every((gap) => gap >= 70), `capped gaps ${gaps.map((g) => g.toFixed(0)).join(' ')}`);
  t.ok(gaps[2]! > gaps[0]!, 'the delay grows');
  t.ok(unreachable.includes('b'), 'each failure is reported');
});
