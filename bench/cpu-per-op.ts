// CPU per operation of each node of a real three-node Keel cluster: put c64 and linearizable read c64 (the bench's
// workloads), with each node's process CPU time (/proc/<pid>/stat utime+stime) read before and after each step.
// On a shared machine CPU per op is a steadier figure than req/s. `--root <dir>` runs another build's dist
// (A/B: a checkout of the old commit, built), `--profile <dir>` writes node --cpu-prof profiles of every node.
// `--rate N` drives a fixed N req/s instead of a closed loop, so two builds compared under a busy machine batch
// alike (CPU per op depends on the batch size, and so on the throughput, in a closed loop).
// Usage: node dist/bench/cpu-per-op.js [--seconds 8] [--warmup 2] [--rounds 1] [--rate N] [--root DIR]
//        [--profile DIR] [--put-only | --read-only | --lease-only] [--connections N (default 64)] [--keep]
//        [--etcd]
// `--lease-only` measures lease grants (ttl one hour, as the bench's lease step) instead of puts and reads.
// `--etcd` runs the same steps against the bench's three-node etcd cluster (through its JSON gateway), so the two
// systems' CPU per operation can be set side by side; etcd's "main" figure is one OS thread of Go's many.
import { readFileSync } from 'node:fs';
import type { BenchCluster } from './lib/cluster.js';
import { monotonicUs } from './lib/cpu-profile.js';
import { closeHttp, sendOk, sleep, type HttpRequest } from './lib/http.js';
import { ensureEtcd, startEtcdCluster } from './lib/etcd-cluster.js';
import { startKeelCluster } from './lib/keel-cluster.js';
import type { Measurement } from './lib/load.js';
import { Supervisor } from './lib/supervisor.js';
import { keySpace, valueBytes } from './scenarios/put.js';
import { runLoad } from './lib/load.js';

const argv = process.argv.slice(2);
const option = (name: string): string | undefined => {
  const at = argv.indexOf(`--${name}`);
  return at < 0 ? undefined : argv[at + 1];
};
const seconds = Number(option('seconds') ?? 8);
const warmupSeconds = Number(option('warmup') ?? 2);
const root = option('root');
const profileDir = option('profile');
const connections = Number(option('connections') ?? 64);
const ticksPerSecond = 100;

/** User and system CPU seconds of a process (all its threads), and of its main thread alone. */
function cpuSeconds(pid: number): { user: number; sys: number; main: number } {
  const times = (path: string): { user: number; sys: number } => {
    const stat = readFileSync(path, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { user: Number(fields[11]) / ticksPerSecond, sys: Number(fields[12]) / ticksPerSecond };
  };
  const main = times(`/proc/${pid}/task/${pid}/stat`);
  return { ...times(`/proc/${pid}/stat`), main: main.user + main.sys };
}

/** Read and write system calls of a process so far (all its threads), from /proc/<pid>/io. */
function syscalls(pid: number): { reads: number; writes: number } {
  const io = readFileSync(`/proc/${pid}/io`, 'utf8');
  const field = (name: string): number => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(io)?.[1] ?? Number.NaN);
  return { reads: field('syscr'), writes: field('syscw') };
}

async function measure(cluster: BenchCluster, label: string, run: () => Promise<Measurement>): Promise<void> {
  const leader = await cluster.leader(15_000);
  const before = cluster.nodes.map((n) => cpuSeconds(n.child.pid));
  const callsBefore = cluster.nodes.map((n) => syscalls(n.child.pid));
  const fromUs = monotonicUs();
  const m = await run();
  const toUs = monotonicUs();
  const after = cluster.nodes.map((n) => cpuSeconds(n.child.pid));
  const callsAfter = cluster.nodes.map((n) => syscalls(n.child.pid));
  const perOp = cluster.nodes.map((n, i) => {
    const [a, b] = [after[i]!, before[i]!];
    const [ca, cb] = [callsAfter[i]!, callsBefore[i]!];
    const ops = Math.max(1, m.count);
    return {
      id: n.id,
      us: ((a.user + a.sys - b.user - b.sys) * 1e6) / ops,
      sysUs: ((a.sys - b.sys) * 1e6) / ops,
      mainUs: ((a.main - b.main) * 1e6) / ops,
      reads: (ca.reads - cb.reads) / ops,
      writes: (ca.writes - cb.writes) / ops,
    };
  });
  const total = perOp.reduce((sum, p) => sum + p.us, 0);
  const cells = perOp.map((p) => `${p.id}${p.id === leader.id ? '*' : ''} ${p.us.toFixed(0)} (sys ${p.sysUs.toFixed(0)}, main ${p.mainUs.toFixed(0)})`).join(', ');
  const calls = perOp.map((p) => `${p.id} ${p.reads.toFixed(1)}/${p.writes.toFixed(1)}`).join(', ');
  process.stdout.write(
    `${label}: ${Math.round(m.rps ?? 0)} req/s, p50 ${(m.p50Ms ?? 0).toFixed(2)} p99 ${(m.p99Ms ?? 0).toFixed(2)} ms, ` +
      `CPU us/op ${cells} (sum ${total.toFixed(0)}), read/write syscalls per op ${calls}, non2xx ${m.non2xx}, ` +
      `window ${fromUs} ${toUs}\n`,
  );
}

const supervisor = new Supervisor();
supervisor.keepDirs = argv.includes('--keep');
try {
  const etcd = argv.includes('--etcd') ? ensureEtcd((line) => process.stdout.write(`${line}\n`)) : null;
  if (etcd?.ok === false) throw new Error(`etcd is not available: ${etcd.reason}`);
  const cluster = etcd?.ok === true ? await startEtcdCluster(supervisor, etcd.binary, etcd.version) : await startKeelCluster(supervisor, { ...(root !== undefined && { root }), ...(profileDir !== undefined && { cpuProfDir: profileDir }) });
  const leader = await cluster.leader(30_000);
  await sleep(1000);
  const rate = option('rate') === undefined ? {} : { overallRate: Number(option('rate')) };
  const load = async (build: (n: number) => HttpRequest): Promise<Measurement> => {
    const base = { url: leader.clientUrl, connections, build, ...rate };
    if (warmupSeconds > 0) await runLoad({ ...base, seconds: warmupSeconds });
    return runLoad({ ...base, seconds });
  };
  const value = 'v'.repeat(valueBytes);
  await sendOk(leader.clientUrl, cluster.api.put('bench/read', 'r'.repeat(valueBytes)));
  const rounds = Number(option('rounds') ?? 1);
  const only = ['--put-only', '--read-only', '--lease-only'].find((flag) => argv.includes(flag));
  for (let r = 0; r < rounds; r++) {
    if (only === '--lease-only') {
      await measure(cluster, `lease grant c${connections}`, () => load(() => cluster.api.leaseGrant(3600)));
      continue;
    }
    if (only !== '--read-only') await measure(cluster, `put c${connections}`, () => load((n) => cluster.api.put(`bench/put/${n % keySpace}`, value)));
    if (only !== '--put-only') await measure(cluster, `read c${connections}`, () => load(() => cluster.api.read('bench/read', false)));
  }
  await cluster.stop();
} finally {
  await closeHttp();
  await supervisor.cleanup();
}
