// Goal: `keel cluster up --config <file>` runs every node of the config as its child, the nodes elect a leader
// and serve on their client ports, data dirs are resolved relative to the config file (not the working dir), and
// SIGINT to `cluster up` (Ctrl-C) stops it and all its children within ~6 s with exit code 0.
// The children run with the node arguments and malloc environment of bin/node-options.ts (read from /proc).
// Method: a config with ephemeral ports and relative data dirs is written to <tmp>/conf/; the built CLI runs as a
// child of this test (not detached: the test keeps its PID) with cwd <tmp>. Its children's PIDs are read with
// `ps --ppid`; a leader is awaited through the client ports and a write made; then SIGINT goes to `cluster up` by
// PID and the test waits for it and every child PID to be gone. Teardown SIGKILLs, by PID, whatever is still
// alive (checking /proc/<pid>/cmdline first, so a reused PID is never hit).
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import type { NodeStatus } from '../../src/api/index.js';
import { HttpClient } from '../../src/client.js';
import { freePort, keelBin, removeTestDir } from '../helpers/cluster.js';
import { isAlive, setupWaitMs, waitFor, waitForExit } from '../helpers/runtime.js';

const stopBoundMs = 6_500;

function childPids(parent: number): number[] {
  try {
    return execFileSync('ps', ['--ppid', String(parent), '-o', 'pid='], { encoding: 'utf8' })
      .split('\n')
      .map((line) => Number(line.trim()))
      .filter((pid) => pid > 0);
  } catch {
    return []; // ps exits 1 when nothing matches
  }
}

/** SIGKILL by PID, but only a process that still runs this test's keel CLI on this config. */
function killIfOurs(pid: number, configFile: string): void {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (cmdline.includes('keel.js') && cmdline.includes(path.basename(configFile))) process.kill(pid, 'SIGKILL');
  } catch {
    // Gone already.
  }
}

void t.test('keel cluster up runs the nodes; SIGINT stops them all with code 0', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'keel-up-'));
  const confDir = path.join(dir, 'conf');
  mkdirSync(confDir);
  const nodes: { id: string; peer: string; client: string; dataDir: string }[] = [];
  for (const id of ['n1', 'n2', 'n3']) {
    nodes.push({ id, peer: `127.0.0.1:${await freePort()}`, client: `127.0.0.1:${await freePort()}`, dataDir: `data/${id}` });
  }
  const configFile = path.join(confDir, 'up.config.json');
  writeFileSync(configFile, JSON.stringify({ cluster: 'up-test', nodes, raft: { tickMs: 50, electionTicks: 10 }, log: { level: 'warn' } }));

  // Relative config path, cwd one level up: data must land in conf/data/<id>, next to the config file.
  const up = spawn(process.execPath, [keelBin, 'cluster', 'up', '--config', path.join('conf', 'up.config.json')], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  up.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  up.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => up.on('exit', (code, signal) => resolve({ code, signal })));
  const upPid = up.pid!;
  const known = new Set<number>();
  const client = new HttpClient({ endpoints: nodes.map((n) => n.client), retryMs: 5_000 });
  t.teardown(async () => {
    await client.close();
    for (const pid of [...known, ...childPids(upPid)]) killIfOurs(pid, configFile);
    if (isAlive(upPid)) process.kill(upPid, 'SIGKILL');
    removeTestDir(t, dir, `cluster up output:\n${output}`);
  });

  // A child found between its fork and its exec still shows cluster up's own command line: wait for all three
  // to run `keel start ... --node <id>`.
  const started = (pid: number): boolean => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('--node');
    } catch {
      return false;
    }
  };
  const pids = await waitFor('cluster up to spawn 3 children', setupWaitMs, () => {
    const found = childPids(upPid);
    found.forEach((pid) => known.add(pid));
    return found.length >= 3 && found.every(started) ? found : null;
  });
  t.equal(pids.length, 3, `cluster up (pid ${upPid}) runs 3 children: ${pids.join(', ')}`);
  for (const pid of pids) {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    t.ok(args.includes('--max-semi-space-size=8') && env.includes('MALLOC_MMAP_THRESHOLD_=262144'), `child ${pid} runs with the memory settings of bin/node-options.ts`);
  }

  const statuses = await waitFor('a leader named by every node', setupWaitMs, async () => {
    const all = await Promise.all(nodes.map((n) => client.once<NodeStatus>(`http://${n.client}`, 'GET', '/v1/status').then((r) => r.body)));
    const leader = all[0]!.leader;
    return leader !== null && all.every((s) => s.leader === leader) ? all : null;
  });
  t.pass(`every node names ${statuses[0]!.leader} as leader`);
  const put = await client.call<{ revision: number }>('PUT', '/v1/kv/cluster-up/smoke', { value: 'ok' });
  t.ok(put.body.revision > 0, 'a write is acknowledged');
  for (const node of nodes) {
    t.ok(existsSync(path.join(confDir, 'data', node.id, 'raft')), `${node.id}'s data dir is conf/data/${node.id} (relative to the config file)`);
  }
  t.notOk(existsSync(path.join(dir, 'data')), 'nothing was written relative to the working directory');

  const signalledAt = performance.now();
  process.kill(upPid, 'SIGINT');
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([exited, new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), stopBoundMs + 2_000)))]);
  clearTimeout(timer);
  const stopMs = performance.now() - signalledAt;
  t.same(result, { code: 0, signal: null }, `cluster up exits with code 0 after SIGINT (${Math.round(stopMs)} ms)`);
  t.ok(stopMs <= stopBoundMs, `cluster up stopped within ${stopBoundMs} ms`);
  for (const pid of pids) {
    t.ok(await waitForExit(pid, 1_000), `child ${pid} is gone`);
  }
  t.match(output, /stopping all nodes/, 'cluster up announced the stop');
  t.comment(`cluster up: SIGINT → exit ${Math.round(stopMs)} ms`);
});
