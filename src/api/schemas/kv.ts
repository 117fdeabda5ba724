// JSON schemas of the KV, txn, compact and watch routes (shared/API.md). Fastify validates every body and query
// against them before a handler runs; the TypeScript types below mirror them. The store's validateCommand()
// checks the deeper rules (UTF-8 byte limits, txn op counts) again before anything is proposed.
const revision = { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER } as const;
const consistency = { type: 'string', enum: ['linearizable', 'serializable'] } as const;

export interface RangeQuery {
  prefix?: boolean;
  revision?: number;
  consistency?: 'linearizable' | 'serializable';
  limit?: number;
  keysOnly?: boolean;
  countOnly?: boolean;
  sort?: 'key' | 'createRevision' | 'modRevision';
  order?: 'asc' | 'desc';
}

export const rangeQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    prefix: { type: 'boolean' },
    revision,
    consistency,
    limit: { type: 'integer', minimum: 0, maximum: 1_000_000 },
    keysOnly: { type: 'boolean' },
    countOnly: { type: 'boolean' },
    sort: { type: 'string', enum: ['key', 'createRevision', 'modRevision'] },
    order: { type: 'string', enum: ['asc', 'desc'] },
  },
} as const;

export interface PutBody {
  value: string;
  lease?: number;
  prevKv?: boolean;
  ifModRevision?: number;
  ifVersion?: number;
  fence?: { lock: string; token: number };
}

export const putBodySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['value'],
  properties: {
    value: { type: 'string' },
    lease: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
    prevKv: { type: 'boolean' },
    ifModRevision: revision,
    ifVersion: revision,
    fence: {
      type: 'object',
      additionalProperties: false,
      required: ['lock', 'token'],
      properties: { lock: { type: 'string', minLength: 1 }, token: { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER } },
    },
  },
} as const;

export interface DeleteQuery {
  prefix?: boolean;
  prevKv?: boolean;
  ifModRevision?: number;
}

export const deleteQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: { prefix: { type: 'boolean' }, prevKv: { type: 'boolean' }, ifModRevision: revision },
} as const;

const compareSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['key', 'target', 'op', 'value'],
  properties: {
    key: { type: 'string' },
    target: { type: 'string', enum: ['value', 'version', 'createRevision', 'modRevision', 'lease'] },
    op: { type: 'string', enum: ['==', '!=', '<', '>'] },
    value: { type: ['string', 'integer'] },
  },
} as const;

const opSchema = {
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  maxProperties: 1,
  properties: {
    put: {
      type: 'object',
      additionalProperties: false,
      required: ['key', 'value'],
      properties: { key: { type: 'string' }, value: { type: 'string' }, lease: { type: 'integer', minimum: 0 } },
    },
    delete: {
      type: 'object',
      additionalProperties: false,
      required: ['key'],
      properties: { key: { type: 'string' }, prefix: { type: 'boolean' } },
    },
    get: {
      type: 'object',
      additionalProperties: false,
      required: ['key'],
      properties: { key: { type: 'string' }, prefix: { type: 'boolean' }, limit: { type: 'integer', minimum: 0 } },
    },
  },
} as const;

export const txnBodySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    compare: { type: 'array', items: compareSchema },
    success: { type: 'array', items: opSchema },
    failure: { type: 'array', items: opSchema },
  },
} as const;

export const compactBodySchema = {
  type: 'object',
  additionalProperties: false,
  required: ['revision'],
  properties: { revision: { ...revision, minimum: 1 } },
} as const;

export interface WatchQuery {
  prefix?: boolean;
  fromRevision?: number;
  prevKv?: boolean;
  progressMs?: number;
}

export const watchQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    prefix: { type: 'boolean' },
    fromRevision: revision,
    prevKv: { type: 'boolean' },
    progressMs: { type: 'integer', minimum: 10, maximum: 3_600_000 },
  },
} as const;
