// Per-key linearizability of the register workload (S8): the Wing & Gong search with Lowe's memoization, as in
// Knossos and Porcupine. Linearizability is local (Herlihy & Wing), so each key is checked on its own: a history
// is linearizable iff its projection on every key is. Multi-key txns are projected on each key they touch (their
// writes and reads at that key happen at one point), which is necessary for, but weaker than, their atomicity; the
// revision checker covers the rest.
//
// The model is a register holding string|null (null = absent):
//   read -> must return the state;  write -> sets it;  delete -> sets null (deleted=1 needs a value, 0 needs none);
//   cas(expect, value) -> succeeds iff state == expect; an ok with succeeded=false needs state != expect.
// fail operations did not happen and are dropped; info reads observed nothing and are dropped; info writes, cas and
// deletes may have happened at any point after their invocation (completeMs = Infinity), so they are optional.
// An info write whose value some ok op observed did apply (values are unique), before that op completed: it becomes
// a required op. One whose value nobody observed cannot explain any read: it is left out, which keeps the search
// small. That pruning is not complete (a delete with deleted=1, or a failed cas, could need "some value"; a read of
// an absent key could need an info delete), so a history that fails without them is searched again with every
// info op before it is called an anomaly.
//
// The search: entries (calls and returns) in time order in a linked list; repeatedly linearize the first call that
// the model accepts (lifting its call and return out of the list) unless (linearized set, state) was seen already;
// on reaching a return whose call is not linearized, backtrack. Calls sort before returns at equal times (two ops
// touching in time are treated as concurrent, which can only hide, never invent, an anomaly). A step budget bounds
// the search: a key that exceeds it is reported as unknown, never as an anomaly and never as a hang.
import type { Anomaly, CheckResult, Operation } from '../history.js';
import { anomaly, arr, bool, describe, isObject, num, str, strOrNull } from './util.js';

type Value = string | null;

/** One operation projected on one key. */
export interface RegisterOp {
  readonly source: Operation;
  readonly kind: 'read' | 'write' | 'cas' | 'delete' | 'rw';
  readonly info: boolean;
  /** read/rw: the value returned; cas: the expected value. */
  readonly observed?: Value;
  /** write/cas/rw: the value written. */
  readonly value?: string;
  /** cas: whether it succeeded (ok only); delete: whether it deleted something (ok only). */
  readonly succeeded?: boolean;
  readonly invokeMs: number;
  readonly completeMs: number;
}

/** The model: the next state, or undefined when the operation cannot happen in this state. */
export function stepRegister(state: Value, op: RegisterOp): Value | undefined {
  switch (op.kind) {
    case 'read':
      return op.observed === state ? state : undefined;
    case 'write':
      return op.value;
    case 'rw':
      // A txn reading and writing one key: its read sees the state before its write (or, if the workload lists
      // the read after the write, its own value).
      return op.observed === state || op.observed === op.value ? op.value : undefined;
    case 'cas':
      if (op.info) return state === op.observed ? op.value : undefined;
      if (op.succeeded === true) return state === op.observed ? op.value : undefined;
      return state !== op.observed ? state : undefined;
    case 'delete':
      if (op.info) return state === null ? undefined : null;
      if (op.succeeded === undefined) return null;
      return op.succeeded === (state !== null) ? null : undefined;
  }
}

function timing(op: Operation, info: boolean): { info: boolean; invokeMs: number; completeMs: number } {
  return { info, invokeMs: op.invokeMs, completeMs: info ? Number.POSITIVE_INFINITY : op.completeMs };
}

function projectTxn(op: Operation, out: Map<string, RegisterOp[]>): void {
  const info = op.outcome === 'info';
  const written = new Map<string, string>();
  for (const w of arr(op.args, 'writes')) {
    const key = str(w, 'key');
    const value = str(w, 'value');
    if (key !== undefined && value !== undefined) written.set(key, value);
  }
  const reads = new Map<string, Value>();
  if (!info) {
    for (const r of arr(op.result, 'reads')) {
      const key = str(r, 'key');
      if (key !== undefined) reads.set(key, strOrNull(r, 'value'));
    }
  }
  const push = (key: string, rop: RegisterOp): void => {
    const list = out.get(key) ?? [];
    list.push(rop);
    out.set(key, list);
  };
  for (const [key, value] of written) {
    const observed = reads.get(key);
    if (observed === undefined && !reads.has(key)) push(key, { source: op, kind: 'write', value, ...timing(op, info) });
    else push(key, { source: op, kind: 'rw', value, observed: observed ?? null, ...timing(op, info) });
  }
  for (const [key, observed] of reads) {
    if (!written.has(key)) push(key, { source: op, kind: 'read', observed, ...timing(op, info) });
  }
}

function projectSingle(op: Operation): RegisterOp | undefined {
  const info = op.outcome === 'info';
  const t = timing(op, info);
  switch (op.f) {
    case 'read':
      if (info || !isObject(op.result)) return undefined;
      return { source: op, kind: 'read', observed: strOrNull(op.result, 'value'), ...t };
    case 'write': {
      const value = str(op.args, 'value');
      return value === undefined ? undefined : { source: op, kind: 'write', value, ...t };
    }
    case 'cas': {
      const value = str(op.args, 'value');
      if (value === undefined) return undefined;
      const succeeded = bool(op.result, 'succeeded');
      if (!info && succeeded === undefined) return undefined;
      const base = { source: op, kind: 'cas' as const, value, observed: strOrNull(op.args, 'expect'), ...t };
      return succeeded === undefined || info ? base : { ...base, succeeded };
    }
    case 'delete': {
      const deleted = num(op.result, 'deleted');
      return { source: op, kind: 'delete', ...t, ...(info || deleted === undefined ? {} : { succeeded: deleted > 0 }) };
    }
    default:
      return undefined;
  }
}

/** The register operations of a history, per key (fail ops and ops of other workloads left out). */
export function projectByKey(ops: readonly Operation[]): Map<string, RegisterOp[]> {
  const out = new Map<string, RegisterOp[]>();
  for (const op of ops) {
    if (op.outcome === 'fail') continue;
    if (op.f === 'txn') {
      projectTxn(op, out);
      continue;
    }
    const key = str(op.args, 'key');
    const rop = key === undefined ? undefined : projectSingle(op);
    if (key === undefined || rop === undefined) continue;
    const list = out.get(key) ?? [];
    list.push(rop);
    out.set(key, list);
  }
  return out;
}

/** Value -> the earliest completion of an ok op that observed it (a read returning it, a successful cas
 * expecting it). Values are unique per write, so an observed value names the one write that produced it. */
function observations(ops: readonly RegisterOp[]): Map<Value, number> {
  const seen = new Map<Value, number>();
  const note = (value: Value, at: number): void => {
    seen.set(value, Math.min(at, seen.get(value) ?? Number.POSITIVE_INFINITY));
  };
  for (const op of ops) {
    if (op.info) continue;
    if (op.kind === 'read' || op.kind === 'rw') note(op.observed ?? null, op.completeMs);
    if (op.kind === 'cas' && op.succeeded === true) note(op.observed ?? null, op.completeMs);
  }
  return seen;
}

/**
 * Prepares one key's ops for the search. An info write (or cas) whose value some ok op observed did apply (values
 * are unique), before that observer completed: it becomes a required op completing at the earliest observer's
 * completion, a sound bound that spares the search from trying it everywhere. `optional` says which of the ops
 * that stay optional (unobserved info writes, info deletes) to keep: a valid history rarely needs them, and a
 * failure without them is searched again with them.
 */
export function prepareOps(ops: readonly RegisterOp[], optional: 'none' | 'all'): RegisterOp[] {
  const seen = observations(ops);
  const out: RegisterOp[] = [];
  for (const op of ops) {
    if (!op.info) {
      out.push(op);
      continue;
    }
    const by = op.kind === 'delete' ? undefined : seen.get(op.value ?? null);
    if (by !== undefined && by >= op.invokeMs) {
      out.push({ ...op, info: false, completeMs: by, ...(op.kind === 'cas' ? { succeeded: true } : {}) });
    } else if (optional === 'all') out.push(op);
  }
  return out;
}

// ---- the search

interface Entry {
  readonly op: number;
  readonly isCall: boolean;
  match: Entry | null;
  prev: Entry | null;
  next: Entry | null;
}

function buildList(ops: readonly RegisterOp[]): Entry {
  const entries: { e: Entry; t: number }[] = [];
  ops.forEach((op, i) => {
    const call: Entry = { op: i, isCall: true, match: null, prev: null, next: null };
    const ret: Entry = { op: i, isCall: false, match: call, prev: null, next: null };
    call.match = ret;
    entries.push({ e: call, t: op.invokeMs }, { e: ret, t: op.completeMs });
  });
  entries.sort((a, b) => a.t - b.t || (a.e.isCall === b.e.isCall ? a.e.op - b.e.op : a.e.isCall ? -1 : 1));
  const head: Entry = { op: -1, isCall: false, match: null, prev: null, next: null };
  let last = head;
  for (const { e } of entries) {
    last.next = e;
    e.prev = last;
    last = e;
  }
  return head;
}

function lift(call: Entry): void {
  call.prev!.next = call.next;
  if (call.next !== null) call.next.prev = call.prev;
  const ret = call.match!;
  ret.prev!.next = ret.next;
  if (ret.next !== null) ret.next.prev = ret.prev;
}

function unlift(call: Entry): void {
  const ret = call.match!;
  ret.prev!.next = ret;
  if (ret.next !== null) ret.next.prev = ret;
  call.prev!.next = call;
  if (call.next !== null) call.next.prev = call;
}

/**
 * The set of linearized ops as a bitset with an incremental (Zobrist) 64-bit hash, and the memo of seen
 * (set, state) configurations. In fast mode a configuration is remembered by its hash and exact state only (no
 * copy of the bitset: memory stays small on long histories); a hash collision could then prune a configuration
 * wrongly, so a failure found in fast mode is confirmed by an exact search before it is reported.
 */
class Memo {
  readonly bits: Uint32Array;
  private h1 = 0;
  private h2 = 0;
  private readonly z1: Uint32Array;
  private readonly z2: Uint32Array;
  private readonly seen = new Map<number, { bits: Uint32Array; state: number }[]>();
  private readonly hashes = new Map<number, number[]>();

  constructor(
    n: number,
    private readonly exact: boolean,
  ) {
    this.bits = new Uint32Array(Math.ceil(n / 32) + 1);
    this.z1 = new Uint32Array(n);
    this.z2 = new Uint32Array(n);
    let x = 0x9e3779b9;
    for (let i = 0; i < n; i++) {
      // xorshift32: a fixed, deterministic sequence (no randomness needed, only spread).
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      this.z1[i] = x >>> 0;
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      this.z2[i] = x >>> 0;
    }
  }

  flip(i: number): void {
    this.bits[i >>> 5]! ^= 1 << (i & 31);
    this.h1 ^= this.z1[i]!;
    this.h2 ^= this.z2[i]!;
  }

  /** Records (current set, state); false when it was seen before. */
  add(state: number): boolean {
    const key = (this.h1 >>> 0) * 2097152 + (this.h2 & 0x1fffff);
    return this.exact ? this.addExact(key, state) : this.addHashed(key, (this.h2 >>> 21) * 4294967296 + state);
  }

  private addHashed(key: number, rest: number): boolean {
    const bucket = this.hashes.get(key);
    if (bucket === undefined) {
      this.hashes.set(key, [rest]);
      return true;
    }
    if (bucket.includes(rest)) return false;
    bucket.push(rest);
    return true;
  }

  private addExact(key: number, state: number): boolean {
    const bucket = this.seen.get(key);
    if (bucket === undefined) {
      this.seen.set(key, [{ bits: this.bits.slice(), state }]);
      return true;
    }
    for (const item of bucket) {
      if (item.state === state && equalBits(item.bits, this.bits)) return false;
    }
    bucket.push({ bits: this.bits.slice(), state });
    return true;
  }
}

function equalBits(a: Uint32Array, b: Uint32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export type SearchOutcome =
  | { readonly kind: 'ok'; readonly steps: number }
  | { readonly kind: 'unknown'; readonly steps: number }
  | { readonly kind: 'fail'; readonly steps: number; readonly evidence: SearchEvidence };

/** Where the search got furthest before it had to give up. */
export interface SearchEvidence {
  /** The op whose return was reached without being linearizable. */
  readonly stuck: RegisterOp;
  /** The last ops linearized on the deepest path, in order, and the state they left. */
  readonly lastLinearized: readonly RegisterOp[];
  readonly state: Value;
  /** Ops concurrent with the stuck op (at most 8), besides the last linearized ones. */
  readonly concurrent: readonly RegisterOp[];
}

class Interner {
  private readonly ids = new Map<Value, number>();
  readonly values: Value[] = [];
  id(value: Value): number {
    let id = this.ids.get(value);
    if (id === undefined) {
      id = this.values.length;
      this.ids.set(value, id);
      this.values.push(value);
    }
    return id;
  }
}

/** The deepest point of the search, kept cheaply (the evidence is assembled only if the search fails). */
interface Deepest {
  readonly depth: number;
  readonly stuck: number;
  readonly state: Value;
  readonly last: readonly number[];
}

function evidenceAt(ops: readonly RegisterOp[], d: Deepest): SearchEvidence {
  const s = ops[d.stuck]!;
  const last = new Set(d.last);
  const concurrent = ops.filter((op, i) => i !== d.stuck && !last.has(i) && op.invokeMs <= s.completeMs && op.completeMs >= s.invokeMs);
  return { stuck: s, lastLinearized: d.last.map((i) => ops[i]!), state: d.state, concurrent: concurrent.slice(0, 8) };
}

/** WGL with memoization over one key's ops (exact: remember whole bitsets, not only their hashes). */
export function searchRegister(ops: readonly RegisterOp[], initial: Value, budget: number, exact = false): SearchOutcome {
  const head = buildList(ops);
  const memo = new Memo(ops.length, exact);
  const states = new Interner();
  const stack: { op: number; entry: Entry; state: number }[] = [];
  let state = states.id(initial);
  let entry = head.next;
  let steps = 0;
  let best: Deepest | undefined;
  while (entry !== null) {
    if (++steps > budget) return { kind: 'unknown', steps };
    const op = ops[entry.op]!;
    if (entry.isCall) {
      const next = stepRegister(states.values[state]!, op);
      if (next !== undefined) {
        memo.flip(entry.op);
        const nextId = states.id(next);
        if (memo.add(nextId)) {
          stack.push({ op: entry.op, entry, state });
          state = nextId;
          lift(entry);
          entry = head.next;
          continue;
        }
        memo.flip(entry.op);
      }
      entry = entry.next;
      continue;
    }
    // A return: every op returning before it is linearized; info returns sort last, so all finite ops are done.
    if (op.info) return { kind: 'ok', steps };
    if (best === undefined || stack.length > best.depth) {
      best = { depth: stack.length, stuck: entry.op, state: states.values[state]!, last: stack.slice(-3).map((x) => x.op) };
    }
    const top = stack.pop();
    if (top === undefined) return { kind: 'fail', steps, evidence: evidenceAt(ops, best) };
    state = top.state;
    memo.flip(top.op);
    unlift(top.entry);
    entry = top.entry.next;
  }
  return { kind: 'ok', steps };
}

// ---- the checker

export interface RegisterCheckOptions {
  /** Search steps allowed per key before it is reported unknown (default 2,000,000). */
  readonly budget?: number;
  /** The register's value before the history, per key (default null: absent). */
  readonly initial?: Readonly<Record<string, string | null>>;
}

/** A key the search could not decide within its budget. */
export interface UnknownKey {
  readonly key: string;
  readonly ops: number;
  readonly steps: number;
}

function brief(op: RegisterOp): unknown {
  const s = op.source;
  return { f: s.f, process: s.process, requestId: s.requestId, args: s.args, outcome: s.outcome, result: s.result, invokeMs: s.invokeMs, completeMs: Number.isFinite(s.completeMs) ? s.completeMs : 'never' };
}

function failAnomaly(key: string, e: SearchEvidence): Anomaly {
  const message =
    `key ${key}: not linearizable: ${describe(e.stuck.source)} cannot be placed; the register held ` +
    `${JSON.stringify(e.state)} after the last ops that could be linearized (S8)`;
  return anomaly('not-linearizable', message, [
    { stuck: brief(e.stuck) },
    { lastLinearized: e.lastLinearized.map(brief), state: e.state },
    { concurrent: e.concurrent.map(brief) },
  ]);
}

/**
 * Checks one key in up to two passes: without the optional info ops, then, only if that fails, with all of them.
 * (A middle pass with only the info deletes was tried: without the info writes that go with them it is often
 * unsatisfiable yet expensive to refute, while the full pass is cheap once observed writes are required ops.)
 */
export function checkKey(key: string, ops: readonly RegisterOp[], initial: Value, budget: number): { anomaly?: Anomaly; unknown?: UnknownKey; steps: number } {
  const passes = [prepareOps(ops, 'none'), prepareOps(ops, 'all')];
  let steps = 0;
  let last: SearchOutcome | undefined;
  let lastSize = -1;
  for (const pass of passes) {
    if (pass.length === lastSize) continue;
    lastSize = pass.length;
    last = searchRegister(pass, initial, budget);
    steps += last.steps;
    if (last.kind !== 'fail') break;
  }
  if (last?.kind === 'fail') {
    // confirm with the exact memo: a hash collision in the fast one could have pruned the way through
    last = searchRegister(passes[passes.length - 1]!, initial, budget, true);
    steps += last.steps;
  }
  if (last === undefined || last.kind === 'ok') return { steps };
  if (last.kind === 'unknown') return { unknown: { key, ops: ops.length, steps }, steps };
  return { anomaly: failAnomaly(key, last.evidence), steps };
}

function describeUnknown(u: UnknownKey): string {
  return `key ${u.key}: ${u.ops} ops, undecided after ${u.steps} search steps`;
}

/** S8 on the register workload: WGL per key. Keys the budget cannot decide are listed in `unknown`. */
export function checkRegisterLinearizable(ops: readonly Operation[], options: RegisterCheckOptions = {}): CheckResult {
  const budget = options.budget ?? 2_000_000;
  const anomalies: Anomaly[] = [];
  const unknown: string[] = [];
  let checkedOps = 0;
  let steps = 0;
  const byKey = [...projectByKey(ops)].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [key, keyOps] of byKey) {
    checkedOps += keyOps.length;
    const result = checkKey(key, keyOps, options.initial?.[key] ?? null, budget);
    steps += result.steps;
    if (result.anomaly !== undefined) anomalies.push(result.anomaly);
    if (result.unknown !== undefined) unknown.push(describeUnknown(result.unknown));
  }
  return { checker: 'register-wgl', checkedOps, anomalies, unknown, notes: [`${byKey.length} keys, ${steps} search steps`] };
}
