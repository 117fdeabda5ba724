// The auth state of one node, read from its store and cached: whether auth is enabled, and who a bearer token
// is (its user and the union of its roles' permissions). The cache is dropped whenever this node applies an auth
// command or restores a snapshot (invalidate()), so a node enforces exactly what it has applied: a revoked
// token stops working on each node as soon as that node applied the revoke (normally within milliseconds of
// the leader; a partitioned follower answers 503 for writes anyway and serves only its own, older reads).
// Writes close even that gap: each carries the revision its principal was read at (guardOf), and the store
// refuses it when it applies if an auth command was applied after that revision.
//
// A load that raced with an invalidation is not cached (the generation counter), so the cache never holds
// state older than the last applied auth command.
import type { CommandGuard, KvStore } from '../store/index.js';
import { KeelError } from '../util/errors.js';
import { authKeys } from './extension.js';
import type { Permission, RoleRecord, TokenRecord, UserRecord } from './model.js';
import { hashToken, isWellFormedToken, sameHash, tokenIdOf } from './tokens.js';

export interface Principal {
  readonly user: string;
  readonly tokenId: string;
  readonly roles: readonly string[];
  readonly permissions: readonly Permission[];
  readonly expiresAtMs: number | null;
  /**
   * The store revision read before this principal was loaded: it reflects every auth change up to it. Writes
   * it authorizes carry it (guardOf) and are refused when they apply if auth changed after it.
   */
  readonly asOfRevision: number;
}

/** Cached principals per node; a full cache is emptied (tokens are few; this bounds memory under abuse). */
const principalCacheMax = 10_000;

export class AuthState {
  private generation = 0;
  private enabled: boolean | null = null;
  private readonly principals = new Map<string, Principal>();

  constructor(
    private readonly store: KvStore,
    private readonly wallMs: () => number,
  ) {}

  /** Drops everything cached; called after an auth command was applied and after a snapshot restore. */
  invalidate(): void {
    this.generation += 1;
    this.enabled = null;
    this.principals.clear();
  }

  /** The cached answer of isEnabled(), or null when it must be read (the hooks' synchronous fast path). */
  enabledIfKnown(): boolean | null {
    return this.enabled;
  }

  async isEnabled(): Promise<boolean> {
    if (this.enabled !== null) return this.enabled;
    const generation = this.generation;
    const enabled = (await this.store.get(authKeys.enabled)).kv !== null;
    if (generation === this.generation) this.enabled = enabled;
    return enabled;
  }

  /** The principal a bearer token stands for; UNAUTHENTICATED when it is missing, unknown, revoked or expired. */
  async authenticate(token: string | undefined): Promise<Principal> {
    if (token === undefined || token === '') throw new KeelError('UNAUTHENTICATED', 'auth is enabled: send Authorization: Bearer <token>');
    if (!isWellFormedToken(token)) throw new KeelError('UNAUTHENTICATED', 'the token is malformed');
    const hash = hashToken(token);
    let principal = this.principals.get(hash);
    if (principal === undefined) {
      const generation = this.generation;
      const loaded = await this.load(hash, this.store.revision());
      if (loaded === null) throw new KeelError('UNAUTHENTICATED', 'the token is unknown or was revoked');
      principal = loaded;
      if (generation === this.generation) {
        if (this.principals.size >= principalCacheMax) this.principals.clear();
        this.principals.set(hash, principal);
      }
    }
    if (principal.expiresAtMs !== null && this.wallMs() >= principal.expiresAtMs) {
      throw new KeelError('UNAUTHENTICATED', 'the token has expired');
    }
    return principal;
  }

  private async load(hash: string, asOfRevision: number): Promise<Principal | null> {
    const id = tokenIdOf(hash);
    const token = await this.read<TokenRecord>(authKeys.token(id));
    if (token === null || !sameHash(token.hash, hash)) return null;
    const user = await this.read<UserRecord>(authKeys.user(token.user));
    if (user === null) return null;
    const permissions: Permission[] = [];
    for (const name of user.roles) {
      const role = await this.read<RoleRecord>(authKeys.role(name));
      if (role !== null) permissions.push(...role.permissions);
    }
    return { user: user.name, tokenId: id, roles: user.roles, permissions, expiresAtMs: token.expiresAtMs, asOfRevision };
  }

  private async read<T>(key: string): Promise<T | null> {
    const { kv } = await this.store.get(key);
    return kv === null ? null : (JSON.parse(kv.value) as T);
  }

  /** The guard of a write that `principal` authorized: refused when it applies if auth changed since. */
  static guardOf(principal: Principal): CommandGuard {
    return { key: authKeys.changed, revision: principal.asOfRevision };
  }

  /** Every record under one of the auth prefixes (users, roles, tokens), in name order. */
  async list<T>(prefix: string): Promise<T[]> {
    const { kvs } = await this.store.range({ key: prefix, prefix: true });
    return kvs.map((kv) => JSON.parse(kv.value) as T);
  }
}
