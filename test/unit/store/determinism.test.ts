// Goal: apply is deterministic: two stores applying the same entries (however the driver batches them into
// apply() calls, with or without current versions cached in memory) answer the same results, have the same stateHash at every revision, and hold the same bytes.
// Method: for several seeds, generate a random log (puts with leases, conditional puts, single and prefix
// deletes, txns with random compares and ops, compacts, retries of earlier request ids, no-ops, conf entries,
// garbage), apply it to store A one entry per call and to store B in random chunks, then compare everything;
// also check a simple model of the live keys (every put/delete outcome) against store A after each entry.
import t from 'tap';
import type { Entry } from '../../../src/raft/index.js';
import type { Command, Compare, TxnOp } from '../../../src/store/index.js';
import type { Prng } from '../../../src/util/prng.js';
import { SeededPrng } from '../../../src/util/prng.js';
import { commandEntry, noopEntry, openStore } from './helpers.js';

function pick<T>(prng: Prng, items: readonly T[]): T {
  return items[prng.int(0, items.length - 1)]!;
}

const keys = ['a', 'a/1', 'a/2', 'b', 'b/1', 'c', 'é', 'a\u0000x'];

function randomCompare(prng: Prng): Compare {
  const key = pick(prng, keys);
  const op = pick(prng, ['==', '!=', '<', '>'] as const);
  const target = pick(prng, ['value', 'version', 'createRevision', 'modRevision', 'lease'] as const);
  if (target === 'value') return { key, target, op, value: `v${prng.int(0, 50)}` };
  return { key, target, op, value: prng.int(0, 20) };
}

function randomOp(prng: Prng): TxnOp {
  const key = pick(prng, keys);
  switch (prng.int(0, 2)) {
    case 0:
      return { put: { key, value: `v${prng.int(0, 50)}`, lease: prng.int(0, 2) } };
    case 1:
      return { delete: { key, prefix: prng.next() < 0.3 } };
    default:
      return { get: { key, prefix: prng.next() < 0.5, limit: prng.int(0, 2) } };
  }
}

function randomCommand(prng: Prng, index: number): Command {
  const key = pick(prng, keys);
  const roll = prng.int(0, 99);
  if (roll < 45) {
    const base = { kind: 'put', key, value: `v${index}`, lease: prng.int(0, 3), prevKv: prng.next() < 0.5 } as const;
    if (roll < 5) return { ...base, ifModRevision: prng.int(0, index) };
    if (roll < 10) return { ...base, ifVersion: prng.int(0, 3) };
    return base;
  }
  if (roll < 65) return { kind: 'deleteRange', key, prefix: prng.next() < 0.3, prevKv: prng.next() < 0.5 };
  if (roll < 95) {
    const list = <T>(make: (p: Prng) => T): T[] => Array.from({ length: prng.int(0, 3) }, () => make(prng));
    return { kind: 'txn', compare: list(randomCompare), success: list(randomOp), failure: list(randomOp) };
  }
  return { kind: 'compact', revision: prng.int(0, Math.floor(index / 2)) };
}

function randomLog(seed: number, length: number): Entry[] {
  const prng = new SeededPrng(seed);
  const log: Entry[] = [];
  for (let index = 1; index <= length; index++) {
    const roll = prng.int(0, 99);
    if (roll < 3) log.push(noopEntry(index));
    else if (roll < 5) log.push({ type: 'conf', term: 1, index, change: { type: 'addLearner', id: `n${index}` } });
    else if (roll < 6) log.push({ type: 'normal', term: 1, index, data: Uint8Array.of(prng.int(0, 255), 7) });
    else {
      // Some request ids repeat (a client's retry), most are fresh, some entries carry none.
      const requestId = roll < 15 ? `req-${prng.int(1, index)}` : roll < 90 ? `req-${index}` : '';
      log.push(commandEntry(index, randomCommand(prng, index), requestId));
    }
  }
  return log;
}

for (const seed of [1, 2, 3, 42, 1234]) {
  void t.test(`seed ${seed}: same results, same hashes at every revision, same bytes`, async (t) => {
    const log = randomLog(seed, 250);
    // A keeps no current versions in memory; B keeps a few (1,500 bytes: constant eviction): the cache
    // (current-cache.ts) must change nothing.
    const a = (await openStore(t, { currentCacheBytes: 0 })).store;
    const b = (await openStore(t, { currentCacheBytes: 1500 })).store;
    const resultsA: unknown[] = [];
    for (const entry of log) resultsA.push(...(await a.apply([entry])));
    const chunker = new SeededPrng(seed + 1000);
    const resultsB: unknown[] = [];
    for (let at = 0; at < log.length; ) {
      const size = chunker.int(1, 25);
      resultsB.push(...(await b.apply(log.slice(at, at + size))));
      at += size;
    }
    t.same(resultsB, resultsA, 'same results');
    t.equal(a.revision(), b.revision());
    t.ok(a.revision() > 50, `the log made real history (${a.revision()} revisions)`);
    t.equal(a.compactRevision(), b.compactRevision());
    t.comment(`compactRevision ${a.compactRevision()}, keys ${a.keyCount()}`);
    for (let revision = a.compactRevision(); revision <= a.revision(); revision++) {
      const [hashA, hashB] = [await a.stateHash(revision), await b.stateHash(revision)];
      if (hashA !== hashB) t.fail(`stateHash differs at revision ${revision}`);
    }
    t.same(await a.snapshot(), await b.snapshot(), 'same bytes');
  });
}

void t.test('the stored state matches a model of every applied put and delete', async (t) => {
  const { store } = await openStore(t);
  const model = new Map<string, { value: string; version: number }>();
  const prng = new SeededPrng(99);
  for (let index = 1; index <= 300; index++) {
    const key = pick(prng, keys);
    if (prng.next() < 0.7) {
      await store.apply([commandEntry(index, { kind: 'put', key, value: `v${index}`, lease: 0, prevKv: false })]);
      model.set(key, { value: `v${index}`, version: (model.get(key)?.version ?? 0) + 1 });
    } else {
      const prefix = prng.next() < 0.3;
      await store.apply([commandEntry(index, { kind: 'deleteRange', key, prefix, prevKv: false })]);
      for (const existing of [...model.keys()]) {
        if (prefix ? Buffer.from(existing).subarray(0, Buffer.byteLength(key)).equals(Buffer.from(key)) : existing === key) {
          model.delete(existing);
        }
      }
    }
    const live = (await store.range({ key: '', prefix: true })).kvs.map((kv) => [kv.key, kv.value, kv.version]);
    const expected = [...model.entries()]
      .sort((x, y) => Buffer.compare(Buffer.from(x[0]), Buffer.from(y[0])))
      .map(([k, v]) => [k, v.value, v.version]);
    if (JSON.stringify(live) !== JSON.stringify(expected)) {
      t.fail(`state differs from the model after entry ${index}`);
      return;
    }
  }
  t.equal(store.keyCount(), model.size);
});
