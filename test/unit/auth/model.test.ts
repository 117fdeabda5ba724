// Goal: the permission rule (src/auth/model.ts) and bearer tokens (src/auth/tokens.ts): prefix edge cases for
// single names and prefix ranges, read vs readwrite, admin covering everything, kinds kept apart; tokens are
// random, well-formed, hashed with sha256 and identified by the start of their hash.
// Method: direct calls on hand-made permissions and needs; token hashes checked against node:crypto.
import { createHash } from 'node:crypto';
import t from 'tap';
import { allows, checkPermission, permits, type Need, type Permission } from '../../../src/auth/index.js';
import { generateToken, hashToken, isWellFormedToken, sameHash, tokenIdOf } from '../../../src/auth/index.js';

const key = (access: 'read' | 'readwrite', name: string, prefix = false): Need => ({ kind: 'key', access, name, prefix });
const grant = (kind: Permission['kind'], access: Permission['access'], prefix: string): Permission => ({ kind, access, prefix });

void t.test('a single key is inside a grant when the grant prefix starts it', async (t) => {
  const app = grant('key', 'read', 'app/');
  t.ok(permits(app, key('read', 'app/x')));
  t.ok(permits(app, key('read', 'app/')), 'the prefix itself is a key inside it');
  t.notOk(permits(app, key('read', 'app')), 'a shorter key is outside');
  t.notOk(permits(app, key('read', 'apple')), 'a sibling with the same letters is outside');
  t.notOk(permits(app, key('read', 'other/app/x')));
  t.ok(permits(grant('key', 'read', ''), key('read', 'anything')), 'the empty prefix covers every key');
});

void t.test('a prefix range is inside a grant only when the whole range is', async (t) => {
  const app = grant('key', 'read', 'app/');
  t.ok(permits(app, key('read', 'app/', true)));
  t.ok(permits(app, key('read', 'app/sub/', true)));
  t.notOk(permits(app, key('read', 'app', true)), 'the range "app" also holds "apple"');
  t.notOk(permits(app, key('read', 'ap', true)));
  t.notOk(permits(app, key('read', '', true)), 'listing everything needs a grant on the empty prefix');
  t.ok(permits(grant('key', 'read', ''), key('read', '', true)));
});

void t.test('readwrite includes read; read does not include readwrite', async (t) => {
  t.ok(permits(grant('key', 'readwrite', 'a/'), key('read', 'a/1')));
  t.ok(permits(grant('key', 'readwrite', 'a/'), key('readwrite', 'a/1')));
  t.notOk(permits(grant('key', 'read', 'a/'), key('readwrite', 'a/1')));
});

void t.test('kinds are kept apart; admin covers everything; authenticated needs any grant or none', async (t) => {
  const services = grant('service', 'readwrite', 'web');
  t.ok(permits(services, { kind: 'service', access: 'readwrite', name: 'web-2', prefix: false }));
  t.notOk(permits(services, { kind: 'lock', access: 'read', name: 'web', prefix: false }), 'a service grant is not a lock grant');
  t.notOk(permits(services, key('read', 'web')), 'nor a key grant');
  t.notOk(permits(services, { kind: 'admin' }));
  const admin = grant('admin', 'readwrite', '');
  for (const need of [key('readwrite', '', true), { kind: 'admin' } as Need, { kind: 'lock', access: 'readwrite', name: 'x', prefix: false } as Need]) {
    t.ok(permits(admin, need), `admin allows ${JSON.stringify(need)}`);
  }
  t.ok(allows([], [{ kind: 'authenticated' }]), 'a valid token with no roles is still authenticated');
  t.notOk(allows([], [key('read', 'a')]));
  t.ok(allows([grant('key', 'read', 'a/'), grant('key', 'readwrite', 'b/')], [key('read', 'a/1'), key('readwrite', 'b/2')]), 'each need may use a different grant');
  t.notOk(allows([grant('key', 'read', 'a/')], [key('read', 'a/1'), key('read', 'b/2')]), 'every need must be met');
  t.ok(allows([grant('key', 'read', 'a/')], []), 'no needs: allowed');
});

void t.test('either: a need met by any one of its options', async (t) => {
  const electionKeys: Need = {
    kind: 'either',
    options: [key('read', '_keel/elections/db/', true), { kind: 'lock', access: 'read', name: 'db', prefix: false }],
  };
  t.ok(allows([grant('lock', 'read', 'd')], [electionKeys]), 'a lock grant on the election');
  t.ok(allows([grant('key', 'read', '_keel/')], [electionKeys]), 'or a key grant on the prefix');
  t.notOk(allows([grant('lock', 'read', 'other')], [electionKeys]), 'not a grant on another lock');
  t.notOk(allows([grant('key', 'read', 'app/')], [electionKeys]));
  t.ok(permits(grant('lock', 'read', ''), electionKeys));
  t.notOk(permits(grant('service', 'read', ''), electionKeys));
});

void t.test('permissions are validated; admin ignores access and prefix', async (t) => {
  t.same(checkPermission({ kind: 'key', access: 'read', prefix: 'x/' }), { kind: 'key', access: 'read', prefix: 'x/' });
  t.same(checkPermission({ kind: 'key', access: 'read' }), { kind: 'key', access: 'read', prefix: '' });
  t.same(checkPermission({ kind: 'admin', access: 'read', prefix: 'x' }), { kind: 'admin', access: 'readwrite', prefix: '' });
  for (const bad of [null, {}, { kind: 'keys', access: 'read' }, { kind: 'key', access: 'write' }, { kind: 'key', access: 'read', prefix: 5 }]) {
    t.throws(() => checkPermission(bad), { code: 'INVALID_ARGUMENT' }, JSON.stringify(bad));
  }
});

void t.test('tokens: 32 random bytes, base64url with a prefix, stored as sha256, id from the hash', async (t) => {
  const tokens = new Set<string>();
  for (let i = 0; i < 200; i++) tokens.add(generateToken());
  t.equal(tokens.size, 200, 'no two tokens alike');
  for (const token of [...tokens].slice(0, 5)) {
    t.match(token, /^keel_[A-Za-z0-9_-]{43}$/);
    t.equal(Buffer.from(token.slice(5), 'base64url').length, 32);
    t.ok(isWellFormedToken(token));
    const hash = hashToken(token);
    t.equal(hash, createHash('sha256').update(token).digest('hex'));
    t.equal(tokenIdOf(hash), hash.slice(0, 16));
    t.ok(sameHash(hash, hashToken(token)));
    t.notOk(sameHash(hash, hashToken(`${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`)), 'one character off: another hash');
  }
  for (const bad of ['', 'keel_', 'Bearer x', `kee_${'a'.repeat(43)}`, `keel_${'a'.repeat(42)}`, `keel_${'a'.repeat(42)}=`]) {
    t.notOk(isWellFormedToken(bad), bad);
  }
  t.notOk(sameHash('', ''), 'empty hashes never match');
});
