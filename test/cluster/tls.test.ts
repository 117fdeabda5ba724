// Goal: TLS end to end with a self-signed CA made by the test. A 3-node cluster with mutual TLS on both the client
// port (requireClientCert) and the peer port elects a leader, serves a write through a follower (forwarded to the
// leader over TLS, with the node's certificate), a linearizable read and a watch; a plain-HTTP request, an https
// client without the CA and one without a client certificate all fail; the CLI works with --cacert/--cert/--key
// and KEEL_CACERT/KEEL_CERT/KEEL_KEY; and a would-be peer without a certificate from the cluster CA cannot get a
// Raft message in: no term or leader change, its connection is refused, and the node logs and counts it. Nor can
// a client certificate from the cluster's own CA: the peer certificates share the common name tls.peer.allowedCn
// names, and the client's has another.
// Method: the openssl CLI makes a CA, a per-node peer certificate, a shared client-port certificate, and a rogue CA
// with its own certificate; real `keel start` processes run on loopback (test/helpers/cluster.ts). The rogues
// are the real TcpTransport (with the rogue certificate, then with the client's) sending a vote request with a
// huge term.
import { readFileSync } from 'node:fs';
import { execFile } from 'node:child_process';
import tls from 'node:tls';
import t from 'tap';
import { Agent, request } from 'undici';
import { KeelClient } from '../../src/keel-client.js';
import { HttpClient } from '../../src/client.js';
import { TcpTransport } from '../../src/raft/io/index.js';
import type { WatchEvent } from '../../src/client/types.js';
import { opensslMissing, TestPki } from '../helpers/certs.js';
import { keelBin, sleep, startCluster } from '../helpers/cluster.js';

/** Runs the built CLI; resolves with its exit code and output (bounded by a timeout). */
function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [keelBin, ...args], { timeout: 30_000, env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr });
    });
  });
}

const missing = opensslMissing();

void t.test('TLS on the client and peer ports, mutual TLS between peers', { skip: missing ?? false, timeout: 120_000 }, async (t) => {
  const pki = new TestPki();
  t.teardown(() => pki.remove());
  const ca = pki.ca('keel-test-ca');
  const server = pki.leaf('client-port', ca);
  const user = pki.leaf('a-client', ca);
  const peers = new Map(['n1', 'n2', 'n3'].map((id) => [id, pki.leaf(`peer-${id}`, ca, 'keel-peer')]));
  const caPem = readFileSync(ca.cert);
  const cluster = await startCluster(t, {
    config: { tls: { client: { cert: server.cert, key: server.key, ca: ca.cert, requireClientCert: true }, peer: { ca: ca.cert, mutual: true, allowedCn: 'keel-peer' } } },
    nodeConfig: (id) => ({ tls: { peer: peers.get(id)! } }),
    clientTls: { ca: caPem, cert: readFileSync(user.cert), key: readFileSync(user.key) },
    raft: { tickMs: 50, electionTicks: 12 },
  });
  const leader = await cluster.waitForLeader(30_000);
  const [followerA, followerB] = cluster.nodes.filter((n) => n.id !== leader).map((n) => n.id) as [string, string];

  // A write through a follower is forwarded to the leader's TLS client port.
  const writer = cluster.client([followerA], { retryMs: 10_000 });
  const put = await writer.call<{ revision: number }>('PUT', '/v1/kv/tls/a', { value: 'one' });
  t.equal(put.status, 200, 'a put through a follower succeeds over TLS');
  const read = await cluster.client([followerB]).call<{ kv: { value: string } }>('GET', '/v1/kv/tls/a');
  t.equal(read.body.kv.value, 'one', 'a linearizable read on the other follower sees it');

  // A watch over TLS.
  const watcher = new KeelClient({ endpoints: [cluster.node(followerB).client], tls: cluster.clientTls! });
  t.teardown(() => watcher.close());
  const watch = watcher.watch('tls/w/', { prefix: true, fromRevision: put.body.revision + 1 });
  const events: WatchEvent[] = [];
  const consumed = (async () => {
    for await (const event of watch) {
      events.push(event);
      if (events.length === 2) break;
    }
  })();
  await writer.call('PUT', '/v1/kv/tls/w/1', { value: 'x' });
  await writer.call('PUT', '/v1/kv/tls/w/2', { value: 'y' });
  await Promise.race([consumed, sleep(15_000)]);
  watch.close();
  t.same(events.map((e) => e.kv.key), ['tls/w/1', 'tls/w/2'], 'the watch delivers both events over TLS');

  const status = await cluster.status(leader);
  t.ok(status?.members.every((m) => m.clientUrl.startsWith('https://')), 'members advertise https client URLs');

  // Plain HTTP, or https without the CA, cannot talk to the TLS client port.
  const plain = await request(`http://${cluster.node(leader).client}/v1/status`, { headersTimeout: 5_000 }).then(
    (r) => `answered ${r.statusCode}`,
    (err: Error) => `failed: ${err.message}`,
  );
  t.match(plain, /^failed/, `a plain-HTTP request fails (${plain})`);
  const unverified = new HttpClient({ endpoints: [`https://${cluster.node(leader).client}`], retryMs: 0, timeoutMs: 5_000 });
  t.teardown(() => unverified.close());
  await t.rejects(unverified.call('GET', '/v1/status'), { code: 'UNAVAILABLE' }, 'an https client without the cluster CA is refused');
  const anonymous = new HttpClient({ endpoints: [cluster.node(leader).client], tls: { ca: caPem }, retryMs: 0, timeoutMs: 5_000 });
  t.teardown(() => anonymous.close());
  await t.rejects(anonymous.call('GET', '/v1/status'), { code: 'UNAVAILABLE' }, 'an https client without a client certificate is refused');

  // The CLI: flags, and the TLS files from the environment.
  const endpoints = cluster.nodes.map((n) => n.client).join(',');
  const put2 = await cli(['--endpoints', endpoints, '--cacert', ca.cert, '--cert', user.cert, '--key', user.key, 'put', 'tls/cli', 'hello']);
  t.equal(put2.code, 0, `keel put with --cacert/--cert/--key succeeds ${put2.stderr}`);
  const get2 = await cli(['--endpoints', `https://${cluster.node(followerB).client}`, '--json', 'get', 'tls/cli'], { KEEL_CACERT: ca.cert, KEEL_CERT: user.cert, KEEL_KEY: user.key });
  t.match(get2.stdout, /"value": "hello"/, `keel get with KEEL_CACERT/KEEL_CERT/KEEL_KEY reads it back ${get2.stderr}`);
  const noCa = await cli(['--endpoints', endpoints, 'get', 'tls/cli']);
  t.not(noCa.code, 0, 'keel without TLS options fails against the TLS port');

  // A stranger with a certificate from another CA poses as a follower and asks the leader for its vote with a huge
  // term. (It must not pose as the leader: a transport never dials its own id, so it would never reach it.)
  const before = (await cluster.status(leader))!;
  const rogueCa = pki.ca('rogue-ca');
  const rogueCert = pki.leaf('rogue', rogueCa);
  const rogueWith = async (cert: { cert: string; key: string }): Promise<TcpTransport> => {
    const transport = new TcpTransport({
      id: followerB, cluster: 'test', listen: '127.0.0.1:0', peers: new Map([[leader, cluster.node(leader).peer], [followerA, cluster.node(followerA).peer]]),
      tls: { cert: readFileSync(cert.cert), key: readFileSync(cert.key), ca: caPem, mutual: true },
    });
    await transport.start();
    t.teardown(() => transport.close());
    return transport;
  };
  // The second holds a certificate the cluster's CA did sign, for an HTTP client: its common name is not keel-peer.
  const rogues = [await rogueWith(rogueCert), await rogueWith(user)];
  const vote = { type: 'vote' as const, from: followerB, term: before.term + 1000, lastLogIndex: 1e9, lastLogTerm: before.term + 1000, transfer: true };
  for (let i = 0; i < 10; i++) {
    for (const rogue of rogues) rogue.send([{ ...vote, to: leader }, { ...vote, to: followerA }]);
    await sleep(200);
  }
  t.notOk(rogues[0]!.isConnected(leader), 'the rogue never holds a connection to the leader');
  t.notOk(rogues[1]!.isConnected(leader), 'nor does a client certificate from the cluster CA (allowedCn)');

  // And one with no client certificate at all.
  const bare = await new Promise<string>((resolve) => {
    const { host, port } = { host: '127.0.0.1', port: Number(cluster.node(leader).peer.split(':')[1]) };
    const socket = tls.connect({ host, port, ca: caPem });
    socket.on('secureConnect', () => socket.write(Buffer.from([0, 0, 0, 1, 0])));
    socket.on('error', (err) => resolve(`error: ${err.message}`));
    socket.on('close', () => resolve('closed'));
    setTimeout(() => {
      socket.destroy();
      resolve('still open');
    }, 5_000);
  });
  t.not(bare, 'still open', `a connection without a client certificate is cut (${bare})`);

  const after = (await cluster.status(leader))!;
  t.equal(after.term, before.term, 'the term did not move');
  t.equal(after.leader, leader, 'the leader did not change');
  const agent = new Agent({ connect: { ca: caPem, cert: readFileSync(user.cert), key: readFileSync(user.key) } });
  t.teardown(() => agent.close());
  const metrics = await (await request(`https://${cluster.node(leader).client}/metrics`, { dispatcher: agent })).body.text();
  const rejected = Number(/keel_peer_connections_rejected_total\{[^}]*\} (\d+)/.exec(metrics)?.[1] ?? '0');
  t.ok(rejected >= 1, `the leader counts refused peer connections (${rejected})`);
  const log = readFileSync(`${cluster.dir}/${leader}.log`, 'utf8');
  t.match(log, /refused a peer connection in the TLS handshake/, 'the leader logs the refusal');
  t.match(log, /common name \\"a-client\\" is not the allowed \\"keel-peer\\"/, 'and names the refused common name');

  // The cluster still works.
  const again = await writer.call('PUT', '/v1/kv/tls/b', { value: 'two' });
  t.equal(again.status, 200, 'writes still succeed afterwards');
});
