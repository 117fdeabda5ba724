// Goal: run many simulator seeds from the command line, and replay one seed verbosely.
// Method: `npm run sim -- --seeds N [--start S] [--nodes 3|5] [--jobs J]` splits the seeds over J child
// processes (default: one per core), prints every failure (seed, drawn parameters, violation, trace tail) and a
// summary; it fails if any seed failed or if, in a batch of 100 seeds or more, a rare event (snapshot
// installed, leadership transferred, log truncated, node restarted, membership change applied) never happened.
// `KEEL_SEED=<seed> npm run sim` replays exactly one seed and prints its whole trace.
import { fork, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { drawParams, formatParams } from './params.js';
import {
  addToTotals, emptyTotals, formatFailure, formatTotals, missingRareEvents, runSeed, type SimResult,
} from './sim.js';

interface Args {
  seeds: number;
  start: number;
  nodes: number | undefined;
  jobs: number;
}

/** A batch this small need not see every rare event (a full `npm test` batch always must). */
const rareEventsMinSeeds = 100;

type WorkerReply = { kind: 'result'; seed: number; ok: boolean; stats: SimResult['stats']; report: string | null };

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { seeds: 1000, start: 1, nodes: undefined, jobs: Math.max(1, os.availableParallelism()) };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = Number(argv[i + 1]);
    if (flag === '--seeds') args.seeds = value;
    else if (flag === '--start') args.start = value;
    else if (flag === '--nodes') args.nodes = value;
    else if (flag === '--jobs') args.jobs = value;
    else throw new Error(`unknown argument ${flag} (use --seeds N --start S --nodes 3|5 --jobs J)`);
    if (!Number.isSafeInteger(value) || value < 0) throw new Error(`${flag} needs a non-negative integer`);
    i++;
  }
  if (args.nodes !== undefined && args.nodes !== 3 && args.nodes !== 5) throw new Error('--nodes must be 3 or 5');
  return args;
}

function replay(seed: number, nodes: number | undefined): number {
  const overrides = nodes === undefined ? {} : { nodes };
  console.log(formatParams(drawParams(seed, overrides)));
  const result = runSeed(seed, { verbose: true, ...overrides });
  console.log(JSON.stringify(result.stats));
  if (result.ok) {
    console.log(`seed ${seed} passed`);
    return 0;
  }
  console.log(`seed ${seed} FAILED: ${result.error}`);
  return 1;
}

/** Worker side: run the seeds the parent sends, one reply per seed. */
function serve(nodes: number | undefined): void {
  process.on('message', (message: { seeds: number[] } | { done: true }) => {
    if ('done' in message) {
      process.exit(0);
    }
    for (const seed of message.seeds) {
      const result = runSeed(seed, nodes === undefined ? {} : { nodes });
      const reply: WorkerReply = {
        kind: 'result', seed, ok: result.ok, stats: result.stats, report: result.ok ? null : formatFailure(result),
      };
      process.send!(reply);
    }
  });
}

async function runBatch(args: Args): Promise<number> {
  const started = process.hrtime.bigint();
  const totals = emptyTotals();
  const failed: number[] = [];
  const queue: number[] = Array.from({ length: args.seeds }, (_, i) => args.start + i);
  const chunk = 10;
  const self = fileURLToPath(import.meta.url);
  const workerArgs = ['--worker', ...(args.nodes === undefined ? [] : ['--nodes', String(args.nodes)])];
  let lastProgress = process.hrtime.bigint();
  const feed = (child: ChildProcess, outstanding: { n: number }): void => {
    const seeds = queue.splice(0, chunk);
    if (seeds.length === 0) child.send({ done: true });
    else {
      outstanding.n += seeds.length;
      child.send({ seeds });
    }
  };
  const workers = Array.from({ length: Math.min(args.jobs, Math.max(1, args.seeds)) }, () => {
    const child = fork(self, workerArgs, { stdio: 'inherit' });
    const outstanding = { n: 0 };
    child.on('message', (reply: WorkerReply) => {
      addToTotals(totals, reply);
      if (!reply.ok) {
        failed.push(reply.seed);
        if (failed.length <= 10) console.log(`\n${reply.report}\n`);
        else console.log(`seed ${reply.seed} FAILED (details suppressed after 10 failures)`);
      }
      if (process.hrtime.bigint() - lastProgress > 10_000_000_000n) {
        lastProgress = process.hrtime.bigint();
        console.log(`... ${totals.seeds}/${args.seeds} seeds, ${failed.length} failed`);
      }
      if (--outstanding.n === 0) feed(child, outstanding);
    });
    feed(child, outstanding);
    return new Promise<number | null>((resolve) => child.on('exit', resolve));
  });
  const codes = await Promise.all(workers);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  console.log(formatTotals(totals));
  console.log(`wall time ${seconds.toFixed(1)} s for ${totals.seeds} seeds (${args.jobs} jobs)`);
  let code = 0;
  if (codes.some((c) => c !== 0) || totals.seeds !== args.seeds) {
    console.log(`a worker died (exit codes ${codes.join(', ')}); ran ${totals.seeds} of ${args.seeds} seeds`);
    code = 1;
  }
  if (failed.length > 0) {
    console.log(`FAILED seeds (${failed.length}): ${failed.sort((a, b) => a - b).join(' ')}`);
    code = 1;
  }
  const missing = missingRareEvents(totals);
  if (missing.length > 0 && totals.seeds >= rareEventsMinSeeds) {
    console.log(`FAILED: the batch never saw: ${missing.join(', ')}`);
    code = 1;
  } else if (missing.length > 0) {
    console.log(`(never saw ${missing.join(', ')}; required only of batches of ${rareEventsMinSeeds} seeds or more)`);
  }
  if (code === 0) console.log('all seeds passed');
  return code;
}

const argv = process.argv.slice(2);
if (argv[0] === '--worker') {
  serve(parseArgs(argv.slice(1)).nodes);
} else {
  const args = parseArgs(argv);
  const single = process.env['KEEL_SEED'];
  if (single !== undefined && single !== '') process.exitCode = replay(Number(single), args.nodes);
  else process.exitCode = await runBatch(args);
}
