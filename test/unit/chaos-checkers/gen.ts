// A generator of valid register histories for the checker tests: concurrent processes issue reads, writes, cas,
// deletes and txns over a few keys; each op takes effect at a random point inside its [invoke, complete] window
// (info ops at a random later point, or never), and the results, revisions and the nodes' applied dumps are
// computed by running the ops in that order against a real register + revision model. So the history is
// linearizable by construction, with realistic overlap.
import type { AppliedEntry, Operation } from '../../chaos/history.js';
import { SeededPrng } from '../../../src/util/prng.js';

export interface GenOptions {
  readonly seed: number;
  readonly ops: number;
  readonly keys: number;
  readonly processes: number;
  readonly infoRate: number;
  readonly txnRate: number;
  readonly failRate?: number;
}

interface Draft {
  readonly process: number;
  readonly requestId: string;
  readonly invokeMs: number;
  readonly completeMs: number;
  readonly outcome: Operation['outcome'];
  /** When it takes effect; undefined: never (fail, or an info op that did not apply). */
  readonly atMs: number | undefined;
  readonly kind: number;
  readonly key: string;
}

interface Cell {
  value: string | null;
  modRevision: number;
}

function drafts(o: GenOptions, prng: SeededPrng): Draft[] {
  const out: Draft[] = [];
  const clocks = new Array<number>(o.processes).fill(0);
  for (let i = 0; i < o.ops; i++) {
    const p = prng.int(0, o.processes - 1);
    const invokeMs = clocks[p]! + prng.next() * 3;
    const completeMs = invokeMs + 0.5 + prng.next() * 15;
    clocks[p] = completeMs;
    const roll = prng.next();
    const outcome = roll < o.infoRate ? 'info' : roll < o.infoRate + (o.failRate ?? 0.01) ? 'fail' : 'ok';
    const at = invokeMs + prng.next() * (completeMs - invokeMs) * (outcome === 'info' ? 3 : 1);
    const applies = outcome === 'ok' || (outcome === 'info' && prng.next() < 0.5);
    const kind = prng.next() < o.txnRate ? 4 : prng.int(0, 3);
    out.push({ process: p, requestId: `g${i}`, invokeMs, completeMs, outcome, atMs: applies ? at : undefined, kind, key: `k${prng.int(0, o.keys - 1)}` });
  }
  return out;
}

export function generateRegisterHistory(o: GenOptions): { ops: Operation[]; applied: Record<string, AppliedEntry[]> } {
  const prng = new SeededPrng(o.seed);
  const all = drafts(o, prng);
  const cells = new Map<string, Cell>();
  const cell = (key: string): Cell => cells.get(key) ?? { value: null, modRevision: 0 };
  let revision = 0;
  let values = 0;
  const log: AppliedEntry[] = [];
  const ops: Operation[] = [];
  const logEntry = (requestId: string): void => {
    log.push({ index: log.length + 1, term: 1, revision, requestId, hash: `h${log.length + 1}` });
  };
  const put = (key: string, value: string | null): void => {
    cells.set(key, { value, modRevision: value === null ? 0 : revision });
  };
  const ordered = [...all].sort((a, b) => (a.atMs ?? a.invokeMs) - (b.atMs ?? b.invokeMs));
  for (const d of ordered) {
    const base = { process: d.process, requestId: d.requestId, invokeMs: d.invokeMs, completeMs: d.outcome === 'info' ? Number.POSITIVE_INFINITY : d.completeMs, outcome: d.outcome };
    const applies = d.atMs !== undefined;
    const answer = (f: string, args: unknown, result: unknown, rev: number): void => {
      ops.push({ ...base, f, args, result: d.outcome === 'ok' ? result : undefined, ...(d.outcome === 'ok' ? { revision: rev } : {}) });
    };
    const c = cell(d.key);
    switch (d.kind) {
      case 0: {
        // reads are not in the log: a fail or info read observed nothing
        answer('read', { key: d.key }, { value: c.value, modRevision: c.modRevision }, revision);
        break;
      }
      case 1: {
        const value = `v${values++}`;
        if (applies) {
          revision++;
          put(d.key, value);
          logEntry(d.requestId);
        }
        answer('write', { key: d.key, value }, { revision }, revision);
        break;
      }
      case 2: {
        const value = `v${values++}`;
        const expect = prng.next() < 0.7 ? c.value : `v${prng.int(0, values)}`;
        const succeeded = c.value === expect;
        if (applies) {
          if (succeeded) {
            revision++;
            put(d.key, value);
          }
          logEntry(d.requestId);
        }
        answer('cas', { key: d.key, expect, value }, { succeeded, revision }, revision);
        break;
      }
      case 3: {
        const deleted = c.value === null ? 0 : 1;
        if (applies) {
          if (deleted === 1) {
            revision++;
            put(d.key, null);
          }
          logEntry(d.requestId);
        }
        answer('delete', { key: d.key }, { deleted, revision }, revision);
        break;
      }
      default: {
        const other = `k${prng.int(0, o.keys - 1)}`;
        const reads = [...new Set([d.key, other])];
        const got = reads.map((key) => ({ key, value: cell(key).value, modRevision: cell(key).modRevision }));
        const writes = [{ key: other, value: `v${values++}` }];
        if (applies) {
          revision++;
          for (const w of writes) put(w.key, w.value);
          logEntry(d.requestId);
        }
        answer('txn', { reads, writes }, { reads: got, revision }, revision);
      }
    }
  }
  ops.sort((a, b) => a.invokeMs - b.invokeMs);
  return { ops, applied: { n1: log, n2: log.slice(0, Math.floor(log.length * 0.9)), n3: log.slice(Math.floor(log.length * 0.1)) } };
}

/** CPU milliseconds (user + system) this process used since `from`. */
export function cpuMsSince(from: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(from);
  return (d.user + d.system) / 1000;
}
