// Goal: checkRevisions accepts valid long histories (concurrency, info ops settled by the dumps or by reads, txns,
// partial dumps) and flags each anomaly it claims: stale read, lost (acknowledged, never applied) write, phantom
// and future reads, modRevision mismatch, duplicate revision, revision going backwards for a client, a 503 that
// applied, a lost update through cas, a wrong cas/delete outcome, txn reads not at one revision.
// Method: hand-made histories with known answers; generated valid histories of 20,000 ops for breadth and speed.
import t from 'tap';
import type { AppliedEntry } from '../../chaos/history.js';
import { checkRevisions } from '../../chaos/checkers/index.js';
import { cas, del, op, properties, read, write } from './helpers.js';
import { cpuMsSince, generateRegisterHistory } from './gen.js';

/** A dump in which request ids r… wrote the given revisions, on one node. */
function dumpOf(...ids: (string | undefined)[]): Record<string, AppliedEntry[]> {
  let revision = 0;
  const entries = ids.map((requestId, i) => {
    revision++;
    return { index: i + 1, term: 1, revision, hash: `h${i + 1}`, ...(requestId === undefined ? {} : { requestId }) };
  });
  return { n1: entries };
}

void t.test('accepts a valid sequential history with cas, deletes and txns', async (t) => {
  const w1 = write('a', 'x1', 0, 10, 'ok', 1);
  const w2 = write('b', 'y1', 11, 20, 'ok', 2);
  const c = cas('a', 'x1', 'x2', 21, 30, 'ok', true, 3);
  const cf = cas('a', 'x1', 'x3', 31, 35, 'ok', false, 3);
  const d = del('b', 36, 40, 'ok', 1, 4);
  const d0 = del('b', 41, 45, 'ok', 0, 4);
  const txn = op('txn', { reads: ['a', 'b'], writes: [{ key: 'b', value: 'y2' }] }, 46, 50, 'ok', {
    reads: [
      { key: 'a', value: 'x2', modRevision: 3 },
      { key: 'b', value: null, modRevision: 0 },
    ],
    revision: 5,
  }, { revision: 5 });
  const ops = [w1, w2, read('a', 'x1', 11, 12, 2, 1), c, cf, d, d0, txn, read('b', 'y2', 51, 52, 5, 5), read('a', 'x2', 53, 54, 5, 3)];
  const r = checkRevisions(ops, dumpOf(w1.requestId, w2.requestId, c.requestId, d.requestId, txn.requestId));
  t.same(r.anomalies, []);
  t.equal(r.checkedOps, ops.length);
});

void t.test('info ops are settled by the dumps or by a read of their value', async (t) => {
  const w1 = write('a', 'x1', 0, 10, 'ok', 1);
  const infoByDump = write('a', 'x2', 11, 20, 'info');
  const infoByRead = write('b', 'y1', 12, 20, 'info');
  const infoNever = write('a', 'x9', 13, 20, 'info');
  const ops = [w1, infoByDump, infoByRead, infoNever, read('a', 'x2', 30, 31, 3, 2), read('b', 'y1', 32, 33, 3, 3)];
  // the dump misses index 3 (a hole): y1's write is settled by the read's modRevision
  const dump = { n1: [{ index: 1, term: 1, revision: 1, hash: 'a', requestId: w1.requestId }, { index: 2, term: 1, revision: 2, hash: 'b', requestId: infoByDump.requestId }, { index: 4, term: 1, revision: 4, hash: 'd', requestId: 'other' }] };
  const r = checkRevisions(ops, dump);
  t.same(r.anomalies, []);
  t.match(r.notes?.[0], /2 of 3 info ops settled/);
  // with complete dumps (every index from 1), an info write absent from them never applied: reading it is phantom
  const complete = { n1: dump.n1.slice(0, 2) };
  t.same(properties(checkRevisions(ops, complete)), ['phantom-read']);
});

void t.test('flags a stale read and a lost write', async (t) => {
  const w1 = write('a', 'x1', 0, 10, 'ok', 1);
  const w2 = write('a', 'x2', 11, 20, 'ok', 2);
  const stale = checkRevisions([w1, w2, read('a', 'x1', 21, 30, 2, 1)], dumpOf(w1.requestId, w2.requestId));
  t.same(properties(stale), ['stale-read']);
  // an acknowledged write that no node applied, and a read that no longer sees it
  const w3 = write('a', 'x3', 0, 10, 'ok', 2);
  const lost = checkRevisions([w1, w3, read('a', 'x1', 21, 30, 3, 1)], dumpOf(w1.requestId, undefined, 'other'));
  t.same(properties(lost).sort(), ['ack-not-applied', 'stale-read']);
});

void t.test('flags phantom and future reads and a wrong modRevision', async (t) => {
  const w1 = write('a', 'x1', 0, 10, 'ok', 1);
  const w2 = write('a', 'x2', 50, 60, 'ok', 5);
  t.same(properties(checkRevisions([w1, read('a', 'zz', 20, 30, 1, 1)], {})), ['phantom-read']);
  t.same(properties(checkRevisions([w1, w2, read('a', 'x2', 20, 70, 3, 5)], {})), ['future-read']);
  t.same(properties(checkRevisions([w1, read('a', 'x1', 20, 30, 2, 2)], {})), ['mod-revision-mismatch']);
});

void t.test('flags duplicate revisions and revisions going backwards', async (t) => {
  const dup = checkRevisions([write('a', 'x1', 0, 10, 'ok', 1), write('b', 'y1', 0, 10, 'ok', 1)], {});
  t.same(properties(dup), ['duplicate-revision']);
  const back = checkRevisions([write('a', 'x1', 0, 10, 'ok', 3), write('b', 'y1', 20, 30, 'ok', 2)], {});
  t.same(properties(back), ['revision-backwards']);
  const readBack = checkRevisions([write('a', 'x1', 0, 10, 'ok', 3), read('b', null, 20, 30, 2, 0)], {});
  t.same(properties(readBack), ['revision-backwards']);
  // concurrent ops may be in either order
  t.same(checkRevisions([write('a', 'x1', 0, 10, 'ok', 3), write('b', 'y1', 5, 30, 'ok', 2)], {}).anomalies, []);
});

void t.test('flags a 503 that applied (S9)', async (t) => {
  const w = write('a', 'x1', 0, 10, 'fail');
  const r = checkRevisions([w], dumpOf(w.requestId));
  t.same(properties(r), ['fail-applied']);
  t.same(checkRevisions([w], dumpOf('other')).anomalies, []);
});

void t.test('flags a lost update through cas and wrong cas/delete outcomes', async (t) => {
  const w1 = write('a', 'x1', 0, 10, 'ok', 1);
  const c1 = cas('a', 'x1', 'x2', 20, 30, 'ok', true, 2);
  const c2 = cas('a', 'x1', 'x3', 20, 30, 'ok', true, 3);
  t.same(properties(checkRevisions([w1, c1, c2], {})), ['lost-update']);
  t.same(properties(checkRevisions([w1, cas('a', 'x1', 'x3', 20, 30, 'ok', false, 1)], {})), ['wrong-precondition']);
  t.same(properties(checkRevisions([w1, del('a', 20, 30, 'ok', 0, 1)], {})), ['wrong-precondition']);
});

void t.test('flags txn reads that do not reflect one revision', async (t) => {
  const w1 = write('a', 'x1', 0, 10, 'ok', 1);
  const w2 = write('b', 'y1', 11, 20, 'ok', 2);
  const w3 = write('a', 'x2', 21, 30, 'ok', 3);
  const txn = op('txn', { reads: ['a', 'b'], writes: [] }, 31, 40, 'ok', {
    reads: [
      { key: 'a', value: 'x1', modRevision: 1 },
      { key: 'b', value: 'y1', modRevision: 2 },
    ],
    revision: 3,
  }, { revision: 3 });
  t.same(properties(checkRevisions([w1, w2, w3, txn], {})), ['stale-read']);
});

void t.test('generated valid histories of 20,000 ops with txns and info ops check in well under 10 s', async (t) => {
  for (const seed of [1, 2]) {
    const { ops, applied } = generateRegisterHistory({ seed, ops: 20_000, keys: 5, processes: 12, infoRate: 0.04, txnRate: 0.1, failRate: 0.03 });
    const started = performance.now();
    const cpu = process.cpuUsage();
    const r = checkRevisions(ops, applied);
    const cpuMs = cpuMsSince(cpu);
    const ms = performance.now() - started;
    t.same(r.anomalies, [], `seed ${seed}`);
    // CPU time, not wall time: the machine is shared by many loaded processes
    t.ok(cpuMs < 5000, `seed ${seed}: ${r.checkedOps} ops in ${cpuMs.toFixed(0)} ms CPU, ${ms.toFixed(0)} ms wall (${r.notes?.join('; ')})`);
  }
});

void t.test('generated history with one corrupted read or a lost write is caught', async (t) => {
  const { ops, applied } = generateRegisterHistory({ seed: 9, ops: 3000, keys: 5, processes: 8, infoRate: 0.04, txnRate: 0.1 });
  const i = ops.findIndex((o, j) => j > 1000 && o.f === 'read' && o.outcome === 'ok' && (o.result as { modRevision: number }).modRevision > 5);
  const older = ops.map((o, j) => (j === i ? { ...o, result: { value: null, modRevision: 0 } } : o));
  t.ok(checkRevisions(older, applied).anomalies.length > 0);
  // the entry of an acknowledged write carries another request instead (its log suffix was replaced)
  const lostId = ops.find((o) => o.f === 'write' && o.outcome === 'ok' && (o.revision ?? 0) > 100)!.requestId;
  const dropped = { n1: applied.n1!.map((e) => (e.requestId === lostId ? { ...e, requestId: 'someone-else' } : e)) };
  t.ok(properties(checkRevisions(ops, dropped)).includes('ack-not-applied'));
});
