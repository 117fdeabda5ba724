// A launcher for real-process clusters in tests: real `keel start` processes (the built dist/bin/keel.js) on
// 127.0.0.1 with ephemeral ports, a temp dir per cluster, logs per node, and every child reaped by PID in
// teardown even when the test fails. Temp dirs go too, pass or fail (removeTestDir: a failed test prints the end
// of its node logs first; KEEL_KEEP_TEST_DIRS=1 keeps them for a closer look).
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NodeStatus } from '../../src/api/index.js';
import { HttpClient, type ClientTlsOptions } from '../../src/client.js';

/**
 * Every node process any cluster of this test process started. If the test process dies before its teardown runs
 * (an uncaught error, a tap timeout), the exit hook still kills them by PID, so no node outlives its test.
 */
const liveChildren = new Set<ChildProcess>();
function killLiveChildren(): void {
  for (const child of liveChildren) {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // Already gone: nothing to clean up.
      }
    }
  }
}
/**
 * Temp dirs of clusters whose teardown has not run yet. If the test process dies first (an error thrown outside
 * any subtest: a cluster that never elected), the exit hook prints their node logs' tails and removes them.
 */
const liveDirs = new Set<string>();
function removeLiveDirs(): void {
  for (const dir of liveDirs) {
    for (const tail of logTails(dir)) process.stderr.write(`${tail}\n`);
    if (process.env['KEEL_KEEP_TEST_DIRS'] === '1') continue;
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      // A node killed a moment ago may still be writing: leave the dir rather than fail the exit.
    }
  }
}
process.once('exit', () => {
  killLiveChildren();
  removeLiveDirs();
});
// tap stops a test file that ran over its timeout with a signal: kill the nodes first, then die as asked.
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    killLiveChildren();
    process.kill(process.pid, signal);
  });
}

export const keelBin = fileURLToPath(new URL('../../dist/bin/keel.js', import.meta.url));

interface TapLike {
  teardown(fn: () => void | Promise<void>): void;
  passing(): boolean;
  comment(...args: unknown[]): void;
}

export interface ClusterOptions {
  readonly nodes?: number;
  readonly raft?: Record<string, number>;
  readonly logLevel?: string;
  /** Turns on the test-only debug endpoints (config `debug: true`: GET /v1/debug/applied). */
  readonly debug?: boolean;
  /**
   * Test-only dial overrides per node (config `nodes[].dial`), computed once the ports are known: node id ->
   * peer id -> the addresses that node dials for that peer (e.g. fault proxies).
   */
  readonly dial?: (nodes: readonly TestNode[]) => Promise<Record<string, Record<string, { peer?: string; client?: string }>>>;
  /** Extra top-level config fields (tls, peerSecret, ...). */
  readonly config?: Record<string, unknown>;
  /** Extra fields of each node's entry (e.g. its own tls certificate). */
  readonly nodeConfig?: (id: string) => Record<string, unknown>;
  /** The client ports speak TLS: the helper's clients use https with these options. */
  readonly clientTls?: ClientTlsOptions;
}

/**
 * Ports this test process already handed out: never twice, though a port is free again once its check closed
 * (with listen(0) that gave a 4-node config two nodes on one client port).
 */
const handedOut = new Set<number>();

/**
 * Where free ports are picked: below Linux's ephemeral range (32768-60999), which every outgoing connection and
 * every listen(0) of the parallel test processes draws from. A port picked from that range could be taken as
 * the source port of some other test's connection before the node bound it (seen: a node dying on EADDRINUSE at
 * start, its cluster never electing). Picked at random, two test processes rarely try the same one, and a port
 * is handed out only after binding it here succeeded.
 */
const portRange = { low: 20_000, high: 32_767 } as const;
const portTriesMax = 1_000;

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

export async function freePort(): Promise<number> {
  for (let tries = 0; tries < portTriesMax; tries++) {
    const port = portRange.low + Math.floor(Math.random() * (portRange.high - portRange.low + 1));
    if (handedOut.has(port) || !(await canBind(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error(`no free port in ${portRange.low}-${portRange.high} after ${portTriesMax} tries`);
}

export interface TestNode {
  readonly id: string;
  readonly peer: string;
  readonly client: string;
  process: ChildProcess | null;
  /** A node added at run time: its own config file and `--join` arguments. */
  readonly configFile?: string;
  readonly extraArgs?: readonly string[];
}

export class TestCluster {
  readonly dir: string;
  readonly configFile: string;
  readonly nodes: TestNode[];
  private readonly logLevel: string;
  private readonly clients: HttpClient[] = [];
  /** Bearer token for status() and client() once a test enabled auth (test/cluster/auth.test.ts). */
  token: string | undefined;
  readonly clientTls: ClientTlsOptions | undefined;

  constructor(dir: string, configFile: string, nodes: TestNode[], logLevel: string, clientTls?: ClientTlsOptions) {
    this.dir = dir;
    this.configFile = configFile;
    this.nodes = nodes;
    this.logLevel = logLevel;
    this.clientTls = clientTls;
  }

  /** http:// or https:// and the node's client address. */
  url(id: string): string {
    return `${this.clientTls === undefined ? 'http' : 'https'}://${this.node(id).client}`;
  }

  node(id: string): TestNode {
    const node = this.nodes.find((n) => n.id === id);
    if (node === undefined) throw new Error(`no node ${id}`);
    return node;
  }

  /** Starts a node's process; `configFile` lets a test start one node with a different config. */
  start(id: string, configFile = this.configFile): void {
    const node = this.node(id);
    if (node.process !== null) throw new Error(`${id} is already running`);
    const log = createWriteStream(path.join(this.dir, `${id}.log`), { flags: 'a' });
    const args = ['start', '--config', node.configFile ?? configFile, '--node', id, '--log-level', this.logLevel, ...(node.extraArgs ?? [])];
    const child = spawn(process.execPath, [keelBin, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.pipe(log, { end: false });
    child.stderr.pipe(log, { end: false });
    liveChildren.add(child);
    child.on('exit', () => {
      liveChildren.delete(child);
      if (node.process === child) node.process = null;
    });
    node.process = child;
  }

  /**
   * A new node (not started) with ephemeral ports and a config file of its own: the cluster's config plus itself,
   * started with `--join <client addresses of the nodes running now>`. With `onlySelf` its config lists only itself.
   */
  async addNode(id: string, options: { onlySelf?: boolean } = {}): Promise<TestNode> {
    const node: TestNode = {
      id, peer: `127.0.0.1:${await freePort()}`, client: `127.0.0.1:${await freePort()}`, process: null,
      configFile: path.join(this.dir, `${id}.config.json`),
      extraArgs: ['--join', this.running().map((n) => n.client).join(',')],
    };
    const config = JSON.parse(readFileSync(this.configFile, 'utf8')) as { nodes: unknown[] };
    if (options.onlySelf === true) config.nodes = [];
    config.nodes.push({ id, peer: node.peer, client: node.client, dataDir: `data/${id}` });
    writeFileSync(node.configFile!, JSON.stringify(config, null, 2));
    this.nodes.push(node);
    return node;
  }

  /** Sends a signal to a node by PID; with SIGKILL waits until it is gone. */
  async kill(id: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.node(id).process;
    if (child === null || child.pid === undefined) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    process.kill(child.pid, signal);
    if (signal === 'SIGKILL' || signal === 'SIGTERM' || signal === 'SIGINT') await exited;
  }

  /** Exit code of a graceful stop, and how long it took. */
  async stop(id: string, signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; ms: number }> {
    const child = this.node(id).process;
    if (child === null || child.pid === undefined) throw new Error(`${id} is not running`);
    const started = performance.now();
    const code = new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    process.kill(child.pid, signal);
    return { code: await code, ms: performance.now() - started };
  }

  client(ids: readonly string[] = this.nodes.map((n) => n.id), options: { retryMs?: number; timeoutMs?: number } = {}): HttpClient {
    const tls = this.clientTls === undefined ? {} : { tls: this.clientTls };
    const client = new HttpClient({ endpoints: ids.map((id) => this.node(id).client), ...(this.token !== undefined && { token: this.token }), ...tls, ...options });
    this.clients.push(client);
    return client;
  }

  async status(id: string): Promise<NodeStatus | null> {
    const client = this.client([id], { retryMs: 0, timeoutMs: 2000 });
    try {
      return (await client.once<NodeStatus>(this.url(id), 'GET', '/v1/status')).body;
    } catch {
      return null;
    } finally {
      await client.close();
      this.clients.splice(this.clients.indexOf(client), 1);
    }
  }

  running(): TestNode[] {
    return this.nodes.filter((n) => n.process !== null);
  }

  /** Waits until every running node (or `among`) names the same leader; returns it. */
  async waitForLeader(timeoutMs: number, among: readonly string[] = this.running().map((n) => n.id)): Promise<string> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const statuses = await Promise.all(among.map((id) => this.status(id)));
      const leaders = new Set(statuses.map((s) => s?.leader ?? null));
      const leader = [...leaders][0];
      if (leaders.size === 1 && leader !== null && leader !== undefined && among.includes(leader)) {
        const leaderStatus = statuses.find((s) => s?.id === leader);
        if (leaderStatus?.role === 'leader') return leader;
      }
      if (performance.now() > deadline) throw new Error(`no agreed leader among ${among.join(',')} within ${timeoutMs} ms: ${JSON.stringify(statuses.map((s) => s && { id: s.id, role: s.role, leader: s.leader, term: s.term }))}`);
      await sleep(50);
    }
  }

  async closeClients(): Promise<void> {
    await Promise.all(this.clients.splice(0).map((c) => c.close()));
  }

  /** Kills every child by PID (SIGKILL) and waits for them. */
  async destroy(): Promise<void> {
    await this.closeClients();
    await Promise.all(this.nodes.map((n) => this.kill(n.id, 'SIGKILL')));
  }
}

/** Allocates ports and a temp dir and writes the config; starts nothing (the caller owns the cluster's cleanup). */
export async function createCluster(options: ClusterOptions = {}, prefix = 'keel-test-'): Promise<TestCluster> {
  const count = options.nodes ?? 3;
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  const nodes: TestNode[] = [];
  for (let i = 1; i <= count; i++) {
    nodes.push({ id: `n${i}`, peer: `127.0.0.1:${await freePort()}`, client: `127.0.0.1:${await freePort()}`, process: null });
  }
  const dial = options.dial === undefined ? {} : await options.dial(nodes);
  const configFile = path.join(dir, 'cluster.config.json');
  const config = {
    cluster: 'test',
    nodes: nodes.map((n) => ({
      id: n.id,
      peer: n.peer,
      client: n.client,
      dataDir: `data/${n.id}`,
      ...(dial[n.id] === undefined ? {} : { dial: dial[n.id] }),
      ...options.nodeConfig?.(n.id),
    })),
    raft: { tickMs: 50, electionTicks: 10, heartbeatTicks: 1, ...options.raft },
    ...(options.debug === true ? { debug: true } : {}),
    ...options.config,
  };
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  return new TestCluster(dir, configFile, nodes, options.logLevel ?? 'info', options.clientTls);
}

const logTailLines = 40;

/** The last lines of every *.log file directly in `dir` (the node logs), one text per file. */
function logTails(dir: string): string[] {
  const logs = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.log')) : [];
  return logs.map((log) => {
    const lines = readFileSync(path.join(dir, log), 'utf8').trimEnd().split('\n');
    return `${log}, last ${Math.min(logTailLines, lines.length)} lines:\n${lines.slice(-logTailLines).join('\n')}`;
  });
}

/**
 * Removes a test's temp dir, pass or fail. When the test failed, first prints the last lines of every *.log file
 * directly in it (the node logs), plus `extra`; with KEEL_KEEP_TEST_DIRS=1 a failed test's dir is kept instead.
 */
export function removeTestDir(t: TapLike, dir: string, extra = ''): void {
  if (!t.passing()) {
    if (extra !== '') t.comment(extra);
    for (const tail of logTails(dir)) t.comment(tail);
    if (process.env['KEEL_KEEP_TEST_DIRS'] === '1') {
      t.comment(`kept ${dir} (KEEL_KEEP_TEST_DIRS=1)`);
      return;
    }
  }
  rmSync(dir, { recursive: true, force: true });
}

export async function startCluster(t: TapLike, options: ClusterOptions = {}): Promise<TestCluster> {
  const cluster = await createCluster(options);
  const { dir, nodes } = cluster;
  liveDirs.add(dir);
  t.teardown(async () => {
    await cluster.destroy();
    removeTestDir(t, dir);
    liveDirs.delete(dir);
  });
  for (const node of nodes) cluster.start(node.id);
  return cluster;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
