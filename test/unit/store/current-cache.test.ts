// Goal: the cache of current versions (src/store/current-cache.ts) stays within its byte bound, evicts the key
// cached first, never keeps a version too big for it (nor an older version of that key), and
// remembers deletions. Whether the store stays coherent with it is determinism.test.ts's and snapshot.test.ts's.
import t from 'tap';
import type { KV } from '../../../src/store/index.js';
import { CurrentCache } from '../../../src/store/current-cache.js';

const kv = (key: string, value: string, version = 1): KV => ({ key, value, createRevision: 1, modRevision: version, version, lease: 0 });

void t.test('first cached, first out, within the bound; a new version replaces the old one in place', async (t) => {
  // Each entry of a one-character key and value costs 98 estimated bytes: eight fit in 800.
  const cache = new CurrentCache(800);
  for (const key of 'abcdefg') cache.set(key, kv(key, '1'));
  cache.set('h', null);
  t.equal(cache.size, 8);
  cache.set('a', kv('a', '2', 2));
  t.same(cache.get('a'), kv('a', '2', 2), 'a new version replaces the old one');
  t.equal(cache.size, 8, 'in place');
  cache.set('i', kv('i', '1'));
  t.equal(cache.get('a'), undefined, 'a, cached first, went first');
  t.equal(cache.size, 8);
  t.equal(cache.get('h'), null, 'a deletion is remembered as null');
  t.same(cache.get('b'), kv('b', '1'));
  t.same(cache.get('i'), kv('i', '1'));
  cache.clear();
  t.equal(cache.size, 0);
  t.equal(cache.get('d'), undefined);
});

void t.test('a version over an eighth of the bound is not kept, and drops the older one', async (t) => {
  const cache = new CurrentCache(8 * 200);
  cache.set('k', kv('k', 'small'));
  cache.set('k', kv('k', 'x'.repeat(150), 2));
  t.equal(cache.get('k'), undefined, 'the big version is not cached, nor the stale small one');
  t.equal(cache.size, 0);
  const off = new CurrentCache(0);
  off.set('k', null);
  t.equal(off.size, 0, 'a bound of 0 keeps nothing');
  t.throws(() => new CurrentCache(-1));
});
