// Keel against etcd on the same machine, in the same run: `npm run bench` (about 5 minutes) or
// `npm run bench -- --quick` (about 1 minute). Starts a three-node etcd cluster (installed from Debian when
// missing, if root) and a three-node Keel cluster, both with default timings, data on disk, fsync on, on
// 127.0.0.1 ephemeral ports; drives identical workloads at each LEADER with autocannon (the load generator shares
// the CPU with both clusters, as on any one-machine comparison); prints one table with the Keel/etcd ratios and
// writes it as JSON to bench/results/<timestamp>.json. Every process and temp dir is removed on any way out.
//
// Options: --quick | --keel-only | --profile (Keel leader under put c64 with node --cpu-prof, summarised) |
//          --seconds N --warmup N (per step) | --cluster-warmup N | --keep (keep temp dirs and logs) | --help
import { copyFileSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { BenchCluster, BenchNode } from './lib/cluster.js';
import { ensureEtcd, startEtcdCluster } from './lib/etcd-cluster.js';
import { CpuMeter, leaderFsyncs, waitForQuiet, type FsyncStats } from './lib/diagnostics.js';
import { closeHttp } from './lib/http.js';
import { startKeelCluster } from './lib/keel-cluster.js';
import type { Measurement } from './lib/load.js';
import { machineInfo, repoRoot } from './lib/machine.js';
import { monotonicUs, renderProfile, summariseProfile } from './lib/cpu-profile.js';
import { checkTargets, ratios, renderNotes, renderTable, type Row } from './lib/report.js';
import { residentMemory, Supervisor } from './lib/supervisor.js';
import { putLoad, keySpace, valueBytes, type StepTimes } from './scenarios/put.js';
import { readLoad } from './scenarios/read.js';
import { watchLatency } from './scenarios/watch.js';
import { leaseGrantLoad, leaseKeepaliveLoad, notApplicable } from './scenarios/lease.js';
import { lockHandoff } from './scenarios/lock.js';

interface Options {
  readonly quick: boolean;
  readonly keelOnly: boolean;
  readonly profile: boolean;
  readonly keep: boolean;
  /** Minutes to wait for other processes to go quiet before starting (0: do not wait). */
  readonly waitQuietMinutes: number;
  readonly times: StepTimes;
  /** Seconds of put c1 on each cluster once it is up, before the first row (both systems alike). */
  readonly clusterWarmupSeconds: number;
  readonly argv: readonly string[];
}

interface RowSpec {
  readonly id: string;
  readonly label: string;
  readonly inQuick: boolean;
  readonly keelOnly?: boolean;
  readonly run: (cluster: BenchCluster, leader: BenchNode) => Promise<Measurement>;
}

const log = (line: string): void => {
  process.stderr.write(`bench: ${line}\n`);
};

function parseOptions(argv: readonly string[]): Options {
  const number = (name: string, fallback: number, valueOptional = false): number => {
    const i = argv.indexOf(`--${name}`);
    // An option whose value is optional is off (0) when absent, and `fallback` when given bare.
    if (i < 0) return valueOptional ? 0 : fallback;
    const next = argv[i + 1];
    if (valueOptional && (next === undefined || next.startsWith('--'))) return fallback;
    const value = Number(next);
    if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} needs a number of seconds`);
    return value;
  };
  const known = ['--quick', '--keel-only', '--profile', '--keep', '--seconds', '--warmup', '--cluster-warmup', '--wait-quiet', '--help'];
  for (const arg of argv) {
    if (arg.startsWith('--') && !known.includes(arg)) throw new Error(`unknown option ${arg} (try --help)`);
  }
  const quick = argv.includes('--quick');
  return {
    quick,
    keelOnly: argv.includes('--keel-only'),
    profile: argv.includes('--profile'),
    keep: argv.includes('--keep'),
    waitQuietMinutes: number('wait-quiet', 10, true),
    times: { seconds: number('seconds', quick ? 3 : 10), warmupSeconds: number('warmup', quick ? 1 : 2) },
    clusterWarmupSeconds: number('cluster-warmup', quick ? 5 : 10),
    argv,
  };
}

function rowSpecs(options: Options): RowSpec[] {
  const t = options.times;
  const puts = (c: number, inQuick: boolean): RowSpec => ({
    id: `put-c${c}`,
    label: `put c${c}`,
    inQuick,
    run: (cluster, leader) => putLoad(cluster, leader, c, t),
  });
  const watchPuts = options.quick ? 100 : 500;
  const handoffs = options.quick ? 20 : 200;
  const specs: RowSpec[] = [
    puts(1, true),
    puts(16, false),
    puts(64, true),
    puts(256, false),
    { id: 'read-linearizable-c64', label: 'linearizable read c64', inQuick: true, run: (c, l) => readLoad(c, l, 64, false, t) },
    { id: 'read-serializable-c64', label: 'serializable read c64', inQuick: true, run: (c, l) => readLoad(c, l, 64, true, t) },
    { id: 'watch-latency', label: `put-to-watch latency (${watchPuts} seq. puts)`, inQuick: true, run: (c, l) => watchLatency(c, l, watchPuts, t.warmupSeconds) },
    { id: 'lease-grant-c64', label: 'lease grant c64', inQuick: false, run: (c, l) => leaseGrantLoad(c, l, 64, t) },
    { id: 'lease-keepalive-c64', label: 'lease keepalive c64', inQuick: false, run: (c, l) => leaseKeepaliveLoad(c, l, 64, t) },
    { id: 'lock-handoff', label: `lock hand-off (${handoffs}, Keel only)`, inQuick: true, keelOnly: true, run: (_c, l) => lockHandoff(l, handoffs) },
  ];
  return specs.filter((spec) => !options.quick || spec.inQuick);
}

function describe(m: Measurement): string {
  const parts = [];
  if (m.rps !== null) parts.push(`${Math.round(m.rps)} req/s`);
  if (m.p50Ms !== null) parts.push(`p50 ${m.p50Ms.toFixed(2)} ms`, `p99 ${(m.p99Ms ?? 0).toFixed(2)} ms`);
  if (m.non2xx + m.errors + m.timeouts > 0) parts.push(`non-2xx ${m.non2xx}, errors ${m.errors}, timeouts ${m.timeouts}`);
  if (m.note !== undefined) parts.push(m.note);
  return parts.join(', ');
}

/** Runs one row on one system against its current leader; a failure becomes an n/a cell with the reason. */
async function runOn(spec: RowSpec, cluster: BenchCluster): Promise<Measurement> {
  const system = cluster.api.system;
  try {
    const leader = await cluster.leader(15_000);
    const measured = await spec.run(cluster, leader);
    const after = await cluster.leader(15_000).catch(() => null);
    log(`${spec.label} / ${system} (leader ${leader.id}): ${describe(measured)}`);
    if (after?.id !== leader.id) {
      const note = `leader changed during the step (${leader.id} -> ${after?.id ?? 'none'})`;
      log(`WARNING ${spec.label} / ${system}: ${note}`);
      return { ...measured, note: measured.note === undefined ? note : `${measured.note}; ${note}` };
    }
    return measured;
  } catch (err) {
    const note = `failed: ${(err as Error).message}`;
    log(`${spec.label} / ${system}: ${note}`);
    return notApplicable(note);
  }
}

/** Before every measurement: how long the machine took to go quiet (see settle()). */
interface Settle {
  readonly row: string;
  readonly system: 'keel' | 'etcd' | 'both';
  readonly quiet: boolean;
  readonly waitedSeconds: number;
  readonly cores: number;
}

const settleMaxMs = 20_000;
/** Both idle clusters and the idle benchmark use about 0.05 cores; a LevelDB compaction or a GC uses one. */
const settleCores = 0.2;

/**
 * Waits for the machine to go quiet before a measurement (at least one sample). A load can leave work behind it
 * (LevelDB compactions, garbage collections), and with the alternating order one system's row often starts right
 * after its own previous row while the other system's starts after a pause. Each wait is recorded in the JSON
 * (diagnostics.settles): in three full runs, 56 of 60 waits ended after the first 1 s sample, the longest took 3 s.
 */
async function settle(row: string, system: Settle['system'], sampleMs = 1_000): Promise<Settle> {
  const result = await waitForQuiet({ maxMs: settleMaxMs, thresholdCores: settleCores, sampleMs });
  const round = (v: number): number => Math.round(v * 100) / 100;
  return { row, system, quiet: result.quiet, waitedSeconds: round(result.waitedMs / 1000), cores: round(result.cores) };
}

/**
 * Sequential puts (put c1) on each cluster before the first row, the same for both. A fresh Keel node runs its write path through
 * V8's interpreter and baseline compilers for its first seconds: put c1 measured 1.47 ms p50 in its first 5 s and
 * 0.86-0.91 ms from 10 s on (etcd, compiled ahead of time, 0.79-0.89 throughout). Without this the first row
 * measures Keel's start-up; each row still has its own warm-up.
 */
async function warmUpClusters(clusters: readonly BenchCluster[], seconds: number): Promise<void> {
  if (seconds <= 0) return;
  for (const cluster of clusters) {
    const leader = await cluster.leader(15_000);
    const measured = await putLoad(cluster, leader, 1, { seconds, warmupSeconds: 0 });
    log(`cluster warm-up / ${cluster.api.system}: ${seconds} s of put c1, ${describe(measured)}`);
  }
}

function timestamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-');
}

function resultsDir(): string {
  const dir = path.join(repoRoot(), 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  return dir;
}

async function startClusters(supervisor: Supervisor, options: Options, notes: string[]): Promise<{ keel: BenchCluster; etcd: BenchCluster | null }> {
  let etcdStart: Promise<BenchCluster | null> = Promise.resolve(null);
  if (options.keelOnly) {
    notes.push('etcd not run (--keel-only): etcd columns and ratios are n/a');
  } else {
    const etcd = ensureEtcd(log);
    if (etcd.ok) {
      log(`using ${etcd.version} at ${etcd.binary}`);
      etcdStart = startEtcdCluster(supervisor, etcd.binary, etcd.version);
    } else {
      const note = `etcd unavailable, running Keel only (ratios n/a): ${etcd.reason}`;
      log(note);
      notes.push(note);
    }
  }
  const keelStart = startKeelCluster(supervisor);
  const [keel, etcd] = await Promise.all([keelStart, etcdStart]);
  const keelLeader = await keel.leader(30_000);
  log(`Keel cluster up, leader ${keelLeader.id} at ${keelLeader.clientUrl}`);
  let etcdCluster = etcd;
  if (etcd !== null) {
    try {
      const etcdLeader = await etcd.leader(30_000);
      log(`etcd cluster up, leader ${etcdLeader.id} at ${etcdLeader.clientUrl}`);
    } catch (err) {
      const note = `etcd cluster did not come up, running Keel only (ratios n/a): ${(err as Error).message}`;
      log(note);
      notes.push(note);
      await etcd.stop();
      etcdCluster = null;
    }
  }
  return { keel, etcd: etcdCluster };
}

async function compare(supervisor: Supervisor, options: Options): Promise<void> {
  const startedAt = new Date();
  const machine = machineInfo();
  const notes: string[] = [];
  const { keel, etcd } = await startClusters(supervisor, options, notes);
  const meter = new CpuMeter();
  for (const node of [...keel.nodes, ...(etcd?.nodes ?? [])]) meter.track(node.child.pid);
  await warmUpClusters([keel, ...(etcd === null ? [] : [etcd])], options.clusterWarmupSeconds);
  const rows: Row[] = [];
  const settles: Settle[] = [];
  const specs = rowSpecs(options);
  for (const [i, spec] of specs.entries()) {
    // Alternate which system goes first, so a drift of the machine over the run does not favour one of them.
    const order = i % 2 === 0 ? (['keel', 'etcd'] as const) : (['etcd', 'keel'] as const);
    const measured: Record<'keel' | 'etcd', Measurement | null> = { keel: null, etcd: null };
    for (const system of order) {
      const cluster = system === 'keel' ? keel : etcd;
      if (cluster === null) continue;
      if (system === 'etcd' && spec.keelOnly === true) continue;
      settles.push(await settle(spec.id, system));
      measured[system] = await runOn(spec, cluster);
    }
    rows.push({ id: spec.id, label: spec.label, keel: measured.keel, etcd: measured.etcd });
  }
  // Both leaders' resident memory once the run is over and the machine has gone quiet (a 3 s sample): whichever
  // system ran the last row is otherwise read while its collector has not yet caught up with that row's garbage.
  settles.push(await settle('leader-rss', 'both', 3_000));
  rows.push({ id: 'leader-rss', label: 'leader RSS after the run (MiB)', unit: 'MiB', keel: await rssOf(keel), etcd: etcd === null ? null : await rssOf(etcd) });
  const cpu = meter.read();
  const fsyncs = { keel: await fsyncsOf(keel), etcd: etcd === null ? [] : await fsyncsOf(etcd) };
  await Promise.all([keel.stop(), etcd?.stop()]);
  const unsettled = settles.filter((s) => !s.quiet);
  if (unsettled.length > 0) {
    warnNote(notes, `${unsettled.map((s) => `${s.row}/${s.system}`).join(', ')} started on a machine still busy after ${settleMaxMs / 1000} s (see diagnostics.settles)`);
  }
  if (cpu.foreignBusyCores > 0.25) {
    warnNote(notes, `other processes kept ${cpu.foreignBusyCores} cores busy on average during the run (of ${machine.nproc}): expect noise`);
  }

  const table = renderTable(rows);
  const allNotes = [...notes, ...renderNotes(rows)];
  const targets = checkTargets(rows);
  const command = `npm run bench${options.argv.length > 0 ? ` -- ${options.argv.join(' ')}` : ''}`;
  const out = path.join(resultsDir(), `${timestamp()}.json`);
  const report = {
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    command,
    quick: options.quick,
    machine,
    versions: { keel: keel.version, etcd: etcd?.version ?? null },
    settings: {
      stepSeconds: options.times.seconds,
      warmupSeconds: options.times.warmupSeconds,
      clusterWarmupSeconds: options.clusterWarmupSeconds,
      valueBytes,
      putKeySpace: keySpace,
      loadGenerator: 'autocannon, in the benchmark process (shares the CPU with both clusters)',
      clusters: 'three nodes each, default timings, data on disk in a temp dir, fsync on, 127.0.0.1 ephemeral ports',
    },
    rows: rows.map((row) => ({ ...row, ratios: ratios(row) })),
    targets,
    diagnostics: { cpu, leaderFsyncs: fsyncs, settles },
    notes: allNotes,
    table,
  };
  writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);

  const lines = [
    '',
    `Keel vs etcd — ${machine.nproc} × ${machine.cpuModel}, ${machine.memoryGiB} GiB, ${machine.kernel}, node ${machine.node}, data on ${machine.dataFileSystem}`,
    `${keel.version} vs ${etcd?.version ?? 'etcd: not run'}; ${options.times.seconds} s per step after ${options.times.warmupSeconds} s warm-up, each cluster warmed up first by ${options.clusterWarmupSeconds} s of put c1; ratios are Keel/etcd (req/s: higher is better; latency: lower is better)`,
    '',
    table,
    '',
    `CPU during the run: ${cpu.machineBusyCores} of ${machine.nproc} cores busy on average, ${cpu.benchBusyCores} by the benchmark (both clusters and the load generator), ${cpu.foreignBusyCores} by other processes; load average at start ${cpu.loadAverageStart.join(' ')}`,
    `leader fsyncs: Keel ${fsyncText(fsyncs.keel)}; etcd ${fsyncText(fsyncs.etcd)}`,
    '',
    ...allNotes.map((n) => `- ${n}`),
    ...(allNotes.length > 0 ? [''] : []),
    'targets (issue #7):',
    ...targets.map((t) => `  ${t.met === null ? 'n/a ' : t.met ? 'MET ' : 'MISS'} ${t.target}: ${t.value}`),
    '',
    `written to ${path.relative(process.cwd(), out)}`,
    '',
  ];
  process.stdout.write(lines.join('\n'));
}

function warnNote(notes: string[], note: string): void {
  log(`WARNING ${note}`);
  notes.push(note);
}

async function fsyncsOf(cluster: BenchCluster): Promise<FsyncStats[]> {
  try {
    return await leaderFsyncs(cluster);
  } catch (err) {
    log(`could not read ${cluster.api.system} leader metrics: ${(err as Error).message}`);
    return [];
  }
}

function fsyncText(stats: readonly FsyncStats[]): string {
  if (stats.length === 0) return 'n/a';
  return stats.map((s) => `${s.metric.replace(/_duration_seconds$/, '')} ${s.count} × ${s.meanMs ?? 'n/a'} ms`).join(', ');
}

async function rssOf(cluster: BenchCluster): Promise<Measurement> {
  const leader = await cluster.leader(10_000);
  const memory = residentMemory(leader.child.pid);
  if (memory === null) return notApplicable(`cannot read /proc/${leader.child.pid}/status`);
  return { ...notApplicable(`peak (VmHWM) ${memory.peakMiB.toFixed(0)} MiB`), rps: memory.rssMiB };
}

/** --profile: the Keel leader under put c64 with node --cpu-prof; prints and saves the self-time summary. */
async function profile(supervisor: Supervisor, options: Options): Promise<void> {
  const profileDir = supervisor.tempDir('keel-cpu-prof-');
  const keel = await startKeelCluster(supervisor, { cpuProfDir: profileDir });
  const leader = await keel.leader(30_000);
  log(`Keel cluster up (every node under --cpu-prof), leader ${leader.id}; put c64 for ${options.times.seconds} s after ${options.times.warmupSeconds} s warm-up`);
  await putLoad(keel, leader, 64, { seconds: options.times.warmupSeconds, warmupSeconds: 0 });
  // Only the measured step counts: start-up (module loading, schema compilation), warm-up and shutdown do not.
  const meter = new CpuMeter();
  for (const node of keel.nodes) meter.track(node.child.pid);
  const window = { fromUs: monotonicUs(), toUs: 0 };
  const measured = await putLoad(keel, leader, 64, { seconds: options.times.seconds, warmupSeconds: 0 });
  window.toUs = monotonicUs();
  const cpu = meter.read();
  log(`put c64: ${describe(measured)}`);
  log(`CPU: ${cpu.machineBusyCores} cores busy on average, ${cpu.benchBusyCores} by the benchmark, ${cpu.foreignBusyCores} by other processes`);
  const after = await keel.leader(10_000).catch(() => null);
  if (after?.id !== leader.id) log(`WARNING: leader changed during the step (${leader.id} -> ${after?.id ?? 'none'})`);
  await keel.stop();
  const leaderDir = path.join(profileDir, leader.id);
  const file = readdirSync(leaderDir).find((f) => f.endsWith('.cpuprofile'));
  if (file === undefined) throw new Error(`the leader wrote no profile in ${leaderDir} (did it stop gracefully?)`);
  const stamp = timestamp();
  const saved = path.join(resultsDir(), `${stamp}-keel-leader-put-c64.cpuprofile`);
  copyFileSync(path.join(leaderDir, file), saved);
  const summary = summariseProfile(saved, 30, window);
  const out = path.join(resultsDir(), `${stamp}-profile.json`);
  writeFileSync(out, `${JSON.stringify({ machine: machineInfo(), leader: leader.id, putC64: measured, cpu, window, summary }, null, 2)}\n`);
  process.stdout.write(`\n${renderProfile(summary)}\n\nprofile: ${path.relative(process.cwd(), saved)} (open in Chrome DevTools > Performance)\nsummary: ${path.relative(process.cwd(), out)}\n`);
}

const usage = `usage: npm run bench [-- --quick | --keel-only | --profile | --seconds N | --warmup N | --cluster-warmup N | --keep | --wait-quiet [M]]
  (no option)   the full comparison with etcd, about 5 minutes
  --quick       a subset (put c1/c64, reads, watch, lock) with 3 s steps, about 1 minute
  --keel-only   do not install or run etcd (ratios n/a)
  --profile     Keel only: the leader under put c64 with node --cpu-prof; prints the top self-time functions
  --seconds N   seconds per measured step (default 10, --quick 3); --warmup N: warm-up seconds (default 2, --quick 1)
  --cluster-warmup N  seconds of put c1 on each cluster before the first step (default 10, --quick 5)
  --keep        keep the temp dirs (data and logs of every node) for a post-mortem
  --wait-quiet [M]  first wait up to M minutes (default 10) until other processes use < 0.3 cores
`;

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help')) {
    process.stdout.write(usage);
    return;
  }
  let options: Options;
  try {
    options = parseOptions(argv);
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n${usage}`);
    process.exitCode = 2;
    return;
  }
  const supervisor = new Supervisor();
  supervisor.keepDirs = options.keep;
  try {
    if (options.waitQuietMinutes > 0) await waitForQuiet({ maxMs: options.waitQuietMinutes * 60_000, thresholdCores: 0.3, log });
    if (options.profile) await profile(supervisor, options);
    else await compare(supervisor, options);
  } catch (err) {
    process.stderr.write(`bench: failed: ${(err as Error).stack ?? String(err)}\n`);
    supervisor.printLogTails();
    process.exitCode = 1;
  } finally {
    await supervisor.cleanup();
    await closeHttp();
  }
}

await main();
