// Goal: with a cluster secret, a process that does not know it cannot join or inject Raft messages, and cannot
// propose through the internal route; the correctly configured cluster works as usual.
// Method: a real 3-node cluster reads its secret from peerSecretFile. Three strangers then try the peer port of
// every node: the real TcpTransport with a wrong secret, the real TcpTransport with no secret, and a raw socket
// that sends a valid handshake and a vote request with a huge term without waiting for the challenge. Afterwards
// term and leader are unchanged on every node and the nodes count the refused proofs. Then the internal propose
// route is called without a proof, with a proof made from a wrong secret, with a replayed proof, with a stale one
// and with a proof for another body: each gets 401 and the keys they tried to write never appear.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { request } from 'undici';
import { encodeHandshake, encodeMessage } from '../../src/raft/codec.js';
import { TcpTransport } from '../../src/raft/io/index.js';
import type { PeerMessage } from '../../src/raft/messages.js';
import { encodeCommand } from '../../src/store/index.js';
import { PeerAuth, peerAuthHeader } from '../../src/util/peer-auth.js';
import { sleep, startCluster, type TestCluster } from '../helpers/cluster.js';

const secret = 'a-cluster-secret-for-the-test-0123456789';

function frame(bytes: Uint8Array): Buffer {
  const prefix = Buffer.allocUnsafe(4);
  prefix.writeUInt32BE(bytes.byteLength, 0);
  return Buffer.concat([prefix, bytes]);
}

async function rawStranger(address: string, to: string, message: PeerMessage): Promise<void> {
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  await new Promise<void>((resolve) => {
    const socket = net.connect({ host, port }, () => {
      socket.write(frame(encodeHandshake({ clusterName: 'test', from: 'n9', to })));
      for (let i = 0; i < 5; i++) socket.write(frame(encodeMessage(message)));
    });
    socket.on('error', () => resolve());
    socket.on('close', () => resolve());
    setTimeout(() => {
      socket.destroy();
      resolve();
    }, 3_000);
  });
}

async function metric(cluster: TestCluster, id: string, pattern: RegExp): Promise<number> {
  const text = await (await request(`http://${cluster.node(id).client}/metrics`)).body.text();
  return Number(pattern.exec(text)?.[1] ?? 'NaN');
}

void t.test('a process without the cluster secret cannot inject Raft messages or proposals', { timeout: 120_000 }, async (t) => {
  const secretDir = mkdtempSync(path.join(os.tmpdir(), 'keel-secret-'));
  t.teardown(() => rmSync(secretDir, { recursive: true, force: true }));
  const secretFile = path.join(secretDir, 'peer-secret');
  writeFileSync(secretFile, `${secret}\n`, { mode: 0o600 });
  const cluster = await startCluster(t, { config: { peerSecretFile: secretFile }, raft: { tickMs: 50, electionTicks: 12 } });
  const leader = await cluster.waitForLeader(30_000);
  const followers = cluster.nodes.filter((n) => n.id !== leader).map((n) => n.id);
  const writer = cluster.client([followers[0]!], { retryMs: 10_000 });
  t.equal((await writer.call('PUT', '/v1/kv/secret/ok', { value: '1' })).status, 200, 'a put through a follower (a forwarded proposal) works');

  const before = await Promise.all(cluster.nodes.map((n) => cluster.status(n.id)));
  const maxTerm = Math.max(...before.map((s) => s!.term));
  const vote = (to: string, from: string): PeerMessage => ({
    type: 'vote', from, to, term: maxTerm + 1000, lastLogIndex: 1e9, lastLogTerm: maxTerm + 1000, transfer: true,
  });

  // Strangers posing as a member (n2 is a member; if it is the leader, the votes to it are still refused).
  const peers = new Map(cluster.nodes.map((n) => [n.id, n.peer]));
  const wrong = new TcpTransport({ id: 'n2', cluster: 'test', listen: '127.0.0.1:0', peers, auth: new PeerAuth('not-the-secret-not-the-secret', 'test') });
  const none = new TcpTransport({ id: 'n3', cluster: 'test', listen: '127.0.0.1:0', peers });
  await wrong.start();
  await none.start();
  t.teardown(() => wrong.close());
  t.teardown(() => none.close());
  for (let i = 0; i < 10; i++) {
    wrong.send(cluster.nodes.filter((n) => n.id !== 'n2').map((n) => vote(n.id, 'n2')));
    none.send(cluster.nodes.filter((n) => n.id !== 'n3').map((n) => vote(n.id, 'n3')));
    await sleep(200);
  }
  await Promise.all(cluster.nodes.map((n) => rawStranger(n.peer, n.id, vote(n.id, 'n9'))));
  t.notOk(cluster.nodes.some((n) => n.id !== 'n2' && wrong.isConnected(n.id)), 'the wrong-secret transport never stays connected');

  const after = await Promise.all(cluster.nodes.map((n) => cluster.status(n.id)));
  for (const [i, status] of after.entries()) {
    t.equal(status?.term, before[i]?.term, `${cluster.nodes[i]!.id}: the term did not move`);
    t.equal(status?.leader, leader, `${cluster.nodes[i]!.id}: the leader did not change`);
  }
  let refused = 0;
  for (const n of cluster.nodes) refused += await metric(cluster, n.id, /keel_peer_auth_rejections_total\{kind="raft"[^}]*\} (\d+)/);
  t.ok(refused >= 3, `the nodes counted the refused proofs (${refused})`);
  t.match(readFileSync(path.join(cluster.dir, `${leader}.log`), 'utf8'), /wrong cluster-secret proof/, 'the leader logs the refusal');

  // The internal propose route.
  const url = `http://${cluster.node(leader).client}/internal/v1/propose`;
  const command = encodeCommand({ requestId: '', cmd: { kind: 'put', key: 'secret/intruder', value: 'x', lease: 0, prevKv: false } });
  const other = encodeCommand({ requestId: '', cmd: { kind: 'put', key: 'secret/intruder2', value: 'y', lease: 0, prevKv: false } });
  const post = async (body: Uint8Array, header?: string): Promise<{ status: number; code: string | undefined }> => {
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
    if (header !== undefined) headers[peerAuthHeader] = header;
    const response = await request(url, { method: 'POST', headers, body });
    const parsed = JSON.parse(await response.body.text()) as { error?: { code?: string } };
    return { status: response.statusCode, code: parsed.error?.code };
  };
  const wrongAuth = new PeerAuth('not-the-secret-not-the-secret', 'test');
  t.same(await post(command), { status: 401, code: 'UNAUTHENTICATED' }, 'no proof: 401');
  t.same(await post(command, wrongAuth.internalHeader('n2', 'POST', '/internal/v1/propose', command, Date.now())), { status: 401, code: 'UNAUTHENTICATED' }, 'a proof from a wrong secret: 401');
  t.same(await post(command, 'v1 n2 0 00 11 22'), { status: 401, code: 'UNAUTHENTICATED' }, 'a malformed proof: 401');
  // A genuine proof (made with the real secret, as a sniffer might capture one) works once, for its body only.
  const rightAuth = new PeerAuth(secret, 'test');
  const legit = encodeCommand({ requestId: '', cmd: { kind: 'put', key: 'secret/legit', value: 'z', lease: 0, prevKv: false } });
  const captured = rightAuth.internalHeader(followers[0]!, 'POST', '/internal/v1/propose', legit, Date.now());
  t.same(await post(legit, captured), { status: 200, code: undefined }, 'a genuine proof for its body: applied');
  t.same(await post(legit, captured), { status: 401, code: 'UNAUTHENTICATED' }, 'the same request replayed (its nonce was spent): 401');
  const forOther = rightAuth.internalHeader(followers[0]!, 'POST', '/internal/v1/propose', other, Date.now());
  t.same(await post(command, forOther), { status: 401, code: 'UNAUTHENTICATED' }, 'a genuine proof sent with another body: 401');
  const old = rightAuth.internalHeader(followers[0]!, 'POST', '/internal/v1/propose', other, Date.now() - 5 * 60_000);
  t.same(await post(other, old), { status: 401, code: 'UNAUTHENTICATED' }, 'a proof from five minutes ago: 401');

  for (const key of ['secret/intruder', 'secret/intruder2']) {
    await t.rejects(writer.call('GET', `/v1/kv/${key}`), { code: 'KEY_NOT_FOUND' }, `${key} was never written`);
  }
  t.ok((await metric(cluster, leader, /keel_peer_auth_rejections_total\{kind="internal"[^}]*\} (\d+)/)) >= 6, 'the leader counted the refused internal requests');
  t.equal((await writer.call('PUT', '/v1/kv/secret/ok2', { value: '2' })).status, 200, 'the cluster still serves forwarded writes');
});

void t.test('a node whose secret differs from the cluster\'s cannot get its proposals or votes in', { timeout: 120_000 }, async (t) => {
  // Two processes with the secret and one with another: the two elect a leader between them; the odd one out
  // never becomes leader and its forwarded writes are refused as UNAVAILABLE (not applied).
  const cluster = await startCluster(t, { config: { peerSecret: secret }, raft: { tickMs: 50, electionTicks: 12 } });
  const odd = cluster.nodes[2]!;
  await cluster.kill(odd.id);
  const config = JSON.parse(readFileSync(cluster.configFile, 'utf8')) as Record<string, unknown>;
  const oddConfig = path.join(cluster.dir, 'odd.config.json');
  writeFileSync(oddConfig, JSON.stringify({ ...config, peerSecret: 'a-different-secret-0123456789' }));
  const leader = await cluster.waitForLeader(30_000, ['n1', 'n2']);
  cluster.start(odd.id, oddConfig);
  await sleep(3_000);
  const oddStatus = await cluster.status(odd.id);
  t.not(oddStatus?.role, 'leader', 'the node with the wrong secret is not leader');
  t.equal((await cluster.status(leader))?.leader, leader, 'the leader is unchanged');
  const oddClient = cluster.client([odd.id], { retryMs: 0, timeoutMs: 10_000 });
  await t.rejects(oddClient.call('PUT', '/v1/kv/odd', { value: 'x' }), { code: 'UNAVAILABLE' }, 'its write is refused, not applied');
  await t.rejects(cluster.client([leader]).call('GET', '/v1/kv/odd'), { code: 'KEY_NOT_FOUND' }, 'nothing was applied');
});
