// Goal: the tls and peerSecret sections of cluster.config.json parse as documented: paths are relative to the
// config file, a node entry may override the certificate and key, the secret comes from the config or a file,
// and every mistake is one ConfigError naming the field.
// Method: parseClusterConfig on objects, with real (empty-content) files in a temp dir standing in for PEMs.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { ConfigError, parseClusterConfig } from '../../src/config.js';
import { readNodeTls } from '../../src/config-security.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'keel-config-tls-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
for (const name of ['ca.crt', 'node.crt', 'node.key', 'n2.crt', 'n2.key', 'secret', 'short']) writeFileSync(path.join(dir, name), name === 'short' ? 'abc' : `${name}-contents-0123456789\n`);
const file = path.join(dir, 'cluster.config.json');
const nodes = [
  { id: 'n1', peer: '127.0.0.1:7101', client: '127.0.0.1:7201', dataDir: 'data/n1' },
  { id: 'n2', peer: '127.0.0.1:7102', client: '127.0.0.1:7202', dataDir: 'data/n2', tls: { peer: { cert: 'n2.crt', key: 'n2.key' } } },
];

void t.test('a full security section parses, relative to the config file, with per-node overrides', async (t) => {
  const config = parseClusterConfig({
    cluster: 'c', nodes, peerSecretFile: 'secret',
    tls: { client: { cert: 'node.crt', key: 'node.key', ca: 'ca.crt', requireClientCert: true }, peer: { cert: 'node.crt', key: 'node.key', ca: 'ca.crt', mutual: true } },
  }, file);
  t.equal(config.peerSecret, 'secret-contents-0123456789', 'the secret is read from the file and trimmed');
  t.same(config.tls?.client, { cert: path.join(dir, 'node.crt'), key: path.join(dir, 'node.key'), ca: path.join(dir, 'ca.crt'), requireClientCert: true });
  t.equal(config.tls?.peer?.mutual, true);
  t.equal(config.tls?.peer?.allowedCn, null, 'no allowedCn: any certificate from the CA');
  t.same(config.nodes[1]?.tls?.peer, { cert: path.join(dir, 'n2.crt'), key: path.join(dir, 'n2.key') }, 'node paths resolve too');
  const n1 = readNodeTls(config, config.nodes[0]!);
  const n2 = readNodeTls(config, config.nodes[1]!);
  t.equal(n1.peer?.cert.toString(), 'node.crt-contents-0123456789\n', 'n1 uses the cluster-wide peer certificate');
  t.equal(n2.peer?.cert.toString(), 'n2.crt-contents-0123456789\n', 'n2 uses its own');
  t.equal(n2.client?.key.toString(), 'node.key-contents-0123456789\n', 'n2 uses the cluster-wide client certificate');
});

void t.test('tls.peer.allowedCn reaches the node\'s peer TLS options', async (t) => {
  const config = parseClusterConfig({ cluster: 'c', nodes, tls: { peer: { cert: 'node.crt', key: 'node.key', ca: 'ca.crt', mutual: true, allowedCn: 'keel-peer' } } }, file);
  t.equal(config.tls?.peer?.allowedCn, 'keel-peer');
  t.equal(readNodeTls(config, config.nodes[0]!).peer?.allowedCn, 'keel-peer');
  t.equal(readNodeTls(config, config.nodes[1]!).peer?.allowedCn, 'keel-peer', 'a node with its own certificate too');
});

void t.test('no security section: nothing changes', async (t) => {
  const config = parseClusterConfig({ cluster: 'c', nodes: nodes.map(({ tls: _tls, ...n }) => n) }, file);
  t.equal(config.tls, undefined);
  t.equal(config.peerSecret, undefined);
  t.same(readNodeTls(config, config.nodes[0]!), { client: null, peer: null });
});

void t.test('mistakes name their field', async (t) => {
  const base = { cluster: 'c', nodes };
  const cases: [string, Record<string, unknown>, string][] = [
    ['missing cert file', { tls: { client: { cert: 'nope.crt', key: 'node.key' } } }, '"tls.client.cert"'],
    ['key without cert', { tls: { client: { key: 'node.key' } } }, '"tls.client.cert"'],
    ['requireClientCert without ca', { tls: { client: { cert: 'node.crt', key: 'node.key', requireClientCert: true } } }, '"tls.client.ca"'],
    ['peer without ca', { tls: { peer: { cert: 'node.crt', key: 'node.key' } } }, '"tls.peer.ca"'],
    ['mutual not a boolean', { tls: { peer: { cert: 'node.crt', key: 'node.key', ca: 'ca.crt', mutual: 'yes' } } }, '"tls.peer.mutual"'],
    ['allowedCn without mutual', { tls: { peer: { cert: 'node.crt', key: 'node.key', ca: 'ca.crt', allowedCn: 'keel-peer' } } }, '"tls.peer.allowedCn"'],
    ['allowedCn empty', { tls: { peer: { cert: 'node.crt', key: 'node.key', ca: 'ca.crt', mutual: true, allowedCn: '' } } }, '"tls.peer.allowedCn"'],
    ['allowedCn not a string', { tls: { peer: { cert: 'node.crt', key: 'node.key', ca: 'ca.crt', mutual: true, allowedCn: ['a'] } } }, '"tls.peer.allowedCn"'],
    ['unknown tls field', { tls: { server: {} } }, '"tls.server"'],
    ['node without any peer certificate', { tls: { peer: { ca: 'ca.crt' } } }, 'node n1'],
    ['short secret', { peerSecret: 'abc' }, '"peerSecret"'],
    ['short secret file', { peerSecretFile: 'short' }, '"peerSecretFile"'],
    ['secret not a string', { peerSecret: 42 }, '"peerSecret"'],
    ['both secrets', { peerSecret: 'a-long-enough-secret-123', peerSecretFile: 'secret' }, '"peerSecretFile"'],
  ];
  for (const [name, patch, mentions] of cases) {
    let error: unknown = null;
    try {
      parseClusterConfig({ ...base, ...patch }, file);
    } catch (err) {
      error = err;
    }
    t.ok(error instanceof ConfigError && error.message.includes(mentions) && !error.message.includes('\n'), `${name}: ${String(error)}`);
  }
  t.throws(() => parseClusterConfig({ cluster: 'c', nodes: [{ ...nodes[0], tls: { peer: { cert: 'node.crt' } } }] }, file), /"nodes\[0\]\.tls\.peer\.key"/, 'a node override needs both cert and key');
});
