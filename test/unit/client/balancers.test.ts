// Goal: the client's discovery strategies pick as documented: round-robin cycles through every instance;
// smooth weighted round-robin picks each instance exactly `weight` times per `total` picks and spreads heavy ones
// out; the consistent-hash ring spreads keys evenly over its instances, is independent of input order, and moves
// only the keys it must when an instance is added (to the new one, about 1/n of them) or removed (only its own).
// Method: deterministic runs over fixed instance sets and 100 000 generated keys; counts compared with bounds.
import t from 'tap';
import { HashRing, RoundRobin, WeightedRoundRobin, hash32 } from '../../../src/client/balancers.js';
import { buildBalancer } from '../../../src/client/discovery.js';
import type { Instance } from '../../../src/client/types.js';

const keys = Array.from({ length: 100_000 }, (_, i) => `user-${i}`);
const ids = (n: number): string[] => Array.from({ length: n }, (_, i) => `instance-${i}`);

function assignment(ring: HashRing<string>): Map<string, string> {
  return new Map(keys.map((key) => [key, ring.pick(key)!]));
}

function counts(values: Iterable<string>): Map<string, number> {
  const out = new Map<string, number>();
  for (const value of values) out.set(value, (out.get(value) ?? 0) + 1);
  return out;
}

void t.test('round-robin cycles through every item in order; empty gives undefined', async (t) => {
  const rr = new RoundRobin(['a', 'b', 'c']);
  t.same(Array.from({ length: 7 }, () => rr.pick()), ['a', 'b', 'c', 'a', 'b', 'c', 'a']);
  t.equal(new RoundRobin<string>([]).pick(), undefined);
});

void t.test('weighted round-robin: exact proportions per cycle, smooth, zero weight never picked', async (t) => {
  const weights: Record<string, number> = { a: 5, b: 1, c: 1, d: 0 };
  const wrr = new WeightedRoundRobin(Object.keys(weights), (id) => weights[id]!);
  const cycle = Array.from({ length: 7 }, () => wrr.pick()!);
  t.same(Object.fromEntries(counts(cycle)), { a: 5, b: 1, c: 1 }, 'one cycle of 7 picks: 5/1/1');
  t.same(cycle, ['a', 'a', 'b', 'a', 'c', 'a', 'a'], 'nginx smooth order: the heavy item is interleaved');
  const many = counts(Array.from({ length: 7_000 }, () => wrr.pick()!));
  t.same(Object.fromEntries(many), { a: 5_000, b: 1_000, c: 1_000 }, 'exact over many cycles');

  const uneven = new WeightedRoundRobin(['x', 'y', 'z'], (id) => ({ x: 3, y: 2, z: 10 })[id]!);
  const picks = counts(Array.from({ length: 15_000 }, () => uneven.pick()!));
  t.same(Object.fromEntries(picks), { x: 3_000, y: 2_000, z: 10_000 });
  t.equal(new WeightedRoundRobin(['d'], () => 0).pick(), undefined, 'only zero weights: nothing to pick');
});

void t.test('hash32 is stable and spreads similar strings', async (t) => {
  t.equal(hash32('abc'), hash32('abc'));
  t.not(hash32('instance-1#0'), hash32('instance-1#1'));
  const buckets = new Array<number>(16).fill(0);
  for (const key of keys) buckets[hash32(key) >>> 28]! += 1;
  for (const count of buckets) t.ok(Math.abs(count - keys.length / 16) < keys.length / 16 * 0.05, `bucket within 5%: ${count}`);
});

void t.test('hash ring: even distribution over 10 instances', async (t) => {
  const ring = new HashRing(ids(10), (id) => id);
  t.equal(ring.size, 1600, '160 virtual nodes each');
  const perInstance = counts(assignment(ring).values());
  t.equal(perInstance.size, 10, 'every instance gets keys');
  const mean = keys.length / 10;
  for (const [id, count] of perInstance) t.ok(Math.abs(count - mean) / mean < 0.15, `${id}: ${count} keys, within 15% of ${mean}`);
});

void t.test('hash ring: same set in any order gives the same assignment', async (t) => {
  const a = assignment(new HashRing(ids(8), (id) => id));
  const b = assignment(new HashRing(ids(8).reverse(), (id) => id));
  t.ok(keys.every((key) => a.get(key) === b.get(key)));
});

void t.test('hash ring: adding an instance moves ~1/n of the keys, all to the new one', async (t) => {
  const before = assignment(new HashRing(ids(10), (id) => id));
  const after = assignment(new HashRing([...ids(10), 'instance-new'], (id) => id));
  const moved = keys.filter((key) => before.get(key) !== after.get(key));
  t.ok(moved.every((key) => after.get(key) === 'instance-new'), 'every moved key went to the new instance');
  const share = moved.length / keys.length;
  t.ok(share > 0.06 && share < 0.125, `moved share ${share.toFixed(3)} is about 1/11`);
});

void t.test('hash ring: removing an instance moves only its own keys', async (t) => {
  const before = assignment(new HashRing(ids(10), (id) => id));
  const after = assignment(new HashRing(ids(10).filter((id) => id !== 'instance-3'), (id) => id));
  for (const key of keys) {
    if (before.get(key) !== 'instance-3' && before.get(key) !== after.get(key)) {
      t.fail(`${key} moved from ${before.get(key)} to ${after.get(key)}`);
      return;
    }
  }
  t.ok(keys.every((key) => after.get(key) !== 'instance-3'));
  t.pass('only instance-3 keys moved');
});

void t.test('hash ring: weights scale the share; empty ring gives undefined', async (t) => {
  const weights: Record<string, number> = { heavy: 3, light: 1 };
  const ring = new HashRing(['heavy', 'light'], (id) => id, { weightOf: (id) => weights[id]! });
  const share = (counts(assignment(ring).values()).get('heavy') ?? 0) / keys.length;
  t.ok(share > 0.68 && share < 0.82, `heavy gets ~3/4 of the keys (${share.toFixed(3)})`);
  t.equal(new HashRing<string>([], (id) => id).pick('x'), undefined);
});

void t.test('buildBalancer uses each instance weight and id', async (t) => {
  const instance = (id: string, weight: number): Instance => ({
    id, service: 'web', address: '10.0.0.1', port: 80, tags: [], meta: {}, weight, status: 'passing', lease: 0, modRevision: 1,
  });
  const instances = [instance('a', 2), instance('b', 1)];
  const weighted = buildBalancer(instances, 'weighted');
  t.same(Array.from({ length: 3 }, () => weighted.pick()!.id).sort(), ['a', 'a', 'b']);
  const ring = buildBalancer(instances, 'consistent-hash');
  t.equal(ring.pick('k1')!.id, ring.pick('k1')!.id, 'the same key goes to the same instance');
  const rr = buildBalancer(instances, 'round-robin');
  t.same([rr.pick()!.id, rr.pick()!.id, rr.pick()!.id], ['a', 'b', 'a']);
});
