// The lease commands at apply time (store CommandExtensions): lease.grant, lease.keepalive, lease.revoke.
// Deterministic: they read and write MVCC keys only through the entry's ApplyContext, read no clock, and touch the
// node-local deadline table only in afterCommit effects (which run once the write of the entry's batch is issued,
// and never for a refused entry).
//
//   lease.grant     {id, ttl}            creates `_keel/leases/<id>` = {"id","ttl"}; CONFLICT if it exists
//   lease.keepalive {ids: [...]}         changes no key (no revision): answers {ttls: [...]} aligned with ids,
//                                        the granted ttl, or 0 for an unknown lease; the deadlines move on commit
//   lease.revoke    {ids, reason,        deletes each lease's record and every key attached to it, all in this
//                    keysDigest?}        entry's one revision; then the revoke handlers (lock re-evaluation) run.
//                                        keysDigest (one id only): the digest of the attached keys a client's
//                                        revoke was authorized against (auth on); CONFLICT, and nothing changes,
//                                        if the keys attached when the entry applies differ from them
import { createHash } from 'node:crypto';
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

export interface RevokeCommand {
  readonly ids: readonly number[];
  readonly reason: RevokeReason;
  /** leaseKeysDigest of the keys the revoke was authorized against; only with one id. */
  readonly keysDigest?: string;
}

export function validateRevoke(body: unknown): RevokeCommand {
  const obj = fields(body, ['ids', 'reason', 'keysDigest'], extensionNames.leaseRevoke);
  const reason = obj['reason'];
  if (!revokeReasons.includes(reason as RevokeReason)) throw invalid(`reason must be one of ${revokeReasons.join(', ')}`);
  const ids = idList(obj['ids'], 'ids');
  const keysDigest = obj['keysDigest'];
  if (keysDigest === undefined) return { ids, reason: reason as RevokeReason };
  if (typeof keysDigest !== 'string' || !/^[0-9a-f]{64}$/.test(keysDigest)) throw invalid('keysDigest must be a sha256 in hex');
  if (ids.length !== 1) throw invalid('keysDigest needs exactly one lease id');
  return { ids, reason: reason as RevokeReason, keysDigest };
}

/**
 * sha256 (hex) over a lease's attached keys, in key order (as `leaseKeys` lists them): what an authorized revoke
 * was checked against, compared again when its entry applies so that no key attached in between is deleted.
 */
export function leaseKeysDigest(keys: readonly string[]): string {
  return createHash('sha256').update(JSON.stringify(keys)).digest('hex');
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
  { ids, reason, keysDigest }: RevokeCommand,
): Promise<RevokeResult> {
  const revoked: number[] = [];
  const deleted: KV[] = [];
  for (const id of new Set(ids)) {
    const record = await ctx.get(leaseKeys.lease(id));
    if (record === null) continue;
    const keys = await ctx.leaseKeys(id);
    // Only with one id (validateRevoke), so this throws before anything was deleted.
    if (keysDigest !== undefined && leaseKeysDigest(keys) !== keysDigest) {
      throw new KeelError('CONFLICT', `the keys attached to lease ${id} changed while its revoke was authorized: retry`, { lease: id });
    }
    for (const key of keys) {
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
        return { ...(await applyLeaseRevoke(ctx, deps, validateRevoke(body))) };
      },
    },
  ];
}
