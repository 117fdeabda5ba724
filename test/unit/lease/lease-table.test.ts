// Goal: the deadline table answers expired() exactly as a scan of every lease would (earliest deadline first, at
// most `max`, a lease staying due until a keepalive or its revoke), while its heap of deadlines stays O(leases)
// however often leases are kept alive.
// Method: a seeded random sequence of grants/keepalives, revokes, clock steps and expired() calls on a LeaseTable
// with a manual clock, checked after each step against a reference that scans a plain Map; fixed cases for the
// order, the bound and a mass keepalive.
import t from 'tap';
import { LeaseTable } from '../../../src/lease/lease-table.js';
import { ManualClock } from './layer-helpers.js';

/** The table's contract as a scan (what LeaseTable did before it kept a heap). */
function scanExpired(deadlines: Map<number, number>, now: number, max: number): number[] {
  return [...deadlines]
    .filter(([, deadline]) => deadline <= now)
    .sort((a, b) => a[1] - b[1] || a[0] - b[0])
    .slice(0, max)
    .map(([id]) => id);
}

/** Deterministic pseudo-random numbers in [0, 1) (mulberry32). */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

void t.test('expired() matches a scan of every lease through random grants, keepalives, revokes and time', async (t) => {
  let mismatches = 0;
  let dueAnswers = 0;
  for (const seed of [1, 2, 3, 4, 5]) {
    const random = seeded(seed);
    const clock = new ManualClock(0);
    const table = new LeaseTable(clock);
    const reference = new Map<number, number>();
    for (let step = 0; step < 4_000; step++) {
      const roll = random();
      const id = 1 + Math.floor(random() * 200);
      if (roll < 0.45) {
        const ttl = 1 + Math.floor(random() * 5);
        table.refresh(id, ttl);
        reference.set(id, clock.now + ttl * 1000);
      } else if (roll < 0.55) {
        table.remove(id);
        reference.delete(id);
      } else if (roll < 0.8) {
        clock.now += Math.floor(random() * 400);
      } else {
        const max = 1 + Math.floor(random() * 20);
        const want = scanExpired(reference, clock.now, max);
        // Equal deadlines may come in either order: compare as sets, and check the order of the deadlines.
        const got = table.expired(max);
        const deadlines = got.map((g) => reference.get(g) ?? Number.NaN);
        const sorted = deadlines.every((d, i) => i === 0 || deadlines[i - 1]! <= d);
        const sameSet = got.length === want.length && [...got].sort((a, b) => a - b).join() === [...want].sort((a, b) => a - b).join();
        const sameDeadlines = deadlines.join() === want.map((w) => reference.get(w)).join();
        if (!sorted || !(sameSet || sameDeadlines)) mismatches++;
        if (want.length > 0) dueAnswers++;
      }
    }
  }
  t.equal(mismatches, 0, 'every answer matched the scan');
  t.ok(dueAnswers > 500, `the sequences had leases due (${dueAnswers} answers with some)`);
});

void t.test('earliest deadline first, at most max, and a due lease stays due until a keepalive or a revoke', async (t) => {
  const clock = new ManualClock(0);
  const table = new LeaseTable(clock);
  table.refresh(1, 3);
  table.refresh(2, 1);
  table.refresh(3, 2);
  table.refresh(4, 10);
  t.same(table.expired(10), [], 'nothing due at first');
  clock.now = 999;
  t.same(table.expired(10), [], 'not 1 ms early');
  clock.now = 3_000;
  t.same(table.expired(10), [2, 3, 1], 'by deadline');
  t.same(table.expired(2), [2, 3], 'at most max');
  t.same(table.expired(10), [2, 3, 1], 'still due: nothing was revoked');
  table.refresh(2, 5);
  table.remove(3);
  t.same(table.expired(10), [1], 'a keepalive and a revoke take leases out');
  clock.now = 8_000;
  t.same(table.expired(10), [1, 2], 'the kept-alive lease is due at its new deadline only');
  table.load([{ id: 9, ttl: 1 }]);
  t.same(table.expired(10), [], 'load() replaces everything, with deadlines from now');
  clock.now = 9_000;
  t.same(table.expired(10), [9]);
});

void t.test('the heap stays O(leases) under frequent keepalives on long ttls, on a follower too', async (t) => {
  const clock = new ManualClock(0);
  const table = new LeaseTable(clock);
  const leases = 1_000;
  // A follower applies every keepalive but never calls expired() (only the leader does).
  let largest = 0;
  for (let round = 0; round < 50; round++) {
    for (let id = 1; id <= leases; id++) {
      table.refresh(id, 3_600);
      largest = Math.max(largest, table.heapSize());
    }
    clock.now += 1_000;
  }
  t.ok(largest <= 2 * leases + 1024 + 1, `at most ${largest} heap items for ${leases} leases over 50,000 keepalives`);
  t.same(table.expired(10), [], 'nothing due before the ttl');
  clock.now += 3_600_000;
  t.equal(table.expired(10_000).length, leases, 'every lease comes due at its last deadline, once');
});
