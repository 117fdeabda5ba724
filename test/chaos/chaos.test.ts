// Goal: the short fault-injection run in `npm test`: every nemesis and every workload for about a minute against
// a real 3-node cluster (fault proxies on every node-to-node link), then every checker: 0 anomalies, every fault
// kind injected at least once, and a real number of checked operations. The long run is `npm run chaos`.
import t from 'tap';
import { nemesisGroups, type NemesisGroup } from './nemesis.js';
import { runChaos, workloadNames } from './runner.js';

void t.test('chaos: all nemeses, all workloads, 0 anomalies', async (t) => {
  const seed = Number(process.env.KEEL_CHAOS_SEED ?? 20261121);
  const report = await runChaos({
    timeS: Number(process.env.KEEL_CHAOS_TIME ?? 60),
    seed,
    nemeses: Object.keys(nemesisGroups) as NemesisGroup[],
    workloads: [...workloadNames],
    quietMs: [500, 1000],
    faultMs: [1000, 2500],
    minFaultsEach: 1,
    log: (line) => t.comment(line),
  });
  for (const line of report.lines) t.comment(line);
  t.equal(report.anomalies, 0, `0 anomalies (seed ${seed})`);
  for (const [kind, count] of Object.entries(report.faultCounts)) t.ok(count >= 1, `fault ${kind} injected (${count})`);
  t.equal(Object.keys(report.faultCounts).length, Object.values(nemesisGroups).flat().length, 'every fault kind counted');
  t.ok(report.ops >= 1000, `checked operations: ${report.ops}`);
});
