// Goal: KvStore.persist() leaves nothing the store applied only in LevelDB's write-ahead log: it flushes the
// memtable to a table file (which LevelDB fsyncs, with the manifest), as the driver's snapshots without data
// need. A synced write alone would sync only the current write-ahead log file.
// Method: apply puts, then persist(): a new table file (.ldb) appears and the write-ahead log is back to (about)
// empty; the data reads back after a reopen. A closed store refuses with UNAVAILABLE. While a defrag runs it
// answers false at once (its flush would wait behind the defrag's compaction); a defrag asked for while a
// persist() runs starts after it.
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { KvStore } from '../../../src/store/index.js';
import { commandEntry, putCmd, tempDir } from './helpers.js';

const files = (dir: string, suffix: string): string[] => readdirSync(dir).filter((name) => name.endsWith(suffix));
const logBytes = (dir: string): number => files(dir, '.log').reduce((sum, name) => sum + statSync(path.join(dir, name)).size, 0);

void t.test('persist() flushes what was applied to a synced table file', async (t) => {
  const dir = tempDir(t);
  const store = await KvStore.open(dir);
  await store.apply(Array.from({ length: 200 }, (_, i) => commandEntry(i + 1, putCmd(`k${i}`, 'x'.repeat(200)), `r${i}`)));
  const tablesBefore = files(dir, '.ldb').length;
  t.ok(logBytes(dir) > 200 * 200, `the applied puts are in the write-ahead log (${logBytes(dir)} bytes)`);
  await store.persist();
  t.ok(files(dir, '.ldb').length > tablesBefore, `a table file was written (${tablesBefore} -> ${files(dir, '.ldb').length})`);
  t.ok(logBytes(dir) < 1024, `the write-ahead log holds only the synced marker after it (${logBytes(dir)} bytes)`);
  await store.close();
  await t.rejects(store.persist(), { code: 'UNAVAILABLE' }, 'a closed store refuses');
  const reopened = await KvStore.open(dir);
  t.teardown(() => reopened.close());
  t.equal(reopened.appliedIndex(), 200);
  t.equal((await reopened.get('k199')).kv?.value, 'x'.repeat(200));
});

void t.test('persist() does not wait behind a defrag, and a defrag waits for it', async (t) => {
  const dir = tempDir(t);
  const store = await KvStore.open(dir);
  t.teardown(() => store.close());
  await store.apply(Array.from({ length: 50 }, (_, i) => commandEntry(i + 1, putCmd(`k${i}`, 'v'), `r${i}`)));
  const defrag = store.defrag();
  t.equal(await store.persist(), false, 'refused while the defrag runs');
  await defrag;
  const persisting = store.persist();
  const order: string[] = [];
  const defragAfter = store.defrag().then(() => order.push('defrag'));
  await persisting.then((done) => order.push(`persist ${done}`));
  await defragAfter;
  t.same(order, ['persist true', 'defrag'], 'the defrag asked for meanwhile ran after it');
  t.equal(await store.persist(), true, 'and the next one runs');
});
