// Goal: one apply() call is one atomic LevelDB batch, and batching changes nothing observable: the same entries
// give the same results, stateHash and raw database bytes however they are split into calls; later entries of a
// call see the earlier ones' writes (txn compares, ifModRevision, prevKv, dedupe of a request id applied earlier
// in the call, dedupe eviction, the lease index, extensions through ApplyContext); nothing of a call is visible to
// reads or watchers (and nothing is durable) before its batch is written; a failure inside a call leaves the
// store at the previous call's state, except that a compact entry ends the batch it is in.
// Method: a random log with test extensions (a lease grant/revoke pair behind the leaseExists hook, a counter
// reading a prefix range, a probe observing the store mid-call) applied in calls of 1, 2, 7, 64, random sizes and
// all at once, comparing results, stateHash at every revision and a raw dump of the closed database; targeted
// calls with known answers; calls that throw part-way (a bug stands in for a crash), then reopen.
import { ClassicLevel } from 'classic-level';
import t from 'tap';
import type { Entry } from '../../../src/raft/index.js';
import type {
  ApplyContext,
  Command,
  CommandExtension,
  Compare,
  KvStoreOptions,
  StoreHooks,
  TxnOp,
  Watcher,
} from '../../../src/store/index.js';
import { KvStore } from '../../../src/store/index.js';
import { KeelError } from '../../../src/util/errors.js';
import type { Prng } from '../../../src/util/prng.js';
import { SeededPrng } from '../../../src/util/prng.js';
import type { TapLike } from './helpers.js';
import { commandEntry, deleteCmd, noopEntry, putCmd, tempDir } from './helpers.js';

// ---- test extensions

interface Probe {
  /** What the store answered while an entry of the call was being applied. */
  seen: { revision: number; applied: number; published: number; readable: string | null }[];
  /** afterCommit effects, with the published revision when each ran. */
  effects: { tag: string; published: number }[];
  explode: boolean;
}

function extensions(probe: Probe, store: () => KvStore): CommandExtension[] {
  const body = (value: unknown): Record<string, unknown> => value as Record<string, unknown>;
  return [
    {
      name: 'lease',
      validate: () => undefined,
      async apply(raw, ctx) {
        const { op, id } = body(raw) as { op: 'grant' | 'revoke'; id: number };
        if (op === 'grant') {
          await ctx.put(`leases/${id}`, 'granted', 0);
          return { granted: id };
        }
        const record = await ctx.get(`leases/${id}`);
        if (record === null) throw new KeelError('LEASE_NOT_FOUND', `lease ${id} not found`);
        const keys = await ctx.leaseKeys(id);
        for (const key of keys) {
          const kv = await ctx.get(key);
          if (kv !== null) ctx.delete(kv);
        }
        ctx.delete(record);
        return { revoked: id, keys };
      },
    },
    {
      name: 'counter',
      validate: () => undefined,
      async apply(raw, ctx) {
        const { prefix } = body(raw) as { prefix: string };
        const kvs = await ctx.range({ start: Buffer.from(prefix), end: Buffer.from(`${prefix}\u00ff`) });
        await ctx.put(`count/${prefix}`, String(kvs.length), 0);
        return { count: kvs.length, keys: kvs.map((kv) => `${kv.key}@${kv.modRevision}`) };
      },
    },
    {
      name: 'probe',
      validate: () => undefined,
      async apply(raw, ctx: ApplyContext) {
        const { key, tag } = body(raw) as { key: string; tag: string };
        if (probe.explode) throw new Error('a bug in the middle of a call');
        const s = store();
        const readable = (await s.get(key)).kv?.value ?? null;
        const published = s.watchHub.publishedRevision;
        probe.seen.push({ revision: s.revision(), applied: s.appliedIndex(), published, readable });
        await ctx.put(`probe/${tag}`, tag, 0);
        ctx.afterCommit(() => probe.effects.push({ tag, published: store().watchHub.publishedRevision }));
        return { tag };
      },
    },
  ];
}

const hooks: StoreHooks = { leaseExists: async (lease, ctx) => (await ctx.get(`leases/${lease}`)) !== null };

async function openWith(dir: string, probe: Probe, options: KvStoreOptions = {}): Promise<KvStore> {
  const holder: { store?: KvStore } = {};
  const store = await KvStore.open(dir, { hooks, extensions: extensions(probe, () => holder.store!), ...options });
  holder.store = store;
  return store;
}

function newProbe(): Probe {
  return { seen: [], effects: [], explode: false };
}

// ---- a random log

const keys = ['a', 'a/1', 'a/2', 'b', 'b/1', 'c'];

function pick<T>(prng: Prng, items: readonly T[]): T {
  return items[prng.int(0, items.length - 1)]!;
}

function randomCommand(prng: Prng, index: number): Command {
  const key = pick(prng, keys);
  const roll = prng.int(0, 99);
  if (roll < 30) return putCmd(key, `v${index}`, { lease: prng.int(0, 3), prevKv: prng.next() < 0.5 });
  // Conditional on a recent revision: these hit and miss depending on what the previous few entries did.
  if (roll < 40) return putCmd(key, `v${index}`, { ifModRevision: Math.max(0, index - prng.int(1, 6)) });
  if (roll < 50) return deleteCmd(key, { prefix: prng.next() < 0.3, prevKv: true });
  if (roll < 65) {
    const op = pick(prng, ['==', '>', '<'] as const);
    const compare = [{ key, target: 'version' as const, op, value: prng.int(0, 4) }];
    const put = { key: pick(prng, keys), value: `t${index}`, lease: prng.int(0, 2) };
    const success = [{ put }, { get: { key: 'a', prefix: true } }];
    return { kind: 'txn', compare, success, failure: [{ delete: { key: pick(prng, keys) } }] };
  }
  if (roll < 75) {
    return { kind: 'ext', name: 'lease', body: { op: prng.next() < 0.6 ? 'grant' : 'revoke', id: prng.int(1, 3) } };
  }
  if (roll < 85) return { kind: 'ext', name: 'counter', body: { prefix: pick(prng, ['a', 'b', 'count/']) } };
  if (roll < 88) return { kind: 'ext', name: 'probe', body: { key, tag: `p${index}` } };
  return { kind: 'compact', revision: prng.int(0, Math.floor(index / 2)) };
}

function randomLog(seed: number, length: number): Entry[] {
  const prng = new SeededPrng(seed);
  const log: Entry[] = [];
  for (let index = 1; index <= length; index++) {
    const roll = prng.int(0, 99);
    if (roll < 4) log.push(noopEntry(index));
    else if (roll < 6) log.push({ type: 'conf', term: 1, index, change: { type: 'addLearner', id: `n${index}` } });
    else if (roll < 7) log.push({ type: 'normal', term: 1, index, data: Uint8Array.of(7, 7) });
    else {
      // Retries of a recent request id (often in the same call) and of old ones (evicted from a window of 16).
      let requestId = roll < 90 ? `req-${index}` : '';
      if (roll < 20) requestId = `req-${Math.max(1, index - prng.int(1, 5))}`;
      else if (roll < 25) requestId = `req-${prng.int(1, index)}`;
      log.push(commandEntry(index, randomCommand(prng, index), requestId));
    }
  }
  return log;
}

/** Every key and value in the database (the store must be closed), hex. */
async function rawDump(dir: string): Promise<string[]> {
  const db = new ClassicLevel<Uint8Array, Uint8Array>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  const out: string[] = [];
  const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
  for await (const [key, value] of db.iterator()) out.push(`${hex(key)}=${hex(value)}`);
  await db.close();
  return out;
}

interface Outcome {
  results: unknown[];
  hashes: string[];
  dump: string[];
  revision: number;
  compactRevision: number;
}

async function applyInCalls(t: TapLike, log: readonly Entry[], sizes: () => number): Promise<Outcome> {
  const dir = tempDir(t);
  const store = await openWith(dir, newProbe(), { dedupeWindowMax: 16, compactionBatchOpsMax: 5 });
  const results: unknown[] = [];
  for (let at = 0; at < log.length; ) {
    const size = sizes();
    results.push(...(await store.apply(log.slice(at, at + size))));
    at += size;
  }
  const [revision, compactRevision] = [store.revision(), store.compactRevision()];
  const hashes: string[] = [];
  for (let r = compactRevision; r <= revision; r++) hashes.push(await store.stateHash(r));
  await store.close();
  return { results, hashes, dump: await rawDump(dir), revision, compactRevision };
}

for (const seed of [5, 77]) {
  void t.test(`seed ${seed}: any split into calls gives the same results, hashes and raw bytes`, async (t) => {
    const log = randomLog(seed, 400);
    const reference = await applyInCalls(t, log, () => 1);
    t.ok(reference.revision > 100, `the log made real history (${reference.revision} revisions)`);
    t.ok(reference.compactRevision > 0, `and compacted it (to ${reference.compactRevision})`);
    const chunker = new SeededPrng(seed + 1);
    const splits: [string, () => number][] = [
      ['2', () => 2],
      ['7', () => 7],
      ['64', () => 64],
      ['all at once', () => log.length],
      ['random 1..100', () => chunker.int(1, 100)],
    ];
    for (const [name, sizes] of splits) {
      const outcome = await applyInCalls(t, log, sizes);
      t.same(outcome.results, reference.results, `calls of ${name}: same results`);
      t.same(outcome.hashes, reference.hashes, `calls of ${name}: same stateHash at every revision`);
      const same = outcome.dump.length > 0 && outcome.dump.join('\n') === reference.dump.join('\n');
      t.ok(same, `calls of ${name}: same raw bytes (${outcome.dump.length} keys)`);
    }
  });
}

// ---- later entries of one call see the earlier ones

function txn(compare: Compare[], success: TxnOp[]): Command {
  return { kind: 'txn', compare, success, failure: [] };
}

function dependentEntries(): Entry[] {
  const cmds: [Command, string][] = [
    [putCmd('a', '1'), 'r1'], // 1
    [putCmd('a', '2', { prevKv: true }), 'r2'], // 2: prevKv is entry 1's version
    [putCmd('a', '3', { ifModRevision: 2 }), 'r3'], // 3: entry 2's revision
    [putCmd('a', 'x', { ifModRevision: 2 }), 'r4'], // refused: a is at 3 now
    [txn([{ key: 'a', target: 'version', op: '==', value: 3 }], [{ get: { key: 'a' } }]), 'r5'],
    [putCmd('a', 'retried'), 'r1'], // the retry of entry 1: its answer, no write
    [{ kind: 'ext', name: 'lease', body: { op: 'grant', id: 7 } }, 'r7'], // 4
    [putCmd('b', 'leased', { lease: 7 }), 'r8'], // 5: leaseExists sees the grant
    [putCmd('c', 'leased', { lease: 7 }), 'r9'], // 6
    [{ kind: 'ext', name: 'lease', body: { op: 'revoke', id: 7 } }, 'r10'], // 7: the lease index holds b and c
    [putCmd('d', 'late', { lease: 7 }), 'r11'], // refused: revoked
    [{ kind: 'ext', name: 'counter', body: { prefix: 'a' } }, 'r12'], // 8
    [deleteCmd('', { prefix: true, prevKv: true }), 'r13'], // 9
  ];
  return cmds.map(([cmd, id], i) => commandEntry(i + 1, cmd, id));
}

void t.test('one call: each entry sees what the earlier ones of the call wrote', async (t) => {
  const store = await openWith(tempDir(t), newProbe());
  t.teardown(() => store.close());
  const results = await store.apply(dependentEntries());
  const a = (version: number, value: string, mod: number): object => {
    return { key: 'a', value, createRevision: 1, modRevision: mod, version, lease: 0 };
  };
  t.same(results[1], { revision: 2, prevKv: a(1, '1', 1) }, 'prevKv of the previous entry');
  t.same(results[2], { revision: 3 }, 'ifModRevision of the previous entry');
  t.match(results[3], { revision: 3, error: { code: 'PRECONDITION_FAILED', kv: { value: '3' } } });
  t.match(results[4], { succeeded: true, results: [{ get: { kvs: [{ value: '3', version: 3 }] } }] }, 'txn compare');
  t.same(results[5], results[0], 'a retry of a request id applied earlier in the call gets its answer');
  t.same(results[7], { revision: 5 }, 'the lease granted earlier in the call exists');
  t.same(results[9], { revoked: 7, keys: ['b', 'c'], revision: 7 }, 'the lease index includes the call\'s puts');
  t.match(results[10], { error: { code: 'LEASE_NOT_FOUND' } });
  t.same(results[11], { count: 1, keys: ['a@3'], revision: 8 }, 'an extension ranges over the call\'s writes');
  t.match(results[12], { revision: 9, deleted: 2, prevKvs: [{ key: 'a' }, { key: 'count/a' }] });
  t.equal(store.appliedIndex(), 13);
  t.equal(store.revision(), 9);
  t.equal(store.keyCount(), 0);

  const single = await openWith(tempDir(t), newProbe());
  t.teardown(() => single.close());
  const one: unknown[] = [];
  for (const entry of dependentEntries()) one.push(...(await single.apply([entry])));
  t.same(results, one, 'the same answers as one entry per call');
});

void t.test('dedupe eviction inside one call: the evicted id is applied again, the others are not', async (t) => {
  const ids = ['r1', 'r2', 'r3', 'r1', 'r3', 'r2'];
  const entries = ids.map((id, i) => commandEntry(i + 1, putCmd(`k${i}`, id), id));
  const batched = await openWith(tempDir(t), newProbe(), { dedupeWindowMax: 2 });
  t.teardown(() => batched.close());
  const results = await batched.apply(entries);
  // r3 evicts r1; the retry of r1 is applied (and evicts r2), r3 is still remembered, r2 is applied again.
  t.same(
    results.map((r) => (r as { revision: number }).revision),
    [1, 2, 3, 4, 3, 5],
  );
  const single = await openWith(tempDir(t), newProbe(), { dedupeWindowMax: 2 });
  t.teardown(() => single.close());
  for (const [i, entry] of entries.entries()) t.same((await single.apply([entry]))[0], results[i]);
  t.same(await single.snapshot(), await batched.snapshot());
});

// ---- nothing of a call is visible or durable before its batch is written

async function messages(watcher: Watcher, count: number): Promise<string[]> {
  const out: string[] = [];
  while (out.length < count) {
    const next = await watcher.next();
    if (next.done === true) break;
    const message = next.value;
    if (message.type === 'events') out.push(`${message.revision}:${message.events.map((e) => e.kv.key).join(',')}`);
  }
  return out;
}

void t.test('reads, getters and watchers see a call once its batch is written; then each revision in order', async (t) => {
  const probe = newProbe();
  const store = await openWith(tempDir(t), probe);
  t.teardown(() => store.close());
  await store.apply([commandEntry(1, putCmd('x', 'old'))]);
  const watcher = store.watch({ key: '', prefix: true });
  const probeCmd = (tag: string): Command => ({ kind: 'ext', name: 'probe', body: { key: 'x', tag } });
  const results = await store.apply([
    commandEntry(2, putCmd('x', 'new')),
    commandEntry(3, probeCmd('first')),
    commandEntry(4, txn([], [{ put: { key: 'y', value: '1' } }, { put: { key: 'z', value: '1' } }])),
    commandEntry(5, putCmd('x', 'refused', { ifModRevision: 1 })),
    commandEntry(6, probeCmd('second')),
  ]);
  t.match(results[3], { error: { code: 'PRECONDITION_FAILED' } });
  const before = { revision: 1, applied: 1, published: 1, readable: 'old' };
  t.same(probe.seen, [before, before], 'mid-call: the written state only (getters, watch hub, reads)');
  const expected = ['2:x', '3:probe/first', '4:y,z', '5:probe/second'];
  t.same(await messages(watcher, 4), expected, 'one message per revision, in order');
  t.same(probe.effects, [
    { tag: 'first', published: 3 },
    { tag: 'second', published: 5 },
  ], 'effects run after the write, in entry order, each after its own revision is published');
  t.equal(store.appliedIndex(), 6);
  watcher.cancel();
});

// ---- a call cut short

void t.test('a call that fails part-way leaves nothing of itself, in memory or on disk', async (t) => {
  const dir = tempDir(t);
  const probe = newProbe();
  let store = await openWith(dir, probe);
  await store.apply([commandEntry(1, putCmd('a', '1'), 'r1')]);
  const hash = await store.stateHash();
  const watcher = store.watch({ key: '', prefix: true });
  probe.explode = true;
  const call = [
    commandEntry(2, putCmd('a', '2'), 'r2'),
    commandEntry(3, putCmd('b', '1'), 'r3'),
    commandEntry(4, { kind: 'ext', name: 'probe', body: { key: 'a', tag: 'boom' } }, 'r4'),
    commandEntry(5, putCmd('c', '1'), 'r5'),
  ];
  await t.rejects(store.apply(call), { message: 'a bug in the middle of a call' });
  const state = async (): Promise<unknown[]> => [store.appliedIndex(), store.revision(), await store.stateHash()];
  t.same(await state(), [1, 1, hash], 'in memory: the previous call');
  t.equal(watcher.progressRevision(store.watchHub.publishedRevision), 1, 'no revision was published');
  await store.close();
  store = await openWith(dir, probe);
  t.teardown(() => store.close());
  t.same(await state(), [1, 1, hash], 'on disk: the previous call');
  probe.explode = false;
  const results = await store.apply(call); // Raft replays the entries after appliedIndex
  const revisions = results.map((r) => (r as { revision: number }).revision);
  t.same(revisions, [2, 3, 4, 5], 'replayed, with r2 and r3 not deduped');
});

void t.test('a compact entry ends its batch: a failure after it leaves the store at the compact entry', async (t) => {
  const dir = tempDir(t);
  const probe = newProbe();
  let store = await openWith(dir, probe, { compactionBatchOpsMax: 2 });
  const entries: Entry[] = [];
  for (let i = 1; i <= 6; i++) entries.push(commandEntry(i, putCmd(`k${i % 2}`, `v${i}`)));
  entries.push(commandEntry(7, { kind: 'compact', revision: 5 }));
  entries.push(commandEntry(8, putCmd('after', '1')));
  entries.push(commandEntry(9, { kind: 'ext', name: 'probe', body: { key: 'after', tag: 'p' } }));
  probe.explode = true;
  await t.rejects(store.apply(entries));
  const state = (): number[] => [store.appliedIndex(), store.revision(), store.compactRevision()];
  t.same(state(), [7, 6, 5], 'written up to the compact entry');
  await store.close();
  store = await openWith(dir, probe, { compactionBatchOpsMax: 2 });
  t.teardown(() => store.close());
  t.same(state(), [7, 6, 5], 'the same after a reopen');
  await t.rejects(store.get('k0', { revision: 4 }), { code: 'COMPACTED' });
  probe.explode = false;
  await store.apply(entries);
  t.same([store.appliedIndex(), store.revision()], [9, 8]);
  const reference = await openWith(tempDir(t), newProbe(), { compactionBatchOpsMax: 2 });
  t.teardown(() => reference.close());
  for (const entry of entries) await reference.apply([entry]);
  t.same(await store.snapshot(), await reference.snapshot(), 'the same bytes as one entry per call');
});
