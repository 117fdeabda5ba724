// One chaos run: start a proxied 3-node cluster, run the workloads and the nemesis for `timeS` seconds, heal
// everything, wait for a leader and for every node to apply the same log, let the watchers catch up, take a
// reference watch from revision 1, dump every node's applied entries, then run every checker (check.ts).
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { SeededPrng } from '../../src/util/prng.js';
import { sleep } from '../helpers/cluster.js';
import { checkAll, type ChaosReport } from './check.js';
import { electionTimeoutMs, startChaosCluster } from './cluster.js';
import { pairOperations, type AppliedEntry, type HistoryEvent, type WatchMessageRecord } from './history.js';
import { Nemesis, nemesisGroups, type NemesisGroup } from './nemesis.js';
import { ChaosHttp, Recorder } from './workloads/recorder.js';
import { readCounter, runLockCounter } from './workloads/locks.js';
import { runLeaseProbes } from './workloads/leases.js';
import { runRegisters } from './workloads/registers.js';
import { WatchRecorder } from './workloads/watches.js';

export const workloadNames = ['registers', 'locks', 'leases', 'watches'] as const;
export type WorkloadName = (typeof workloadNames)[number];

export interface ChaosOptions {
  readonly timeS: number;
  readonly seed: number;
  readonly nemeses: readonly NemesisGroup[];
  readonly workloads: readonly WorkloadName[];
  readonly nodes?: number;
  readonly log?: (line: string) => void;
  /** Keep the run's directory (logs, history.json) even when it passed. */
  readonly keep?: boolean;
  /** Quiet time and fault duration (ms) between / of faults. */
  readonly quietMs?: readonly [number, number];
  readonly faultMs?: readonly [number, number];
  /** Run past timeS (up to 3 x timeS in all) until every fault kind was injected at least this often. */
  readonly minFaultsEach?: number;
}

/** After a fault window (which ends when a leader is back): the new leader first applies its log. */
const noQuorumRecoveryMs = 2000;

export const lockKey = 'lock-counter';
export const leaseTtl = 2;

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const log = options.log ?? ((line: string) => console.log(line));
  const prng = new SeededPrng(options.seed);
  const chaos = await startChaosCluster(options.nodes ?? 3, new SeededPrng(options.seed ^ 0x5eed));
  const { cluster } = chaos;
  log(`chaos: seed ${options.seed}, ${options.timeS} s, nemeses ${options.nemeses.join(',')}, workloads ${options.workloads.join(',')}; run dir ${cluster.dir}`);
  let passed = false;
  try {
    await cluster.waitForLeader(30_000);
    const endpoints = cluster.nodes.map((n) => ({ id: n.id, address: n.client }));
    const http = new ChaosHttp(endpoints, 3000);
    const recorder = new Recorder();
    const watchRecords: WatchMessageRecord[] = [];
    const has = (w: WorkloadName): boolean => options.workloads.includes(w);
    const watchers = has('watches') ? [0, 1, 2].map((i) => new WatchRecorder(i, endpoints, watchRecords, new SeededPrng(options.seed + 100 + i))) : [];
    for (const watcher of watchers) watcher.start(1);

    const stopWork = new AbortController();
    const work = Promise.all([
      has('registers') ? runRegisters(http, recorder, new SeededPrng(options.seed + 1), { processes: 64, keys: 16, firstProcess: 0, prefix: 'r/', txnPrefix: 't/' }, stopWork.signal) : null,
      has('locks') ? runLockCounter(http, recorder, new SeededPrng(options.seed + 2), { processes: 3, firstProcess: 100, lock: 'chaos', key: lockKey, ttl: leaseTtl }, stopWork.signal) : null,
      has('leases') ? runLeaseProbes(http, recorder, new SeededPrng(options.seed + 3), { processes: 4, firstProcess: 200, ttls: [leaseTtl, leaseTtl, 8, 8], prefix: 'lease-probe/' }, stopWork.signal) : null,
    ]);
    const nemesis = new Nemesis(cluster, chaos.proxies, new SeededPrng(prng.int(0, 2 ** 31 - 1)), {
      groups: options.nemeses,
      electionTimeoutMs,
      quietMs: options.quietMs ?? [500, 1500],
      faultMs: options.faultMs ?? [1000, 3000],
      log,
    });
    const stopNemesis = new AbortController();
    const faults = nemesis.run(stopNemesis.signal);
    const startedMs = performance.now();
    const progress = setInterval(() => {
      log(`chaos: ${Math.round((performance.now() - startedMs) / 1000)} s, ${recorder.events.length} events, ${nemesis.total} faults`);
    }, 15_000);
    await sleep(options.timeS * 1000);
    // With minFaultsEach, go on (up to 3x the time) until every fault kind was injected that often.
    const overtimeEnd = performance.now() + 2 * options.timeS * 1000;
    while ([...nemesis.counts.values()].some((n) => n < (options.minFaultsEach ?? 0)) && performance.now() < overtimeEnd) await sleep(500);
    clearInterval(progress);
    stopNemesis.abort();
    await faults;
    await nemesis.healAll();
    log('chaos: healed; letting the workloads run healed for 3 s');
    await sleep(3000);
    stopWork.abort();
    await work;

    const leader = await cluster.waitForLeader(60_000);
    const applied = await settle(cluster.nodes.map((n) => n.id), http, 60_000);
    const finalRevision = (await cluster.status(leader))?.revision ?? 0;
    for (const watcher of watchers) {
      if (!(await watcher.caughtUp(finalRevision, 30_000))) log(`chaos: watcher ${watcher.watcher} stuck at ${watcher.lastRevision} < ${finalRevision}`);
      await watcher.stop();
    }
    const reference: WatchMessageRecord[] = [];
    if (watchers.length > 0) {
      const full = new WatchRecorder(-1, endpoints.filter((e) => e.id === leader), reference, new SeededPrng(1));
      full.start(1);
      await full.caughtUp(finalRevision, 60_000);
      await full.stop();
    }
    const counter = has('locks') ? await readCounter(http, leader, lockKey) : null;
    await http.close();

    const saved: SavedRun = {
      seed: options.seed,
      events: recorder.events,
      watchRecords,
      reference,
      applied,
      counter: { key: lockKey, value: counter },
      workloads: options.workloads,
      serverErrors: recorder.serverErrors,
      faults: Object.fromEntries(nemesis.counts),
      faultWindows: nemesis.windows,
    };
    writeFileSync(path.join(cluster.dir, 'history.json'), JSON.stringify(saved));
    const report = checkSaved(saved, cluster.dir);
    passed = report.anomalies === 0;
    return report;
  } finally {
    await chaos.close();
    if (passed && options.keep !== true) rmSync(cluster.dir, { recursive: true, force: true });
  }
}

/** Everything a run recorded (history.json in the run's directory): enough to run the checkers again. */
export interface SavedRun {
  readonly seed: number;
  readonly events: HistoryEvent[];
  readonly watchRecords: WatchMessageRecord[];
  readonly reference: WatchMessageRecord[];
  readonly applied: Record<string, AppliedEntry[]>;
  readonly counter: { key: string; value: number | null };
  readonly workloads: readonly string[];
  readonly serverErrors: Recorder['serverErrors'];
  readonly faults: Record<string, number>;
  readonly faultWindows?: readonly { kind: string; fromMs: number; toMs: number }[];
}

export function checkSaved(saved: SavedRun, dir: string): ChaosReport {
  return checkAll({
    ops: pairOperations(saved.events),
    applied: saved.applied,
    watchRecords: saved.watchRecords,
    reference: saved.reference,
    counter: saved.counter,
    workloads: saved.workloads,
    electionTimeoutMs,
    serverErrors: saved.serverErrors,
    faults: new Map(Object.entries(saved.faults)),
    // L6 holds "while a quorum is up" with a leader: no late-expiry claim spans a fault window (which ends when
    // the healed cluster has a leader again, nemesis.ts) or the time the new leader needs to catch up after it.
    noQuorum: (saved.faultWindows ?? []).map((w) => ({ fromMs: w.fromMs, toMs: w.toMs + noQuorumRecoveryMs })),
    dir,
  });
}

/** Checks a kept run again (`npm run chaos -- --check <dir>`), e.g. after a checker changed. */
export function recheck(dir: string): ChaosReport {
  return checkSaved(JSON.parse(readFileSync(path.join(dir, 'history.json'), 'utf8')) as SavedRun, dir);
}

/** Waits until every node applied the same last index, then dumps each node's applied entries. */
async function settle(ids: readonly string[], http: ChaosHttp, timeoutMs: number): Promise<Record<string, AppliedEntry[]>> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const dumps = await Promise.all(
      ids.map(async (id) => {
        const answer = await http.send(id, 'GET', '/v1/debug/applied', undefined, `chaos-dump-${id}`, 30_000).catch(() => null);
        return answer?.status === 200 ? (answer.body as { appliedIndex: number; entries: AppliedEntry[] }) : null;
      }),
    );
    const indexes = new Set(dumps.map((d) => d?.appliedIndex ?? -1));
    if ((indexes.size === 1 && !indexes.has(-1)) || performance.now() > deadline) {
      const out: Record<string, AppliedEntry[]> = {};
      ids.forEach((id, i) => (out[id] = dumps[i]?.entries ?? []));
      return out;
    }
    await sleep(500);
  }
}

export function parseNemeses(text: string | undefined): NemesisGroup[] {
  if (text === undefined || text === 'all') return Object.keys(nemesisGroups) as NemesisGroup[];
  if (text === 'none') return [];
  const names = text.split(',').filter((s) => s !== '');
  for (const name of names) if (!(name in nemesisGroups)) throw new Error(`unknown nemesis ${name} (known: ${Object.keys(nemesisGroups).join(',')})`);
  return names as NemesisGroup[];
}

export function parseWorkloads(text: string | undefined): WorkloadName[] {
  if (text === undefined || text === 'all') return [...workloadNames];
  const names = text.split(',').filter((s) => s !== '');
  for (const name of names) if (!(workloadNames as readonly string[]).includes(name)) throw new Error(`unknown workload ${name} (known: ${workloadNames.join(',')})`);
  return names as WorkloadName[];
}
