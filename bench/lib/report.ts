// The one table (markdown, so the same text goes into the README) and the targets of issue #7, from the rows.
import type { Measurement } from './load.js';

export interface Row {
  readonly id: string;
  readonly label: string;
  readonly keel: Measurement | null;
  readonly etcd: Measurement | null;
  /** Rows whose numbers are sizes (MiB in the req/s column) rather than throughput. */
  readonly unit?: 'MiB';
}

export interface Ratios {
  readonly rps: number | null;
  readonly p50: number | null;
  readonly p99: number | null;
}

function ratio(keel: number | null | undefined, etcd: number | null | undefined): number | null {
  if (keel === null || keel === undefined || etcd === null || etcd === undefined || etcd === 0) return null;
  return keel / etcd;
}

export function ratios(row: Row): Ratios {
  return {
    rps: ratio(row.keel?.rps, row.etcd?.rps),
    p50: ratio(row.keel?.p50Ms, row.etcd?.p50Ms),
    p99: ratio(row.keel?.p99Ms, row.etcd?.p99Ms),
  };
}

function ms(value: number | null | undefined): string {
  if (value === null || value === undefined) return 'n/a';
  return value < 10 ? value.toFixed(2) : value < 100 ? value.toFixed(1) : value.toFixed(0);
}

function rate(value: number | null | undefined, unit: string | undefined): string {
  if (value === null || value === undefined) return unit === undefined ? 'n/a' : 'n/a';
  return unit === undefined ? Math.round(value).toString() : `${value.toFixed(0)} ${unit}`;
}

function times(value: number | null): string {
  return value === null ? 'n/a' : `${value.toFixed(2)}×`;
}

function cells(m: Measurement | null, row: Row): string[] {
  if (m === null) return ['n/a', 'n/a', 'n/a'];
  if (row.unit !== undefined) return [rate(m.rps, row.unit), '', ''];
  return [m.rps === null ? '–' : rate(m.rps, undefined), ms(m.p50Ms), ms(m.p99Ms)];
}

export function renderTable(rows: readonly Row[]): string {
  const header = [
    'workload',
    'Keel req/s',
    'Keel p50 ms',
    'Keel p99 ms',
    'etcd req/s',
    'etcd p50 ms',
    'etcd p99 ms',
    'Keel/etcd req/s',
    'Keel/etcd p50',
    'Keel/etcd p99',
  ];
  const lines = [header, header.map((_h, i) => (i === 0 ? '---' : '---:'))];
  for (const row of rows) {
    const r = ratios(row);
    const latencyOnly = row.unit === undefined && (row.keel?.rps ?? row.etcd?.rps ?? null) === null;
    lines.push([
      row.label,
      ...cells(row.keel, row),
      ...cells(row.etcd, row),
      latencyOnly ? '–' : times(r.rps),
      row.unit !== undefined ? '' : times(r.p50),
      row.unit !== undefined ? '' : times(r.p99),
    ]);
  }
  return lines.map((cols) => `| ${cols.join(' | ')} |`).join('\n');
}

/** Footnotes: errors, non-2xx answers and notes per row and system. */
export function renderNotes(rows: readonly Row[]): string[] {
  const notes: string[] = [];
  for (const row of rows) {
    for (const [system, m] of [['Keel', row.keel], ['etcd', row.etcd]] as const) {
      if (m === null) continue;
      const problems = [];
      if (m.non2xx > 0) problems.push(`${m.non2xx} non-2xx answers`);
      if (m.errors > 0) problems.push(`${m.errors} errors`);
      if (m.timeouts > 0) problems.push(`${m.timeouts} timeouts`);
      if (m.note !== undefined) problems.push(m.note);
      if (problems.length > 0) notes.push(`${row.label}, ${system}: ${problems.join('; ')}`);
    }
  }
  return notes;
}

export interface TargetCheck {
  readonly target: string;
  readonly value: string;
  readonly met: boolean | null;
}

/** Issue #7's targets (ratios within one run). */
export function checkTargets(rows: readonly Row[]): TargetCheck[] {
  const byId = new Map(rows.map((row) => [row.id, ratios(row)]));
  const check = (target: string, id: string, pick: (r: Ratios) => number | null, pass: (v: number) => boolean): TargetCheck => {
    const r = byId.get(id);
    const value = r === undefined ? null : pick(r);
    return { target, value: value === null ? 'n/a' : `${value.toFixed(2)}×`, met: value === null ? null : pass(value) };
  };
  return [
    check('put c64: Keel ≥ 2.0× etcd req/s', 'put-c64', (r) => r.rps, (v) => v >= 2),
    check('put c64: Keel p99 ≤ etcd p99', 'put-c64', (r) => r.p99, (v) => v <= 1),
    check('put c1: Keel p50 ≤ etcd p50', 'put-c1', (r) => r.p50, (v) => v <= 1),
    check('linearizable read c64: Keel ≥ 2.0× etcd req/s', 'read-linearizable-c64', (r) => r.rps, (v) => v >= 2),
    check('put-to-watch: Keel p50 ≤ etcd p50', 'watch-latency', (r) => r.p50, (v) => v <= 1),
    check('leader RSS: Keel ≤ etcd', 'leader-rss', (r) => r.rps, (v) => v <= 1),
  ];
}
