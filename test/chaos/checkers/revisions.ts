// The revision-based checker (as in etcd's robustness tests) for long register histories and multi-key txns
// (S8, S9, S10). Every write request gets one store revision, so revisions order all writes: with the revision of
// each write known, each key's history is a chain of (revision, value), and every read can be checked directly
// against it: a read answered at header revision R must return the value of the last write to its key with
// revision <= R, and its modRevision. No search, so it scales to any history length.
//
// Where revisions come from: an ok write/cas/delete/txn reports its revision. An info op's outcome is settled by
// the applied dumps (the entry carrying its request id changed the revision: it applied, at that revision; present
// without a change: it applied as a no-op). An info write the dumps do not settle (they can have holes) is settled
// by a read that observed its value (values are unique), at the read's modRevision.
// Anomalies:
//   missing-revision     an ok write without a revision
//   duplicate-revision   two different writes at one revision (S10)
//   revision-mismatch    an ok op's revision differs from the one its applied entry shows
//   fail-applied         a 'fail' (503) op's request id is in the applied dumps (S9: 503 means not applied)
//   ack-not-applied      an ok write is absent from dumps that cover its revision (S6/S9)
//   stale-read / future-read / phantom-read / mod-revision-mismatch   a read (or txn read) disagrees with the chain
//   lost-update          a successful cas whose expected value was not current just before its revision
//   wrong-precondition   a failed cas whose compare was true, a delete whose count disagrees with the chain
//   revision-backwards   op A completed before op B was invoked, yet rev(B) < rev(A), or rev(B) == rev(A) for a
//                        write B (S10: never backwards for a client, even across nodes)
// Txn reads are checked against the chain at the txn's revision (before its own writes), so they all reflect one
// revision. Keys touched by unsettled info ops are not judged where such an op could explain what was seen.
import type { AppliedEntry, Anomaly, CheckResult, Operation } from '../history.js';
import { mergeApplied, writesByRequestId, type MergedEntry } from './applied.js';
import { anomaly, arr, bool, describe, num, opRevision, str, strOrNull } from './util.js';

type Value = string | null;

interface KeyWrite {
  readonly key: string;
  readonly value: Value;
}

interface KeyRead {
  readonly key: string;
  readonly value: Value;
  readonly modRevision: number | undefined;
}

/** One register op normalized: what it wrote (at `rev`), what it read (at `readAt`), what it required. */
interface RevOp {
  readonly op: Operation;
  rev: number | undefined;
  readonly writes: KeyWrite[];
  readonly reads: KeyRead[];
  /** The revision its reads reflect: rev - 1 for writing ops, the header revision for the others. */
  readAt: number | undefined;
  /** cas: the expected value and whether the compare succeeded; delete: whether it deleted. */
  readonly cas?: { readonly key: string; readonly expect: Value; readonly succeeded: boolean };
  readonly deleted?: { readonly key: string; readonly any: boolean };
  /** Settled from the dumps or a read, not reported by the op itself. */
  settled: boolean;
}

const REGISTER_FS = new Set(['read', 'write', 'cas', 'delete', 'txn']);

function txnParts(op: Operation): { writes: KeyWrite[]; reads: KeyRead[] } {
  const writes: KeyWrite[] = [];
  for (const w of arr(op.args, 'writes')) {
    const key = str(w, 'key');
    if (key !== undefined) writes.push({ key, value: strOrNull(w, 'value') });
  }
  const reads: KeyRead[] = [];
  for (const r of arr(op.result, 'reads')) {
    const key = str(r, 'key');
    if (key !== undefined) reads.push({ key, value: strOrNull(r, 'value'), modRevision: num(r, 'modRevision') });
  }
  return { writes, reads };
}

/** What the op would write and read if it applied and wrote (info ops: as if applied). */
function normalize(op: Operation): RevOp | undefined {
  const key = str(op.args, 'key');
  const ok = op.outcome === 'ok';
  const base = { op, rev: undefined as number | undefined, readAt: undefined as number | undefined, settled: false };
  switch (op.f) {
    case 'read':
      if (!ok || key === undefined) return undefined;
      return { ...base, writes: [], reads: [{ key, value: strOrNull(op.result, 'value'), modRevision: num(op.result, 'modRevision') }], readAt: op.revision };
    case 'write':
      return key === undefined ? undefined : { ...base, writes: [{ key, value: strOrNull(op.args, 'value') }], reads: [] };
    case 'cas': {
      if (key === undefined) return undefined;
      const succeeded = ok ? bool(op.result, 'succeeded') === true : true;
      const cas = { key, expect: strOrNull(op.args, 'expect'), succeeded };
      return { ...base, writes: succeeded ? [{ key, value: strOrNull(op.args, 'value') }] : [], reads: [], cas };
    }
    case 'delete': {
      if (key === undefined) return undefined;
      const any = ok ? (num(op.result, 'deleted') ?? 1) > 0 : true;
      return { ...base, writes: any ? [{ key, value: null }] : [], reads: [], deleted: { key, any } };
    }
    case 'txn': {
      const parts = txnParts(op);
      return { ...base, writes: parts.writes, reads: ok ? parts.reads : [] };
    }
    default:
      return undefined;
  }
}

interface Dump {
  readonly merged: ReadonlyMap<number, MergedEntry>;
  readonly byId: ReadonlyMap<string, { entry: AppliedEntry; wrote: boolean | undefined }[]>;
  /** Revisions (lo, hi] that the dumps cover without holes, if they do. */
  readonly covered: { lo: number; hi: number } | undefined;
  /** The dumps hold every entry from index 1 on: an info op absent from them never applied. */
  readonly complete: boolean;
}

function readDump(applied: Record<string, readonly AppliedEntry[]>): Dump {
  const merged = mergeApplied(applied);
  const indexes = [...merged.keys()].sort((a, b) => a - b);
  let covered: Dump['covered'];
  if (indexes.length > 0 && indexes[indexes.length - 1]! - indexes[0]! + 1 === indexes.length) {
    covered = { lo: merged.get(indexes[0]!)!.entry.revision, hi: merged.get(indexes[indexes.length - 1]!)!.entry.revision };
  }
  return { merged, byId: writesByRequestId(merged), covered, complete: covered !== undefined && indexes[0] === 1 };
}

/** Fills in each op's revision, from itself or the dumps; reports the dump-related anomalies. */
function settle(rops: RevOp[], dump: Dump, out: Anomaly[]): void {
  for (const r of rops) {
    const op = r.op;
    const inDump = dump.byId.get(op.requestId);
    const wrote = inDump?.find((x) => x.wrote === true);
    if (op.outcome === 'ok') {
      const rev = opRevision(op);
      r.rev = rev;
      if (r.writes.length > 0) {
        r.readAt = rev === undefined ? undefined : rev - 1;
        if (rev === undefined) out.push(anomaly('missing-revision', `${describe(op)} has no revision`, [op]));
        if (wrote !== undefined && rev !== undefined && wrote.entry.revision !== rev) {
          out.push(anomaly('revision-mismatch', `${describe(op)} reported revision ${rev}, its entry shows ${wrote.entry.revision}`, [op, wrote.entry]));
        }
        const c = dump.covered;
        if (inDump === undefined && c !== undefined && rev !== undefined && rev > c.lo && rev <= c.hi) {
          out.push(anomaly('ack-not-applied', `${describe(op)} was acknowledged at revision ${rev} but no node applied it`, [op]));
        }
      } else if (r.readAt === undefined) r.readAt = rev;
    } else if (op.outcome === 'info' && wrote !== undefined && r.writes.length > 0) {
      r.rev = wrote.entry.revision;
      r.settled = true;
    } else if (op.outcome === 'info' && (inDump === undefined ? dump.complete : inDump.every((x) => x.wrote === false))) {
      r.writes.splice(0); // never applied, or applied as a no-op (a cas whose compare failed, a delete of nothing)
    }
  }
}

function failApplied(ops: readonly Operation[], dump: Dump): Anomaly[] {
  const out: Anomaly[] = [];
  for (const op of ops) {
    if (op.outcome !== 'fail' || !REGISTER_FS.has(op.f)) continue;
    const entries = dump.byId.get(op.requestId);
    if (entries !== undefined) {
      out.push(anomaly('fail-applied', `${describe(op)} answered fail (${op.error ?? '?'}) but was applied (S9)`, [op, ...entries.map((x) => x.entry)]));
    }
  }
  return out;
}

// ---- the per-key chains

interface ChainLink {
  readonly rev: number;
  readonly value: Value;
  readonly op: RevOp;
}

class Chains {
  private readonly byKey = new Map<string, ChainLink[]>();
  /** Who wrote each value (values are unique): known writes and unsettled info writes alike. */
  readonly writerOf = new Map<string, RevOp>();
  /** Keys with an unsettled info write/delete (may have applied at an unknown revision): earliest invocation. */
  readonly unsettledWrites = new Map<string, number>();
  readonly unsettledDeletes = new Map<string, number>();

  add(key: string, link: ChainLink): void {
    const list = this.byKey.get(key) ?? [];
    list.push(link);
    this.byKey.set(key, list);
  }

  sort(): void {
    for (const list of this.byKey.values()) list.sort((a, b) => a.rev - b.rev);
  }

  /** The last write to key at or below rev. */
  at(key: string, rev: number): ChainLink | undefined {
    const list = this.byKey.get(key);
    if (list === undefined) return undefined;
    let lo = 0;
    let hi = list.length - 1;
    let found: ChainLink | undefined;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid]!.rev <= rev) {
        found = list[mid];
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  }

  /** Whether an unsettled info op on key that sets `what` was invoked before `t`, and so may explain what an op
   * at t saw: 'null' an info delete, 'value' an info write, 'any' either. */
  mayHide(key: string, t: number, what: 'null' | 'value' | 'any'): boolean {
    const d = what === 'value' ? undefined : this.unsettledDeletes.get(key);
    const w = what === 'null' ? undefined : this.unsettledWrites.get(key);
    return (d !== undefined && d < t) || (w !== undefined && w < t);
  }

  noteUnsettled(r: RevOp): void {
    for (const w of r.writes) {
      const map = w.value === null ? this.unsettledDeletes : this.unsettledWrites;
      map.set(w.key, Math.min(r.op.invokeMs, map.get(w.key) ?? Number.POSITIVE_INFINITY));
    }
  }
}

function buildChains(rops: readonly RevOp[], out: Anomaly[]): Chains {
  const chains = new Chains();
  for (const r of rops) for (const w of r.writes) if (w.value !== null) chains.writerOf.set(w.value, r);
  // Unsettled info writes that a read observed: settled at the read's modRevision.
  for (const r of rops) {
    if (r.op.outcome !== 'ok') continue;
    for (const read of r.reads) {
      const writer = read.value === null ? undefined : chains.writerOf.get(read.value);
      if (writer !== undefined && writer.op.outcome === 'info' && writer.rev === undefined && (read.modRevision ?? 0) > 0) {
        writer.rev = read.modRevision;
        writer.settled = true;
      }
    }
  }
  const byRev = new Map<number, RevOp>();
  for (const r of rops) {
    if (r.writes.length === 0 || (r.op.outcome !== 'ok' && !r.settled)) {
      if (r.op.outcome === 'info' && !r.settled) chains.noteUnsettled(r);
      continue;
    }
    if (r.rev === undefined) continue;
    const other = byRev.get(r.rev);
    if (other !== undefined) {
      out.push(anomaly('duplicate-revision', `${describe(other.op)} and ${describe(r.op)} both wrote revision ${r.rev} (S10)`, [other.op, r.op]));
    } else byRev.set(r.rev, r);
    for (const w of r.writes) chains.add(w.key, { rev: r.rev, value: w.value, op: r });
  }
  chains.sort();
  return chains;
}

// ---- the checks against the chains

function checkRead(r: RevOp, read: KeyRead, chains: Chains): Anomaly | undefined {
  const at = r.readAt;
  if (at === undefined) return undefined;
  const own = r.writes.find((w) => w.key === read.key);
  if (own !== undefined && own.value === read.value) return undefined;
  const expected = chains.at(read.key, at);
  const expectedValue = expected?.value ?? null;
  const expectedMod = expected === undefined || expected.value === null ? 0 : expected.rev;
  const where = `${describe(r.op)} read ${read.key}=${JSON.stringify(read.value)} at revision ${at}`;
  if (read.value === expectedValue) {
    if (read.modRevision === undefined || read.modRevision === expectedMod) return undefined;
    return anomaly('mod-revision-mismatch', `${where} with modRevision ${read.modRevision}, expected ${expectedMod}`, [r.op, expected?.op.op]);
  }
  const writer = read.value === null ? undefined : chains.writerOf.get(read.value);
  if (read.value === null ? chains.mayHide(read.key, r.op.completeMs, 'null') : writer?.rev === undefined && writer?.op.outcome === 'info') return undefined;
  const evidence = [r.op, expected?.op.op, writer?.op].filter((x) => x !== undefined);
  if (read.value !== null && writer === undefined) return anomaly('phantom-read', `${where}: no operation that applied wrote that value`, evidence);
  if (writer?.rev !== undefined && writer.rev > at) return anomaly('future-read', `${where}: written only at revision ${writer.rev}`, evidence);
  return anomaly('stale-read', `${where}: the last write at or below ${at} set ${JSON.stringify(expectedValue)} (revision ${expected?.rev ?? 0})`, evidence);
}

function checkPreconditions(r: RevOp, chains: Chains): Anomaly | undefined {
  if (r.op.outcome !== 'ok' || r.rev === undefined) return undefined;
  if (r.cas !== undefined) {
    const { key, expect, succeeded } = r.cas;
    const before = chains.at(key, succeeded ? r.rev - 1 : r.rev)?.value ?? null;
    const hidden = expect === null ? chains.mayHide(key, r.op.completeMs, 'null') : chains.writerOf.get(expect)?.rev === undefined;
    if (succeeded && before !== expect && !hidden) {
      return anomaly('lost-update', `${describe(r.op)} succeeded expecting ${JSON.stringify(expect)} but ${key} held ${JSON.stringify(before)}`, [r.op, chains.at(key, r.rev - 1)?.op.op]);
    }
    if (!succeeded && before === expect && !chains.mayHide(key, r.op.completeMs, 'any')) {
      return anomaly('wrong-precondition', `${describe(r.op)} failed although ${key} held ${JSON.stringify(expect)} at ${r.rev}`, [r.op, chains.at(key, r.rev)?.op.op]);
    }
  }
  if (r.deleted !== undefined && !chains.mayHide(r.deleted.key, r.op.completeMs, r.deleted.any ? 'value' : 'null')) {
    const before = chains.at(r.deleted.key, r.deleted.any ? r.rev - 1 : r.rev)?.value ?? null;
    if ((before !== null) !== r.deleted.any) {
      return anomaly('wrong-precondition', `${describe(r.op)} deleted ${r.deleted.any ? 1 : 0} but ${r.deleted.key} held ${JSON.stringify(before)}`, [r.op]);
    }
  }
  return undefined;
}

/** S10: if A completed before B was invoked, rev(A) <= rev(B), strictly when B wrote. */
function checkRealTime(rops: readonly RevOp[]): Anomaly[] {
  const out: Anomaly[] = [];
  const revOf = (r: RevOp): number | undefined => (r.writes.length > 0 || r.op.f === 'txn' ? r.rev : r.readAt ?? r.rev);
  const done = rops.filter((r) => r.op.outcome === 'ok' && revOf(r) !== undefined).sort((a, b) => a.op.completeMs - b.op.completeMs);
  const started = rops.filter((r) => revOf(r) !== undefined && (r.op.outcome === 'ok' || r.settled)).sort((a, b) => a.op.invokeMs - b.op.invokeMs);
  let i = 0;
  let max: RevOp | undefined;
  for (const b of started) {
    while (i < done.length && done[i]!.op.completeMs < b.op.invokeMs) {
      const a = done[i++]!;
      if (max === undefined || revOf(a)! > revOf(max)!) max = a;
    }
    if (max === undefined) continue;
    const ra = revOf(max)!;
    const rb = revOf(b)!;
    const wrote = b.writes.length > 0;
    if (rb < ra || (wrote && rb === ra)) {
      out.push(anomaly('revision-backwards', `${describe(b.op)} at revision ${rb} was invoked after ${describe(max.op)} completed at revision ${ra} (S10)`, [max.op, b.op]));
    }
  }
  return out;
}

const CAP = 20;

function capped(anomalies: readonly Anomaly[], notes: string[]): Anomaly[] {
  const counts = new Map<string, number>();
  const kept: Anomaly[] = [];
  for (const a of anomalies) {
    const n = (counts.get(a.property) ?? 0) + 1;
    counts.set(a.property, n);
    if (n <= CAP) kept.push(a);
  }
  for (const [p, n] of counts) if (n > CAP) notes.push(`${p}: ${n} anomalies, the first ${CAP} listed`);
  return kept;
}

/** S8/S9/S10 for the register workload by revisions; `applied` is every node's applied-entries dump. */
export function checkRevisions(ops: readonly Operation[], applied: Record<string, readonly AppliedEntry[]>): CheckResult {
  const dump = readDump(applied);
  const anomalies: Anomaly[] = failApplied(ops, dump);
  const rops = ops.filter((op) => op.outcome !== 'fail').map(normalize).filter((r) => r !== undefined);
  settle(rops, dump, anomalies);
  const chains = buildChains(rops, anomalies);
  for (const r of rops) {
    if (r.op.outcome !== 'ok') continue;
    for (const read of r.reads) {
      const a = checkRead(r, read, chains);
      if (a !== undefined) anomalies.push(a);
    }
    const p = checkPreconditions(r, chains);
    if (p !== undefined) anomalies.push(p);
  }
  anomalies.push(...checkRealTime(rops));
  const settledCount = rops.filter((r) => r.settled).length;
  const infoCount = rops.filter((r) => r.op.outcome === 'info').length;
  const notes = [`${settledCount} of ${infoCount} info ops settled as applied`];
  return { checker: 'revisions', checkedOps: rops.length, anomalies: capped(anomalies, notes), notes };
}
