// Goal: hostile or broken bytes on a node's ports never hurt the cluster. On every PEER port: random bytes, an
// HTTP request, huge length prefixes, a well-sealed but malformed handshake, a handshake naming another cluster,
// and a frame announced but never completed. On every CLIENT port: random bytes, malformed HTTP, a truncated body,
// invalid JSON, wrong JSON types and an oversized body. Afterwards the cluster is healthy: the same leader in the
// same term, writes succeed, every process is alive; peer connections carrying garbage are closed by the node,
// and no bad input is answered with a 5xx.
// Method: a real 3-node cluster (test/helpers/cluster.ts); raw TCP sockets (node:net) and fetch against every
// node, all concurrently; then /v1/status, a write through every node, and a PID check. Sockets the test opens are
// destroyed in teardown; every child is killed by PID in teardown.
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { Packr } from 'msgpackr';
import t from 'tap';
import { encodeHandshake } from '../../src/raft/codec.js';
import { crc32 } from '../../src/util/crc32.js';
import { startCluster, type TestNode } from '../helpers/cluster.js';
import { isAlive, setupWaitMs } from '../helpers/runtime.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

interface RawResult {
  /** The node closed the connection (rather than the test giving up waiting). */
  readonly closedByPeer: boolean;
  readonly response: string;
}

const openSockets = new Set<net.Socket>();

/** Connects, writes `chunks`, and collects what comes back until the node closes or `waitMs` passes. */
function sendRaw(address: string, chunks: readonly Uint8Array[], waitMs: number): Promise<RawResult> {
  const at = address.lastIndexOf(':');
  return new Promise((resolve) => {
    const socket = net.connect({ host: address.slice(0, at), port: Number(address.slice(at + 1)) });
    openSockets.add(socket);
    const received: Buffer[] = [];
    let closedByPeer = false;
    const finish = (): void => {
      clearTimeout(timer);
      openSockets.delete(socket);
      socket.destroy();
      resolve({ closedByPeer, response: Buffer.concat(received).toString('latin1') });
    };
    const timer = setTimeout(finish, waitMs);
    socket.on('connect', () => {
      for (const chunk of chunks) socket.write(chunk);
    });
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.on('error', () => {
      // ECONNRESET/EPIPE: the node cut the connection, which is what garbage deserves.
      closedByPeer = true;
    });
    socket.on('end', () => {
      closedByPeer = true;
    });
    socket.on('close', () => {
      closedByPeer = true;
      finish();
    });
  });
}

function lengthPrefix(length: number): Buffer {
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(length >>> 0, 0);
  return prefix;
}

/** A frame with the codec's envelope (version 1, handshake kind, a correct CRC) around an arbitrary payload. */
function sealedHandshakeFrame(payload: unknown): Buffer {
  const body = new Packr({ useRecords: false }).pack(payload);
  const record = Buffer.alloc(6 + body.byteLength);
  record[0] = 1;
  record[1] = 6;
  body.copy(record, 6);
  record.writeUInt32BE(crc32(body, crc32(record.subarray(0, 2))), 2);
  return Buffer.concat([lengthPrefix(record.byteLength), record]);
}

const peerGarbage: { name: string; chunks: () => Uint8Array[]; mustClose: boolean }[] = [
  { name: 'random bytes', chunks: () => [randomBytes(64 * 1024)], mustClose: true },
  { name: 'an HTTP request', chunks: () => [Buffer.from('GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n')], mustClose: true },
  { name: 'length prefix 0xFFFFFFFF', chunks: () => [lengthPrefix(0xffffffff), randomBytes(1024)], mustClose: true },
  { name: 'length prefix 2^31', chunks: () => [lengthPrefix(2 ** 31), randomBytes(16)], mustClose: true },
  { name: 'length prefix 0', chunks: () => [lengthPrefix(0)], mustClose: true },
  { name: 'random bytes in a valid-length frame', chunks: () => [lengthPrefix(200), randomBytes(200)], mustClose: true },
  { name: 'a sealed handshake with a malformed payload', chunks: () => [sealedHandshakeFrame({ a: [1, 2, { b: 'c' }] })], mustClose: true },
  { name: 'a sealed handshake tuple of wrong types', chunks: () => [sealedHandshakeFrame([1, -2, null])], mustClose: true },
  {
    name: 'a handshake from another cluster',
    chunks: () => {
      const handshake = encodeHandshake({ clusterName: 'not-this-cluster', from: 'n1', to: 'n2' });
      return [lengthPrefix(handshake.byteLength), handshake];
    },
    mustClose: true,
  },
  // A frame announced but never completed: the node may hold it until its handshake timeout; it must not block.
  { name: 'an incomplete frame left open', chunks: () => [lengthPrefix(4000), randomBytes(10)], mustClose: false },
];

const clientGarbage: { name: string; chunks: () => Uint8Array[] }[] = [
  { name: 'random bytes', chunks: () => [randomBytes(16 * 1024)] },
  { name: 'a non-HTTP line', chunks: () => [Buffer.from('HELLO KEEL\r\n\r\n')] },
  { name: 'a bad request line', chunks: () => [Buffer.from('GET\r\n\r\n')] },
  { name: 'a header without a colon', chunks: () => [Buffer.from('GET /health HTTP/1.1\r\nHost x\r\n\r\n')] },
  { name: 'a 100 KiB header', chunks: () => [Buffer.from(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(100 * 1024)}\r\n\r\n`)] },
  { name: 'a bad chunked body', chunks: () => [Buffer.from('PUT /v1/kv/garbage/chunked HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nnope\r\n')] },
  {
    name: 'a body shorter than its Content-Length',
    chunks: () => [Buffer.from('PUT /v1/kv/garbage/short HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"value":')],
  },
  { name: 'a huge Content-Length', chunks: () => [Buffer.from('PUT /v1/kv/garbage/huge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n{}')] },
];

/** Bad requests that are well-formed HTTP: each must get a 4xx, never a 5xx. */
const badRequests: { name: string; path: string; init: RequestInit; status: number }[] = [
  { name: 'invalid JSON', path: '/v1/kv/garbage/a', init: { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"value": nope' }, status: 400 },
  { name: 'a value of the wrong type', path: '/v1/kv/garbage/b', init: { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"value": 42}' }, status: 400 },
  { name: 'a JSON array body', path: '/v1/kv/garbage/c', init: { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '[1,2,3]' }, status: 400 },
  { name: 'binary bytes as JSON', path: '/v1/kv/garbage/d', init: { method: 'PUT', headers: { 'content-type': 'application/json' }, body: randomBytes(512) }, status: 400 },
  { name: 'a 2 MiB body', path: '/v1/kv/garbage/e', init: { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ value: 'x'.repeat(2 * 1024 * 1024) }) }, status: 413 },
];

void t.test('garbage on peer and client ports leaves the cluster healthy', async (t) => {
  t.teardown(() => {
    for (const socket of openSockets) socket.destroy();
  });
  const cluster = await startCluster(t, { nodes: 3 });
  const leader = await cluster.waitForLeader(setupWaitMs);
  const client = cluster.client();
  await client.call('PUT', '/v1/kv/garbage/before', { value: 'before' });
  const before = (await cluster.status(leader))!;

  await Promise.all(cluster.nodes.map((node) => attackPeerPort(t, node)));
  await Promise.all(cluster.nodes.map((node) => attackClientPort(t, node)));

  // The cluster is as it was: same leader, same term, every process alive, writes through every node succeed.
  for (const node of cluster.nodes) {
    const pid = node.process?.pid;
    t.ok(pid !== undefined && isAlive(pid), `${node.id} (pid ${pid}) is alive`);
  }
  const statuses = await Promise.all(cluster.nodes.map((n) => cluster.status(n.id)));
  for (const status of statuses) {
    t.equal(status?.leader, leader, `${status?.id} still names ${leader} as leader`);
    t.equal(status?.term, before.term, `${status?.id} still in term ${before.term}`);
  }
  for (const node of cluster.nodes) {
    const response = await cluster.client([node.id]).call<{ revision: number }>('PUT', `/v1/kv/garbage/after/${node.id}`, { value: 'after' });
    t.ok(response.body.revision > 0, `a write through ${node.id} succeeds`);
  }
  const listed = await client.call<{ kvs: { key: string }[] }>('GET', '/v1/kv/garbage/?prefix=true');
  t.same(
    listed.body.kvs.map((kv) => kv.key),
    ['garbage/after/n1', 'garbage/after/n2', 'garbage/after/n3', 'garbage/before'],
    'only the legitimate writes are in the store',
  );
});

async function attackPeerPort(t: Test, node: TestNode): Promise<void> {
  const results = await Promise.all(peerGarbage.map((g) => sendRaw(node.peer, g.chunks(), g.mustClose ? 3_000 : 500)));
  peerGarbage.forEach((g, i) => {
    const result = results[i]!;
    if (g.mustClose) t.ok(result.closedByPeer, `${node.id} peer port closes the connection after ${g.name}`);
    t.equal(result.response, '', `${node.id} peer port answers nothing to ${g.name}`);
  });
}

async function attackClientPort(t: Test, node: TestNode): Promise<void> {
  const results = await Promise.all(clientGarbage.map((g) => sendRaw(node.client, g.chunks(), 3_000)));
  clientGarbage.forEach((g, i) => {
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(results[i]!.response)?.[1];
    // Closing without an answer is fine; an answer must be a 4xx.
    t.ok(status === undefined || status.startsWith('4'), `${node.id} client port answers ${g.name} with ${status ?? 'a closed connection'}`);
  });
  for (const bad of badRequests) {
    const response = await fetch(`http://${node.client}${bad.path}`, { ...bad.init, signal: AbortSignal.timeout(5_000) });
    const body = (await response.json()) as { error?: { code?: string } };
    t.equal(response.status, bad.status, `${node.id}: ${bad.name} → ${response.status} ${body.error?.code}`);
    t.type(body.error?.code, 'string', `${node.id}: ${bad.name} has an error code`);
  }
}
