// Goal: the test-only applied-entries log (GET /v1/debug/applied): with `recordApplied` every applied entry is
// recorded in the apply's own batch with its term, the revision after it, its request id and a hash of its
// bytes; records survive a reopen; a replayed (already applied) entry is not recorded twice; snapshots do not
// carry the records; with the flag off nothing is recorded.
import t from 'tap';
import { KvStore } from '../../../src/store/index.js';
import { commandEntry, noopEntry, putCmd, tempDir } from './helpers.js';

void t.test('records index, term, revision, request id and hash of every applied entry, durably', async (t) => {
  const dir = tempDir(t);
  const store = await KvStore.open(dir, { recordApplied: true });
  const entries = [noopEntry(1), commandEntry(2, putCmd('a', '1'), 'req-a'), commandEntry(3, putCmd('b', '2'), 'req-b'), commandEntry(4, putCmd('a', '3'), 'req-a')];
  await store.apply(entries.slice(0, 2));
  await store.apply(entries.slice(1)); // entry 2 again: replayed, not recorded twice
  const log = await store.appliedLog(0, 100);
  t.same(log.map((r) => [r.index, r.revision, r.requestId ?? null]), [[1, 0, null], [2, 1, 'req-a'], [3, 2, 'req-b'], [4, 2, 'req-a']]);
  t.ok(log.every((r) => r.term === entries[0]!.term && /^[0-9a-f]{16}$/.test(r.hash)));
  t.equal(log[1]!.hash === log[3]!.hash, false, 'different entries hash differently');
  t.same((await store.appliedLog(3, 1)).map((r) => r.index), [3], 'fromIndex and limit');
  const snapshot = await store.snapshot();
  await store.close();
  const reopened = await KvStore.open(dir, { recordApplied: true });
  t.same(await reopened.appliedLog(0, 100), log, 'the records survive a reopen');
  await reopened.close();

  const restored = await KvStore.open(tempDir(t), { recordApplied: true });
  await restored.restore({ data: snapshot, metadata: { index: 4, term: entries[0]!.term, conf: { voters: ['n1'], learners: [] } } } as never);
  t.same(await restored.appliedLog(0, 100), [], 'snapshots do not carry the records');
  t.equal(restored.revision(), 2);
  await restored.close();
});

void t.test('off by default: nothing recorded', async (t) => {
  const store = await KvStore.open(tempDir(t));
  await store.apply([commandEntry(1, putCmd('a', '1'), 'x')]);
  t.equal(store.recordsApplied, false);
  t.same(await store.appliedLog(0, 100), []);
  await store.close();
});
