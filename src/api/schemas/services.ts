// JSON schemas of the service registry routes (shared/API.md "Service registry"). Fastify validates every
// param, body and query against them before a handler runs; the TypeScript types below mirror them. The
// registry's validateRegister() checks the same rules again (and the deeper ones: UTF-8 byte lengths, URL
// shape) before anything is proposed, and once more when the command is applied.
import { leaseLimits, namePattern, registryLimits } from '../../lease/index.js';

const name = { type: 'string', pattern: namePattern.source } as const;
const consistency = { type: 'string', enum: ['linearizable', 'serializable'] } as const;
const revision = { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER } as const;

/** Blocking queries wait at most this long; a larger waitMs is capped (Consul caps its `wait` the same way). */
export const waitMsMax = 300_000;

export interface ServiceParams {
  service: string;
}

export interface InstanceParams {
  service: string;
  id: string;
}

export const serviceParamsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['service'],
  properties: { service: name },
} as const;

export const instanceParamsSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['service', 'id'],
  properties: { service: name, id: name },
} as const;

export interface CheckBody {
  http?: string;
  tcp?: string;
  intervalMs: number;
  timeoutMs: number;
  deregisterAfterMs?: number;
}

export interface RegisterBody {
  address: string;
  port: number;
  tags?: string[];
  meta?: Record<string, string>;
  weight?: number;
  ttl?: number;
  lease?: number;
  check?: CheckBody;
}

const checkMs = { type: 'integer', minimum: registryLimits.checkMsMin, maximum: registryLimits.checkIntervalMsMax } as const;

export const registerBodySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['address', 'port'],
  properties: {
    address: { type: 'string', minLength: 1, maxLength: registryLimits.addressBytesMax },
    port: { type: 'integer', minimum: 1, maximum: 65_535 },
    tags: { type: 'array', maxItems: registryLimits.tagsMax, items: { type: 'string', minLength: 1, maxLength: registryLimits.tagBytesMax } },
    meta: {
      type: 'object',
      maxProperties: registryLimits.metaEntriesMax,
      additionalProperties: { type: 'string', maxLength: registryLimits.metaValueBytesMax },
    },
    weight: { type: 'integer', minimum: 0, maximum: registryLimits.weightMax },
    ttl: { type: 'integer', minimum: 1, maximum: leaseLimits.ttlSecondsMax },
    lease: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER },
    check: {
      type: 'object',
      additionalProperties: false,
      required: ['intervalMs', 'timeoutMs'],
      // Exactly one target.
      oneOf: [{ required: ['http'] }, { required: ['tcp'] }],
      properties: {
        http: { type: 'string', minLength: 1, maxLength: registryLimits.checkTargetBytesMax },
        tcp: { type: 'string', minLength: 1, maxLength: registryLimits.checkTargetBytesMax },
        intervalMs: checkMs,
        timeoutMs: checkMs,
        deregisterAfterMs: { type: 'integer', minimum: registryLimits.checkMsMin, maximum: registryLimits.deregisterAfterMsMax },
      },
    },
  },
  // A new lease (ttl) or an existing one (lease), not both.
  not: { required: ['ttl', 'lease'] },
} as const;

export interface ListQuery {
  consistency?: 'linearizable' | 'serializable';
  index?: number;
  waitMs?: number;
}

export const listQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: { consistency, index: revision, waitMs: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER } },
} as const;

export interface DiscoveryQuery extends ListQuery {
  healthy?: boolean;
  tag?: string;
}

export const discoveryQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: { ...listQuerySchema.properties, healthy: { type: 'boolean' }, tag: { type: 'string', minLength: 1, maxLength: 256 } },
} as const;

export interface InstanceQuery {
  consistency?: 'linearizable' | 'serializable';
}

export const instanceQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: { consistency },
} as const;
