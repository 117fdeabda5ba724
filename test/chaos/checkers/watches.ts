// Watch streams against a reference (S13, S14, S17). The reference is one full watch from revision 1 over every
// key the workloads use, taken after the faults healed: the committed history, one message per revision.
// Every recorded watcher, across its reconnects (each with fromRevision = last seen + 1), must see:
//   out-of-order      revisions strictly increasing (a revision at or below one already delivered)
//   duplicate-event   the same revision delivered twice
//   split-message     one revision's events split over several messages (one txn = one message; a lease revoke or
//                     expiry that deletes several keys is one revision, so one message: S17)
//   gap               a reference revision touching the watched keys, between the watch start and the last
//                     revision seen (or a progress notification's revision), never delivered (S13; a progress
//                     message claims everything up to it was delivered: S14)
//   event-mismatch    a delivered message whose events differ from the reference's for that revision (restricted
//                     to the watched keys)
//   phantom-event     a revision the reference does not have for the watched keys
// A 'compacted' message is explicit: the revisions below its compact revision may be missing until the next
// reconnect. An 'error' ends a stream; the next 'reconnect' record (revision = the fromRevision it used) must not
// skip anything. The reference itself must have one message per revision, in increasing order.
import type { Anomaly, CheckResult, WatchMessageRecord } from '../history.js';
import { anomaly } from './util.js';

type WatchEvent = NonNullable<WatchMessageRecord['events']>[number];

/** What a watcher watched: one key, or a prefix. */
export interface WatchSelection {
  readonly key: string;
  readonly prefix: boolean;
}

interface Reference {
  readonly byRev: Map<number, readonly WatchEvent[]>;
  readonly revs: number[];
}

function buildReference(reference: readonly WatchMessageRecord[], out: Anomaly[]): Reference {
  const byRev = new Map<number, readonly WatchEvent[]>();
  let last = 0;
  for (const m of reference) {
    if (m.kind !== 'events') continue;
    if (byRev.has(m.revision)) out.push(anomaly('split-message', `reference: revision ${m.revision} came in two messages (S13/S17)`, [m]));
    else if (m.revision <= last) out.push(anomaly('out-of-order', `reference: revision ${m.revision} after ${last}`, [m]));
    byRev.set(m.revision, [...(byRev.get(m.revision) ?? []), ...(m.events ?? [])]);
    last = Math.max(last, m.revision);
  }
  return { byRev, revs: [...byRev.keys()].sort((a, b) => a - b) };
}

function matches(sel: WatchSelection | undefined, key: string): boolean {
  if (sel === undefined) return true;
  return sel.prefix ? key.startsWith(sel.key) : key === sel.key;
}

function sameEvents(a: readonly WatchEvent[], b: readonly WatchEvent[]): boolean {
  if (a.length !== b.length) return false;
  return a.every((e, i) => {
    const f = b[i]!;
    return e.type === f.type && e.key === f.key && (e.value ?? null) === (f.value ?? null) && e.modRevision === f.modRevision;
  });
}

/** One watcher's walk over its records. */
class StreamCheck {
  private last = 0;
  /** Every reference revision >= expected must be delivered (up to what is seen next). */
  private expected: number | undefined;
  private excusedBelow = 0;
  private lastMessage: WatchMessageRecord | undefined;
  private pending: WatchEvent[] = [];
  readonly out: Anomaly[] = [];

  constructor(
    private readonly watcher: number,
    private readonly ref: Reference,
    private readonly sel: WatchSelection | undefined,
  ) {}

  private refEvents(rev: number): WatchEvent[] {
    return (this.ref.byRev.get(rev) ?? []).filter((e) => matches(this.sel, e.key));
  }

  /** Reference revisions for the watched keys in [from, to] that were not delivered. */
  private missed(from: number, to: number): number[] {
    const out: number[] = [];
    const revs = this.ref.revs;
    let lo = 0;
    let hi = revs.length;
    const start = Math.max(from, this.excusedBelow);
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (revs[mid]! < start) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < revs.length && revs[i]! <= to; i++) {
      if (this.refEvents(revs[i]!).length > 0) out.push(revs[i]!);
    }
    return out;
  }

  private checkGap(upTo: number, m: WatchMessageRecord): void {
    if (this.expected === undefined) return;
    const missed = this.missed(this.expected, upTo);
    if (missed.length > 0) {
      this.out.push(anomaly('gap', `watcher ${this.watcher} on ${m.node}: revisions ${missed.slice(0, 10).join(', ')} never delivered before ${m.kind} ${m.revision} (S13)`, [this.lastMessage, m, { missed: missed.slice(0, 10) }]));
    }
  }

  private events(m: WatchMessageRecord): void {
    const events = m.events ?? [];
    if (m.revision === this.last && this.lastMessage?.kind === 'events') {
      // the first part already matched the reference: a repeat; it did not: the rest of a split message
      const property = sameEvents(this.pending, this.refEvents(m.revision)) ? 'duplicate-event' : 'split-message';
      this.out.push(anomaly(property, `watcher ${this.watcher}: revision ${m.revision} delivered in two messages`, [this.lastMessage, m]));
      this.pending = [...this.pending, ...events];
      return;
    }
    if (m.revision < this.last) {
      this.out.push(anomaly('out-of-order', `watcher ${this.watcher}: revision ${m.revision} after ${this.last}`, [this.lastMessage, m]));
      return;
    }
    this.checkGap(m.revision - 1, m);
    const expect = this.refEvents(m.revision);
    if (expect.length === 0) {
      this.out.push(anomaly('phantom-event', `watcher ${this.watcher}: revision ${m.revision} is not in the reference for its keys`, [m]));
    } else if (!sameEvents(events, expect)) {
      const property = events.length < expect.length && events.every((e) => expect.some((f) => sameEvents([e], [f]))) ? 'split-message' : 'event-mismatch';
      this.out.push(anomaly(property, `watcher ${this.watcher}: revision ${m.revision} events differ from the reference`, [m, { reference: expect }]));
    }
    this.pending = [...events];
    this.advance(m.revision);
  }

  private advance(rev: number): void {
    this.last = Math.max(this.last, rev);
    this.expected = this.last + 1;
  }

  step(m: WatchMessageRecord): void {
    switch (m.kind) {
      case 'events':
        this.events(m);
        break;
      case 'progress':
        this.checkGap(m.revision, m);
        this.advance(m.revision);
        break;
      case 'compacted':
        // explicit: what lies below the compact revision may be missing, until the watcher reconnects
        this.excusedBelow = Math.max(this.excusedBelow, m.revision);
        break;
      case 'reconnect':
        if (this.expected !== undefined && m.revision > this.expected) this.checkGap(m.revision - 1, m);
        this.expected = m.revision;
        if (m.revision <= this.last) this.last = m.revision - 1;
        break;
      case 'error':
        break;
    }
    this.lastMessage = m;
  }
}

/**
 * Checks every recorded watcher against the reference. `selections` says what each watcher watched (by watcher
 * number); a watcher without one is taken to watch every key.
 */
export function checkWatches(
  records: readonly WatchMessageRecord[],
  reference: readonly WatchMessageRecord[],
  selections: Readonly<Record<number, WatchSelection>> = {},
): CheckResult {
  const anomalies: Anomaly[] = [];
  const ref = buildReference(reference, anomalies);
  const byWatcher = new Map<number, WatchMessageRecord[]>();
  for (const r of records) {
    const list = byWatcher.get(r.watcher) ?? [];
    list.push(r);
    byWatcher.set(r.watcher, list);
  }
  let checked = 0;
  for (const [watcher, list] of byWatcher) {
    const check = new StreamCheck(watcher, ref, selections[watcher]);
    for (const m of list) check.step(m);
    checked += list.filter((m) => m.kind === 'events').length;
    anomalies.push(...check.out.slice(0, 20));
  }
  return { checker: 'watches', checkedOps: checked, anomalies, notes: [`${byWatcher.size} watchers, ${ref.revs.length} reference revisions`] };
}

/**
 * S17 beyond one message: the keys attached to one lease (each group) are only ever deleted together, by the
 * lease's revoke or expiry, so when the reference deletes one of them, every other key of the group that was
 * present must be deleted at that same revision. Catches an expiry that deletes a lease's keys one revision at a
 * time (each of which would otherwise look like a valid single-key message). The workload must not delete these
 * keys by hand.
 */
export function checkRevokesAtomic(reference: readonly WatchMessageRecord[], groups: readonly (readonly string[])[]): CheckResult {
  const anomalies: Anomaly[] = [];
  const present = new Set<string>();
  const groupOf = new Map<string, readonly string[]>();
  for (const g of groups) for (const key of g) groupOf.set(key, g);
  const messages = reference.filter((m) => m.kind === 'events').sort((a, b) => a.revision - b.revision);
  for (const m of messages) {
    const events = m.events ?? [];
    const deleted = new Set(events.filter((e) => e.type === 'delete').map((e) => e.key));
    for (const key of deleted) {
      const stranded = (groupOf.get(key) ?? []).filter((k) => present.has(k) && !deleted.has(k));
      if (stranded.length > 0) {
        anomalies.push(anomaly('revoke-split', `revision ${m.revision} deleted ${key} but not ${stranded.join(', ')} of the same lease (S17)`, [m]));
      }
    }
    for (const e of events) {
      if (e.type === 'put') present.add(e.key);
      else present.delete(e.key);
    }
  }
  return { checker: 'lease-revokes', checkedOps: messages.length, anomalies };
}
