// Goal: `keel start --config <file> --node <id>` refuses a bad config before doing anything: exit code 2 and
// exactly one line on stderr that names the offending field (unknown fields, missing or empty nodes, bad ports,
// duplicate ids and addresses, bad raft timings), or says what is wrong with the file itself.
// Method: each bad config is written to a temp dir and the built CLI (dist/bin/keel.js) is spawned on it, all cases
// concurrently; exit code, stderr and stdout are checked, and that no data dir was created. Every child is
// killed by PID in teardown if it is still running (it should have exited on its own).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { freePort, keelBin } from '../helpers/cluster.js';

type NodeEntry = { id: string; peer: string; client: string; dataDir: string };

interface Case {
  readonly name: string;
  /** The config file's text (a string is written as is, anything else as JSON); null = no file at all. */
  readonly config: unknown;
  /** What stderr must name (the field, quoted as the message quotes it) or say. */
  readonly mentions: string;
  readonly node?: string;
}

/** The cases, around three valid node entries (free ports, so a config wrongly accepted binds nothing in use). */
function makeCases(good: readonly NodeEntry[]): Case[] {
  const withNode = (i: number, patch: Record<string, unknown>): unknown[] => good.map((node, j) => (i === j ? { ...node, ...patch } : node));
  return [
    { name: 'unknown top-level field', config: { cluster: 'c', nodes: good, bogus: 1 }, mentions: '"bogus"' },
    { name: 'unknown node field', config: { cluster: 'c', nodes: withNode(0, { port: 7000 }) }, mentions: '"nodes[0].port"' },
    { name: 'unknown raft field', config: { cluster: 'c', nodes: good, raft: { tickMS: 50 } }, mentions: '"raft.tickMS"' },
    { name: 'missing nodes', config: { cluster: 'c' }, mentions: '"nodes"' },
    { name: 'empty nodes', config: { cluster: 'c', nodes: [] }, mentions: '"nodes"' },
    { name: 'port above 65535', config: { cluster: 'c', nodes: withNode(0, { peer: '127.0.0.1:99999' }) }, mentions: '"nodes[0].peer"' },
    { name: 'port not a number', config: { cluster: 'c', nodes: withNode(1, { client: '127.0.0.1:http' }) }, mentions: '"nodes[1].client"' },
    { name: 'port 0', config: { cluster: 'c', nodes: withNode(2, { peer: '127.0.0.1:0' }) }, mentions: '"nodes[2].peer"' },
    { name: 'no port', config: { cluster: 'c', nodes: withNode(0, { client: '127.0.0.1' }) }, mentions: '"nodes[0].client"' },
    { name: 'duplicate id', config: { cluster: 'c', nodes: withNode(1, { id: 'n1' }) }, mentions: '"nodes[1].id"' },
    { name: 'duplicate peer address', config: { cluster: 'c', nodes: withNode(2, { peer: good[0]!.peer }) }, mentions: '"nodes[2].peer"' },
    { name: 'duplicate data dir', config: { cluster: 'c', nodes: withNode(1, { dataDir: 'data/n1' }) }, mentions: '"nodes[1].dataDir"' },
    { name: 'missing node id', config: { cluster: 'c', nodes: withNode(0, { id: undefined }) }, mentions: '"nodes[0].id"' },
    { name: 'raft timing not a positive integer', config: { cluster: 'c', nodes: good, raft: { tickMs: 'fast' } }, mentions: '"raft.tickMs"' },
    { name: 'bad log level', config: { cluster: 'c', nodes: good, log: { level: 'loud' } }, mentions: '"log.level"' },
    { name: 'not JSON', config: '{"cluster": "c", nodes: [', mentions: 'not valid JSON' },
    { name: 'missing file', config: null, mentions: 'cannot read' },
    { name: 'node not in the config', config: { cluster: 'c', nodes: good }, node: 'n9', mentions: '"nodes"' },
    { name: 'TLS certificate file missing', config: { cluster: 'c', nodes: good, tls: { client: { cert: 'no.crt', key: 'no.key' } } }, mentions: '"tls.client.cert"' },
    { name: 'peer TLS without a CA', config: { cluster: 'c', nodes: good, tls: { peer: {} } }, mentions: '"tls.peer.ca"' },
    { name: 'peer secret too short', config: { cluster: 'c', nodes: good, peerSecret: 'short' }, mentions: '"peerSecret"' },
    { name: 'peer secret file missing', config: { cluster: 'c', nodes: good, peerSecretFile: 'no-such-secret' }, mentions: '"peerSecretFile"' },
  ];
}

void t.test('a bad config exits with code 2 and one line naming the field', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'keel-config-'));
  const good: NodeEntry[] = [];
  for (const id of ['n1', 'n2', 'n3']) {
    good.push({ id, peer: `127.0.0.1:${await freePort()}`, client: `127.0.0.1:${await freePort()}`, dataDir: `data/${id}` });
  }
  const cases = makeCases(good);
  const children = new Set<ChildProcess>();
  t.teardown(() => {
    for (const child of children) if (child.exitCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  // A few at a time: each is a Node process start, and the machine has 2 cores.
  const results: Awaited<ReturnType<typeof run>>[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < cases.length; i = next++) {
      const c = cases[i]!;
      const file = path.join(dir, `case-${i}.json`);
      if (c.config !== null) writeFileSync(file, typeof c.config === 'string' ? c.config : JSON.stringify(c.config));
      results[i] = await run(['start', '--config', file, '--node', c.node ?? 'n1'], children);
    }
  };
  await Promise.all([worker(), worker(), worker()]);

  cases.forEach((c, i) => {
    const { code, stdout, stderr } = results[i]!;
    void t.test(c.name, async (t) => {
      t.equal(code, 2, `exit code 2 (got ${code})`);
      t.match(stderr, /^keel: [^\n]+\n$/, `exactly one line on stderr: ${JSON.stringify(stderr)}`);
      t.ok(stderr.includes(c.mentions), `stderr mentions ${c.mentions}`);
      t.equal(stdout, '', 'nothing on stdout');
    });
  });
  t.notOk(existsSync(path.join(dir, 'data')), 'no data dir was created');
});

function run(args: string[], children: Set<ChildProcess>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [keelBin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
