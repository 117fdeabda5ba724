// The lease commands at apply time (store CommandExtensions): lease.grant, lease.keepalive, lease.revoke.
// Deterministic: they read and write MVCC keys only through the entry's ApplyContext, read no clock, and touch the
// node-local deadline table only in afterCommit effects (which run once the write of the entry's batch is issued,
// and never for a refused entry).
//
//   lease.grant     {id, ttl}            creates `_keel/leases/<id>` = {"id","ttl"}; CONFLICT if it exists
//   lease.keepalive {ids: [...]}         changes no key (no revision): answers {ttls: [...]} aligned with ids,
//                                        the granted ttl, or 0 for an unknown lease; the deadlines move on commit
//   lease.revoke    {ids, reason}        deletes each lease's record and every key attached to it, all in this
//                                        entry's one revision; then the revoke handlers (lock re-evaluation) run
import type { ApplyContext, CommandExtension, KV } from '../store/index.js';
import { assert } from '../util/assert.js';
import { KeelError } from '../util/errors.js';
import type { LeaseTable } from './lease-table.js';
import { leaseLimits } from './limits.js';
import { extensionNames, leaseKeys } from './prefixes.js';
import { fields, invalid } from './validate.js';

export type RevokeReason = 'revoke' | 'expired';
const revokeReasons: readonly RevokeReason[] = ['revoke', 'expired'];

/** Run inside a revoke's apply with the keys it deleted (their last versions); writes only through ctx. */
export type RevokeApplyHandler = (ctx: ApplyContext, deleted: readonly KV[]) => Promise<void>;

export interface KeepaliveResult {
  /** Aligned with the command's ids: the lease's granted ttl, or 0 when it does not exist. */
  readonly ttls: readonly number[];
}

export interface RevokeResult {
  /** The ids that existed and were revoked, in command order. */
  readonly revoked: readonly number[];
  /** Keys deleted with them (lease records not counted). */
  readonly deleted: number;
}

export interface LeaseApplyDeps {
  readonly table: LeaseTable;
  readonly revokeHandlers: readonly RevokeApplyHandler[];
  readonly onRevoked: (ids: readonly number[], reason: RevokeReason) => void;
}

const { ttlSecondsMax, idsPerEntryMax } = leaseLimits;


function leaseId(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) throw invalid(`${what} must be a lease id`);
  return value;
}

function ttlOf(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > ttlSecondsMax) {
    throw invalid(`${what} must be 1..${ttlSecondsMax} seconds`);
  }
  return value;
}

function idList(value: unknown, what: string): number[] {
  if (!Array.isArray(value) || value.length === 0 || value.length > idsPerEntryMax) {
    throw invalid(`${what} must be 1..${idsPerEntryMax} lease ids`);
  }
  return value.map((id, i) => leaseId(id, `${what}[${i}]`));
}

export function validateGrant(body: unknown): { id: number; ttl: number } {
  const obj = fields(body, ['id', 'ttl'], extensionNames.leaseGrant);
  return { id: leaseId(obj['id'], 'id'), ttl: ttlOf(obj['ttl'], 'ttl') };
}

export function validateKeepalive(body: unknown): { ids: number[] } {
  const obj = fields(body, ['ids'], extensionNames.leaseKeepalive);
  return { ids: idList(obj['ids'], 'ids') };
}

export function validateRevoke(body: unknown): { ids: number[]; reason: RevokeReason } {
  const obj = fields(body, ['ids', 'reason'], extensionNames.leaseRevoke);
  const reason = obj['reason'];
  if (!revokeReasons.includes(reason as RevokeReason)) throw invalid(`reason must be one of ${revokeReasons.join(', ')}`);
  return { ids: idList(obj['ids'], 'ids'), reason: reason as RevokeReason };
}

/** The value of a lease record key. */
export function encodeLeaseRecord(id: number, ttl: number): string {
  return JSON.stringify({ id, ttl });
}

/** Parses a lease record (only this layer writes them, so a bad one is a bug, not input). */
export function parseLeaseRecord(kv: KV): { id: number; ttl: number } {
  const record = JSON.parse(kv.value) as { id?: unknown; ttl?: unknown };
  assert(
    typeof record.id === 'number' && typeof record.ttl === 'number' && kv.key === leaseKeys.lease(record.id),
    `malformed lease record at ${kv.key}`,
  );
  return { id: record.id, ttl: record.ttl };
}

export async function applyLeaseGrant(ctx: ApplyContext, table: LeaseTable, id: number, ttl: number): Promise<void> {
  const key = leaseKeys.lease(id);
  if ((await ctx.get(key)) !== null) throw new KeelError('CONFLICT', `lease ${id} already exists`, { lease: id });
  await ctx.put(key, encodeLeaseRecord(id, ttl), 0);
  ctx.afterCommit(() => table.refresh(id, ttl));
}

async function applyKeepalive(ctx: ApplyContext, table: LeaseTable, ids: readonly number[]): Promise<KeepaliveResult> {
  const ttls: number[] = [];
  for (const id of ids) {
    const kv = await ctx.get(leaseKeys.lease(id));
    ttls.push(kv === null ? 0 : parseLeaseRecord(kv).ttl);
  }
  ctx.afterCommit(() => {
    ids.forEach((id, i) => {
      const ttl = ttls[i] ?? 0;
      if (ttl > 0) table.refresh(id, ttl);
    });
  });
  return { ttls };
}

export async function applyLeaseRevoke(
  ctx: ApplyContext,
  deps: LeaseApplyDeps,
  ids: readonly number[],
  reason: RevokeReason,
): Promise<RevokeResult> {
  const revoked: number[] = [];
  const deleted: KV[] = [];
  for (const id of new Set(ids)) {
    const record = await ctx.get(leaseKeys.lease(id));
    if (record === null) continue;
    for (const key of await ctx.leaseKeys(id)) {
      const kv = await ctx.get(key);
      if (kv !== null) deleted.push(ctx.delete(kv));
    }
    ctx.delete(record);
    revoked.push(id);
  }
  if (deleted.length > 0) for (const handler of deps.revokeHandlers) await handler(ctx, deleted);
  if (revoked.length > 0) {
    ctx.afterCommit(() => {
      for (const id of revoked) deps.table.remove(id);
      deps.onRevoked(revoked, reason);
    });
  }
  return { revoked, deleted: deleted.length };
}

/** The three lease extensions, bound to one node's deadline table. */
export function leaseExtensions(deps: LeaseApplyDeps): CommandExtension[] {
  return [
    {
      name: extensionNames.leaseGrant,
      validate: (body) => void validateGrant(body),
      apply: async (body, ctx) => {
        const { id, ttl } = validateGrant(body);
        await applyLeaseGrant(ctx, deps.table, id, ttl);
        return { id, ttl };
      },
    },
    {
      name: extensionNames.leaseKeepalive,
      validate: (body) => void validateKeepalive(body),
      apply: async (body, ctx) => ({ ...(await applyKeepalive(ctx, deps.table, validateKeepalive(body).ids)) }),
    },
    {
      name: extensionNames.leaseRevoke,
      validate: (body) => void validateRevoke(body),
      apply: async (body, ctx) => {
        const { ids, reason } = validateRevoke(body);
        return { ...(await applyLeaseRevoke(ctx, deps, ids, reason)) };
      },
    },
  ];
}
