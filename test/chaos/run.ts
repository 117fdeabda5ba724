// npm run chaos -- --time <s> [--nemesis kill,pause,partition,delay,reset,restart] [--workload registers,locks,
// leases,watches] [--seed S] [--keep] [--min-faults K] | --check <run dir>: one fault-injection run against a real 3-node cluster (see runner.ts).
// Exit 0 when every checker passed, 1 on an anomaly (the summary shows the evidence and the logs' directory).
import { parseArgs } from 'node:util';
import { parseNemeses, parseWorkloads, recheck, runChaos } from './runner.js';

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      time: { type: 'string', default: '60' },
      nemesis: { type: 'string' },
      workload: { type: 'string' },
      seed: { type: 'string' },
      keep: { type: 'boolean', default: false },
      check: { type: 'string' },
      'min-faults': { type: 'string', default: '0' },
    },
  });
  if (values.check !== undefined) {
    const report = recheck(values.check);
    for (const line of report.lines) console.log(line);
    return report.anomalies === 0 ? 0 : 1;
  }
  const timeS = Number(values.time);
  if (!Number.isFinite(timeS) || timeS <= 0) throw new Error('--time must be a positive number of seconds');
  const seed = values.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(values.seed);
  if (!Number.isSafeInteger(seed)) throw new Error('--seed must be an integer');
  const report = await runChaos({
    timeS,
    seed,
    nemeses: parseNemeses(values.nemesis),
    workloads: parseWorkloads(values.workload),
    keep: values.keep,
    minFaultsEach: Number(values['min-faults']),
  });
  for (const line of report.lines) console.log(line);
  return report.anomalies === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(2);
  },
);
