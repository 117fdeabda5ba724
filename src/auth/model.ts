// The auth model: users, roles, permissions, tokens, and the pure rule that decides whether a set of
// permissions allows a request. No I/O here: the store extension (extension.ts) and the per-node cache
// (auth-state.ts) build on it, and the API's hook (src/api/auth-hook.ts) maps each route to a Need.
//
// A permission grants `read` or `readwrite` on one kind of resource, for every name starting with `prefix`:
//   key      keys of the KV store (reads, writes, txn, watch)       prefix of the key
//   service  the service registry                                   prefix of the service name
//   lock     locks and elections                                    prefix of the lock or election name
//   admin    members, snapshot, maintenance, compaction, auth       (no prefix; grants everything)
// `readwrite` includes `read`. The prefix '' covers every name. A request on one name needs a permission whose
// prefix starts that name; a request on a whole prefix range (a prefix read, a prefix watch, a prefix delete)
// needs a permission whose prefix starts the requested prefix, so the range lies inside what was granted:
// a grant on `app/` allows `app/x` and the range `app/x/`, but not the range `ap` (which also holds `apple`).
import { KeelError } from '../util/errors.js';

export const permissionKinds = ['key', 'service', 'lock', 'admin'] as const;
export type PermissionKind = (typeof permissionKinds)[number];
export const accessLevels = ['read', 'readwrite'] as const;
export type Access = (typeof accessLevels)[number];

export interface Permission {
  readonly kind: PermissionKind;
  readonly access: Access;
  /** '' for admin. */
  readonly prefix: string;
}

export interface UserRecord {
  readonly name: string;
  readonly roles: readonly string[];
}

export interface RoleRecord {
  readonly name: string;
  readonly permissions: readonly Permission[];
}

/** A token as stored: never the token itself, only its sha256. */
export interface TokenRecord {
  /** The public handle of the token (`keel token revoke <id>`): the first 16 hex digits of its hash. */
  readonly id: string;
  readonly user: string;
  /** sha256 of the whole token string, hex. */
  readonly hash: string;
  readonly createdAtMs: number;
  /** Wall-clock expiry (ms since the epoch), or null for a token that does not expire. */
  readonly expiresAtMs: number | null;
}

/** What a request needs. `prefix` says whether `name` is one name or a whole prefix range. */
export type Need =
  | { readonly kind: 'authenticated' }
  | { readonly kind: 'admin' }
  | { readonly kind: Exclude<PermissionKind, 'admin'>; readonly access: Access; readonly name: string; readonly prefix: boolean }
  /** Met when any one of the options is (a key under `_keel/locks/<name>/` is also the lock `<name>`). */
  | { readonly kind: 'either'; readonly options: readonly Need[] };

/** The built-in administrator: user and role `root`, the role holding `admin`. */
export const rootName = 'root';
export const rootPermission: Permission = { kind: 'admin', access: 'readwrite', prefix: '' };

/** User and role names: 1..64 characters of [A-Za-z0-9._-]. */
export const authNamePattern = /^[A-Za-z0-9._-]{1,64}$/;
/** A permission prefix is at most a key long. */
export const permissionPrefixBytesMax = 4096;

/** Whether one permission allows one need. */
export function permits(permission: Permission, need: Need): boolean {
  if (permission.kind === 'admin') return true;
  if (need.kind === 'authenticated') return true;
  if (need.kind === 'either') return need.options.some((option) => permits(permission, option));
  if (need.kind === 'admin' || need.kind !== permission.kind) return false;
  if (need.access === 'readwrite' && permission.access !== 'readwrite') return false;
  // One name: inside the grant when the grant's prefix starts it. A prefix range: inside when the grant's
  // prefix starts the range's prefix (every key of the range then starts with the grant's prefix too).
  return need.name.startsWith(permission.prefix);
}

/** Whether any of the permissions allows every one of the needs. */
export function allows(permissions: readonly Permission[], needs: readonly Need[]): boolean {
  // A valid token is authenticated whatever its roles (even none).
  return needs.every((need) => {
    if (need.kind === 'authenticated') return true;
    if (need.kind === 'either') return need.options.some((option) => allows(permissions, [option]));
    return permissions.some((permission) => permits(permission, need));
  });
}

export function describeNeed(need: Need): string {
  if (need.kind === 'authenticated' || need.kind === 'admin') return need.kind;
  if (need.kind === 'either') return need.options.map(describeNeed).join(' or ');
  return `${need.access} on ${need.kind} ${need.prefix ? 'prefix ' : ''}"${need.name}"`;
}

export function checkAuthName(name: unknown, what: string): string {
  if (typeof name !== 'string' || !authNamePattern.test(name)) {
    throw new KeelError('INVALID_ARGUMENT', `${what} must be 1..64 characters of [A-Za-z0-9._-]`);
  }
  return name;
}

export function checkPermission(value: unknown): Permission {
  const p = value as Partial<Record<keyof Permission, unknown>> | null;
  if (typeof p !== 'object' || p === null) throw new KeelError('INVALID_ARGUMENT', 'a permission is an object {kind, access, prefix}');
  if (!permissionKinds.includes(p.kind as PermissionKind)) {
    throw new KeelError('INVALID_ARGUMENT', `permission kind must be one of ${permissionKinds.join(', ')}`);
  }
  if (!accessLevels.includes(p.access as Access)) {
    throw new KeelError('INVALID_ARGUMENT', `permission access must be one of ${accessLevels.join(', ')}`);
  }
  const prefix = p.prefix ?? '';
  if (typeof prefix !== 'string' || Buffer.byteLength(prefix) > permissionPrefixBytesMax) {
    throw new KeelError('INVALID_ARGUMENT', `permission prefix must be a string of at most ${permissionPrefixBytesMax} bytes`);
  }
  const kind = p.kind as PermissionKind;
  return { kind, access: kind === 'admin' ? 'readwrite' : (p.access as Access), prefix: kind === 'admin' ? '' : prefix };
}

export function samePermission(a: Permission, b: Permission): boolean {
  return a.kind === b.kind && a.access === b.access && a.prefix === b.prefix;
}
