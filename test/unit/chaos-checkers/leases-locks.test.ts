// Goal: checkLeases flags early expiry (S15) and late expiry (L6) and accepts valid lease lives (keepalives ok and
// info, revokes, probes straddling the deadline, late probes during an outage); checkLockCounter flags duplicate
// fences, two holders at one revision, fences going backwards, an accepted stale fence, a double or lost
// increment, and accepts valid runs with info increments.
// Method: hand-made histories with known answers (ttl 1 s, election timeout 500 ms, slack 200 ms).
import t from 'tap';
import { checkLeases, checkLockCounter } from '../../chaos/checkers/index.js';
import { op, properties } from './helpers.js';

const opts = { electionTimeoutMs: 500, slackMs: 200 };
const grant = (lease: number, from: number, to: number) => op('grant', { ttl: 1 }, from, to, 'ok', { lease, revision: 1 });
const keepalive = (lease: number, from: number, to: number, outcome: 'ok' | 'info' | 'fail' = 'ok') => op('keepalive', { lease }, from, to, outcome, outcome === 'ok' ? { ttl: 1 } : undefined);
const probe = (lease: number, present: boolean, from: number, to: number) => op('probe', { key: `p${lease}`, lease }, from, to, 'ok', { present, revision: 1 });

void t.test('leases: valid lives pass', async (t) => {
  const ops = [
    grant(1, 0, 10),
    probe(1, true, 20, 30),
    keepalive(1, 800, 820),
    probe(1, true, 1700, 1750), // before 800 + 1000
    probe(1, false, 1750, 1900), // completes after the horizon: may have read after it
    probe(1, false, 2600, 2610),
    grant(2, 0, 10),
    keepalive(2, 500, 0, 'info'),
    probe(2, true, 11500, 11510), // an info keepalive may apply until its deadline: not late yet
    grant(3, 0, 10),
    op('revoke', { lease: 3 }, 100, 110),
    probe(3, false, 120, 130),
  ];
  t.same(checkLeases(ops, opts).anomalies, []);
});

void t.test('leases: flags early expiry (S15)', async (t) => {
  const r = checkLeases([grant(1, 0, 10), keepalive(1, 800, 820), probe(1, false, 1500, 1510)], opts);
  t.same(properties(r), ['early-expiry']);
  // an info keepalive does not excuse it either: it could only have extended the lease
  const r2 = checkLeases([grant(1, 0, 10), keepalive(1, 300, 0, 'info'), probe(1, false, 900, 910)], opts);
  t.same(properties(r2), ['early-expiry']);
});

void t.test('leases: flags late expiry (L6) unless the cluster had no quorum', async (t) => {
  const ops = [grant(1, 0, 10), keepalive(1, 800, 820), probe(1, true, 2600, 2610)];
  t.same(properties(checkLeases(ops, opts)), ['late-expiry']);
  t.same(checkLeases(ops, { ...opts, unavailable: [{ fromMs: 1000, toMs: 2000 }] }).anomalies, []);
  t.same(properties(checkLeases([grant(1, 0, 10), op('revoke', { lease: 1 }, 100, 110), probe(1, true, 200, 210)], opts)), ['present-after-revoke']);
});

const acquire = (lock: string, fence: number, revision: number, from: number, to: number) => op('acquire', { lock }, from, to, 'ok', { fence, revision }, { revision });
const incr = (fence: number, value: number, from: number, to: number, outcome: 'ok' | 'fail' | 'info' = 'ok', error?: string) =>
  op('incr', { lock: 'L', fence, key: 'c', expect: value - 1, value }, from, to, outcome, undefined, error === undefined ? {} : { error });

void t.test('lock counter: valid runs pass, with info and rejected increments', async (t) => {
  const ops = [
    acquire('L', 1, 2, 0, 10),
    incr(1, 1, 11, 20),
    incr(1, 2, 21, 30, 'info'),
    acquire('L', 2, 5, 25, 40),
    incr(1, 3, 41, 50, 'fail', 'FENCE_REJECTED'),
    incr(2, 3, 51, 60),
    incr(2, 4, 61, 70),
  ];
  t.same(checkLockCounter(ops, { key: 'c', value: 4 }).anomalies, []);
  // the info increment may also not have applied: then the next ok one wrote 2, not 3
  const without = [acquire('L', 1, 2, 0, 10), incr(1, 1, 11, 20), incr(1, 2, 21, 30, 'info'), incr(1, 2, 31, 40)];
  t.same(checkLockCounter(without, { key: 'c', value: 2 }).anomalies, []);
});

void t.test('lock counter: flags fence anomalies', async (t) => {
  t.same(properties(checkLockCounter([acquire('L', 3, 2, 0, 10), acquire('L', 3, 5, 20, 30)], { key: 'c', value: null })), ['duplicate-fence', 'fence-backwards']);
  t.same(properties(checkLockCounter([acquire('L', 3, 2, 0, 10), acquire('L', 4, 2, 0, 30)], { key: 'c', value: null })), ['two-holders']);
  t.same(properties(checkLockCounter([acquire('L', 5, 2, 0, 10), acquire('L', 4, 6, 0, 30)], { key: 'c', value: null })), ['fence-not-increasing']);
  t.same(properties(checkLockCounter([acquire('L', 5, 2, 0, 10), acquire('L', 4, 1, 20, 30)], { key: 'c', value: null })), ['fence-backwards']);
  const release = (fence: number, revision: number, from: number, to: number) => op('release', { lock: 'L', fence }, from, to, 'ok', {}, { revision });
  const overlap = [acquire('L', 1, 2, 0, 10), acquire('L', 2, 5, 0, 30), release(1, 7, 40, 50)];
  t.same(properties(checkLockCounter(overlap, { key: 'c', value: null })), ['two-holders']);
  const handOver = [acquire('L', 1, 2, 0, 10), release(1, 4, 11, 20), acquire('L', 2, 5, 15, 30)];
  t.same(checkLockCounter(handOver, { key: 'c', value: null }).anomalies, []);
  const stale = [acquire('L', 1, 2, 0, 10), incr(1, 1, 11, 20), acquire('L', 2, 5, 21, 30), incr(1, 2, 31, 40)];
  t.same(properties(checkLockCounter(stale, { key: 'c', value: 2 })), ['stale-fence-accepted']);
});

void t.test('lock counter: flags double and lost increments', async (t) => {
  const base = [acquire('L', 1, 2, 0, 10), incr(1, 1, 11, 20), incr(1, 2, 21, 30)];
  t.same(properties(checkLockCounter([...base, incr(1, 2, 31, 40)], { key: 'c', value: 2 })), ['double-incr', 'lost-update']);
  t.same(properties(checkLockCounter(base, { key: 'c', value: 1 })), ['lost-update', 'lost-update']);
  t.same(properties(checkLockCounter(base, { key: 'c', value: 3 })), ['unexplained-value']);
});
