// What else was going on: the machine's CPU time spent outside the benchmark's own processes during the run (a
// shared 2-core box makes every number noisy; this says how noisy), and each leader's fsync counts and mean
// durations from its /metrics (the latency floor of a write is one fsync on the leader and one on a follower).
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { send } from './http.js';
import type { BenchCluster } from './cluster.js';

const ticksPerSecond = 100;

/** Busy CPU seconds of the whole machine since boot (all cores), from /proc/stat. */
function machineBusySeconds(): number {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = cpu;
  return (user + nice + system + irq + softirq + steal) / ticksPerSecond;
}

/** CPU seconds (user + system) a process has used, from /proc/<pid>/stat; 0 if it is gone. */
function processCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
  } catch {
    return 0;
  }
}

export interface CpuAccount {
  readonly seconds: number;
  /** Mean number of cores busy with anything (machine-wide). */
  readonly machineBusyCores: number;
  /** Mean number of cores busy with the benchmark's processes (both clusters and the load generator). */
  readonly benchBusyCores: number;
  /** Mean number of cores busy with other processes: noise. */
  readonly foreignBusyCores: number;
  readonly loadAverageStart: readonly number[];
  readonly loadAverageEnd: readonly number[];
}

export class CpuMeter {
  private readonly startedMs = performance.now();
  private readonly machineStart = machineBusySeconds();
  private readonly selfStart = process.cpuUsage();
  private readonly loadStart = os.loadavg();
  private readonly pidsStart = new Map<number, number>();

  /** Call with every child's pid as it starts (its CPU so far is subtracted). */
  track(pid: number): void {
    if (!this.pidsStart.has(pid)) this.pidsStart.set(pid, processCpuSeconds(pid));
  }

  /** Read before the children are stopped. */
  read(): CpuAccount {
    const seconds = (performance.now() - this.startedMs) / 1000;
    const self = process.cpuUsage(this.selfStart);
    let bench = (self.user + self.system) / 1e6;
    for (const [pid, start] of this.pidsStart) bench += Math.max(0, processCpuSeconds(pid) - start);
    const machine = machineBusySeconds() - this.machineStart;
    const round = (v: number): number => Math.round(v * 100) / 100;
    return {
      seconds: round(seconds),
      machineBusyCores: round(machine / seconds),
      benchBusyCores: round(bench / seconds),
      foreignBusyCores: round(Math.max(0, machine - bench) / seconds),
      loadAverageStart: this.loadStart.map(round),
      loadAverageEnd: os.loadavg().map(round),
    };
  }
}

export interface FsyncStats {
  readonly metric: string;
  readonly count: number;
  readonly meanMs: number | null;
}

function histogram(text: string, name: string): FsyncStats | null {
  const value = (suffix: string): number | null => {
    const match = new RegExp(`^${name}_${suffix}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(text);
    return match === null ? null : Number(match[1]);
  };
  const sum = value('sum');
  const count = value('count');
  if (sum === null || count === null) return null;
  return { metric: name, count, meanMs: count > 0 ? Math.round(((1000 * sum) / count) * 1000) / 1000 : null };
}

/** The leader's fsync histograms (Keel: the Raft log; etcd: the WAL, and its backend commits). */
export async function leaderFsyncs(cluster: BenchCluster): Promise<FsyncStats[]> {
  const leader = await cluster.leader(10_000);
  const answer = await send(leader.clientUrl, { method: 'GET', path: '/metrics', headers: {} });
  const names =
    cluster.api.system === 'keel'
      ? ['keel_raft_fsync_duration_seconds']
      : ['etcd_disk_wal_fsync_duration_seconds', 'etcd_disk_backend_commit_duration_seconds'];
  return names.map((name) => histogram(answer.text, name)).filter((s): s is FsyncStats => s !== null);
}

export interface QuietWait {
  /** Give up (and go on) after this long. */
  readonly maxMs: number;
  /** Quiet: fewer cores than this busy over one sample. */
  readonly thresholdCores: number;
  /** The length of one sample (default 5 s). */
  readonly sampleMs?: number;
  readonly log?: (line: string) => void;
}

export interface QuietResult {
  readonly quiet: boolean;
  /** Busy cores over the last sample. */
  readonly cores: number;
  readonly waitedMs: number;
}

/**
 * Waits until the machine is quiet (all processes together: fewer than `thresholdCores` busy over one sample), or
 * gives up after `maxMs`. Before a run, with the default 5 s samples: other processes gone quiet. Between
 * measurements, with short samples: the cluster just measured has finished what its load left behind (LevelDB
 * compactions, GC), so the next measurement, of either system, starts on a settled machine.
 */
export async function waitForQuiet(wait: QuietWait): Promise<QuietResult> {
  const startedMs = performance.now();
  const sampleMs = wait.sampleMs ?? 5_000;
  let lastLogMs = 0;
  for (;;) {
    const before = machineBusySeconds();
    await new Promise((resolve) => setTimeout(resolve, sampleMs));
    const cores = (machineBusySeconds() - before) / (sampleMs / 1000);
    const waitedMs = performance.now() - startedMs;
    if (cores < wait.thresholdCores) {
      wait.log?.(`machine quiet: ${cores.toFixed(2)} cores busy`);
      return { quiet: true, cores, waitedMs };
    }
    if (waitedMs > wait.maxMs) {
      wait.log?.(`machine still busy after ${(wait.maxMs / 1000).toFixed(0)} s (${cores.toFixed(2)} cores busy): running anyway`);
      return { quiet: false, cores, waitedMs };
    }
    if (performance.now() - lastLogMs > 30_000) {
      wait.log?.(`waiting for a quiet machine: ${cores.toFixed(2)} cores busy (want < ${wait.thresholdCores})`);
      lastLogMs = performance.now();
    }
  }
}
