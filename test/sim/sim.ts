// The simulator's entry point: run one seed, return its verdict, statistics and (on failure) the trace tail.
import { SimCluster, type SimStats } from './cluster.js';
import { drawParams, formatParams, type ParamOverrides, type SimParams } from './params.js';

export interface SimResult {
  readonly seed: number;
  readonly params: SimParams;
  readonly ok: boolean;
  /** The violation or crash, with the virtual time it happened at. */
  readonly error: string | null;
  readonly stats: SimStats;
  readonly trace: readonly string[];
}

export interface RunOptions extends ParamOverrides {
  readonly verbose?: boolean;
  readonly print?: (line: string) => void;
}

export function runSeed(seed: number, options: RunOptions = {}): SimResult {
  const params = drawParams(seed, options);
  const cluster = new SimCluster(params, options);
  let error: string | null = null;
  try {
    cluster.run();
  } catch (err) {
    const detail = err instanceof Error ? (err.name === 'Violation' ? err.message : (err.stack ?? err.message)) : String(err);
    error = `at t=${cluster.now().toFixed(2)}ms: ${detail}`;
  }
  return { seed, params, ok: error === null, error, stats: cluster.stats, trace: error === null ? [] : cluster.traceLines.slice(-60) };
}

/** A failure report: seed, drawn parameters, the violation, and the last trace lines. */
export function formatFailure(result: SimResult): string {
  return [
    `SEED ${result.seed} FAILED (replay: KEEL_SEED=${result.seed} npm run sim)`,
    formatParams(result.params),
    `error: ${result.error}`,
    'last trace lines:',
    ...result.trace.map((line) => `  ${line}`),
  ].join('\n');
}

/** The events a batch of seeds must have produced at least once, else the batch did not test what it claims. */
export const rareEvents = ['snapshotsInstalled', 'transfers', 'truncations', 'restarts', 'confChanges'] as const;

export type BatchTotals = Record<keyof SimStats, number> & { seeds: number; failures: number };

export function emptyTotals(): BatchTotals {
  return {
    seeds: 0, failures: 0, virtualMs: 0, events: 0, readys: 0, elections: 0, crashes: 0, restarts: 0, pauses: 0,
    transfersRequested: 0, transfers: 0, snapshotsInstalled: 0, truncations: 0, confChanges: 0, committed: 0,
    writesOk: 0, writesFailed: 0, writesUnknown: 0, readsOk: 0, readsFailed: 0, messages: 0, dropped: 0,
    duplicated: 0, electAfterHealMs: 0, writeAfterHealMs: 0,
  };
}

/** Adds one run; the L1/L3 timings keep their maximum instead of a sum. */
export function addToTotals(totals: BatchTotals, result: { ok: boolean; stats: SimStats }): void {
  totals.seeds++;
  if (!result.ok) totals.failures++;
  for (const key of Object.keys(result.stats) as (keyof SimStats)[]) {
    if (key === 'electAfterHealMs' || key === 'writeAfterHealMs') totals[key] = Math.max(totals[key], result.stats[key]);
    else totals[key] += result.stats[key];
  }
}

export function missingRareEvents(totals: BatchTotals): string[] {
  return rareEvents.filter((key) => totals[key] === 0);
}

export function formatTotals(totals: BatchTotals): string {
  const t = totals;
  return [
    `seeds=${t.seeds} failures=${t.failures} virtual=${(t.virtualMs / 1000).toFixed(0)}s events=${t.events} readys=${t.readys}`,
    `elections=${t.elections} crashes=${t.crashes} restarts=${t.restarts} pauses=${t.pauses} ` +
      `transfers=${t.transfers}/${t.transfersRequested} snapshotsInstalled=${t.snapshotsInstalled} ` +
      `truncations=${t.truncations} confChanges=${t.confChanges}`,
    `committed=${t.committed} writes ok=${t.writesOk} failed=${t.writesFailed} unknown=${t.writesUnknown} ` +
      `reads ok=${t.readsOk} failed=${t.readsFailed} messages=${t.messages} dropped=${t.dropped} duplicated=${t.duplicated}`,
    `worst after heal: stable leader ${t.electAfterHealMs} ms, first write ${t.writeAfterHealMs} ms`,
  ].join('\n');
}
