// Key-value routes (shared/API.md "Key-value"): GET/PUT/DELETE /v1/kv/<key>, POST /v1/txn, POST /v1/compact,
// and the internal propose route followers forward writes to. Writes become commands proposed through the
// leader; linearizable reads wait for a ReadIndex barrier, serializable ones read locally.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { randomUUID } from 'node:crypto';
import type { Command, KvStore, TxnCommand, TxnResult } from '../../store/index.js';
import { decodeCommand, encodeCommand, failureToError, isApplyFailure } from '../../store/index.js';
import { touchesReserved } from '../../lease/index.js';
import { KeelError } from '../../util/errors.js';
import { guardOption, mayHoldHiddenKeys, withoutHiddenKeys } from '../auth-hook.js';
import { authPrefix } from '../../auth/index.js';
import { internalProposePath, type Proposer } from '../forward.js';
import {
  compactBodySchema,
  deleteQuerySchema,
  putBodySchema,
  rangeQuerySchema,
  txnBodySchema,
  type DeleteQuery,
  type PutBody,
  type RangeQuery,
} from '../schemas/kv.js';

export interface KvBackend {
  readonly store: KvStore;
  readonly proposer: Proposer;
  /** Resolves once this node may serve a linearizable read (ReadIndex confirmed and applied). */
  readBarrier(): Promise<void>;
  /** Proposes on this node if it is the leader (the target of forwarded writes). */
  proposeLocal(command: Uint8Array): Promise<unknown>;
}

const requestIdHeader = 'x-keel-request-id';
const requestIdPattern = /^[\x21-\x7e]{1,128}$/;

/** The key addressed by the path after /v1/kv/ (fastify has percent-decoded it). */
export function keyOf(request: FastifyRequest): string {
  return (request.params as { '*': string })['*'];
}

/** Clients may send X-Keel-Request-Id so a retried write is applied once; otherwise the node makes one. */
export function requestIdOf(request: FastifyRequest): string {
  const header = request.headers[requestIdHeader];
  if (header === undefined) return randomUUID();
  if (typeof header !== 'string' || !requestIdPattern.test(header)) {
    throw new KeelError('INVALID_ARGUMENT', 'X-Keel-Request-Id must be 1..128 printable ASCII characters');
  }
  return header;
}

/**
 * User writes may not touch the lease layer's reserved keys (`_keel/`): a put or delete of one, or a prefix delete
 * whose range covers them (prefix '' or '_'), is bad input (400). The store refuses them again at apply.
 */
export function checkUserWrite(key: string, prefix: boolean): void {
  if (!touchesReserved(key, prefix)) return;
  const what = prefix ? `the prefix "${key}" covers the reserved keys _keel/` : `"${key}" is a reserved key`;
  throw new KeelError('INVALID_ARGUMENT', `${what}: only the lease, lock, election and service APIs write there`);
}

/** The user-write check of every key a put, delete or txn command would change (extensions are not user writes). */
function checkUserWrites(cmd: Command): void {
  if (cmd.kind === 'put') checkUserWrite(cmd.key, false);
  else if (cmd.kind === 'deleteRange') checkUserWrite(cmd.key, cmd.prefix);
  else if (cmd.kind === 'txn') {
    for (const op of [...cmd.success, ...cmd.failure]) {
      if ('put' in op) checkUserWrite(op.put.key, false);
      else if ('delete' in op) checkUserWrite(op.delete.key, op.delete.prefix ?? false);
    }
  }
}

/**
 * Proposes a command and returns its result, turning a recorded refusal into the KeelError it stands for. With
 * auth on, the command carries the auth guard: it is refused (503) if auth changed after this node checked it.
 */
export async function write<T>(backend: Pick<KvBackend, 'proposer'>, request: FastifyRequest, cmd: Command): Promise<T> {
  checkUserWrites(cmd);
  const command = encodeCommand({ requestId: requestIdOf(request), cmd, ...guardOption(request) });
  const result = await backend.proposer.propose(command);
  if (isApplyFailure(result)) throw failureToError(result);
  return result as T;
}

export async function readBarrierFor(backend: KvBackend, consistency: string | undefined): Promise<void> {
  if (consistency !== 'serializable') await backend.readBarrier();
}

function withRevision(reply: FastifyReply, revision: number): FastifyReply {
  return reply.header('X-Keel-Revision', String(revision));
}

/** Txn get results without `_keel/auth/` keys (the auth hook refuses gets that name them; prefixes may hold them). */
function hideInTxn(result: TxnResult): TxnResult {
  return {
    ...result,
    results: result.results.map((r) => ('get' in r ? { get: withoutHiddenKeys(r.get, r.get.kvs.filter((kv) => mayHoldHiddenKeys(kv.key, false)).length) } : r)),
  };
}

export const kvRoutes: FastifyPluginAsync<{ backend: KvBackend }> = async (app, { backend }) => {
  const { store } = backend;

  const get = async (request: FastifyRequest<{ Querystring: RangeQuery }>, reply: FastifyReply, key: string): Promise<FastifyReply> => {
    const query = request.query;
    await readBarrierFor(backend, query.consistency);
    if (query.prefix === true || key === '') {
      const result = await store.range({
        key,
        prefix: true,
        ...(query.limit !== undefined && { limit: query.limit }),
        ...(query.keysOnly !== undefined && { keysOnly: query.keysOnly }),
        ...(query.countOnly !== undefined && { countOnly: query.countOnly }),
        ...(query.revision !== undefined && { revision: query.revision }),
        ...(query.sort !== undefined && { sort: query.sort }),
        ...(query.order !== undefined && { order: query.order }),
      });
      // _keel/auth/ is never shown: a range that holds it answers without those keys (auth-hook.ts).
      const hidden = mayHoldHiddenKeys(key, true)
        ? (await store.range({ key: authPrefix, prefix: true, countOnly: true, ...(query.revision !== undefined && { revision: query.revision }) })).count
        : 0;
      const shown = hidden === 0 ? result : withoutHiddenKeys(result, hidden);
      return withRevision(reply, result.revision).send({ kvs: shown.kvs, count: shown.count, more: result.more });
    }
    const result = await store.get(key, query.revision === undefined ? {} : { revision: query.revision });
    if (result.kv === null) throw new KeelError('KEY_NOT_FOUND', `key not found: ${key}`, { revision: result.revision });
    withRevision(reply, result.revision);
    return reply.send({ kv: query.keysOnly === true ? { ...result.kv, value: '' } : result.kv });
  };

  app.get<{ Querystring: RangeQuery }>('/v1/kv', { schema: { querystring: rangeQuerySchema } }, (request, reply) => get(request, reply, ''));
  app.get<{ Querystring: RangeQuery }>('/v1/kv/*', { schema: { querystring: rangeQuerySchema } }, (request, reply) =>
    get(request, reply, keyOf(request)),
  );

  const emptyKey = async (): Promise<never> => {
    throw new KeelError('INVALID_ARGUMENT', 'the key must not be empty: address it as /v1/kv/<key>');
  };
  app.put('/v1/kv', emptyKey);
  app.delete('/v1/kv', emptyKey);

  app.put<{ Body: PutBody }>('/v1/kv/*', { schema: { body: putBodySchema } }, async (request, reply) => {
    const body = request.body;
    const result = await write<{ revision: number; prevKv?: unknown }>(backend, request, {
      kind: 'put',
      key: keyOf(request),
      value: body.value,
      lease: body.lease ?? 0,
      prevKv: body.prevKv ?? false,
      ...(body.ifModRevision !== undefined && { ifModRevision: body.ifModRevision }),
      ...(body.ifVersion !== undefined && { ifVersion: body.ifVersion }),
      ...(body.fence !== undefined && { fence: body.fence }),
    });
    return withRevision(reply, result.revision).send(result);
  });

  app.delete<{ Querystring: DeleteQuery }>('/v1/kv/*', { schema: { querystring: deleteQuerySchema } }, async (request, reply) => {
    const query = request.query;
    const result = await write<{ revision: number }>(backend, request, {
      kind: 'deleteRange',
      key: keyOf(request),
      prefix: query.prefix ?? false,
      prevKv: query.prevKv ?? false,
      ...(query.ifModRevision !== undefined && { ifModRevision: query.ifModRevision }),
    });
    return withRevision(reply, result.revision).send(result);
  });

  app.post<{ Body: Omit<TxnCommand, 'kind'> }>('/v1/txn', { schema: { body: txnBodySchema } }, async (request, reply) => {
    const { compare = [], success = [], failure = [] } = request.body;
    const result = await write<TxnResult>(backend, request, { kind: 'txn', compare, success, failure });
    return withRevision(reply, result.revision).send(hideInTxn(result));
  });

  app.post<{ Body: { revision: number } }>('/v1/compact', { schema: { body: compactBodySchema } }, async (request, reply) => {
    const result = await write<{ revision: number }>(backend, request, { kind: 'compact', revision: request.body.revision });
    return withRevision(reply, result.revision).send(result);
  });

  await app.register(diagnosticRoutes, { store });
  await app.register(internalRoutes, { backend });
};

/**
 * Diagnostics: a hash of the whole KV state at a revision (default: current). Two nodes that applied the same
 * entries answer the same hash for the same revision (S5); `keel` and the tests compare them.
 */
const diagnosticRoutes: FastifyPluginAsync<{ store: KvStore }> = async (app, { store }) => {
  app.get<{ Querystring: { revision?: number } }>(
    '/v1/debug/hash',
    { schema: { querystring: { type: 'object', additionalProperties: false, properties: { revision: { type: 'integer', minimum: 0 } } } } },
    async (request, reply) => {
      const revision = request.query.revision ?? store.revision();
      const hash = await store.stateHash(revision);
      return withRevision(reply, store.revision()).send({ revision, hash });
    },
  );
  // Test-only (fault-injection suite): every applied entry of this node; 404 unless the debug flag is on.
  app.get<{ Querystring: { fromIndex?: number; limit?: number } }>(
    '/v1/debug/applied',
    { schema: { querystring: { type: 'object', additionalProperties: false, properties: { fromIndex: { type: 'integer', minimum: 0 }, limit: { type: 'integer', minimum: 1, maximum: 100_000 } } } } },
    async (request, reply) => {
      if (!store.recordsApplied) throw new KeelError('NOT_FOUND', 'the debug endpoints are off (config "debug": true)');
      const entries = await store.appliedLog(request.query.fromIndex ?? 0, request.query.limit ?? 100_000);
      return withRevision(reply, store.revision()).send({ appliedIndex: store.appliedIndex(), entries });
    },
  );
};

/**
 * Followers forward encoded commands here. The command is decoded and validated again: nothing that would not
 * pass the public routes' checks reaches the log through this door.
 */
const internalRoutes: FastifyPluginAsync<{ backend: KvBackend }> = async (app, { backend }) => {
  app.addContentTypeParser('application/octet-stream', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));
  app.post<{ Body: Buffer }>(internalProposePath, async (request, reply) => {
    if (!Buffer.isBuffer(request.body)) throw new KeelError('INVALID_ARGUMENT', 'expected an encoded command');
    const bytes = new Uint8Array(request.body);
    decodeCommand(bytes);
    const result = await backend.proposeLocal(bytes);
    return reply.send({ result });
  });
};
