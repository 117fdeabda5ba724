// etcd for the side-by-side: installed from Debian when missing (root only), then a real three-node cluster with
// etcd's default timings (100 ms heartbeat, 1 s election), data on disk in a temp dir (fsync on: no
// --unsafe-no-fsync), distinct ephemeral client and peer ports on 127.0.0.1, the JSON gateway on the client port.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { etcdApi } from './apis.js';
import { pollUntil, type BenchCluster, type BenchNode } from './cluster.js';
import { freePort, send } from './http.js';
import type { Supervisor } from './supervisor.js';

export type EtcdAvailability = { readonly ok: true; readonly binary: string; readonly version: string } | { readonly ok: false; readonly reason: string };

function which(command: string): string | null {
  const found = spawnSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' });
  const out = found.stdout.trim();
  return found.status === 0 && out !== '' ? out : null;
}

/** Finds etcd, or installs Debian's etcd-server and etcd-client (needs root and apt). Never throws. */
export function ensureEtcd(log: (line: string) => void): EtcdAvailability {
  let binary = which('etcd');
  if (binary === null) {
    if (process.getuid?.() !== 0) {
      return { ok: false, reason: 'etcd is not installed and this is not root, so it cannot be installed (apt-get install etcd-server etcd-client)' };
    }
    log('etcd not found: installing Debian packages etcd-server and etcd-client (apt-get update && apt-get install -y ...)');
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    for (const args of [['update'], ['install', '-y', 'etcd-server', 'etcd-client']]) {
      const run = spawnSync('apt-get', args, { encoding: 'utf8', env, maxBuffer: 64 * 2 ** 20 });
      if (run.status !== 0) {
        const output = `${run.stdout ?? ''}${run.stderr ?? ''}`.trim().split('\n').slice(-5).join('\n');
        return { ok: false, reason: `apt-get ${args.join(' ')} failed (${run.error?.message ?? `exit ${run.status}`}):\n${output}` };
      }
    }
    binary = which('etcd');
    if (binary === null) return { ok: false, reason: 'apt-get installed etcd-server but no `etcd` is on PATH' };
  }
  let version = 'etcd (version unknown)';
  try {
    const text = execFileSync(binary, ['--version'], { encoding: 'utf8' });
    version = `etcd ${/etcd Version:\s*(\S+)/.exec(text)?.[1] ?? '?'}`;
  } catch {
    // Keep "version unknown": the cluster start will tell whether the binary works.
  }
  return { ok: true, binary, version };
}

export async function startEtcdCluster(supervisor: Supervisor, binary: string, version: string): Promise<BenchCluster> {
  const dir = supervisor.tempDir('etcd-bench-');
  const members = [];
  for (const name of ['e1', 'e2', 'e3']) members.push({ name, peer: await freePort(), client: await freePort() });
  const initialCluster = members.map((m) => `${m.name}=http://127.0.0.1:${m.peer}`).join(',');
  const token = `keel-bench-${randomBytes(6).toString('hex')}`;
  const nodes: BenchNode[] = members.map((m) => {
    const args = [
      `--name=${m.name}`,
      `--data-dir=${path.join(dir, m.name)}`,
      `--listen-client-urls=http://127.0.0.1:${m.client}`,
      `--advertise-client-urls=http://127.0.0.1:${m.client}`,
      `--listen-peer-urls=http://127.0.0.1:${m.peer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${m.peer}`,
      `--initial-cluster=${initialCluster}`,
      `--initial-cluster-state=new`,
      `--initial-cluster-token=${token}`,
      // Logging only (etcd 3.4's default capnslog logger is deprecated); every timing stays at its default.
      '--logger=zap',
      '--log-outputs=stderr',
    ];
    const child = supervisor.spawn(`etcd ${m.name}`, binary, args, path.join(dir, `${m.name}.log`));
    return { id: m.name, clientUrl: `http://127.0.0.1:${m.client}`, child };
  });

  const leader = async (timeoutMs = 20_000): Promise<BenchNode> =>
    pollUntil('an agreed etcd leader', timeoutMs, async () => {
      const statuses = await Promise.all(
        nodes.map(async (node) => {
          if (node.child.exited) throw new Error(`etcd ${node.id} exited (code ${node.child.exitCode}); see ${node.child.logFile}`);
          const answer = await send(node.clientUrl, { method: 'POST', path: '/v3/maintenance/status', headers: {}, body: '{}' }, 2_000).catch(() => null);
          return answer?.status === 200 ? answer.json<{ header?: { member_id?: string }; leader?: string }>() : null;
        }),
      );
      const leaders = new Set(statuses.map((s) => s?.leader ?? null));
      const agreed = [...leaders][0];
      if (leaders.size !== 1 || agreed === null || agreed === undefined || agreed === '0') return null;
      const at = statuses.findIndex((s) => s?.header?.member_id === agreed);
      return at >= 0 ? (nodes[at] ?? null) : null;
    });

  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((node) => supervisor.stop(node.child, 'SIGTERM', 8_000)));
  };

  return { api: etcdApi, nodes, version, leader, stop };
}
