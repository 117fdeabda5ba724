// JSON schemas of the lease, lock and election routes (shared/API.md "Leases", "Locks and elections"). Fastify
// validates every param, body and query against them before a handler runs; the TypeScript types below mirror
// them. The lease layer checks the same rules again before proposing and once more at apply.
import { leaseLimits, namePattern } from '../../lease/index.js';

const leaseId = { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER } as const;
const ttl = { type: 'integer', minimum: 1, maximum: leaseLimits.ttlSecondsMax } as const;
const waitMs = { type: 'integer', minimum: 0, maximum: leaseLimits.waitMsMax } as const;
const name = { type: 'string', pattern: namePattern.source } as const;
const key = { type: 'string', minLength: 1, maxLength: 4096 } as const;
const value = { type: 'string', maxLength: leaseLimits.valueBytesMax } as const;
const consistency = { type: 'string', enum: ['linearizable', 'serializable'] } as const;

export interface ConsistencyQuery {
  consistency?: 'linearizable' | 'serializable';
}

export const consistencyQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: { consistency },
} as const;

// ---- leases

export interface GrantBody {
  ttl: number;
  id?: number;
}

export const grantBodySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['ttl'],
  properties: { ttl, id: leaseId },
} as const;

/** Keepalive of many leases in one request (an extension of the contract for clients holding many leases). */
export interface KeepaliveManyBody {
  ids: number[];
}

export const keepaliveManyBodyMax = 1_000;

export const keepaliveManyBodySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['ids'],
  properties: { ids: { type: 'array', minItems: 1, maxItems: keepaliveManyBodyMax, items: leaseId } },
} as const;

export interface LeaseParams {
  id: number;
}

export const leaseParamsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: { id: leaseId },
} as const;

// ---- locks and elections

export interface NameParams {
  name: string;
}

export const nameParamsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name'],
  properties: { name },
} as const;

export interface AcquireBody {
  ttl?: number;
  lease?: number;
  waitMs?: number;
}

/** Exactly one of ttl and lease. */
const ttlOrLease = { oneOf: [{ required: ['ttl'] }, { required: ['lease'] }] } as const;

export const acquireBodySchema = {
  type: 'object',
  additionalProperties: false,
  properties: { ttl, lease: leaseId, waitMs },
  ...ttlOrLease,
} as const;

export interface ReleaseBody {
  key: string;
}

export const releaseBodySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['key'],
  properties: { key },
} as const;

export interface CampaignBody {
  value: string;
  ttl?: number;
  lease?: number;
  waitMs?: number;
}

export const campaignBodySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['value'],
  properties: { value, ttl, lease: leaseId, waitMs },
  ...ttlOrLease,
} as const;

export interface ResignBody {
  leaderKey: string;
}

export const resignBodySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['leaderKey'],
  properties: { leaderKey: key },
} as const;

export interface ProclaimBody {
  leaderKey: string;
  value: string;
}

export const proclaimBodySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['leaderKey', 'value'],
  properties: { leaderKey: key, value },
} as const;
