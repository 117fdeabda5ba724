// Client auth at the API: the ONE place where requests are authenticated and authorized, with one table that
// maps every route to what it needs (src/auth/model.ts explains permissions and prefix matching).
//
//   onRequest   (before the body is read)  auth enabled? then the bearer token must name a live token: else 401
//   preHandler  (params, query, body parsed) the route's needs from `routeNeeds` must all be granted: else 403
//
// Open routes: GET /health and GET /metrics (unless `protectMetrics`), and the internal propose route, which
// followers use to forward writes that were ALREADY authorized on the node the client talked to (the check runs
// here, before any handler proposes or forwards). That internal route must be protected by the peer cluster
// secret (the peer-auth/TLS work), not by client tokens. A write carries the auth guard (authGuardOf): if auth
// changed after the state it was checked against, it is refused when it applies.
// A route missing from the table needs admin (deny by default: routes added later are safe until listed).
//
// The reserved prefix `_keel/auth/` (hashed tokens, users, roles) is hidden from the KV API whether auth is on
// or not: naming a key or prefix inside it is refused (403, even for root: use /v1/auth/...), and ranges,
// txn gets and watches that merely contain it have those keys filtered out (see hideAuthKeys).
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AuthState, allows, authPrefix, describeNeed, type Access, type Need, type Principal } from '../auth/index.js';
import type { CommandGuard } from '../store/index.js';
import { KeelError } from '../util/errors.js';

export interface AuthHookOptions {
  readonly state: AuthState;
  /**
   * Keys attached to a lease: revoking a lease deletes them, so it needs readwrite on each. Read after a
   * ReadIndex barrier: a node behind the leader must not authorize against fewer keys than it will delete.
   */
  leaseKeys(lease: number): Promise<readonly string[]>;
  /** GET /metrics needs a token (any valid one) while auth is enabled. */
  readonly protectMetrics: boolean;
  /**
   * The cluster secret is configured: it guards /internal/v1/propose. Without it, while auth is on, that route
   * needs an admin token, so it cannot be used to bypass auth (auth enable also refuses to run without a secret).
   */
  readonly peerSecret: boolean;
}

type NeedsOf = (request: FastifyRequest, options: AuthHookOptions) => readonly Need[] | Promise<readonly Need[]>;

const authenticated: readonly Need[] = [{ kind: 'authenticated' }];
const admin: readonly Need[] = [{ kind: 'admin' }];

function keyNeed(access: Access, name: string, prefix: boolean): Need {
  if (name.startsWith(authPrefix)) {
    throw new KeelError('PERMISSION_DENIED', `${authPrefix} is reserved for auth state: use the /v1/auth API`);
  }
  const need: Need = { kind: 'key', access, name, prefix };
  // The lease layer's records are keys too: reading or watching one service's, lock's or election's keys
  // (KeelClient observes an election by watching _keel/elections/<name>/) is also allowed by a grant on it.
  const owner = /^_keel\/(services|locks|elections)\/([A-Za-z0-9._:-]{1,256})\//.exec(name);
  if (owner === null) return need;
  return { kind: 'either', options: [need, { kind: owner[1] === 'services' ? 'service' : 'lock', access, name: owner[2]!, prefix: false }] };
}

const params = (request: FastifyRequest): Record<string, string> => request.params as Record<string, string>;
const query = (request: FastifyRequest): Record<string, unknown> => (request.query ?? {}) as Record<string, unknown>;
const pathKey = (request: FastifyRequest): string => params(request)['*'] ?? '';
const isPrefix = (request: FastifyRequest): boolean => query(request).prefix === true || pathKey(request) === '';

const kvRead: NeedsOf = (request) => [keyNeed('read', pathKey(request), isPrefix(request))];
const kvWrite: NeedsOf = (request) => [keyNeed('readwrite', pathKey(request), query(request).prefix === true)];

interface TxnBody {
  compare?: { key: string }[];
  success?: TxnOpBody[];
  failure?: TxnOpBody[];
}
type TxnOpBody = { put?: { key: string }; delete?: { key: string; prefix?: boolean }; get?: { key: string; prefix?: boolean } };

const txnNeeds: NeedsOf = (request) => {
  const body = (request.body ?? {}) as TxnBody;
  const needs = (body.compare ?? []).map((c) => keyNeed('read', c.key, false));
  for (const op of [...(body.success ?? []), ...(body.failure ?? [])]) {
    if (op.put !== undefined) needs.push(keyNeed('readwrite', op.put.key, false));
    else if (op.delete !== undefined) needs.push(keyNeed('readwrite', op.delete.key, op.delete.prefix === true));
    else if (op.get !== undefined) needs.push(keyNeed('read', op.get.key, op.get.prefix === true));
  }
  return needs;
};

const named = (kind: 'service' | 'lock', access: 'read' | 'readwrite', param: string): NeedsOf => (request) => [
  { kind, access, name: params(request)[param] ?? '', prefix: false },
];

/**
 * Revoking a lease deletes its keys: readwrite on each of them, in the terms of the API that wrote it. The keys
 * are kept on the request: the revoke entry carries them (as a digest) and is refused when it applies if the
 * lease's keys changed in between, so a key attached after this check is never deleted by it.
 */
const leaseRevoke: NeedsOf = async (request, options) => {
  const keys = await options.leaseKeys(Number(params(request).id));
  request.keelCheckedLeaseKeys = keys;
  return keys.map((key) => keyNeed('readwrite', key, false));
};

/** Every route and what it needs; `null` = open. Keyed by `METHOD url-pattern` as fastify registered it. */
const routeTable = (options: AuthHookOptions): Readonly<Record<string, NeedsOf | null>> => ({
  'GET /health': null,
  'GET /metrics': options.protectMetrics ? () => authenticated : null,
  // Forwarded writes were authorized on the node the client called; this route needs the peer secret instead.
  'POST /internal/v1/propose': options.peerSecret ? null : () => admin,
  // A member asking whether it was removed: the peer proof, checked by internal-auth.ts, stands for a token.
  'GET /internal/v1/members': options.peerSecret ? null : () => admin,
  'GET /v1/status': () => authenticated,
  'GET /v1/kv': kvRead,
  'GET /v1/kv/*': kvRead,
  'PUT /v1/kv': kvWrite,
  'PUT /v1/kv/*': kvWrite,
  'DELETE /v1/kv': kvWrite,
  'DELETE /v1/kv/*': kvWrite,
  'POST /v1/txn': txnNeeds,
  'GET /v1/watch': kvRead,
  'GET /v1/watch/*': kvRead,
  'POST /v1/compact': () => admin,
  'GET /v1/debug/hash': () => admin,
  // Leases are shared plumbing of keys, services, locks and elections: granting and keeping one alive needs only
  // a valid token; what it guards is checked where it is attached (a put, a registration, an acquire).
  'POST /v1/leases': () => authenticated,
  'GET /v1/leases': () => authenticated,
  'POST /v1/leases/keepalive': () => authenticated,
  'POST /v1/leases/:id/keepalive': () => authenticated,
  'GET /v1/leases/:id': () => authenticated,
  'DELETE /v1/leases/:id': leaseRevoke,
  'GET /v1/services': () => [{ kind: 'service', access: 'read', name: '', prefix: true }],
  'GET /v1/services/:service': named('service', 'read', 'service'),
  'PUT /v1/services/:service/instances/:id': named('service', 'readwrite', 'service'),
  'DELETE /v1/services/:service/instances/:id': named('service', 'readwrite', 'service'),
  'POST /v1/services/:service/instances/:id/heartbeat': named('service', 'readwrite', 'service'),
  'GET /v1/services/:service/instances/:id': named('service', 'read', 'service'),
  'GET /v1/locks/:name': named('lock', 'read', 'name'),
  'POST /v1/locks/:name/acquire': named('lock', 'readwrite', 'name'),
  'POST /v1/locks/:name/release': named('lock', 'readwrite', 'name'),
  'GET /v1/elections/:name': named('lock', 'read', 'name'),
  'POST /v1/elections/:name/campaign': named('lock', 'readwrite', 'name'),
  'POST /v1/elections/:name/resign': named('lock', 'readwrite', 'name'),
  'POST /v1/elections/:name/proclaim': named('lock', 'readwrite', 'name'),
  'GET /v1/auth/status': () => authenticated,
  'GET /v1/auth/whoami': () => authenticated,
  // Every other /v1/auth route, members, snapshot, leader transfer and maintenance: admin (the default).
});

/** The routes whose needs name KV keys: checked for `_keel/auth/` even while auth is off. */
const keyRoutes = new Set(['GET /v1/kv', 'GET /v1/kv/*', 'PUT /v1/kv/*', 'DELETE /v1/kv/*', 'POST /v1/txn', 'GET /v1/watch', 'GET /v1/watch/*']);

function routeOf(request: FastifyRequest): string | undefined {
  const url = request.routeOptions.url;
  // fastify answers HEAD for every GET route: it needs what the GET needs.
  return url === undefined ? undefined : `${request.method === 'HEAD' ? 'GET' : request.method} ${url}`;
}

function needsIn(routeNeeds: Readonly<Record<string, NeedsOf | null>>, route: string | undefined): NeedsOf | null {
  if (route === undefined) return () => authenticated; // unmatched: a token, then the 404
  const needs = routeNeeds[route];
  return needs === undefined ? () => admin : needs;
}

function bearerOf(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header === undefined) return undefined;
  const match = /^Bearer +(\S+) *$/i.exec(header);
  if (match === null) throw new KeelError('UNAUTHENTICATED', 'the Authorization header must be "Bearer <token>"');
  return match[1];
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Who made the request, set by the auth hook when auth is enabled and the token is valid. */
    keelPrincipal: Principal | null;
    /** DELETE /v1/leases/:id with auth on: the attached keys the principal was authorized to delete. */
    keelCheckedLeaseKeys: readonly string[] | null;
  }
}

/** Who made the request (auth enabled and the token valid), else null. */
export function principalOf(request: FastifyRequest): Principal | null {
  return request.keelPrincipal ?? null;
}

/**
 * The guard for a write this request makes (auth on): the write is refused (503, not applied) when it applies
 * if any auth change was applied after the state this node checked it against. Undefined while auth is off.
 */
export function authGuardOf(request: FastifyRequest): CommandGuard | undefined {
  const principal = principalOf(request);
  return principal === null ? undefined : AuthState.guardOf(principal);
}

/** authGuardOf as an options field: `{guard}` with auth on, else `{}`. */
export function guardOption(request: FastifyRequest): { guard?: CommandGuard } {
  const guard = authGuardOf(request);
  return guard === undefined ? {} : { guard };
}

/** The keys a lease revoke was authorized against (auth on), else null: see leaseRevoke. */
export function checkedLeaseKeysOf(request: FastifyRequest): readonly string[] | null {
  return request.keelCheckedLeaseKeys ?? null;
}

export function installAuth(app: FastifyInstance, options: AuthHookOptions): void {
  const routeNeeds = routeTable(options);
  const needsOf = (route: string | undefined): NeedsOf | null => needsIn(routeNeeds, route);
  app.decorateRequest('keelPrincipal', null);
  app.decorateRequest('keelCheckedLeaseKeys', null);
  // Callback-style hooks with a synchronous path for the common case (auth off and known to be off, a key route
  // whose needs are computed without I/O): no promise and no microtask hop per request and hook.
  app.addHook('onRequest', (request, _reply, done) => {
    const needs = needsOf(routeOf(request));
    if (needs === null || options.state.enabledIfKnown() === false) {
      done();
      return;
    }
    const authenticate = async (): Promise<void> => {
      if (await options.state.isEnabled()) request.keelPrincipal = await options.state.authenticate(bearerOf(request));
    };
    authenticate().then(() => done(), done);
  });
  app.addHook('preHandler', (request, _reply, done) => {
    let pending: Promise<void> | null;
    try {
      pending = authorize(request, options, needsOf);
    } catch (err) {
      done(err as Error);
      return;
    }
    if (pending === null) done();
    else pending.then(() => done(), done);
  });
}

/**
 * The preHandler check: throws (synchronously, or through the returned promise when the route's needs are
 * computed asynchronously) PERMISSION_DENIED when the request may not go on; null when it may, decided at once.
 */
function authorize(request: FastifyRequest, options: AuthHookOptions, needsOf: (route: string | undefined) => NeedsOf | null): Promise<void> | null {
  const route = routeOf(request);
  const needs = needsOf(route);
  if (needs === null) return null;
  const principal = request.keelPrincipal;
  if (principal === null) {
    // Auth is off (or was when this request arrived): only the hidden-prefix rule applies (keyNeed throws).
    if (route === undefined || !keyRoutes.has(route)) return null;
    const computed = needs(request, options);
    return computed instanceof Promise ? computed.then(() => undefined) : null;
  }
  const check = (required: readonly Need[]): void => {
    if (!allows(principal.permissions, required)) {
      const missing = required.find((need) => !allows(principal.permissions, [need]))!;
      throw new KeelError('PERMISSION_DENIED', `user "${principal.user}" lacks ${describeNeed(missing)}`);
    }
  };
  const computed = needs(request, options);
  if (computed instanceof Promise) return computed.then(check);
  check(computed);
  return null;
}

/** KV answers (ranges, txn gets, watch events) never show `_keel/auth/`. */
export function isHiddenKey(key: string): boolean {
  return key.startsWith(authPrefix);
}

/** Whether a range read of `key` (prefix or not) could hold hidden keys, so its answer must be filtered. */
export function mayHoldHiddenKeys(key: string, prefix: boolean): boolean {
  return prefix ? key.startsWith(authPrefix) || authPrefix.startsWith(key) : isHiddenKey(key);
}

/** A range answer without the hidden keys; `hiddenCount` counts the hidden keys the range held (for `count`). */
export function withoutHiddenKeys<T extends { kvs: readonly { key: string }[]; count: number }>(result: T, hiddenCount: number): T {
  return { ...result, kvs: result.kvs.filter((kv) => !isHiddenKey(kv.key)), count: Math.max(0, result.count - hiddenCount) };
}
