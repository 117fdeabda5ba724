// Auth state lives in the replicated store, so every node enforces the same users, roles and tokens, snapshots
// carry them, and a restart finds them again. It is written only by the `auth` command extension (proposed
// through Raft like every write); user writes may not touch `_keel/` at all (lease/prefixes.ts), and the API
// hides `_keel/auth/` from KV reads and watches (src/api/auth-hook.ts).
//
//   _keel/auth/enabled              "true" while auth is enabled (absent: auth is off)
//   _keel/auth/users/<name>         UserRecord, JSON
//   _keel/auth/roles/<name>         RoleRecord, JSON
//   _keel/auth/tokens/<id>          TokenRecord, JSON (the sha256 of the token, never the token)
//   _keel/auth/changed              "" rewritten by every auth command: writes authorized by a node carry the
//                                   revision its auth state was read at, and are refused when they apply if
//                                   this key changed after it (CommandGuard), as etcd checks its auth revision
//
// Apply is deterministic: the token hash, its id and its expiry are decided by the API node that made the token
// and travel in the command. Every applied auth command calls `onChange` after its batch is written, so each
// node's cache (auth-state.ts) is dropped before the next request reads it.
import type { ApplyContext, CommandExtension, KV } from '../store/index.js';
import { reservedPrefix } from '../lease/index.js';
import { KeelError } from '../util/errors.js';
import type { Permission, RoleRecord, TokenRecord, UserRecord } from './model.js';
import { checkAuthName, checkPermission, rootName, rootPermission, samePermission } from './model.js';
import { tokenIdOf, tokenIdPattern } from './tokens.js';

export const authPrefix = `${reservedPrefix}auth/`;
export const authKeys = {
  enabled: `${authPrefix}enabled`,
  usersPrefix: `${authPrefix}users/`,
  user: (name: string): string => `${authPrefix}users/${name}`,
  rolesPrefix: `${authPrefix}roles/`,
  role: (name: string): string => `${authPrefix}roles/${name}`,
  tokensPrefix: `${authPrefix}tokens/`,
  token: (id: string): string => `${authPrefix}tokens/${id}`,
  /** Written by every applied auth command: its modRevision is the last auth change (the writes' CommandGuard). */
  changed: `${authPrefix}changed`,
};

export const authExtensionName = 'auth';

export type AuthOp =
  | { readonly op: 'enable'; readonly token: TokenRecord }
  | { readonly op: 'disable' }
  | { readonly op: 'userAdd'; readonly name: string }
  | { readonly op: 'userRemove'; readonly name: string }
  | { readonly op: 'userGrant'; readonly name: string; readonly role: string }
  | { readonly op: 'userRevoke'; readonly name: string; readonly role: string }
  | { readonly op: 'roleAdd'; readonly name: string }
  | { readonly op: 'roleRemove'; readonly name: string }
  | { readonly op: 'roleGrant'; readonly name: string; readonly permission: Permission }
  | { readonly op: 'roleRevoke'; readonly name: string; readonly permission: Permission }
  | { readonly op: 'tokenCreate'; readonly token: TokenRecord }
  | { readonly op: 'tokenRevoke'; readonly id: string };

function checkTokenRecord(value: unknown): void {
  const t = value as Partial<Record<keyof TokenRecord, unknown>> | null;
  if (typeof t !== 'object' || t === null) throw new KeelError('INVALID_ARGUMENT', 'token record missing');
  checkAuthName(t.user, 'token user');
  if (typeof t.hash !== 'string' || !/^[0-9a-f]{64}$/.test(t.hash)) throw new KeelError('INVALID_ARGUMENT', 'token hash must be 64 hex digits');
  if (t.id !== tokenIdOf(t.hash)) throw new KeelError('INVALID_ARGUMENT', 'token id must be the start of its hash');
  if (typeof t.createdAtMs !== 'number' || !Number.isSafeInteger(t.createdAtMs)) throw new KeelError('INVALID_ARGUMENT', 'bad createdAtMs');
  if (t.expiresAtMs !== null && (typeof t.expiresAtMs !== 'number' || !Number.isSafeInteger(t.expiresAtMs))) {
    throw new KeelError('INVALID_ARGUMENT', 'bad expiresAtMs');
  }
}

/** Throws INVALID_ARGUMENT unless `body` is a well-formed AuthOp (before proposing and again before applying). */
export function validateAuthOp(body: unknown): asserts body is AuthOp {
  const b = body as Record<string, unknown> | null;
  if (typeof b !== 'object' || b === null || typeof b.op !== 'string') throw new KeelError('INVALID_ARGUMENT', 'auth command without op');
  switch (b.op) {
    case 'enable':
    case 'tokenCreate':
      checkTokenRecord(b.token);
      return;
    case 'disable':
      return;
    case 'userAdd':
    case 'userRemove':
    case 'roleAdd':
    case 'roleRemove':
      checkAuthName(b.name, 'name');
      return;
    case 'userGrant':
    case 'userRevoke':
      checkAuthName(b.name, 'user name');
      checkAuthName(b.role, 'role name');
      return;
    case 'roleGrant':
    case 'roleRevoke':
      checkAuthName(b.name, 'role name');
      checkPermission(b.permission);
      return;
    case 'tokenRevoke':
      if (typeof b.id !== 'string' || !tokenIdPattern.test(b.id)) throw new KeelError('INVALID_ARGUMENT', 'token id must be 16 hex digits');
      return;
    default:
      throw new KeelError('INVALID_ARGUMENT', `unknown auth op "${String(b.op)}"`);
  }
}

function parse<T>(kv: KV | null): T | null {
  return kv === null ? null : (JSON.parse(kv.value) as T);
}

async function readUser(ctx: ApplyContext, name: string): Promise<UserRecord | null> {
  return parse<UserRecord>(await ctx.get(authKeys.user(name)));
}

async function readRole(ctx: ApplyContext, name: string): Promise<RoleRecord | null> {
  return parse<RoleRecord>(await ctx.get(authKeys.role(name)));
}

async function mustUser(ctx: ApplyContext, name: string): Promise<UserRecord> {
  const user = await readUser(ctx, name);
  if (user === null) throw new KeelError('NOT_FOUND', `user "${name}" not found`);
  return user;
}

async function mustRole(ctx: ApplyContext, name: string): Promise<RoleRecord> {
  const role = await readRole(ctx, name);
  if (role === null) throw new KeelError('NOT_FOUND', `role "${name}" not found`);
  return role;
}

async function isEnabled(ctx: ApplyContext): Promise<boolean> {
  return (await ctx.get(authKeys.enabled)) !== null;
}

async function put(ctx: ApplyContext, key: string, record: unknown): Promise<void> {
  await ctx.put(key, JSON.stringify(record), 0);
}

function prefixRange(prefix: string): { start: Uint8Array; end: Uint8Array } {
  const start = Buffer.from(prefix, 'utf8');
  const end = Buffer.from(start);
  end[end.length - 1] = end[end.length - 1]! + 1; // every prefix here ends with '/'; '/' + 1 = '0'
  return { start, end };
}

/** While auth is on, root must stay able to administer: its user, its role and its admin grant are kept. */
async function guardRoot(ctx: ApplyContext, what: string): Promise<void> {
  if (await isEnabled(ctx)) throw new KeelError('CONFLICT', `${what} while auth is enabled: root must keep admin`);
}

async function enable(ctx: ApplyContext, token: TokenRecord): Promise<Record<string, unknown>> {
  if (await isEnabled(ctx)) throw new KeelError('CONFLICT', 'auth is already enabled');
  const role = await readRole(ctx, rootName);
  if (role === null || !role.permissions.some((p) => samePermission(p, rootPermission))) {
    await put(ctx, authKeys.role(rootName), { name: rootName, permissions: [...(role?.permissions ?? []), rootPermission] });
  }
  const user = await readUser(ctx, rootName);
  if (user === null || !user.roles.includes(rootName)) {
    await put(ctx, authKeys.user(rootName), { name: rootName, roles: [...(user?.roles ?? []), rootName] });
  }
  if (token.user !== rootName) throw new KeelError('INVALID_ARGUMENT', 'the token made by enable belongs to root');
  await put(ctx, authKeys.token(token.id), token);
  await ctx.put(authKeys.enabled, 'true', 0);
  return { enabled: true, user: rootName, id: token.id };
}

async function userOp(ctx: ApplyContext, op: AuthOp & { op: `user${string}` }): Promise<Record<string, unknown>> {
  switch (op.op) {
    case 'userAdd': {
      if ((await readUser(ctx, op.name)) !== null) throw new KeelError('CONFLICT', `user "${op.name}" already exists`);
      await put(ctx, authKeys.user(op.name), { name: op.name, roles: [] });
      return { name: op.name };
    }
    case 'userRemove': {
      await mustUser(ctx, op.name);
      if (op.name === rootName) await guardRoot(ctx, 'root cannot be removed');
      ctx.delete((await ctx.get(authKeys.user(op.name)))!);
      // A removed user's tokens go with it: none of them may authenticate a later user of the same name.
      for (const kv of await ctx.range(prefixRange(authKeys.tokensPrefix))) {
        if (parse<TokenRecord>(kv)?.user === op.name) ctx.delete(kv);
      }
      return { name: op.name };
    }
    case 'userGrant': {
      const user = await mustUser(ctx, op.name);
      await mustRole(ctx, op.role);
      if (!user.roles.includes(op.role)) await put(ctx, authKeys.user(op.name), { ...user, roles: [...user.roles, op.role] });
      return { name: op.name, role: op.role };
    }
    case 'userRevoke': {
      const user = await mustUser(ctx, op.name);
      if (op.name === rootName && op.role === rootName) await guardRoot(ctx, 'root cannot lose the root role');
      if (user.roles.includes(op.role)) await put(ctx, authKeys.user(op.name), { ...user, roles: user.roles.filter((r) => r !== op.role) });
      return { name: op.name, role: op.role };
    }
  }
}

async function roleOp(ctx: ApplyContext, op: AuthOp & { op: `role${string}` }): Promise<Record<string, unknown>> {
  switch (op.op) {
    case 'roleAdd': {
      if ((await readRole(ctx, op.name)) !== null) throw new KeelError('CONFLICT', `role "${op.name}" already exists`);
      await put(ctx, authKeys.role(op.name), { name: op.name, permissions: [] });
      return { name: op.name };
    }
    case 'roleRemove': {
      await mustRole(ctx, op.name);
      if (op.name === rootName) await guardRoot(ctx, 'the root role cannot be removed');
      ctx.delete((await ctx.get(authKeys.role(op.name)))!);
      for (const kv of await ctx.range(prefixRange(authKeys.usersPrefix))) {
        const user = parse<UserRecord>(kv)!;
        if (user.roles.includes(op.name)) await put(ctx, kv.key, { ...user, roles: user.roles.filter((r) => r !== op.name) });
      }
      return { name: op.name };
    }
    case 'roleGrant': {
      const role = await mustRole(ctx, op.name);
      const permission = checkPermission(op.permission);
      if (!role.permissions.some((p) => samePermission(p, permission))) {
        await put(ctx, authKeys.role(op.name), { ...role, permissions: [...role.permissions, permission] });
      }
      return { name: op.name, permission };
    }
    case 'roleRevoke': {
      const role = await mustRole(ctx, op.name);
      const permission = checkPermission(op.permission);
      if (op.name === rootName && samePermission(permission, rootPermission)) await guardRoot(ctx, 'root cannot lose admin');
      await put(ctx, authKeys.role(op.name), { ...role, permissions: role.permissions.filter((p) => !samePermission(p, permission)) });
      return { name: op.name, permission };
    }
  }
}

async function applyAuthOp(op: AuthOp, ctx: ApplyContext): Promise<Record<string, unknown>> {
  switch (op.op) {
    case 'enable':
      return enable(ctx, op.token);
    case 'disable':
      if (await isEnabled(ctx)) ctx.delete((await ctx.get(authKeys.enabled))!);
      return { enabled: false };
    case 'tokenCreate': {
      await mustUser(ctx, op.token.user);
      if ((await ctx.get(authKeys.token(op.token.id))) !== null) throw new KeelError('CONFLICT', 'token id collision; create it again');
      await put(ctx, authKeys.token(op.token.id), op.token);
      return { id: op.token.id, user: op.token.user, expiresAtMs: op.token.expiresAtMs };
    }
    case 'tokenRevoke': {
      const kv = await ctx.get(authKeys.token(op.id));
      if (kv === null) throw new KeelError('NOT_FOUND', `token ${op.id} not found`);
      ctx.delete(kv);
      return { id: op.id };
    }
    case 'userAdd':
    case 'userRemove':
    case 'userGrant':
    case 'userRevoke':
      return userOp(ctx, op);
    case 'roleAdd':
    case 'roleRemove':
    case 'roleGrant':
    case 'roleRevoke':
      return roleOp(ctx, op);
    default: {
      const never: never = op;
      throw new KeelError('INVALID_ARGUMENT', `unknown auth op ${JSON.stringify(never)}`);
    }
  }
}

/** The `auth` command extension; `onChange` runs (on every node) after an applied auth command's batch is written. */
export function authExtension(onChange: () => void): CommandExtension {
  return {
    name: authExtensionName,
    validate: validateAuthOp,
    apply: async (body, ctx) => {
      validateAuthOp(body);
      const result = await applyAuthOp(body, ctx);
      await ctx.put(authKeys.changed, '', 0);
      ctx.afterCommit(onChange);
      return result;
    },
  };
}
