// Lease expiry bounds from the lease probe workload (S15, L6).
// Ops: grant {ttl} -> {lease, revision} (the probe key is attached by the grant op); keepalive {lease} -> {ttl};
// probe {key, lease} -> {present, revision}; revoke {lease}.
//
// S15, never early. Every ok keepalive (and the grant) was applied at some time a >= its invokeMs while the lease
// was alive, and reset its deadline to a + ttl; so the lease is alive at least until H = max(invokeMs) + ttl over
// the ok grant and keepalives, whenever they completed. A probe that saw the key absent although it COMPLETED
// before H is an early expiry (unless a revoke of the lease was invoked before the probe completed). Using the
// probe's completion, not its invocation, is deliberate: a probe invoked before H may have read after H, where
// absence is legitimate; flagging it would be a false alarm on a loaded machine. Info keepalives are ignored here:
// they can only extend the lease, so leaving them out only lowers H, i.e. can only hide, never invent, an anomaly.
//
// L6, gone in time while a quorum is up. The lease cannot outlive the last keepalive that could have applied:
// the last ok keepalive's completeMs, or an info keepalive's invokeMs + infoWindowMs (its request deadline: after
// that it can no longer apply). A probe INVOKED after that + ttl + electionTimeoutMs + slackMs that saw the key
// present is a late expiry, unless the cluster had no quorum at some point between the last keepalive and the
// probe (opts.unavailable lists those intervals; the runner knows when it cut the majority).
import type { Anomaly, CheckResult, Operation } from '../history.js';
import { anomaly, bool, describe, num } from './util.js';

export interface LeaseCheckOptions {
  readonly electionTimeoutMs: number;
  readonly slackMs: number;
  /** How long after its invocation an info keepalive may still apply (default 10,000 ms). */
  readonly infoWindowMs?: number;
  /** Intervals (runner ms) without a quorum: no late-expiry claim spans them. */
  readonly unavailable?: readonly { readonly fromMs: number; readonly toMs: number }[];
}

interface LeaseLife {
  readonly grant: Operation;
  readonly ttlMs: number;
  readonly keepalives: Operation[];
  readonly probes: Operation[];
  readonly revokes: Operation[];
}

function collect(ops: readonly Operation[]): Map<number, LeaseLife> {
  const leases = new Map<number, LeaseLife>();
  for (const op of ops) {
    if (op.f !== 'grant' || op.outcome !== 'ok') continue;
    const id = num(op.result, 'lease');
    const ttl = num(op.result, 'ttl') ?? num(op.args, 'ttl');
    if (id !== undefined && ttl !== undefined) leases.set(id, { grant: op, ttlMs: ttl * 1000, keepalives: [], probes: [], revokes: [] });
  }
  for (const op of ops) {
    const life = leases.get(num(op.args, 'lease') ?? -1);
    if (life === undefined) continue;
    if (op.f === 'keepalive') life.keepalives.push(op);
    else if (op.f === 'probe' && op.outcome === 'ok') life.probes.push(op);
    else if (op.f === 'revoke' && op.outcome !== 'fail') life.revokes.push(op);
  }
  return leases;
}

function checkEarly(id: number, life: LeaseLife, out: Anomaly[]): void {
  const renewals = [life.grant, ...life.keepalives.filter((k) => k.outcome === 'ok')];
  for (const probe of life.probes) {
    if (bool(probe.result, 'present') !== false || probe.invokeMs < life.grant.completeMs) continue;
    if (life.revokes.some((r) => r.invokeMs < probe.completeMs)) continue;
    const best = renewals.reduce((a, b) => (b.invokeMs > a.invokeMs ? b : a));
    const horizon = best.invokeMs + life.ttlMs;
    if (probe.completeMs < horizon) {
      out.push(anomaly('early-expiry', `lease ${id} (ttl ${life.ttlMs} ms): key absent at ${describe(probe)}, alive at least until ${horizon.toFixed(1)} since ${describe(best)} (S15)`, [best, probe]));
    }
  }
}

function checkLate(id: number, life: LeaseLife, opts: LeaseCheckOptions, out: Anomaly[]): void {
  const window = opts.infoWindowMs ?? 10_000;
  let last = life.grant.completeMs;
  let lastOp = life.grant;
  for (const k of life.keepalives) {
    const until = k.outcome === 'ok' ? k.completeMs : k.outcome === 'info' ? k.invokeMs + window : -1;
    if (until > last) {
      last = until;
      lastOp = k;
    }
  }
  const deadline = last + life.ttlMs + opts.electionTimeoutMs + opts.slackMs;
  for (const probe of life.probes) {
    if (bool(probe.result, 'present') !== true || probe.invokeMs <= deadline) continue;
    if ((opts.unavailable ?? []).some((u) => u.fromMs < probe.invokeMs && u.toMs > last)) continue;
    out.push(anomaly('late-expiry', `lease ${id} (ttl ${life.ttlMs} ms): key still present at ${describe(probe)}, due by ${deadline.toFixed(1)} after ${describe(lastOp)} (L6)`, [lastOp, probe]));
  }
  const revoked = life.revokes.find((r) => r.outcome === 'ok');
  for (const probe of life.probes) {
    if (revoked !== undefined && bool(probe.result, 'present') === true && probe.invokeMs > revoked.completeMs) {
      out.push(anomaly('present-after-revoke', `lease ${id}: key present at ${describe(probe)} after ${describe(revoked)}`, [revoked, probe]));
    }
  }
}

export function checkLeases(ops: readonly Operation[], opts: LeaseCheckOptions): CheckResult {
  const anomalies: Anomaly[] = [];
  let checked = 0;
  for (const [id, life] of collect(ops)) {
    checked += 1 + life.keepalives.length + life.probes.length + life.revokes.length;
    checkEarly(id, life, anomalies);
    checkLate(id, life, opts, anomalies);
  }
  return { checker: 'leases', checkedOps: checked, anomalies };
}
