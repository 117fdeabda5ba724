// Goal: the lessor's timing rules (DESIGN.md src/lease/, RELIABILITY.md S15/L6): a node's deadline is its own clock
// when it applied the grant/keepalive + ttl; only the leader expires, with ONE revoke entry for everything due; a
// lease is never revoked before its deadline, nor while a keepalive for it is in the log but not applied yet; a new
// leader expires nothing before it applied the entries it inherited; a restart gives every lease now + ttl;
// keepalives are coalesced into one entry and the per-node queue is bounded (503 when full).
// Method: a LeaseLayer over a real KvStore (temp dir) with a manual clock and a fake Raft view; the log applies
// proposals as consecutive entries; a gate holds chosen proposals "in the log" unapplied. The expiry loop runs on
// real 10 ms timers, the deadlines on the manual clock.
import t from 'tap';
import { LeaseLayer, leaseKeys } from '../../../src/lease/index.js';
import type { Command } from '../../../src/store/index.js';
import { decodeCommand, KvStore } from '../../../src/store/index.js';
import { isKeelError } from '../../../src/util/errors.js';
import { FakeRaft, ManualClock, eventually, openLayer, sleep } from './layer-helpers.js';
import { SerialLog } from './helpers.js';

const put = (key: string, value: string, lease = 0): Command => ({ kind: 'put', key, value, lease, prevKv: false });

/**
 * Whether the lease record exists. "Gone" waits for the entry's in-memory effects too: the batch is readable a
 * moment before apply() returns and the store's revision and the deadline table move.
 */
async function exists(store: KvStore, id: number, layer?: LeaseLayer): Promise<boolean> {
  const inStore = (await store.get(leaseKeys.lease(id))).kv !== null;
  return inStore || (layer !== undefined && layer.lessor.status(id) !== null);
}

void t.test('the leader expires a lease at its deadline, not before, with its keys in one revision', async (t) => {
  const { store, log, layer, clock } = await openLayer(t);
  const granted = await layer.lessor.grant(2);
  t.ok(granted.id >= 1 && Number.isSafeInteger(granted.id), 'a random safe-integer id');
  await log.ok(put('a', '1', granted.id));
  await log.ok(put('b', '2', granted.id));
  t.same(layer.lessor.status(granted.id), { id: granted.id, grantedTtl: 2, remainingMs: 2000 });
  clock.advance(1999);
  await sleep(60);
  t.ok(await exists(store, granted.id), 'alive 1 ms before the deadline');
  t.equal(layer.lessor.status(granted.id)?.remainingMs, 1);
  const revision = store.revision();
  clock.advance(1);
  t.ok(await eventually(async () => !(await exists(store, granted.id, layer))), 'revoked once the deadline is reached');
  t.equal(store.revision(), revision + 1, 'record and both keys went in one revision');
  t.equal((await store.get('a')).kv, null);
  t.equal(layer.lessor.status(granted.id), null, 'gone from the deadline table');
});

void t.test('a keepalive moves the deadline to now + ttl', async (t) => {
  const { store, layer, clock } = await openLayer(t);
  const { id } = await layer.lessor.grant(2);
  clock.advance(1500);
  const kept = await layer.lessor.keepalive(id);
  t.same({ id: kept.id, ttl: kept.ttl }, { id, ttl: 2 });
  clock.advance(1500);
  await sleep(60);
  t.ok(await exists(store, id), 'alive 3 s after the grant: the keepalive reset it');
  clock.advance(500);
  t.ok(await eventually(async () => !(await exists(store, id))), 'expired 2 s after the keepalive');
  await t.rejects(layer.lessor.keepalive(id), { code: 'LEASE_NOT_FOUND' }, 'a keepalive of an expired lease is 404');
});

void t.test('only the leader expires; a new leader uses the deadlines it holds', async (t) => {
  const { store, layer, clock, raft } = await openLayer(t);
  const { id } = await layer.lessor.grant(1);
  raft.setLeader(false);
  clock.advance(5000);
  await sleep(60);
  t.ok(await exists(store, id), 'a follower never revokes');
  raft.setLeader(true);
  t.ok(await eventually(async () => !(await exists(store, id))), 'once leader, it expires the overdue lease at once');
});

void t.test('a new leader expires nothing before it applied the entries it inherited', async (t) => {
  const { store, log, layer, clock, raft } = await openLayer(t);
  const { id } = await layer.lessor.grant(1);
  raft.setLeader(false);
  raft.last = store.appliedIndex() + 2; // two entries of the old term in the log, not applied yet
  raft.setLeader(true);
  clock.advance(5000);
  await sleep(60);
  t.ok(await exists(store, id), 'not expired while inherited entries are unapplied (one may be its keepalive)');
  await log.ok(put('x', '1'));
  await sleep(40);
  t.ok(await exists(store, id), 'still waiting: one inherited entry left');
  await log.ok(put('y', '1'));
  t.ok(await eventually(async () => !(await exists(store, id))), 'expired once everything inherited was applied');
});

void t.test('a lease whose keepalive is in the log but not applied is not revoked', async (t) => {
  let gate: (() => void) | null = null;
  const opened = new Promise<void>((resolve) => (gate = resolve));
  const { store, layer, clock } = await openLayer(t, {
    propose: (inner) => async (command) => {
      const { cmd } = decodeCommand(command);
      if (cmd.kind === 'ext' && cmd.name === 'lease.keepalive') await opened;
      return inner(command);
    },
  });
  const { id } = await layer.lessor.grant(2);
  clock.advance(1900);
  const kept = layer.lessor.keepalive(id); // proposed (after the 5 ms batch window), held by the gate
  await sleep(30);
  clock.advance(1000); // past the old deadline
  await sleep(60);
  t.ok(await exists(store, id), 'not revoked: its keepalive is in the log ahead of any revoke');
  gate!();
  await kept;
  t.equal(layer.lessor.status(id)?.remainingMs, 2000, 'the keepalive applied now: full ttl again');
  await sleep(40);
  t.ok(await exists(store, id), 'and the lease lives on');
});

void t.test('keepalives are coalesced: many requests, one entry', async (t) => {
  const { store, layer } = await openLayer(t, { keepaliveBatchMs: 20 });
  const ids: number[] = [];
  for (let i = 0; i < 20; i++) ids.push((await layer.lessor.grant(10)).id);
  const before = store.appliedIndex();
  const calls = [];
  for (let round = 0; round < 10; round++) for (const id of ids) calls.push(layer.lessor.keepalive(id));
  calls.push(layer.lessor.keepalive(123456789));
  const results = await Promise.allSettled(calls);
  t.equal(results.filter((r) => r.status === 'fulfilled').length, 200, 'every known lease answered');
  const last = results[200];
  t.ok(last?.status === 'rejected' && isKeelError(last.reason, 'LEASE_NOT_FOUND'), 'the unknown one is 404');
  t.equal(store.appliedIndex() - before, 1, '201 keepalives became one entry');
});

void t.test('a lone keepalive goes at once; keepalives arriving while its entry is in flight share the next one', async (t) => {
  let gate: (() => void) | null = null;
  let opened = Promise.resolve();
  const { store, layer } = await openLayer(t, {
    keepaliveBatchMs: 5_000,
    propose: (inner) => async (command) => {
      const { cmd } = decodeCommand(command);
      if (cmd.kind === 'ext' && cmd.name === 'lease.keepalive') await opened;
      return inner(command);
    },
  });
  const ids: number[] = [];
  for (let i = 0; i < 10; i++) ids.push((await layer.lessor.grant(10)).id);
  const startedAt = performance.now();
  await layer.lessor.keepalive(ids[0]!);
  t.ok(performance.now() - startedAt < 2_000, 'answered without waiting for keepaliveBatchMs (5 s)');

  const before = store.appliedIndex();
  opened = new Promise<void>((resolve) => (gate = resolve));
  const first = layer.lessor.keepalive(ids[0]!);
  await sleep(20); // its entry is proposed (and held at the gate)
  const rest = ids.map((id) => layer.lessor.keepalive(id));
  await sleep(20);
  gate!();
  await first;
  await Promise.all(rest);
  t.equal(store.appliedIndex() - before, 2, '11 keepalives: one entry for the first, one for the ten that waited');
});

void t.test('the keepalive queue is bounded: one more is 503 UNAVAILABLE', async (t) => {
  let gate: (() => void) | null = null;
  const opened = new Promise<void>((resolve) => (gate = resolve));
  const { layer } = await openLayer(t, {
    keepaliveQueueMax: 3,
    keepaliveBatchMs: 1000,
    propose: (inner) => async (command) => {
      const { cmd } = decodeCommand(command);
      if (cmd.kind === 'ext' && cmd.name === 'lease.keepalive') await opened;
      return inner(command);
    },
  });
  const { id } = await layer.lessor.grant(10);
  const waiting = [layer.lessor.keepalive(id), layer.lessor.keepalive(id), layer.lessor.keepalive(id)];
  await t.rejects(layer.lessor.keepalive(id), { code: 'UNAVAILABLE' }, 'the fourth waiting keepalive is refused');
  gate!();
  await layer.lessor.close(); // fails what still waits for its batch
  const settled = await Promise.allSettled(waiting);
  t.ok(settled.every((r) => r.status === 'rejected' && isKeelError(r.reason, 'UNAVAILABLE')), 'closing answers the waiting ones 503');
});

void t.test('a restart gives every lease loaded from the store now + ttl (never early)', async (t) => {
  const { store, dir, layer, clock } = await openLayer(t);
  const { id } = await layer.lessor.grant(3);
  clock.advance(2900);
  await layer.close();
  await store.close();
  const later = new ManualClock(clock.now + 60_000); // the node was down for a minute
  const reopened = new LeaseLayer({ clock: later, expiryIntervalMs: 10 });
  const store2 = await KvStore.open(dir, { extensions: [...reopened.extensions], hooks: reopened.hooks });
  t.teardown(() => store2.close());
  const log2 = new SerialLog(store2);
  const raft2 = new FakeRaft(store2);
  await reopened.start({ store: store2, raft: raft2, propose: log2.propose });
  t.teardown(() => reopened.close());
  t.same(reopened.lessor.status(id), { id, grantedTtl: 3, remainingMs: 3000 }, 'deadline = now + ttl after the restart');
  await sleep(40);
  t.ok(await exists(store2, id), 'not expired by the downtime');
  later.advance(3000);
  t.ok(await eventually(async () => !(await exists(store2, id))), 'expired ttl after the restart');
});

void t.test('revoke through the lessor; unknown lease is 404', async (t) => {
  const { store, log, layer } = await openLayer(t);
  const { id } = await layer.lessor.grant(30, { id: 77 });
  t.equal(id, 77, 'the client-chosen id');
  await t.rejects(layer.lessor.grant(30, { id: 77 }), { code: 'CONFLICT' });
  await log.ok(put('k', 'v', 77));
  const revoked = await layer.lessor.revoke(77);
  t.same({ id: revoked.id, deleted: revoked.deleted }, { id: 77, deleted: 1 });
  t.equal((await store.get('k')).kv, null);
  await t.rejects(layer.lessor.revoke(77), { code: 'LEASE_NOT_FOUND' });
  t.same(layer.lessor.list(), []);
  await t.rejects(layer.lessor.grant(0), { code: 'INVALID_ARGUMENT' });
  await t.rejects(layer.lessor.keepalive(-1), { code: 'INVALID_ARGUMENT' });
  t.equal(store.appliedIndex(), 5, 'bad input never reached the log (5 entries: 2 grants, put, 2 revokes)');
});

void t.test('new lease ids are distinct safe integers in 1..MAX_SAFE_INTEGER, across refills of the random pool', async (t) => {
  const { layer } = await openLayer(t);
  const ids = new Set<number>();
  let outOfRange = 0;
  // 512 ids per 4 KiB of random bytes: 5,000 draws refill the pool about ten times.
  for (let i = 0; i < 5_000; i++) {
    const id = layer.lessor.newLeaseId();
    if (!Number.isSafeInteger(id) || id < 1 || id > Number.MAX_SAFE_INTEGER) outOfRange++;
    ids.add(id);
  }
  t.equal(outOfRange, 0, 'every id is a safe integer in range');
  t.equal(ids.size, 5_000, 'no two alike');
  t.ok([...ids].some((id) => id > 2 ** 52), 'the high bits are used (half the ids are above 2^52)');
});
