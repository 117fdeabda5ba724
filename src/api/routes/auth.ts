// Auth management routes (README "Security"): enable/disable, users, roles and their permissions, tokens. Who
// may call them is decided by the auth hook (auth-hook.ts): admin, except status and whoami (any valid token),
// and enable on a cluster where auth is still off (anyone who can reach the port: that is the bootstrap).
//
// Every change is an `auth` command proposed through Raft (src/auth/extension.ts), so all nodes enforce the same
// state. Tokens are made here, on the node that received the request: the token is answered once and only its
// sha256 goes into the log.
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { AuthOp, AuthState, Permission, RoleRecord, TokenRecord, UserRecord } from '../../auth/index.js';
import { authExtensionName, authKeys, generateToken, hashToken, rootName, tokenIdOf, validateAuthOp } from '../../auth/index.js';
import { KeelError } from '../../util/errors.js';
import { principalOf } from '../auth-hook.js';
import type { Proposer } from '../forward.js';
import { write } from './kv.js';

export interface AuthBackend {
  readonly state: AuthState;
  readonly proposer: Proposer;
  readBarrier(): Promise<void>;
  /** Wall clock (ms since the epoch) for token creation and expiry. */
  wallMs(): number;
  /** The cluster secret is configured (enabling auth without it is refused: see auth-hook.ts). */
  readonly peerSecret: boolean;
}

/** A token lives at most ten years; without `ttl` it does not expire. */
const tokenTtlMax = 10 * 365 * 24 * 3600;
const authName = { type: 'string', pattern: '^[A-Za-z0-9._-]{1,64}$' } as const;
const nameBody = { type: 'object', additionalProperties: false, required: ['name'], properties: { name: authName } } as const;
const nameParams = { type: 'object', required: ['name'], properties: { name: authName } } as const;
const permissionBody = {
  type: 'object',
  additionalProperties: false,
  required: ['kind', 'access'],
  properties: {
    kind: { type: 'string', enum: ['key', 'service', 'lock', 'admin'] },
    access: { type: 'string', enum: ['read', 'readwrite'] },
    prefix: { type: 'string', maxLength: 4096 },
  },
} as const;
const tokenBody = {
  type: 'object',
  additionalProperties: false,
  required: ['user'],
  properties: { user: authName, ttl: { type: 'integer', minimum: 1, maximum: tokenTtlMax } },
} as const;

async function propose(backend: AuthBackend, request: FastifyRequest, op: AuthOp): Promise<Record<string, unknown>> {
  validateAuthOp(op);
  return write<Record<string, unknown>>(backend, request, { kind: 'ext', name: authExtensionName, body: op });
}

/**
 * Proposes a command that stores a new token and checks that THIS token was stored. A retry of a request id that
 * was already applied answers the first attempt's result (dedupe): that attempt's token was never shown, so the
 * caller must make a new one rather than receive a token that was not stored.
 */
async function proposeToken(backend: AuthBackend, request: FastifyRequest, op: AuthOp & { token: TokenRecord }): Promise<void> {
  const result = await propose(backend, request, op);
  if (result.id !== op.token.id) {
    throw new KeelError('CONFLICT', 'this request id was already applied by an earlier attempt whose token was not shown; revoke it and create a new one', { id: result.id });
  }
}

function newToken(backend: AuthBackend, user: string, ttl: number | undefined): { token: string; record: TokenRecord } {
  const token = generateToken();
  const hash = hashToken(token);
  const now = backend.wallMs();
  return { token, record: { id: tokenIdOf(hash), user, hash, createdAtMs: now, expiresAtMs: ttl === undefined ? null : now + ttl * 1000 } };
}

type Params = { name: string; role: string; id: string };

export const authRoutes: FastifyPluginAsync<{ backend: AuthBackend }> = async (app, { backend }) => {
  const change = (op: (request: FastifyRequest<{ Params: Params; Body: Record<string, unknown> }>) => AuthOp, status = 200) =>
    async (request: FastifyRequest<{ Params: Params; Body: Record<string, unknown> }>, reply: FastifyReply) =>
      reply.code(status).send(await propose(backend, request, op(request)));
  const list = async <T>(prefix: string): Promise<T[]> => {
    await backend.readBarrier();
    return backend.state.list<T>(prefix);
  };

  app.post('/v1/auth/enable', async (request, reply) => {
    if (!backend.peerSecret) {
      throw new KeelError(
        'CONFLICT',
        'auth needs the cluster secret (peerSecret or peerSecretFile in the config) so the internal write route cannot bypass it: configure it on every node, restart them, then enable auth',
      );
    }
    const { token, record } = newToken(backend, rootName, undefined);
    await proposeToken(backend, request, { op: 'enable', token: record });
    // The only time the root token is ever shown: it is stored hashed.
    return reply.send({ enabled: true, user: rootName, id: record.id, token });
  });
  app.post('/v1/auth/disable', change(() => ({ op: 'disable' })));
  app.get('/v1/auth/status', async (_request, reply) => reply.send({ enabled: await backend.state.isEnabled() }));
  app.get('/v1/auth/whoami', async (request, reply) => {
    const principal = principalOf(request);
    return reply.send(
      principal === null
        ? { user: null }
        : { user: principal.user, roles: principal.roles, tokenId: principal.tokenId, expiresAtMs: principal.expiresAtMs },
    );
  });

  app.get('/v1/auth/users', async (_request, reply) => reply.send({ users: await list<UserRecord>(authKeys.usersPrefix) }));
  app.post('/v1/auth/users', { schema: { body: nameBody } }, change((r) => ({ op: 'userAdd', name: r.body.name as string }), 201));
  app.delete('/v1/auth/users/:name', { schema: { params: nameParams } }, change((r) => ({ op: 'userRemove', name: r.params.name })));
  app.post(
    '/v1/auth/users/:name/roles',
    { schema: { params: nameParams, body: { type: 'object', additionalProperties: false, required: ['role'], properties: { role: authName } } } },
    change((r) => ({ op: 'userGrant', name: r.params.name, role: r.body.role as string })),
  );
  app.delete('/v1/auth/users/:name/roles/:role', change((r) => ({ op: 'userRevoke', name: r.params.name, role: r.params.role })));

  app.get('/v1/auth/roles', async (_request, reply) => reply.send({ roles: await list<RoleRecord>(authKeys.rolesPrefix) }));
  app.post('/v1/auth/roles', { schema: { body: nameBody } }, change((r) => ({ op: 'roleAdd', name: r.body.name as string }), 201));
  app.delete('/v1/auth/roles/:name', { schema: { params: nameParams } }, change((r) => ({ op: 'roleRemove', name: r.params.name })));
  const permissionOf = (body: Record<string, unknown>): Permission => ({ ...(body as unknown as Permission), prefix: (body.prefix as string | undefined) ?? '' });
  app.post(
    '/v1/auth/roles/:name/permissions',
    { schema: { params: nameParams, body: permissionBody } },
    change((r) => ({ op: 'roleGrant', name: r.params.name, permission: permissionOf(r.body) })),
  );
  app.post(
    '/v1/auth/roles/:name/permissions/revoke',
    { schema: { params: nameParams, body: permissionBody } },
    change((r) => ({ op: 'roleRevoke', name: r.params.name, permission: permissionOf(r.body) })),
  );

  app.get('/v1/auth/tokens', async (_request, reply) => {
    const tokens = await list<TokenRecord>(authKeys.tokensPrefix);
    // Hashes stay inside: a listing shows handles, owners and expiry only.
    return reply.send({ tokens: tokens.map(({ id, user, createdAtMs, expiresAtMs }) => ({ id, user, createdAtMs, expiresAtMs })) });
  });
  app.post<{ Body: { user: string; ttl?: number } }>('/v1/auth/tokens', { schema: { body: tokenBody } }, async (request, reply) => {
    const { token, record } = newToken(backend, request.body.user, request.body.ttl);
    await proposeToken(backend, request, { op: 'tokenCreate', token: record });
    return reply.code(201).send({ id: record.id, user: record.user, expiresAtMs: record.expiresAtMs, token });
  });
  app.delete('/v1/auth/tokens/:id', change((r) => ({ op: 'tokenRevoke', id: r.params.id })));
};
