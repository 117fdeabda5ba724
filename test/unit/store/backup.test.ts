// Goal: a backup stream (backup.ts) holds the store as of the moment it was opened, whatever is applied while it
// is read; readBackup verifies it and refuses a truncated, corrupted or foreign stream with INVALID_ARGUMENT;
// restoreBackup builds a store at revision + bump with the old history compacted, the live keys and leases kept,
// that applies a new log from index 1.
// Method: a store with history, a backup read in small steps while writes go on, then cut and flipped copies.
import path from 'node:path';
import t from 'tap';
import { KvStore, readBackup, restoreBackup } from '../../../src/store/index.js';
import { isKeelError } from '../../../src/util/errors.js';
import { Applier, commandEntry, openStore, putCmd, tempDir } from './helpers.js';

async function collect(chunks: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of chunks) parts.push(chunk);
  return Buffer.concat(parts);
}

async function* once(bytes: Uint8Array, step = 1000): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.byteLength; i += step) yield bytes.subarray(i, i + step);
}

async function build(store: KvStore): Promise<void> {
  const applier = new Applier(store);
  for (let i = 0; i < 200; i++) await applier.put(`k${i % 50}`, `v${i}-${'x'.repeat(i)}`);
}

void t.test('a backup is a point-in-time view while writes go on', async (t) => {
  const { store } = await openStore(t);
  await build(store);
  const revisionAtOpen = store.revision();
  const { header, chunks } = await store.openBackup('c1');
  t.equal(header.revision, revisionAtOpen);
  t.equal(header.cluster, 'c1');
  t.equal(header.keyCount, 50);
  // Writes applied while the backup is read do not show up in it.
  const first = await chunks.next();
  t.notOk(first.done);
  const applier = new Applier(store);
  for (let i = 0; i < 20; i++) await applier.put(`late${i}`, 'x');
  const bytes = Buffer.concat([first.value as Buffer, await collect(chunks)]);
  const seen: string[] = [];
  const read = await readBackup(once(bytes, 777), { pairs: (pairs) => void seen.push(...pairs.map((p) => Buffer.from(p).toString('latin1'))) });
  t.equal(read.header.revision, revisionAtOpen);
  t.equal(read.bytes, bytes.byteLength);
  t.notOk(seen.some((s) => s.includes('late')), 'no key written after the backup was opened');

  const dir = path.join(tempDir(t), 'store');
  const restored = await restoreBackup(() => once(bytes), dir, { bumpRevision: 1000 });
  t.equal(restored.revision, revisionAtOpen + 1000);
  t.equal(restored.keyCount, 50);
  const copy = await KvStore.open(dir);
  t.teardown(() => copy.close());
  t.equal(copy.appliedIndex(), 0);
  t.equal(copy.revision(), revisionAtOpen + 1000);
  t.equal(copy.compactRevision(), revisionAtOpen + 1000);
  t.equal((await copy.get('k7')).kv?.value, (await store.get('k7', { revision: revisionAtOpen })).kv?.value);
  const live = async (s: KvStore, revision: number) =>
    (await s.range({ key: '', prefix: true, revision })).kvs.map((kv) => [kv.key, kv.value, kv.createRevision, kv.modRevision, kv.version]);
  t.same(await live(copy, 0), await live(store, revisionAtOpen), 'every live key as of the backup, with its revisions');
  await t.rejects(copy.get('k7', { revision: revisionAtOpen }), { code: 'COMPACTED' });
  // The new cluster's log applies from index 1 and continues above the bumped revision.
  await copy.apply([commandEntry(1, putCmd('fresh', '1'))]);
  t.equal(copy.revision(), revisionAtOpen + 1001);
  t.equal((await copy.get('fresh')).kv?.modRevision, revisionAtOpen + 1001);
  await t.rejects(restoreBackup(() => once(bytes), dir, { bumpRevision: 1 }), /not empty/);
});

void t.test('the stream is produced in bounded chunks, not the whole store at once', async (t) => {
  const { store } = await openStore(t);
  const applier = new Applier(store);
  for (let i = 0; i < 300; i++) await applier.put(`big${i}`, 'y'.repeat(8 * 1024));
  const sizes: number[] = [];
  for await (const chunk of (await store.openBackup('c1')).chunks) sizes.push(chunk.byteLength);
  const total = sizes.reduce((a, b) => a + b, 0);
  t.ok(total > 2 * 1024 * 1024, `the backup holds ${total} bytes`);
  t.ok(sizes.length >= 8, `in ${sizes.length} chunks`);
  t.ok(Math.max(...sizes) < 300 * 1024, `the largest chunk is ${Math.max(...sizes)} bytes`);
});

void t.test('truncated, corrupted and foreign streams are refused, and restore writes nothing', async (t) => {
  const { store } = await openStore(t);
  await build(store);
  const bytes = await collect((await store.openBackup('c1')).chunks);
  const cases: [string, Buffer, RegExp][] = [
    ['truncated in a frame', bytes.subarray(0, Math.floor(bytes.byteLength / 2)), /truncated/],
    ['truncated digest', bytes.subarray(0, bytes.byteLength - 5), /truncated/],
    ['empty', Buffer.alloc(0), /truncated/],
    ['not a backup', Buffer.from('hello world, this is not a backup'), /bad magic/],
    ['trailing bytes', Buffer.concat([bytes, Buffer.from('x')]), /after the checksum/],
  ];
  for (const offset of [12, Math.floor(bytes.byteLength / 3), bytes.byteLength - 40, bytes.byteLength - 1]) {
    const flipped = Buffer.from(bytes);
    flipped[offset] = flipped[offset]! ^ 0x20;
    cases.push([`bit flip at ${offset}`, flipped, /rejected/]);
  }
  for (const [name, data, pattern] of cases) {
    const err = await readBackup(once(data)).then(() => null, (e: unknown) => e);
    t.ok(isKeelError(err, 'INVALID_ARGUMENT'), `${name}: INVALID_ARGUMENT`);
    t.match((err as Error).message, pattern, name);
    const dir = path.join(tempDir(t), 'store');
    await t.rejects(restoreBackup(() => once(data), dir, { bumpRevision: 1 }), { code: 'INVALID_ARGUMENT' });
  }
});
