// The recorded-history contract shared by the chaos workloads (which write histories) and the checkers (which
// read them). Jepsen's model: every client operation is an `invoke` event followed by exactly one completion:
//   ok   — the server answered 2xx: the operation took effect (or, for reads, observed `result`);
//   fail — the operation definitely did NOT take effect (a 503, a 4xx, a failed compare: see each workload);
//   info — the outcome is unknown (a 504, a reset connection, a client timeout): it may or may not have applied,
//          at any time from its invocation on. Checkers treat it as possibly applied, never as applied for sure,
//          unless the applied-entries dump of the nodes (`AppliedEntry` below) settles it by request id.
// Times are monotonic milliseconds (performance.now() of the one runner process), never wall-clock time.

/** One event. The process id is a logical client: it has at most one operation outstanding at a time. */
export interface HistoryEvent {
  readonly process: number;
  readonly type: 'invoke' | 'ok' | 'fail' | 'info';
  /** The operation's kind, e.g. 'read' | 'write' | 'cas' | 'delete' | 'txn' for the register workload. */
  readonly f: string;
  /** invoke: the arguments; ok: the result; fail/info: undefined or the error code seen. */
  readonly value: unknown;
  /** Monotonic ms from the runner's clock. */
  readonly timeMs: number;
  /** X-Keel-Request-Id sent with the operation; the same on the invoke and its completion. */
  readonly requestId: string;
  /** The node the request went to (node id). */
  readonly node?: string;
  /** X-Keel-Revision (or a revision from the body) of an ok completion. */
  readonly revision?: number;
  /** The error code of a fail/info completion, e.g. 'UNAVAILABLE', 'TIMEOUT', 'ECONNRESET'. */
  readonly error?: string;
}

/** An invoke paired with its completion (completion undefined: still outstanding when the run stopped = info). */
export interface Operation {
  readonly process: number;
  readonly f: string;
  readonly args: unknown;
  readonly requestId: string;
  readonly node?: string;
  readonly invokeMs: number;
  /** Infinity for info operations: they may take effect at any point after invokeMs. */
  readonly completeMs: number;
  readonly outcome: 'ok' | 'fail' | 'info';
  readonly result: unknown;
  readonly revision?: number;
  readonly error?: string;
}

// ---- Register workload (S8, S9, S10): single-key registers over a handful of keys, plus multi-key txns ----
// Every write puts a value unique across the whole run (so a read identifies the write it observed).
// f = 'read'   args {key}                        result {value: string|null, modRevision: number}  (modRevision 0 = absent); revision = header revision
// f = 'write'  args {key, value}                 result {revision}                                   revision = the put's revision
// f = 'cas'    args {key, expect: string|null, value}  result {succeeded: boolean, revision}        a txn: compare value==expect (or absent) then put
//              (succeeded=false is an ok completion that did NOT write: the compare saw another value)
// f = 'delete' args {key}                        result {deleted: number, revision}
// f = 'txn'    args {reads: string[], writes: {key, value}[]}  result {reads: {key, value: string|null, modRevision: number}[], revision}
//              all reads and writes happen atomically at one revision
// (checkers) A read answered 404 KEY_NOT_FOUND is an ok read {value: null, modRevision: 0} at the body's revision.
// A workload that retries a request id after a 504 must record a later 503 as info, not fail: the first attempt
// may have applied. Txn reads are checked as of before the txn's own writes (a read of the txn's own value is
// accepted too).
export interface ReadArgs { readonly key: string }
export interface ReadResult { readonly value: string | null; readonly modRevision: number }
export interface WriteArgs { readonly key: string; readonly value: string }
export interface CasArgs { readonly key: string; readonly expect: string | null; readonly value: string }
export interface CasResult { readonly succeeded: boolean; readonly revision: number }
export interface DeleteArgs { readonly key: string }
export interface TxnArgs { readonly reads: readonly string[]; readonly writes: readonly { readonly key: string; readonly value: string }[] }
export interface TxnResult {
  readonly reads: readonly { readonly key: string; readonly value: string | null; readonly modRevision: number }[];
  readonly revision: number;
}

// ---- Lock counter workload (S16) ----
// f = 'acquire'  args {lock}                 result {fence: number, revision}
// f = 'incr'     args {lock, fence, key, expect: number, value: number}  a fenced CAS of the counter key
//                 ok: applied; fail with error 'FENCE_REJECTED' (412): the fence was stale, not applied
// f = 'release'  args {lock, fence}
// (checkers) The acquire's result.revision must be the revision that granted the lock (the holder key's
// createRevision), not the reply's X-Keel-Revision; a release's revision is its X-Keel-Revision.
export interface AcquireResult { readonly fence: number; readonly revision: number }

// ---- Lease probe workload (S15, L6) ----
// f = 'grant' args {ttl} result {lease, revision}; f = 'keepalive' args {lease} result {ttl}; f = 'probe' args {key, lease}
// result {present: boolean, revision}. A probe key attached to a lease must be present at every probe whose
// invocation is earlier than (last ok keepalive's invokeMs, or the grant's invokeMs) + ttl*1000 (S15: never early),
// and absent at probes invoked later than the last keepalive's completeMs + ttl*1000 + electionTimeoutMs + slack (L6).
// (checkers) checkLeases judges S15 at the probe's COMPLETION (a probe invoked before the deadline may read after
// it), takes the probe key as attached by the grant op, and knows f = 'revoke' args {lease}.

// ---- Watch recorder (S13, S14, S17) ----
// (checkers) A 'reconnect' record's revision is the fromRevision it used (record the first connect as one too);
// a 'compacted' record's revision is the compactRevision. What each watcher watched goes to checkWatches as its
// third argument ({[watcher]: {key, prefix}}; without one, a watcher is taken to watch every key).
/** One message as a watcher received it: all events of one revision together (one txn = one message). */
export interface WatchMessageRecord {
  readonly watcher: number;
  readonly node: string;
  readonly timeMs: number;
  readonly kind: 'events' | 'progress' | 'compacted' | 'error' | 'reconnect';
  readonly revision: number;
  readonly events?: readonly { readonly type: 'put' | 'delete'; readonly key: string; readonly value?: string; readonly modRevision: number }[];
}

// ---- Applied-entries dump (GET /v1/debug/applied, only with the test-only debug flag) ----
/** One applied log entry as a node reports it. */
export interface AppliedEntry {
  readonly index: number;
  readonly term: number;
  /** The store revision after applying this entry (unchanged for entries that do not write the store). */
  readonly revision: number;
  /** The client request id the entry carried (absent for internal entries: no-ops, config changes, expiries). */
  readonly requestId?: string;
  /** A hash of the entry's data: equal (index) must mean equal hash on every node (S5). */
  readonly hash: string;
}

/** What a checker returns: no anomalies means valid. Each anomaly names the property and the minimal evidence. */
export interface CheckResult {
  readonly checker: string;
  readonly checkedOps: number;
  readonly anomalies: readonly Anomaly[];
  /** Parts the checker could not decide within its search budget: not anomalies, but counted and printed. */
  readonly unknown?: readonly string[];
  /** Figures worth printing (search steps, settled info ops...). */
  readonly notes?: readonly string[];
}
export interface Anomaly {
  readonly property: string;
  readonly message: string;
  /** The smallest set of operations or events that shows the anomaly. */
  readonly evidence: readonly unknown[];
}

/** Pairs invokes with completions by (process, requestId); an invoke without a completion becomes info. */
export function pairOperations(events: readonly HistoryEvent[]): Operation[] {
  const open = new Map<string, HistoryEvent>();
  const ops: Operation[] = [];
  for (const event of events) {
    const id = `${event.process}\u0000${event.requestId}`;
    if (event.type === 'invoke') {
      open.set(id, event);
      continue;
    }
    const invoke = open.get(id);
    if (invoke === undefined) throw new Error(`completion without invoke: process ${event.process} ${event.requestId}`);
    open.delete(id);
    ops.push(operationOf(invoke, event));
  }
  for (const invoke of open.values()) ops.push(operationOf(invoke, undefined));
  return ops;
}

/** One operation from its invoke and its completion (none: still outstanding when the run stopped = info). */
function operationOf(invoke: HistoryEvent, completion: HistoryEvent | undefined): Operation {
  const outcome = completion === undefined ? 'info' : (completion.type as Operation['outcome']);
  return {
    process: invoke.process,
    f: invoke.f,
    args: invoke.value,
    requestId: invoke.requestId,
    ...(invoke.node === undefined ? {} : { node: invoke.node }),
    invokeMs: invoke.timeMs,
    completeMs: outcome === 'info' || completion === undefined ? Number.POSITIVE_INFINITY : completion.timeMs,
    outcome,
    result: completion?.value,
    ...(completion?.revision === undefined ? {} : { revision: completion.revision }),
    ...(completion?.error === undefined ? {} : { error: completion.error }),
  };
}
