// The fenced lock counter (S16). Ops: acquire {lock} -> {fence, revision}; incr {lock, fence, key, expect, value}
// (a fenced CAS of the counter key: ok = applied; fail FENCE_REJECTED = stale fence, not applied); release.
// Anomalies:
//   duplicate-fence      two ok acquires of one lock got the same fence
//   two-holders          two ok acquires of one lock at the same revision, or a grant while an earlier holder had
//                        not yet released (its ok release has a later revision)
//   fence-not-increasing in grant (revision) order, fences of a lock do not strictly increase
//   fence-backwards      acquire A completed before acquire B was invoked, yet fence(B) <= fence(A)
//   stale-fence-accepted an ok incr whose fence was already superseded (a higher fence's acquire had completed
//                        before the incr was invoked), or whose value is above an incr with a higher fence
//   double-incr          two ok incrs produced the same counter value (a lost update)
//   lost-update          the final value is below an ok incr's value, or below the number of ok incrs
//   unexplained-value    a counter value between 1 and the final one that no ok or info incr could have written
// The applied incrs form the chain 0 -> 1 -> ... -> final: every ok incr is in it exactly once, info incrs maybe.
// The revision checks (two-holders, fence-not-increasing) use the acquire's result.revision, which must be the
// revision that granted the lock (the holder key's createRevision). The X-Keel-Revision header of the acquire
// reply is NOT that: it is the store revision when the reply was built, which a slow reply can carry past the next
// holder's grant; acquires without result.revision are left out of those checks (the real-time check remains).
import type { Anomaly, CheckResult, Operation } from '../history.js';
import { anomaly, describe, num, opRevision, str } from './util.js';

interface Acquire {
  readonly op: Operation;
  readonly lock: string;
  readonly fence: number;
  readonly revision: number | undefined;
}

function acquires(ops: readonly Operation[]): Map<string, Acquire[]> {
  const out = new Map<string, Acquire[]>();
  for (const op of ops) {
    const lock = str(op.args, 'lock');
    const fence = num(op.result, 'fence');
    if (op.f !== 'acquire' || op.outcome !== 'ok' || lock === undefined || fence === undefined) continue;
    const list = out.get(lock) ?? [];
    list.push({ op, lock, fence, revision: num(op.result, 'revision') });
    out.set(lock, list);
  }
  return out;
}

/** Holds that overlap: B granted (by revision) after A's grant but before A's ok release. */
function checkOverlaps(lock: string, list: readonly Acquire[], ops: readonly Operation[], out: Anomaly[]): void {
  for (const rel of ops) {
    const relRev = opRevision(rel);
    if (rel.f !== 'release' || rel.outcome !== 'ok' || str(rel.args, 'lock') !== lock || relRev === undefined) continue;
    const holder = list.find((a) => a.fence === num(rel.args, 'fence'));
    if (holder?.revision === undefined) continue;
    const other = list.find((b) => b !== holder && b.revision !== undefined && b.revision > holder.revision! && b.revision < relRev);
    if (other !== undefined) {
      out.push(anomaly('two-holders', `lock ${lock}: ${describe(other.op)} granted at revision ${other.revision} while fence ${holder.fence} held it until ${relRev} (S16)`, [holder.op, other.op, rel]));
    }
  }
}

function checkFences(lock: string, list: readonly Acquire[], out: Anomaly[]): void {
  const byFence = new Map<number, Acquire>();
  for (const a of list) {
    const other = byFence.get(a.fence);
    if (other !== undefined) out.push(anomaly('duplicate-fence', `lock ${lock}: ${describe(other.op)} and ${describe(a.op)} both got fence ${a.fence} (S16)`, [other.op, a.op]));
    else byFence.set(a.fence, a);
  }
  const byRev = list.filter((a) => a.revision !== undefined).sort((a, b) => a.revision! - b.revision!);
  for (let i = 1; i < byRev.length; i++) {
    const a = byRev[i - 1]!;
    const b = byRev[i]!;
    if (a.revision === b.revision) out.push(anomaly('two-holders', `lock ${lock}: two holders at revision ${b.revision} (S16)`, [a.op, b.op]));
    else if (b.fence <= a.fence && a.fence !== b.fence) out.push(anomaly('fence-not-increasing', `lock ${lock}: fence ${a.fence} at revision ${a.revision}, then ${b.fence} at ${b.revision} (S16)`, [a.op, b.op]));
  }
  const done = [...list].sort((a, b) => a.op.completeMs - b.op.completeMs);
  for (const b of list) {
    const before = done.filter((a) => a.op.completeMs < b.op.invokeMs);
    const max = before.reduce<Acquire | undefined>((m, a) => (m === undefined || a.fence > m.fence ? a : m), undefined);
    if (max !== undefined && b.fence <= max.fence && max !== b) {
      out.push(anomaly('fence-backwards', `lock ${lock}: ${describe(b.op)} got fence ${b.fence} after ${describe(max.op)} had ${max.fence} (S16)`, [max.op, b.op]));
    }
  }
}

interface Incr {
  readonly op: Operation;
  readonly fence: number;
  readonly value: number;
}

function incrs(ops: readonly Operation[], outcome: Operation['outcome']): Incr[] {
  const out: Incr[] = [];
  for (const op of ops) {
    const fence = num(op.args, 'fence');
    const value = num(op.args, 'value');
    if (op.f === 'incr' && op.outcome === outcome && fence !== undefined && value !== undefined) out.push({ op, fence, value });
  }
  return out;
}

function checkStaleFences(ok: readonly Incr[], byLock: ReadonlyMap<string, Acquire[]>, out: Anomaly[]): void {
  for (const inc of ok) {
    const list = byLock.get(str(inc.op.args, 'lock') ?? '') ?? [];
    const newer = list.find((a) => a.fence > inc.fence && a.op.completeMs < inc.op.invokeMs);
    if (newer !== undefined) {
      out.push(anomaly('stale-fence-accepted', `${describe(inc.op)} with fence ${inc.fence} applied after ${describe(newer.op)} took fence ${newer.fence} (S16)`, [newer.op, inc.op]));
    }
  }
  const byValue = [...ok].sort((a, b) => a.value - b.value);
  for (let i = 1; i < byValue.length; i++) {
    const a = byValue[i - 1]!;
    const b = byValue[i]!;
    if (b.fence < a.fence) out.push(anomaly('stale-fence-accepted', `counter ${b.value} written with fence ${b.fence} after ${a.value} with fence ${a.fence} (S16)`, [a.op, b.op]));
  }
}

function checkChain(ok: readonly Incr[], info: readonly Incr[], final: number, out: Anomaly[]): void {
  const seen = new Map<number, Incr>();
  for (const inc of ok) {
    const other = seen.get(inc.value);
    if (other !== undefined) out.push(anomaly('double-incr', `${describe(other.op)} and ${describe(inc.op)} both set the counter to ${inc.value} (lost update)`, [other.op, inc.op]));
    else seen.set(inc.value, inc);
    if (inc.value > final) out.push(anomaly('lost-update', `${describe(inc.op)} set the counter to ${inc.value} but it ended at ${final}`, [inc.op]));
  }
  if (final < ok.length) out.push(anomaly('lost-update', `${ok.length} ok increments but the counter ended at ${final}`, []));
  const maybe = new Set(info.map((i) => i.value));
  const missing: number[] = [];
  for (let v = 1; v <= final; v++) if (!seen.has(v) && !maybe.has(v)) missing.push(v);
  if (missing.length > 0) {
    out.push(anomaly('unexplained-value', `counter values ${missing.slice(0, 10).join(', ')} were written by no ok or info increment (double apply?)`, [{ final, missing: missing.slice(0, 10) }]));
  }
}

export function checkLockCounter(ops: readonly Operation[], final: { key: string; value: number | null }): CheckResult {
  const anomalies: Anomaly[] = [];
  const byLock = acquires(ops);
  for (const [lock, list] of byLock) {
    checkFences(lock, list, anomalies);
    checkOverlaps(lock, list, ops, anomalies);
  }
  const counted = ops.filter((op) => op.f === 'incr' && (str(op.args, 'key') ?? final.key) === final.key);
  const ok = incrs(counted, 'ok');
  checkStaleFences(ok, byLock, anomalies);
  checkChain(ok, incrs(counted, 'info'), final.value ?? 0, anomalies);
  const checked = [...byLock.values()].reduce((n, l) => n + l.length, 0) + counted.length;
  return { checker: 'lock-counter', checkedOps: checked, anomalies };
}
