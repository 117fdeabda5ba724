// Goal: a view read through a LevelDB snapshot looks each key's current version up once (mvcc.ts currentMemo),
// up to its byte bound, and never serves anything but what its snapshot holds; a live view memoizes nothing.
// Method: a bare LevelDB with current-version records, views over it, and a count of the lookups that reach it.
import { ClassicLevel } from 'classic-level';
import t from 'tap';
import type { KV } from '../../../src/store/commands.js';
import { encodeKvRecord } from '../../../src/store/codec.js';
import { currentKey, utf8, type Bytes } from '../../../src/store/keys.js';
import { ReadView, currentMemoBytesMax, type StoreDb } from '../../../src/store/mvcc.js';
import { tempDir, type TapLike } from './helpers.js';

async function openDb(t: TapLike): Promise<{ db: StoreDb; lookups: () => number }> {
  const db = new ClassicLevel<Bytes, Bytes>(tempDir(t, 'keel-read-view-'), { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  t.teardown(() => db.close());
  let lookups = 0;
  const getSync = db.getSync.bind(db);
  db.getSync = ((...args: Parameters<typeof getSync>) => {
    lookups++;
    return getSync(...args);
  }) as typeof db.getSync;
  return { db, lookups: () => lookups };
}

const kv = (key: string, value: string, modRevision: number): KV => ({ key, value, createRevision: 1, modRevision, version: modRevision, lease: 0 });

async function put(db: StoreDb, record: KV): Promise<void> {
  await db.put(currentKey(utf8(record.key)), encodeKvRecord(record));
}

void t.test('a snapshot view reads a key from LevelDB once, absent keys included, and only what the snapshot holds', async (t) => {
  const { db, lookups } = await openDb(t);
  await put(db, kv('a', 'one', 1));
  const snapshot = db.snapshot();
  t.teardown(() => snapshot.close());
  const view = new ReadView(db, snapshot);
  t.same(view.current(utf8('a')), kv('a', 'one', 1));
  t.equal(view.current(utf8('missing')), null);
  const before = lookups();
  await put(db, kv('a', 'two', 2));
  await put(db, kv('missing', 'now here', 3));
  for (let i = 0; i < 5; i++) {
    t.same(view.current(utf8('a')), kv('a', 'one', 1), 'the snapshot value, not the later write');
    t.equal(view.current(utf8('missing')), null);
  }
  t.equal(lookups(), before, 'no further lookups');
  const fresh = db.snapshot();
  t.teardown(() => fresh.close());
  t.same(new ReadView(db, fresh).current(utf8('a')), kv('a', 'two', 2), 'a new snapshot view sees the write');
});

void t.test('a live view memoizes nothing: every read sees the latest write', async (t) => {
  const { db, lookups } = await openDb(t);
  const view = new ReadView(db, null);
  for (let i = 1; i <= 5; i++) {
    await put(db, kv('a', `v${i}`, i));
    t.equal(view.current(utf8('a'))?.value, `v${i}`);
  }
  t.equal(lookups(), 5);
});

void t.test('the memo stops growing at its byte bound; keys past it are looked up each time', async (t) => {
  const { db, lookups } = await openDb(t);
  const value = 'x'.repeat(4000);
  const keys = Math.ceil(currentMemoBytesMax / value.length) + 10;
  for (let i = 0; i < keys; i++) await put(db, kv(`k${i}`, value, i + 1));
  const snapshot = db.snapshot();
  t.teardown(() => snapshot.close());
  const view = new ReadView(db, snapshot);
  for (let i = 0; i < keys; i++) view.current(utf8(`k${i}`));
  const first = lookups();
  t.equal(first, keys);
  view.current(utf8('k0'));
  t.equal(lookups(), first, 'an early key is memoized');
  view.current(utf8(`k${keys - 1}`));
  t.equal(lookups(), first + 1, 'the last key did not fit and is looked up again');
  t.equal(view.current(utf8(`k${keys - 1}`))?.value, value);
});
