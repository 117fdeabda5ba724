// Goal: auth state through the store (src/auth/extension.ts, auth-state.ts): enable creates root and its token,
// tokens authenticate to their user's permissions, a revoke or a role change is seen by the cached state at once
// (the apply drops the cache), removing a user takes its tokens, root keeps admin while auth is on, expired tokens
// fail, and the records hold only the token's hash.
// Method: a real KvStore in a temp dir with the auth extension; commands applied as consecutive entries through
// SerialLog (what the driver does); AuthState reads that store with a settable wall clock.
import t from 'tap';
import type { AuthOp, TokenRecord } from '../../../src/auth/index.js';
import { authExtension, authKeys, AuthState, generateToken, hashToken, tokenIdOf } from '../../../src/auth/index.js';
import { encodeCommand, isApplyFailure, type ApplyResult, type Command, type CommandGuard } from '../../../src/store/index.js';
import { SerialLog } from '../lease/helpers.js';
import { openStore, type TapLike } from '../store/helpers.js';

async function setup(t: TapLike) {
  let wall = 1_000_000;
  let state: AuthState | null = null;
  const { store } = await openStore(t, { extensions: [authExtension(() => state?.invalidate())] });
  state = new AuthState(store, () => wall);
  const log = new SerialLog(store);
  const run = (op: AuthOp) => log.run({ kind: 'ext', name: 'auth', body: op });
  const ok = async (op: AuthOp) => {
    const result = await run(op);
    if (isApplyFailure(result)) throw new Error(`${op.op}: ${result.error.code} ${result.error.message}`);
    return result;
  };
  const failure = async (op: AuthOp): Promise<string> => {
    const result = await run(op);
    return isApplyFailure(result) ? result.error.code : 'applied';
  };
  const token = (user: string, ttlMs?: number): { token: string; record: TokenRecord } => {
    const text = generateToken();
    const hash = hashToken(text);
    return { token: text, record: { id: tokenIdOf(hash), user, hash, createdAtMs: wall, expiresAtMs: ttlMs === undefined ? null : wall + ttlMs } };
  };
  return { store, state, log, ok, failure, token, advance: (ms: number) => (wall += ms) };
}

const code = async (promise: Promise<unknown>): Promise<string> => {
  try {
    await promise;
    return 'ok';
  } catch (err) {
    return (err as { code: string }).code;
  }
};

void t.test('enable makes root with admin and answers its token; a second enable conflicts', async (t) => {
  const { store, state, ok, failure, token } = await setup(t);
  t.equal(await state.isEnabled(), false, 'off by default');
  const root = token('root');
  await ok({ op: 'enable', token: root.record });
  t.equal(await state.isEnabled(), true, 'the cached "off" was dropped by the apply');
  const principal = await state.authenticate(root.token);
  t.equal(principal.user, 'root');
  t.same(principal.permissions, [{ kind: 'admin', access: 'readwrite', prefix: '' }]);
  const stored = (await store.get(authKeys.token(root.record.id))).kv!.value;
  t.notOk(stored.includes(root.token), 'the token itself is not stored');
  t.ok(stored.includes(hashToken(root.token)), 'its sha256 is');
  t.equal(await failure({ op: 'enable', token: token('root').record }), 'CONFLICT');
  t.equal(await failure({ op: 'userRemove', name: 'root' }), 'CONFLICT', 'root stays while auth is on');
  t.equal(await failure({ op: 'roleRevoke', name: 'root', permission: { kind: 'admin', access: 'readwrite', prefix: '' } }), 'CONFLICT');
  t.equal(await failure({ op: 'userRevoke', name: 'root', role: 'root' }), 'CONFLICT');
  await ok({ op: 'disable' });
  t.equal(await state.isEnabled(), false);
});

void t.test('a token carries its roles; grants, revokes and removals show at once', async (t) => {
  const { state, ok, failure, token } = await setup(t);
  await ok({ op: 'userAdd', name: 'alice' });
  t.equal(await failure({ op: 'userAdd', name: 'alice' }), 'CONFLICT');
  await ok({ op: 'roleAdd', name: 'reader' });
  await ok({ op: 'roleGrant', name: 'reader', permission: { kind: 'key', access: 'read', prefix: 'app/' } });
  t.equal(await failure({ op: 'userGrant', name: 'alice', role: 'nope' }), 'NOT_FOUND');
  t.equal(await failure({ op: 'tokenCreate', token: token('bob').record }), 'NOT_FOUND', 'no token for an unknown user');
  const alice = token('alice');
  await ok({ op: 'tokenCreate', token: alice.record });
  t.same((await state.authenticate(alice.token)).permissions, [], 'no roles yet');
  await ok({ op: 'userGrant', name: 'alice', role: 'reader' });
  t.same((await state.authenticate(alice.token)).permissions, [{ kind: 'key', access: 'read', prefix: 'app/' }], 'the grant is seen');
  await ok({ op: 'roleGrant', name: 'reader', permission: { kind: 'service', access: 'readwrite', prefix: '' } });
  t.equal((await state.authenticate(alice.token)).permissions.length, 2, 'a role change is seen');
  await ok({ op: 'tokenRevoke', id: alice.record.id });
  t.equal(await code(state.authenticate(alice.token)), 'UNAUTHENTICATED', 'a revoked token is refused at once');
  t.equal(await failure({ op: 'tokenRevoke', id: alice.record.id }), 'NOT_FOUND');

  const again = token('alice');
  await ok({ op: 'tokenCreate', token: again.record });
  await ok({ op: 'roleRemove', name: 'reader' });
  t.same((await state.authenticate(again.token)).roles, [], 'a removed role leaves its users');
  await ok({ op: 'userRemove', name: 'alice' });
  t.equal(await code(state.authenticate(again.token)), 'UNAUTHENTICATED', "a removed user's tokens go with it");
  await ok({ op: 'userAdd', name: 'alice' });
  t.equal(await code(state.authenticate(again.token)), 'UNAUTHENTICATED', 'and do not come back with a new user of that name');
});

void t.test('expired, malformed, unknown and missing tokens are refused', async (t) => {
  const { state, ok, token, advance } = await setup(t);
  await ok({ op: 'userAdd', name: 'ci' });
  const short = token('ci', 60_000);
  await ok({ op: 'tokenCreate', token: short.record });
  t.equal((await state.authenticate(short.token)).user, 'ci');
  advance(60_000);
  t.equal(await code(state.authenticate(short.token)), 'UNAUTHENTICATED', 'expired (even though cached)');
  t.equal(await code(state.authenticate(undefined)), 'UNAUTHENTICATED');
  t.equal(await code(state.authenticate('garbage')), 'UNAUTHENTICATED');
  t.equal(await code(state.authenticate(generateToken())), 'UNAUTHENTICATED', 'well-formed but unknown');
});

void t.test('bad auth commands never apply', async (t) => {
  const { failure, token } = await setup(t);
  const record = token('x').record;
  for (const op of [
    { op: 'userAdd', name: 'white space' },
    { op: 'userAdd', name: '' },
    { op: 'roleGrant', name: 'r', permission: { kind: 'everything', access: 'read' } },
    { op: 'tokenRevoke', id: 'zz' },
    { op: 'tokenCreate', token: { ...record, id: '0000000000000000' } },
    { op: 'frobnicate' },
  ]) {
    t.equal(await failure(op as AuthOp), 'INVALID_ARGUMENT', JSON.stringify(op));
  }
});

void t.test('a write authorized before an auth change is refused when it applies (503, not applied, not deduped)', async (t) => {
  const { store, state, log, ok, token } = await setup(t);
  const root = token('root');
  await ok({ op: 'enable', token: root.record });
  await ok({ op: 'userAdd', name: 'app' });
  await ok({ op: 'roleAdd', name: 'rw' });
  await ok({ op: 'roleGrant', name: 'rw', permission: { kind: 'key', access: 'readwrite', prefix: 'app/' } });
  await ok({ op: 'userGrant', name: 'app', role: 'rw' });
  const app = token('app');
  await ok({ op: 'tokenCreate', token: app.record });
  const put = (key: string): Command => ({ kind: 'put', key, value: 'v', lease: 0, prevKv: false });
  const guarded = async (cmd: Command, guard: CommandGuard, requestId: string): Promise<ApplyResult> =>
    (await log.propose(encodeCommand({ requestId, cmd, guard }))) as ApplyResult;

  const checked = await state.authenticate(app.token);
  t.ok(checked.asOfRevision >= 1 && checked.asOfRevision <= store.revision(), 'the principal names the revision its state was read at');
  t.same(AuthState.guardOf(checked), { key: authKeys.changed, revision: checked.asOfRevision });
  const first = await guarded(put('app/a'), AuthState.guardOf(checked), 'r1');
  t.notOk(isApplyFailure(first), 'no auth change since the check: applied');
  await ok({ op: 'userAdd', name: 'other' }); // any auth change at all moves the guard key
  const cached = await state.authenticate(app.token);
  t.ok(cached.asOfRevision > checked.asOfRevision, 'the apply dropped the cache: the principal was read again');

  // The token is revoked after a node checked a write with it, and before that write applies.
  await ok({ op: 'tokenRevoke', id: app.record.id });
  const before = store.revision();
  const stale = await guarded(put('app/b'), AuthState.guardOf(cached), 'r2');
  t.equal(isApplyFailure(stale) ? stale.error.code : 'applied', 'UNAVAILABLE', 'refused: auth changed after the check');
  t.equal(store.revision(), before, 'nothing applied');
  t.equal((await store.get('app/b')).kv, null);
  t.equal(await code(state.authenticate(app.token)), 'UNAUTHENTICATED', 'checked again, the token is refused');

  // The refusal is not recorded under its request id: the same id, checked again by an admin, applies.
  const admin = await state.authenticate(root.token);
  const retried = await guarded(put('app/b'), AuthState.guardOf(admin), 'r2');
  t.notOk(isApplyFailure(retried), 'a retry with the same request id and a fresh check applies');
  t.equal((await store.get('app/b')).kv?.value, 'v');
  const again = await guarded(put('app/a'), AuthState.guardOf(checked), 'r1');
  t.same(again, first, 'an applied request id still answers its first result (dedupe before the guard)');
});
