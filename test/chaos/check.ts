// Runs every checker on a finished run and prints the summary. The last line is exactly
// `chaos: N ops, M faults, K anomalies` (N = operations a checker covered, M = faults injected).
import {
  checkAppliedLogs,
  checkLeases,
  checkLockCounter,
  checkRegisterLinearizable,
  checkRevisions,
  checkWatches,
} from './checkers/index.js';
import type { AppliedEntry, CheckResult, Operation, WatchMessageRecord } from './history.js';

export interface ChaosInput {
  readonly ops: readonly Operation[];
  readonly applied: Record<string, AppliedEntry[]>;
  readonly watchRecords: readonly WatchMessageRecord[];
  readonly reference: readonly WatchMessageRecord[];
  readonly counter: { key: string; value: number | null };
  readonly workloads: readonly string[];
  readonly electionTimeoutMs: number;
  readonly serverErrors: readonly { node: string; f: string; status: number; body: unknown }[];
  readonly faults: ReadonlyMap<string, number>;
  /** Intervals without a quorum (runner ms): the lease checker claims no late expiry across them. */
  readonly noQuorum: readonly { fromMs: number; toMs: number }[];
  readonly dir: string;
}

export interface ChaosReport {
  readonly ops: number;
  readonly faults: number;
  readonly faultCounts: Record<string, number>;
  readonly anomalies: number;
  readonly results: readonly CheckResult[];
  readonly lines: readonly string[];
}

const registerFs = new Set(['read', 'write', 'cas', 'delete', 'txn']);
const lockFs = new Set(['acquire', 'incr', 'release']);
const leaseFs = new Set(['grant', 'attach', 'keepalive', 'probe']);

export function checkAll(input: ChaosInput): ChaosReport {
  const ops = [...input.ops];
  const registers = ops.filter((op) => registerFs.has(op.f));
  const singleKey = registers.filter((op) => op.f !== 'txn');
  const results: CheckResult[] = [];
  const run = (name: string, check: () => CheckResult): void => {
    try {
      results.push(check());
    } catch (err) {
      results.push({ checker: name, checkedOps: 0, anomalies: [{ property: 'checker-crashed', message: String((err as Error).stack ?? err), evidence: [] }] });
    }
  };
  if (input.workloads.includes('registers')) {
    run('register-linearizable', () => checkRegisterLinearizable(singleKey));
    run('revisions', () => checkRevisions(registers, input.applied));
  }
  run('applied-logs', () => checkAppliedLogs(input.applied));
  if (input.workloads.includes('watches')) run('watches', () => checkWatches([...input.watchRecords], [...input.reference]));
  if (input.workloads.includes('leases')) {
    run('leases', () => checkLeases(ops.filter((op) => leaseFs.has(op.f)), { electionTimeoutMs: input.electionTimeoutMs, slackMs: 1500, unavailable: input.noQuorum }));
  }
  if (input.workloads.includes('locks')) run('lock-counter', () => checkLockCounter(ops.filter((op) => lockFs.has(op.f)), input.counter));
  if (input.serverErrors.length > 0) {
    results.push({
      checker: 'no-5xx',
      checkedOps: 0,
      anomalies: [{ property: 'no 5xx other than 503/504', message: `${input.serverErrors.length} answers were a 5xx other than 503/504`, evidence: input.serverErrors.slice(0, 5) }],
    });
  }
  return summarize(input, ops, results);
}

function summarize(input: ChaosInput, ops: readonly Operation[], results: readonly CheckResult[]): ChaosReport {
  const lines: string[] = [];
  // An operation refused at connect never reached a server: recorded, but not counted as checked.
  const checked = ops.filter((op) => (registerFs.has(op.f) || lockFs.has(op.f) || leaseFs.has(op.f)) && op.error !== 'ECONNREFUSED').length;
  const byOutcome = { ok: 0, fail: 0, info: 0 };
  for (const op of ops) byOutcome[op.outcome] += 1;
  lines.push(`operations: ${ops.length} (${byOutcome.ok} ok, ${byOutcome.fail} fail, ${byOutcome.info} info); watch messages: ${input.watchRecords.length}`);
  lines.push('faults:');
  const faultCounts: Record<string, number> = {};
  for (const [kind, count] of input.faults) {
    faultCounts[kind] = count;
    lines.push(`  ${kind}: ${count}`);
  }
  lines.push('checkers:');
  let anomalies = 0;
  for (const result of results) {
    anomalies += result.anomalies.length;
    lines.push(`  ${result.checker}: ${result.checkedOps} checked, ${result.anomalies.length} anomalies${result.unknown?.length ? `, ${result.unknown.length} undecided` : ''}`);
    for (const note of result.notes ?? []) lines.push(`    ${note}`);
    for (const part of result.unknown ?? []) lines.push(`    undecided: ${part}`);
    for (const anomaly of result.anomalies.slice(0, 5)) {
      lines.push(`    ANOMALY ${anomaly.property}: ${anomaly.message}`);
      for (const item of anomaly.evidence.slice(0, 30)) lines.push(`      ${JSON.stringify(item)}`);
    }
  }
  if (anomalies > 0) lines.push(`logs and history.json kept in ${input.dir}`);
  const faults = [...input.faults.values()].reduce((a, b) => a + b, 0);
  lines.push(`chaos: ${checked} ops, ${faults} faults, ${anomalies} anomalies`);
  return { ops: checked, faults, faultCounts, anomalies, results, lines };
}
