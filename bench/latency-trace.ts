// Per-stage latency of ONE sequential write on a real three-node Keel cluster: `node dist/bench/latency-trace.js`.
// Starts the cluster with KEEL_LATENCY_TRACE=1 (src/util/latency-trace.ts: every node stamps the stages of the
// write path on one machine-wide clock), opens a watch on the leader, sends sequential puts (each waits for its
// answer and its watch event), then stops the nodes and lines their stamps up with each put's send time. Prints,
// per node role and stage, the median and p90 time since the client sent the put, and the client-side put answer
// and put-to-watch-event medians.
//
// Options: --puts N (default 300) | --warmup N (default 50) | --bin <path to keel.js> (A/B of another build) |
//          --no-trace (the same puts without stamps, for the plain latency figures) | --keep
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { keelApi } from './lib/apis.js';
import { closeHttp, openLineStream, sendOk, sleep } from './lib/http.js';
import { startKeelCluster } from './lib/keel-cluster.js';
import { Supervisor } from './lib/supervisor.js';

interface PutSample {
  readonly sentAt: number;
  readonly answeredAt: number;
  readonly eventAt: number;
}

const now = (): number => performance.timeOrigin + performance.now();

function option(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i < 0 ? undefined : argv[i + 1];
}

function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

async function runPuts(clientUrl: string, puts: number, warmup: number): Promise<PutSample[]> {
  const key = `trace/${randomBytes(4).toString('hex')}`;
  const arrived = new Map<number, number>();
  let wake: (() => void) | null = null;
  const stream = await openLineStream(clientUrl, keelApi.watch(key), (line) => {
    const at = now();
    for (const value of keelApi.watchedValues(line)) {
      const seq = Number(/^w(\d+):/.exec(value)?.[1]);
      if (Number.isSafeInteger(seq) && !arrived.has(seq)) arrived.set(seq, at);
    }
    wake?.();
  });
  const samples: PutSample[] = [];
  try {
    await sleep(200);
    for (let seq = 0; seq < warmup + puts; seq++) {
      const sentAt = now();
      await sendOk(clientUrl, keelApi.put(key, `w${seq}:`.padEnd(256, 'x')));
      const answeredAt = now();
      if (!arrived.has(seq)) {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no watch event for put ${seq} within 5 s`)), 5_000);
          wake = () => {
            if (!arrived.has(seq)) return;
            clearTimeout(timer);
            resolve();
          };
        });
        wake = null;
      }
      if (seq >= warmup) samples.push({ sentAt, answeredAt, eventAt: arrived.get(seq)! });
    }
  } finally {
    stream.close();
    await stream.done.catch(() => undefined);
  }
  return samples;
}

function readMarks(logFile: string): [string, number][] {
  const marks: [string, number][] = [];
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    if (!line.startsWith('LATTRACE ')) continue;
    for (const mark of JSON.parse(line.slice('LATTRACE '.length)) as [string, number][]) marks.push(mark);
  }
  return marks.sort((a, b) => a[1] - b[1]);
}

/** Per stage: the first stamp of that stage inside each put's window, as ms since the put was sent. */
function stagesOf(marks: readonly [string, number][], samples: readonly PutSample[]): Map<string, { at: number[]; count: number[] }> {
  const stages = new Map<string, { at: number[]; count: number[] }>();
  let from = 0;
  for (const sample of samples) {
    const end = Math.max(sample.answeredAt, sample.eventAt) + 0.2;
    while (from < marks.length && marks[from]![1] < sample.sentAt) from++;
    const seen = new Map<string, { at: number; count: number }>();
    for (let i = from; i < marks.length && marks[i]![1] <= end; i++) {
      const [name, at] = marks[i]!;
      const first = seen.get(name);
      if (first === undefined) seen.set(name, { at: at - sample.sentAt, count: 1 });
      else first.count++;
    }
    for (const [name, { at, count }] of seen) {
      const stage = stages.get(name) ?? { at: [], count: [] };
      stage.at.push(at);
      stage.count.push(count);
      stages.set(name, stage);
    }
  }
  return stages;
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const puts = Number(option(argv, 'puts') ?? 300);
  const warmup = Number(option(argv, 'warmup') ?? 50);
  const bin = option(argv, 'bin');
  const trace = !argv.includes('--no-trace');
  if (trace) process.env['KEEL_LATENCY_TRACE'] = '1';
  const supervisor = new Supervisor();
  supervisor.keepDirs = argv.includes('--keep');
  try {
    const cluster = await startKeelCluster(supervisor, bin === undefined ? {} : { keelBin: bin });
    const leader = await cluster.leader();
    await sleep(500);
    const samples = await runPuts(leader.clientUrl, puts, warmup);
    await cluster.stop();
    const answer = samples.map((s) => s.answeredAt - s.sentAt);
    const event = samples.map((s) => s.eventAt - s.sentAt);
    const fmt = (v: number): string => v.toFixed(3).padStart(7);
    process.stdout.write(`${puts} sequential puts, leader ${leader.id}${bin === undefined ? '' : `, bin ${bin}`}\n`);
    process.stdout.write(`client: put answer p50 ${fmt(quantile(answer, 0.5))} ms p90 ${fmt(quantile(answer, 0.9))}; `);
    process.stdout.write(`put-to-watch p50 ${fmt(quantile(event, 0.5))} ms p90 ${fmt(quantile(event, 0.9))}\n`);
    if (!trace) return;
    const rows: { who: string; stage: string; p50: number; p90: number; n: number; per: number }[] = [];
    for (const node of cluster.nodes) {
      const who = node.id === leader.id ? 'leader' : `follower ${node.id}`;
      for (const [stage, { at, count }] of stagesOf(readMarks(node.child.logFile), samples)) {
        rows.push({ who, stage, p50: quantile(at, 0.5), p90: quantile(at, 0.9), n: at.length, per: quantile(count, 0.5) });
      }
    }
    rows.sort((a, b) => a.p50 - b.p50);
    // Delivery legs per put: leader stamp to client receipt, for the answer and for the watch event.
    const leaderStages = stagesOf(readMarks(cluster.nodes.find((n) => n.id === leader.id)!.child.logFile), samples);
    const leg = (stage: string, client: number[]): string => {
      const at = leaderStages.get(stage)?.at;
      if (at?.length !== client.length) return `${stage}: n/a`;
      return `${stage} -> client p50 ${quantile(at.map((t, i) => client[i]! - t), 0.5).toFixed(3)} ms`;
    };
    process.stdout.write(`delivery: ${leg('resolve', answer)}; ${leg('watch.write', event)}\n`);
    // The full timeline of the put with the median answer time: every stamp of every node in its window.
    const median = [...samples].sort((a, b) => a.answeredAt - a.sentAt - (b.answeredAt - b.sentAt))[samples.length >> 1]!;
    const timeline: [number, string][] = [];
    for (const node of cluster.nodes) {
      const who = node.id === leader.id ? 'leader' : `follower ${node.id}`;
      for (const [stage, at] of readMarks(node.child.logFile)) {
        if (at >= median.sentAt && at <= Math.max(median.answeredAt, median.eventAt) + 0.2) timeline.push([at - median.sentAt, `${who.padEnd(12)} ${stage}`]);
      }
    }
    timeline.push([median.answeredAt - median.sentAt, 'client       answer'], [median.eventAt - median.sentAt, 'client       watch event']);
    process.stdout.write('the median put, every stamp:\n');
    for (const [at, what] of timeline.sort((a, b) => a[0] - b[0])) process.stdout.write(`${fmt(at)}  ${what}\n`);
    process.stdout.write('ms since the client sent the put (first stamp of each stage per put; n = puts with it, x = stamps per put p50)\n');
    for (const row of rows) {
      process.stdout.write(`${fmt(row.p50)} p50 ${fmt(row.p90)} p90  ${row.who.padEnd(12)} ${row.stage.padEnd(22)} n=${row.n} x${row.per}\n`);
    }
    process.stdout.write(`${fmt(quantile(answer, 0.5))} p50 ${fmt(quantile(answer, 0.9))} p90  client       answer\n`);
    process.stdout.write(`${fmt(quantile(event, 0.5))} p50 ${fmt(quantile(event, 0.9))} p90  client       watch event\n`);
  } finally {
    await closeHttp();
    await supervisor.cleanup();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`latency-trace: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exitCode = 1;
});
