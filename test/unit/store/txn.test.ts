// Goal: txn compares on value, version, createRevision, modRevision and lease with ==, !=, <, > follow etcd
// (missing key: numbers are 0, a value compare is always false; values compare as bytes), the branch taken
// is reported, and results come one per op in order.
// Method: a table of compares against one existing and one missing key, each run as a real txn whose branches
// put a marker, checked against the expected outcome; then a compare-and-swap loop.
import t from 'tap';
import type { Compare, CompareOp, TxnResult } from '../../../src/store/index.js';
import { Applier, openStore } from './helpers.js';

type Row = [Compare['target'], CompareOp, string | number, boolean];

void t.test('compare table on an existing key', async (t) => {
  const { store } = await openStore(t);
  const apply = new Applier(store);
  await apply.put('other', 'x'); // 1
  await apply.put('k', 'm', { lease: 4 }); // 2: createRevision 2
  await apply.put('k', 'n', { lease: 4 }); // 3: modRevision 3, version 2
  const rows: Row[] = [
    ['value', '==', 'n', true],
    ['value', '!=', 'n', false],
    ['value', '<', 'o', true],
    ['value', '>', 'm', true],
    ['value', '<', 'n', false],
    ['value', '>', 'nn', false],
    ['version', '==', 2, true],
    ['version', '>', 1, true],
    ['version', '<', 2, false],
    ['version', '!=', 3, true],
    ['createRevision', '==', 2, true],
    ['createRevision', '<', 3, true],
    ['createRevision', '>', 2, false],
    ['modRevision', '==', 3, true],
    ['modRevision', '>', 2, true],
    ['modRevision', '!=', 3, false],
    ['lease', '==', 4, true],
    ['lease', '<', 4, false],
    ['lease', '>', 0, true],
  ];
  for (const [target, op, value, expected] of rows) {
    const compare = { key: 'k', target, op, value } as Compare;
    const result = (await apply.one({
      kind: 'txn',
      compare: [compare],
      success: [{ get: { key: 'k' } }],
      failure: [],
    })) as TxnResult;
    t.equal(result.succeeded, expected, `${target} ${op} ${String(value)}`);
    t.equal(result.results.length, expected ? 1 : 0);
  }
  t.equal(store.revision(), 3, 'read-only txns took no revision');
});

void t.test('compares on a missing key', async (t) => {
  const { store } = await openStore(t);
  const apply = new Applier(store);
  const rows: Row[] = [
    ['value', '==', '', false],
    ['value', '!=', 'x', false],
    ['version', '==', 0, true],
    ['createRevision', '==', 0, true],
    ['modRevision', '<', 1, true],
    ['lease', '==', 0, true],
  ];
  for (const [target, op, value, expected] of rows) {
    const compare = { key: 'missing', target, op, value } as Compare;
    const result = (await apply.one({ kind: 'txn', compare: [compare], success: [], failure: [] })) as TxnResult;
    t.equal(result.succeeded, expected, `${target} ${op} ${String(value)}`);
  }
});

void t.test('values compare as UTF-8 bytes, not UTF-16 code units', async (t) => {
  const { store } = await openStore(t);
  const apply = new Applier(store);
  // U+FF61 is EF BD A1 in UTF-8 and U+1F600 is F0 9F 98 80, so the emoji is greater as bytes; in UTF-16
  // (JavaScript's < on strings) it would be smaller (D83D < FF61).
  await apply.put('k', '\u{1F600}');
  const result = (await apply.one({
    kind: 'txn',
    compare: [{ key: 'k', target: 'value', op: '>', value: '\uFF61' }],
    success: [],
    failure: [],
  })) as TxnResult;
  t.equal(result.succeeded, true);
});

void t.test('all compares must hold; the failure branch runs otherwise; results are per op', async (t) => {
  const { store } = await openStore(t);
  const apply = new Applier(store);
  await apply.put('a', '1');
  await apply.put('b', '2');
  const result = (await apply.one({
    kind: 'txn',
    compare: [
      { key: 'a', target: 'value', op: '==', value: '1' },
      { key: 'b', target: 'value', op: '==', value: 'nope' },
    ],
    success: [{ put: { key: 'won', value: 'yes' } }],
    failure: [
      { put: { key: 'lost', value: 'yes' } },
      { delete: { key: '', prefix: true } },
      { get: { key: '', prefix: true, limit: 1 } },
    ],
  })) as TxnResult;
  t.same(result, {
    succeeded: false,
    revision: 3,
    results: [{ put: { revision: 3 } }, { delete: { deleted: 3 } }, { get: { kvs: [], count: 0, more: false } }],
  });
  t.equal(store.keyCount(), 0);
  t.equal((await store.range({ key: '', prefix: true, revision: 2 })).count, 2);
});

void t.test('compare-and-swap increments a counter exactly once per success', async (t) => {
  const { store } = await openStore(t);
  const apply = new Applier(store);
  await apply.put('counter', '0');
  let successes = 0;
  for (let attempt = 0; attempt < 20; attempt++) {
    // Every other attempt uses a stale modRevision, as a losing concurrent client would.
    const current = (await store.get('counter')).kv!;
    const seen = attempt % 2 === 0 ? current.modRevision : current.modRevision - 1;
    const result = (await apply.one({
      kind: 'txn',
      compare: [{ key: 'counter', target: 'modRevision', op: '==', value: seen }],
      success: [{ put: { key: 'counter', value: String(Number(current.value) + 1) } }],
      failure: [{ get: { key: 'counter' } }],
    })) as TxnResult;
    if (result.succeeded) successes += 1;
  }
  t.equal(successes, 10);
  t.equal((await store.get('counter')).kv?.value, '10');
  t.equal((await store.get('counter')).kv?.version, 11);
});
