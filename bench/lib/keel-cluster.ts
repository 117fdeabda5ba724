// A real three-node Keel cluster as the README's users run it: `node dist/bin/keel.js start --config f --node id`
// per node (with the node arguments and environment of bin/node-options.ts, as `keel cluster up` uses), a config
// with no `raft` section (so the defaults of src/config.ts: 100 ms ticks, 1-2 s elections),
// data on disk in a temp dir (LevelDB, fsync on), ephemeral ports on 127.0.0.1, logs at the default level.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { serverEnv, serverNodeArgs } from '../../bin/node-options.js';
import { keelApi } from './apis.js';
import { pollUntil, type BenchCluster, type BenchNode } from './cluster.js';
import { freePort, send } from './http.js';
import { keelRevision, repoRoot } from './machine.js';
import type { Supervisor } from './supervisor.js';

export interface KeelClusterOptions {
  /** Start every node with `node --cpu-prof --cpu-prof-dir <dir>/<id>` (profiles are written on a graceful stop). */
  readonly cpuProfDir?: string;
  /** Another build's package root (its dist/bin/keel.js runs): A/B runs of an old and a new build. */
  readonly root?: string;
  /** Another build's dist/bin/keel.js (A/B runs of two builds with one script); wins over `root`. */
  readonly keelBin?: string;
}

export async function startKeelCluster(supervisor: Supervisor, options: KeelClusterOptions = {}): Promise<BenchCluster> {
  const keelBin = options.keelBin ?? path.join(options.root ?? repoRoot(), 'dist', 'bin', 'keel.js');
  if (!existsSync(keelBin)) throw new Error(`${keelBin} is missing: run \`npm run build\` first`);
  const dir = supervisor.tempDir('keel-bench-');
  const ids = ['n1', 'n2', 'n3'];
  const ports = [];
  for (const id of ids) ports.push({ id, peer: await freePort(), client: await freePort() });
  const configFile = path.join(dir, 'cluster.config.json');
  const config = {
    cluster: 'bench',
    nodes: ports.map((p) => ({ id: p.id, peer: `127.0.0.1:${p.peer}`, client: `127.0.0.1:${p.client}`, dataDir: `data/${p.id}` })),
  };
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  const nodes: BenchNode[] = ports.map((p) => {
    const profArgs = options.cpuProfDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', path.join(options.cpuProfDir, p.id)];
    const nodeArgs = [...serverNodeArgs, ...profArgs];
    const child = supervisor.spawn(`keel ${p.id}`, process.execPath, [...nodeArgs, keelBin, 'start', '--config', configFile, '--node', p.id], path.join(dir, `${p.id}.log`), serverEnv());
    return { id: p.id, clientUrl: `http://127.0.0.1:${p.client}`, child };
  });

  const leader = async (timeoutMs = 20_000): Promise<BenchNode> =>
    pollUntil('an agreed Keel leader', timeoutMs, async () => {
      const statuses = await Promise.all(
        nodes.map(async (node) => {
          if (node.child.exited) throw new Error(`keel ${node.id} exited (code ${node.child.exitCode}); see ${node.child.logFile}`);
          const answer = await send(node.clientUrl, { method: 'GET', path: '/v1/status', headers: {} }, 2_000).catch(() => null);
          return answer?.status === 200 ? answer.json<{ id: string; role: string; leader: string | null }>() : null;
        }),
      );
      const leaders = new Set(statuses.map((s) => s?.leader ?? null));
      const agreed = [...leaders][0];
      if (leaders.size !== 1 || agreed === null || agreed === undefined) return null;
      const node = nodes.find((n) => n.id === agreed);
      return node !== undefined && statuses.find((s) => s?.id === agreed)?.role === 'leader' ? node : null;
    });

  // SIGTERM is Keel's graceful stop (a profiled node writes its profile as it exits); SIGKILL after 8 s.
  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((node) => supervisor.stop(node.child, 'SIGTERM', 8_000)));
  };

  return { api: keelApi, nodes, version: `keel ${keelVersion()} at ${keelRevision()} (node ${process.version})`, leader, stop };
}

function keelVersion(): string {
  try {
    return (JSON.parse(readFileSync(path.join(repoRoot(), 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '?';
  }
}
