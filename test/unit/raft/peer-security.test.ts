// Goal: the peer transport's security options work end to end in one process: with the same cluster secret two
// TcpTransports exchange messages; with different secrets, or a secret on one side only, nothing is delivered
// and the listener counts the refused proofs; a stranger cannot evict a member's connection by naming it in a
// handshake; with (mutual) TLS over a CA made by openssl messages flow, and a certificate from another CA is
// refused in the TLS handshake.
// Method: real TcpTransports on 127.0.0.1:0 with real sockets; vote requests as payload; bounded waits.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import t, { type Test } from 'tap';
import { encodeHandshake } from '../../../src/raft/codec.js';
import { PeerAuth, TcpTransport, type PeerTlsOptions } from '../../../src/raft/io/index.js';
import type { PeerMessage } from '../../../src/raft/messages.js';
import { opensslMissing, TestPki } from '../../helpers/certs.js';

interface Options {
  readonly auth?: PeerAuth;
  readonly tls?: PeerTlsOptions;
}

async function pair(t: Test, a: Options, b: Options): Promise<{ a: TcpTransport; b: TcpTransport; got: { a: PeerMessage[]; b: PeerMessage[] } }> {
  const got = { a: [] as PeerMessage[], b: [] as PeerMessage[] };
  const make = async (id: 'a' | 'b', options: Options): Promise<TcpTransport> => {
    const transport = new TcpTransport({ id, cluster: 'test', listen: '127.0.0.1:0', reconnectDelayMinMs: 10, reconnectDelayMaxMs: 100, ...options });
    t.teardown(() => transport.close());
    transport.onMessage((m) => got[id].push(m));
    await transport.start();
    return transport;
  };
  const ta = await make('a', a);
  const tb = await make('b', b);
  ta.setPeers(new Map([['b', tb.address()]]));
  tb.setPeers(new Map([['a', ta.address()]]));
  return { a: ta, b: tb, got };
}

const vote = (from: string, to: string, term: number): PeerMessage => ({ type: 'vote', from, to, term, lastLogIndex: 1, lastLogTerm: 1, transfer: false });

async function exchange(p: Awaited<ReturnType<typeof pair>>, ms: number): Promise<void> {
  const deadline = performance.now() + ms;
  for (let term = 1; performance.now() < deadline; term++) {
    p.a.send([vote('a', 'b', term)]);
    p.b.send([vote('b', 'a', term)]);
    if (p.got.a.length > 0 && p.got.b.length > 0) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

const secret = 'the-cluster-secret-0123456789';

void t.test('the same secret: messages flow both ways', async (t) => {
  const p = await pair(t, { auth: new PeerAuth(secret, 'test') }, { auth: new PeerAuth(secret, 'test') });
  await exchange(p, 5_000);
  t.ok(p.got.a.length > 0 && p.got.b.length > 0, 'both sides received');
  t.ok(p.a.isConnected('b') && p.b.isConnected('a'), 'both links are up');
});

void t.test('different secrets, or a secret on one side only: nothing is delivered', async (t) => {
  for (const [name, a, b] of [
    ['different secrets', new PeerAuth(secret, 'test'), new PeerAuth('another-secret-0123456789', 'test')],
    ['same secret, another cluster name', new PeerAuth(secret, 'test'), new PeerAuth(secret, 'other')],
    ['a secret on a only', new PeerAuth(secret, 'test'), undefined],
  ] as const) {
    const p = await pair(t, a === undefined ? {} : { auth: a }, b === undefined ? {} : { auth: b });
    await exchange(p, 1_000);
    t.same([p.got.a.length, p.got.b.length], [0, 0], `${name}: nothing delivered`);
    const rejected = p.a.stats().connectionsRejected + p.b.stats().connectionsRejected;
    t.ok(rejected > 0, `${name}: connections refused (${rejected})`);
    if (b !== undefined) t.ok(a.rejections.raft + b.rejections.raft > 0, `${name}: wrong proofs counted`);
    else t.ok(a.rejections.raft > 0, `${name}: a counted b's missing proof`);
  }
});

void t.test('an unauthenticated handshake does not evict the member it names', async (t) => {
  const p = await pair(t, { auth: new PeerAuth(secret, 'test') }, { auth: new PeerAuth(secret, 'test') });
  await exchange(p, 5_000);
  const before = p.got.b.length;
  const [host, port] = p.b.address().split(':') as [string, string];
  const stranger = net.connect({ host, port: Number(port) });
  t.teardown(() => stranger.destroy());
  await new Promise((r) => stranger.once('connect', r));
  const handshake = encodeHandshake({ clusterName: 'test', from: 'a', to: 'b' });
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(handshake.byteLength);
  stranger.write(Buffer.concat([prefix, handshake]));
  await new Promise((r) => setTimeout(r, 200));
  p.a.send([vote('a', 'b', 99)]);
  const deadline = performance.now() + 3_000;
  while (!p.got.b.some((m) => m.term === 99) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.ok(p.got.b.some((m) => m.term === 99), 'a\'s own connection still delivers');
  t.ok(p.got.b.length > before, 'messages kept flowing');
});

const missing = opensslMissing();

void t.test('TLS, mutual TLS and TLS with the secret', { skip: missing ?? false }, async (t) => {
  const pki = new TestPki();
  t.teardown(() => pki.remove());
  const ca = pki.ca('ca');
  const files = (name: string, signer = ca): PeerTlsOptions & { mutual: boolean } => {
    const leaf = pki.leaf(name, signer);
    return { cert: readFileSync(leaf.cert), key: readFileSync(leaf.key), ca: readFileSync(ca.cert), mutual: true };
  };
  const a = files('a');
  const b = files('b');
  const tlsOnly = await pair(t, { tls: { ...a, mutual: false } }, { tls: { ...b, mutual: false } });
  await exchange(tlsOnly, 5_000);
  t.ok(tlsOnly.got.a.length > 0 && tlsOnly.got.b.length > 0, 'server-authenticated TLS: messages flow');
  const mutual = await pair(t, { tls: a, auth: new PeerAuth(secret, 'test') }, { tls: b, auth: new PeerAuth(secret, 'test') });
  await exchange(mutual, 5_000);
  t.ok(mutual.got.a.length > 0 && mutual.got.b.length > 0, 'mutual TLS with the secret: messages flow');

  const rogueCa = pki.ca('rogue-ca');
  const rogue = files('rogue', rogueCa);
  const refused = await pair(t, { tls: a }, { tls: rogue });
  await exchange(refused, 1_500);
  t.equal(refused.got.a.length, 0, 'a certificate from another CA gets nothing into a mutual-TLS listener');
  t.ok(refused.a.stats().connectionsRejected > 0, 'the listener counted the refused TLS handshakes');
  const plain = await pair(t, { tls: a }, {});
  await exchange(plain, 1_000);
  t.same([plain.got.a.length, plain.got.b.length], [0, 0], 'a plain-TCP peer and a TLS peer do not talk');
});

void t.test('mutual TLS with allowedCn: only certificates with that common name get in', { skip: missing ?? false }, async (t) => {
  const pki = new TestPki();
  t.teardown(() => pki.remove());
  const ca = pki.ca('ca');
  const files = (name: string, cn: string): PeerTlsOptions => {
    const leaf = pki.leaf(name, ca, cn);
    return { cert: readFileSync(leaf.cert), key: readFileSync(leaf.key), ca: readFileSync(ca.cert), mutual: true, allowedCn: 'keel-peer' };
  };
  const a = files('a', 'keel-peer');
  const b = files('b', 'keel-peer');
  const peers = await pair(t, { tls: a }, { tls: b });
  await exchange(peers, 5_000);
  t.ok(peers.got.a.length > 0 && peers.got.b.length > 0, 'two certificates with the allowed common name: messages flow');

  // The same CA issued a certificate for an HTTP client: valid, but not a peer's.
  const app = files('app', 'app');
  const refused = await pair(t, { tls: a }, { tls: app });
  await exchange(refused, 1_500);
  t.equal(refused.got.a.length, 0, 'a certificate from the same CA with another common name gets nothing in');
  t.ok(refused.a.stats().connectionsRejected > 0, 'the listener counted the refused connections');
  t.ok(refused.got.b.length > 0, "the refusal is the listener's: a, dialing the other way, is let in (its common name is the allowed one)");
});
