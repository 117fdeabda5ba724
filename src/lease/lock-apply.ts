// Locks and elections at apply time (store CommandExtensions). Both use the same layout under
// `_keel/<kind>/<name>/` (prefixes.ts):
//
//   holder             {key, fence, lease, value} while held, {key: null, fence} while free — NOT lease-attached,
//                      so the fence survives every holder: it only ever grows, across leader changes and restarts
//   waiters/<seq>      {lease, value, ownsLease} per acquirer (the holder's included), attached to its lease;
//                      seq = the revision of the acquire entry, so key order = arrival order in the log (FIFO)
//
//   lock.acquire  {kind, name, lease, ttl?, value}  ttl given: grants `lease` in the same entry (the waiter owns it).
//                 Adds a waiter (the same lease acquiring again gets its existing key back). A free lock with no
//                 other waiter is granted at once (fence + 1); otherwise the acquirer waits.
//   lock.grant    {kind, name, key}    the leader's promotion: makes `key` the holder (fence + 1) iff the lock is
//                 free and `key` is its first waiter. The leader proposes it only for a waiter whose lease is alive
//                 on its clock (locks.ts), so the next holder is never a waiter whose lease already expired.
//   lock.release  {kind, name, key, cancel}  the holder releases (the lock becomes free); `cancel` also withdraws a
//                 waiter (acquire timeouts). A waiter that owns its lease revokes it with the key.
//   election.proclaim {name, key, value}    the current leader changes its value.
//
// A revoked lease takes its waiter keys with it (lease.revoke); the revoke handler below frees a lock whose holder
// key went, in the same revision. Promotion of the next waiter is always a separate, leader-proposed lock.grant.
import type { ApplyContext, CommandExtension, KV } from '../store/index.js';
import { assert } from '../util/assert.js';
import { KeelError } from '../util/errors.js';
import type { RevokeReason, RevokeResult } from './lease-apply.js';
import { leaseLimits } from './limits.js';
import { extensionNames, leaseKeys, lockKeys, namePattern, parseWaiterKey, type LockKind } from './prefixes.js';
import { fields, invalid } from './validate.js';

export interface HolderRecord {
  /** The holder's waiter key, or null while the lock is free. */
  readonly key: string | null;
  /** The fence of the current (or last) holder; 0 before the first. */
  readonly fence: number;
  readonly lease: number;
  /** Elections: the leader's value. */
  readonly value: string;
}

export interface WaiterRecord {
  readonly lease: number;
  readonly value: string;
  /** The acquire granted the lease itself (ttl): releasing or cancelling revokes it. */
  readonly ownsLease: boolean;
}

/** What the lock layer's in-memory parts (locks.ts) learn when an entry commits. */
export interface LockEvents {
  /** The lock may need a promotion (it became free, or got a waiter). */
  touched(kind: LockKind, name: string): void;
  /** The lock has a (new) holder. */
  held(kind: LockKind, name: string, holder: HolderRecord): void;
  /** A waiter key was deleted (released, cancelled, or gone with its lease). */
  removed(key: string): void;
}

/** The lessor's apply-time helpers (Lessor.applyGrant / applyRevoke). */
export interface LeaseApplier {
  applyGrant(ctx: ApplyContext, id: number, ttl: number): Promise<void>;
  applyRevoke(ctx: ApplyContext, ids: readonly number[], reason: RevokeReason): Promise<RevokeResult>;
}

export interface LockApplyDeps {
  readonly leases: LeaseApplier;
  readonly events: LockEvents;
}

const freeHolder = (fence: number): HolderRecord => ({ key: null, fence, lease: 0, value: '' });

// ---- records

export function parseHolder(kv: KV | null): HolderRecord | null {
  if (kv === null) return null;
  const record = JSON.parse(kv.value) as Partial<HolderRecord>;
  assert(typeof record.fence === 'number' && (record.key === null || typeof record.key === 'string'), `malformed holder record ${kv.key}`);
  return { key: record.key, fence: record.fence, lease: record.lease ?? 0, value: record.value ?? '' };
}

export function parseWaiter(kv: KV): WaiterRecord {
  const record = JSON.parse(kv.value) as Partial<WaiterRecord>;
  assert(typeof record.lease === 'number' && kv.lease === record.lease, `malformed waiter record ${kv.key}`);
  return { lease: record.lease, value: record.value ?? '', ownsLease: record.ownsLease === true };
}

function encodeHolder(holder: HolderRecord): string {
  return holder.key === null ? JSON.stringify({ key: null, fence: holder.fence }) : JSON.stringify(holder);
}

// ---- validation (again at apply: an entry must not be applied half-understood)


function kindOf(value: unknown): LockKind {
  if (value !== 'locks' && value !== 'elections') throw invalid('kind must be locks or elections');
  return value;
}

function nameOf(value: unknown): string {
  if (typeof value !== 'string' || !namePattern.test(value)) throw invalid('name must be 1..256 characters of [A-Za-z0-9._:-]');
  return value;
}

function valueOf(value: unknown): string {
  if (typeof value !== 'string') throw invalid('value must be a string');
  if (Buffer.byteLength(value, 'utf8') > leaseLimits.valueBytesMax) {
    throw new KeelError('TOO_LARGE', `value is over ${leaseLimits.valueBytesMax} bytes`);
  }
  return value;
}

function positive(value: unknown, what: string, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > max) throw invalid(`${what} is out of range`);
  return value;
}

/** A waiter key of this lock (anything else is not a key this lock could hold). */
function waiterKeyOf(value: unknown, kind: LockKind, name: string): string {
  if (typeof value !== 'string') throw invalid('key must be a string');
  const parsed = parseWaiterKey(value);
  if (parsed === null || parsed.kind !== kind || parsed.name !== name) {
    throw new KeelError('NOT_FOUND', `${value} is not a waiter key of ${kind}/${name}`);
  }
  return value;
}

export interface AcquireBody {
  readonly kind: LockKind;
  readonly name: string;
  readonly lease: number;
  readonly ttl?: number;
  readonly value: string;
}

export function validateAcquire(body: unknown): AcquireBody {
  const obj = fields(body, ['kind', 'name', 'lease', 'ttl', 'value'], extensionNames.lockAcquire);
  const base = { kind: kindOf(obj['kind']), name: nameOf(obj['name']), lease: positive(obj['lease'], 'lease'), value: valueOf(obj['value']) };
  return obj['ttl'] === undefined ? base : { ...base, ttl: positive(obj['ttl'], 'ttl', leaseLimits.ttlSecondsMax) };
}

export function validateGrantBody(body: unknown): { kind: LockKind; name: string; key: string } {
  const obj = fields(body, ['kind', 'name', 'key'], extensionNames.lockGrant);
  const kind = kindOf(obj['kind']);
  const name = nameOf(obj['name']);
  return { kind, name, key: waiterKeyOf(obj['key'], kind, name) };
}

export function validateRelease(body: unknown): { kind: LockKind; name: string; key: string; cancel: boolean } {
  const obj = fields(body, ['kind', 'name', 'key', 'cancel'], extensionNames.lockRelease);
  const kind = kindOf(obj['kind']);
  const name = nameOf(obj['name']);
  if (typeof obj['cancel'] !== 'boolean') throw invalid('cancel must be a boolean');
  return { kind, name, key: waiterKeyOf(obj['key'], kind, name), cancel: obj['cancel'] };
}

export function validateProclaim(body: unknown): { name: string; key: string; value: string } {
  const obj = fields(body, ['name', 'key', 'value'], extensionNames.electionProclaim);
  const name = nameOf(obj['name']);
  return { name, key: waiterKeyOf(obj['key'], 'elections', name), value: valueOf(obj['value']) };
}

// ---- apply

async function readHolder(ctx: ApplyContext, kind: LockKind, name: string): Promise<HolderRecord | null> {
  return parseHolder(await ctx.get(lockKeys.holder(kind, name)));
}

async function writeHolder(ctx: ApplyContext, deps: LockApplyDeps, kind: LockKind, name: string, holder: HolderRecord): Promise<void> {
  await ctx.put(lockKeys.holder(kind, name), encodeHolder(holder), 0);
  if (holder.key === null) ctx.afterCommit(() => deps.events.touched(kind, name));
  else ctx.afterCommit(() => deps.events.held(kind, name, holder));
}

async function waitersOf(ctx: ApplyContext, kind: LockKind, name: string): Promise<KV[]> {
  const start = Buffer.from(lockKeys.waitersPrefix(kind, name), 'utf8');
  const end = Buffer.from(start);
  end[end.length - 1] = end[end.length - 1]! + 1; // the prefix ends with '/'; '/' + 1 = '0' ends the range
  return ctx.range({ start, end });
}

export interface AcquireResult {
  readonly key: string;
  readonly lease: number;
  readonly held: boolean;
  /** The holder's fence when held, else the lock's current fence (informational). */
  readonly fence: number;
}

async function applyAcquire(ctx: ApplyContext, deps: LockApplyDeps, body: AcquireBody): Promise<AcquireResult> {
  const { kind, name, lease, value } = body;
  if (body.ttl !== undefined) await deps.leases.applyGrant(ctx, lease, body.ttl);
  else if ((await ctx.get(leaseKeys.lease(lease))) === null) throw new KeelError('LEASE_NOT_FOUND', `lease ${lease} not found`, { lease });
  const waiters = await waitersOf(ctx, kind, name);
  const holder = await readHolder(ctx, kind, name);
  const mine = waiters.find((kv) => kv.lease === lease);
  if (mine !== undefined) {
    // The same lease acquiring again gets its own key back (re-entrant per lease, like etcd's sessions).
    const held = holder?.key === mine.key;
    return { key: mine.key, lease, held, fence: holder?.fence ?? 0 };
  }
  if (waiters.length >= leaseLimits.waitersPerLockMax) {
    throw new KeelError('UNAVAILABLE', `${kind}/${name} has ${waiters.length} waiters, the limit`, { applied: false });
  }
  const key = lockKeys.waiter(kind, name, ctx.revision);
  await ctx.put(key, JSON.stringify({ lease, value, ownsLease: body.ttl !== undefined }), lease);
  const isFree = holder === null || holder.key === null;
  if (isFree && waiters.length === 0) {
    const granted: HolderRecord = { key, fence: (holder?.fence ?? 0) + 1, lease, value };
    await writeHolder(ctx, deps, kind, name, granted);
    return { key, lease, held: true, fence: granted.fence };
  }
  ctx.afterCommit(() => deps.events.touched(kind, name));
  return { key, lease, held: false, fence: holder?.fence ?? 0 };
}

async function applyGrant(ctx: ApplyContext, deps: LockApplyDeps, body: { kind: LockKind; name: string; key: string }): Promise<Record<string, unknown>> {
  const { kind, name, key } = body;
  const holder = await readHolder(ctx, kind, name);
  const first = (await waitersOf(ctx, kind, name))[0];
  // Deterministic re-check: the state may have moved since the leader decided (the waiter left, someone got it).
  if ((holder !== null && holder.key !== null) || first === undefined || first.key !== key) return { granted: false };
  const waiter = parseWaiter(first);
  const granted: HolderRecord = { key, fence: (holder?.fence ?? 0) + 1, lease: waiter.lease, value: waiter.value };
  await writeHolder(ctx, deps, kind, name, granted);
  return { granted: true, fence: granted.fence };
}

async function applyRelease(
  ctx: ApplyContext,
  deps: LockApplyDeps,
  body: { kind: LockKind; name: string; key: string; cancel: boolean },
): Promise<Record<string, unknown>> {
  const { kind, name, key, cancel } = body;
  const waiterKv = await ctx.get(key);
  if (waiterKv === null) throw new KeelError('NOT_FOUND', `${key} holds and waits for nothing (released, or its lease is gone)`);
  const holder = await readHolder(ctx, kind, name);
  const isHolder = holder !== null && holder.key === key;
  if (!isHolder && !cancel) throw new KeelError('CONFLICT', `${key} is waiting for ${kind}/${name} but does not hold it`);
  const waiter = parseWaiter(waiterKv);
  if (waiter.ownsLease) {
    // The lease was made for this acquire: it goes with the key (the revoke handler frees the lock if held).
    await deps.leases.applyRevoke(ctx, [waiter.lease], 'revoke');
  } else {
    ctx.delete(waiterKv);
    ctx.afterCommit(() => deps.events.removed(key));
    if (isHolder) await writeHolder(ctx, deps, kind, name, freeHolder(holder.fence));
    else ctx.afterCommit(() => deps.events.touched(kind, name));
  }
  return { released: isHolder, cancelled: !isHolder };
}

async function applyProclaim(ctx: ApplyContext, deps: LockApplyDeps, body: { name: string; key: string; value: string }): Promise<Record<string, unknown>> {
  const holder = await readHolder(ctx, 'elections', body.name);
  if (holder === null || holder.key !== body.key) {
    if ((await ctx.get(body.key)) === null) throw new KeelError('NOT_FOUND', `${body.key} is not a candidate of election ${body.name}`);
    throw new KeelError('CONFLICT', `${body.key} is not the leader of election ${body.name}`);
  }
  await writeHolder(ctx, deps, 'elections', body.name, { ...holder, value: body.value });
  return { fence: holder.fence };
}

/**
 * The revoke handler: a waiter key deleted with its lease frees the lock it held, in the same revision; a waiter
 * that was only waiting leaves the queue (the leader then looks at the lock again).
 */
export function lockRevokeHandler(deps: LockApplyDeps): (ctx: ApplyContext, deleted: readonly KV[]) => Promise<void> {
  return async (ctx, deleted) => {
    for (const kv of deleted) {
      const lock = parseWaiterKey(kv.key);
      if (lock === null) continue;
      ctx.afterCommit(() => deps.events.removed(kv.key));
      const holder = await readHolder(ctx, lock.kind, lock.name);
      if (holder !== null && holder.key === kv.key) await writeHolder(ctx, deps, lock.kind, lock.name, freeHolder(holder.fence));
      else ctx.afterCommit(() => deps.events.touched(lock.kind, lock.name));
    }
  };
}

/** The lock and election extensions. */
export function lockExtensions(deps: LockApplyDeps): CommandExtension[] {
  return [
    {
      name: extensionNames.lockAcquire,
      validate: (body) => void validateAcquire(body),
      apply: async (body, ctx) => ({ ...(await applyAcquire(ctx, deps, validateAcquire(body))) }),
    },
    {
      name: extensionNames.lockGrant,
      validate: (body) => void validateGrantBody(body),
      apply: async (body, ctx) => applyGrant(ctx, deps, validateGrantBody(body)),
    },
    {
      name: extensionNames.lockRelease,
      validate: (body) => void validateRelease(body),
      apply: async (body, ctx) => applyRelease(ctx, deps, validateRelease(body)),
    },
    {
      name: extensionNames.electionProclaim,
      validate: (body) => void validateProclaim(body),
      apply: async (body, ctx) => applyProclaim(ctx, deps, validateProclaim(body)),
    },
  ];
}

/** The fence of the current holder of lock `name` (null when free or never held): StoreHooks.lockFence. */
export async function currentFence(ctx: ApplyContext, name: string): Promise<number | null> {
  if (!namePattern.test(name)) return null;
  const holder = await readHolder(ctx, 'locks', name);
  return holder === null || holder.key === null ? null : holder.fence;
}

