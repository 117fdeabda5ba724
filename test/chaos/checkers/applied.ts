// The applied-entries dumps of every node (GET /v1/debug/applied), compared with each other (S3, S5, S9, S10):
//  - log-mismatch: one index applied with a different term, hash or resulting revision on two nodes. Log matching
//    (S3) and state machine safety (S5) both promise that every node applies the same entry at each index, and a
//    deterministic store then reaches the same revision.
//  - revision-backwards / revision-gap: on one node, the revision after each entry is the previous one or one more
//    (one write request = one revision, S10), never less, never a jump.
//  - double-apply: a request id carried by two entries that both wrote (changed the revision). Retries reuse the
//    id and may be appended again, but the store's dedupe makes the later copies no-ops (S9: applied exactly once).
//  - duplicate-index: one node reports the same index twice.
// A node's dump may start late (a snapshot install clears it) or have holes; the checks only compare what is there.
import type { AppliedEntry, CheckResult } from '../history.js';
import { anomaly } from './util.js';
import type { Anomaly } from '../history.js';

/** One index as the nodes that report it saw it. */
export interface MergedEntry {
  readonly entry: AppliedEntry;
  readonly nodes: string[];
}

/** Every node's entries merged by index (the first node's copy stands for the index; mismatches are reported). */
export function mergeApplied(applied: Record<string, readonly AppliedEntry[]>): Map<number, MergedEntry> {
  const merged = new Map<number, MergedEntry>();
  for (const [node, entries] of Object.entries(applied)) {
    for (const entry of entries) {
      const seen = merged.get(entry.index);
      if (seen === undefined) merged.set(entry.index, { entry, nodes: [node] });
      else seen.nodes.push(node);
    }
  }
  return merged;
}

/** Whether the entry wrote: its revision is above the revision at index - 1; undefined when that is unknown. */
export function entryWrote(merged: ReadonlyMap<number, MergedEntry>, entry: AppliedEntry): boolean | undefined {
  const before = merged.get(entry.index - 1);
  if (before === undefined) return undefined;
  return entry.revision > before.entry.revision;
}

/** Request id -> the merged entries carrying it that wrote (or whose writing is unknown: first of a dump). */
export function writesByRequestId(merged: ReadonlyMap<number, MergedEntry>): Map<string, { entry: AppliedEntry; wrote: boolean | undefined }[]> {
  const out = new Map<string, { entry: AppliedEntry; wrote: boolean | undefined }[]>();
  for (const { entry } of merged.values()) {
    if (entry.requestId === undefined) continue;
    const list = out.get(entry.requestId) ?? [];
    list.push({ entry, wrote: entryWrote(merged, entry) });
    out.set(entry.requestId, list);
  }
  return out;
}

function compareNodes(applied: Record<string, readonly AppliedEntry[]>): Anomaly[] {
  const anomalies: Anomaly[] = [];
  const first = new Map<number, { node: string; entry: AppliedEntry }>();
  for (const [node, entries] of Object.entries(applied)) {
    for (const entry of entries) {
      const seen = first.get(entry.index);
      if (seen === undefined) {
        first.set(entry.index, { node, entry });
        continue;
      }
      const a = seen.entry;
      if (a.term === entry.term && a.hash === entry.hash && a.revision === entry.revision) continue;
      const what = a.term !== entry.term ? 'term' : a.hash !== entry.hash ? 'hash' : 'revision';
      anomalies.push(
        anomaly('log-mismatch', `index ${entry.index}: ${what} differs between ${seen.node} and ${node} (S3/S5)`, [
          { node: seen.node, ...a },
          { node, ...entry },
        ]),
      );
    }
  }
  return anomalies;
}

function checkNodeOrder(node: string, entries: readonly AppliedEntry[]): Anomaly[] {
  const anomalies: Anomaly[] = [];
  const sorted = [...entries].sort((a, b) => a.index - b.index);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    const cur = sorted[i]!;
    const evidence = [
      { node, ...prev },
      { node, ...cur },
    ];
    if (cur.index === prev.index) {
      anomalies.push(anomaly('duplicate-index', `${node} reports index ${cur.index} twice`, evidence));
    } else if (cur.revision < prev.revision) {
      anomalies.push(anomaly('revision-backwards', `${node}: revision ${prev.revision} -> ${cur.revision} at index ${cur.index} (S10)`, evidence));
    } else if (cur.index === prev.index + 1 && cur.revision > prev.revision + 1) {
      anomalies.push(anomaly('revision-gap', `${node}: revision jumps ${prev.revision} -> ${cur.revision} in one entry (S10)`, evidence));
    }
  }
  return anomalies;
}

function checkDoubleApply(merged: ReadonlyMap<number, MergedEntry>): Anomaly[] {
  const anomalies: Anomaly[] = [];
  for (const [requestId, list] of writesByRequestId(merged)) {
    const wrote = list.filter((x) => x.wrote === true);
    if (wrote.length > 1) {
      anomalies.push(
        anomaly('double-apply', `request ${requestId} changed the store ${wrote.length} times (S9)`, wrote.map((x) => x.entry)),
      );
    }
  }
  return anomalies;
}

export function checkAppliedLogs(applied: Record<string, readonly AppliedEntry[]>): CheckResult {
  const anomalies = compareNodes(applied);
  for (const [node, entries] of Object.entries(applied)) anomalies.push(...checkNodeOrder(node, entries));
  const merged = mergeApplied(applied);
  anomalies.push(...checkDoubleApply(merged));
  return { checker: 'applied-logs', checkedOps: merged.size, anomalies };
}
