// Goal: prove the real Raft core safe and live under faults, over a bounded batch of simulator seeds (issue #2):
// S1-S5, the commit rule, no committed entry lost or changed, the client history (acknowledged writes applied
// exactly once, ReadIndex reads not stale), and L1-L3 plus catch-up once the faults heal.
// Method: run seeds 1..N (N = KEEL_SIM_SEEDS, default 600; each seed draws 3 or 5 founding nodes and its own
// fault rates) through the deterministic simulator in test/sim/, then the fixed regression seeds. The batch also
// fails if a rare event (snapshot installed, leadership transferred, log truncated, node restarted, membership
// change applied) never happened, or if one cluster size was never drawn: then it did not test what it claims.
// Every failure prints its seed and drawn parameters; `KEEL_SEED=<seed> npm run sim` replays it verbosely.
import t from 'tap';
import { addToTotals, emptyTotals, formatFailure, formatTotals, missingRareEvents, runSeed } from './sim.js';

const batchSeeds = Number(process.env['KEEL_SIM_SEEDS'] ?? 600);

/**
 * Seeds that once exposed a bug; they run on every `npm test` (a seed replays exactly only as long as the
 * simulator's own code is unchanged, so each one is also described).
 */
const regressions: readonly { seed: number; nodes?: number; bug: string }[] = [
  { seed: 1, bug: 'hasReady() stayed true while a ReadIndex round waited for acks: the driver loop spun forever' },
  { seed: 2, bug: 'lost appends (a probe, a window tail, a full window) were never re-sent: a follower stalled' },
];

void t.test(`simulator: ${batchSeeds} seeds`, async (t) => {
  const totals = emptyTotals();
  const sizes = new Map<number, number>();
  for (let seed = 1; seed <= batchSeeds; seed++) {
    const result = runSeed(seed);
    addToTotals(totals, result);
    sizes.set(result.params.nodes, (sizes.get(result.params.nodes) ?? 0) + 1);
    if (!result.ok) t.fail(formatFailure(result));
  }
  t.comment(formatTotals(totals));
  t.equal(totals.failures, 0, 'every seed passes');
  t.same(missingRareEvents(totals), [], 'every rare event happened in the batch');
  t.ok((sizes.get(3) ?? 0) >= batchSeeds / 4 && (sizes.get(5) ?? 0) >= batchSeeds / 4, 'both 3- and 5-node clusters ran');
});

void t.test('simulator: regression seeds', async (t) => {
  for (const { seed, nodes, bug } of regressions) {
    const result = runSeed(seed, nodes === undefined ? {} : { nodes });
    if (result.ok) t.pass(`seed ${seed} (${bug})`);
    else t.fail(`seed ${seed} (${bug})\n${formatFailure(result)}`);
  }
});
