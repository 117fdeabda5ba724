// Goal: locks and elections at apply time and in the lock service (API.md "Locks and elections", RELIABILITY.md
// S16/L7): a free lock is granted at once with fence 1; waiters queue FIFO (seq = revision); the fence grows with
// every new holder and is kept while the lock is free; a revoke that takes the holder's key frees the lock in the
// same revision; promotion is the leader's lock.grant and never goes to a waiter whose lease already expired;
// release/cancel/proclaim answer 404/409 as documented; fenced puts pass only with the current holder's token; an
// acquire that waits too long gets 408 and its waiter is gone; the waiter count is bounded.
// Method: a LeaseLayer over a real KvStore (temp dir), a manual clock and a fake Raft view (leader); commands are
// applied as consecutive entries; the lock service runs its promotion loop against that log.
import t from 'tap';
import { lockKeys } from '../../../src/lease/index.js';
import type { ApplyFailure, Command, KvStore } from '../../../src/store/index.js';
import { eventually, openLayer, sleep } from './layer-helpers.js';

const ext = (name: string, body: unknown): Command => ({ kind: 'ext', name, body });
const grantLease = (id: number, ttl = 10): Command => ext('lease.grant', { id, ttl });
const acquire = (name: string, lease: number, extra: Record<string, unknown> = {}): Command =>
  ext('lock.acquire', { kind: 'locks', name, lease, value: '', ...extra });
const release = (name: string, key: string, cancel = false): Command => ext('lock.release', { kind: 'locks', name, key, cancel });
const lockGrant = (name: string, key: string): Command => ext('lock.grant', { kind: 'locks', name, key });
const revoke = (...ids: number[]): Command => ext('lease.revoke', { ids, reason: 'revoke' });
const fencedPut = (key: string, value: string, lock: string, token: number): Command => ({
  kind: 'put',
  key,
  value,
  lease: 0,
  prevKv: false,
  fence: { lock, token },
});

function code(result: unknown): string | null {
  return typeof result === 'object' && result !== null && 'error' in result ? (result as ApplyFailure).error.code : null;
}

async function holderOf(store: KvStore, name: string): Promise<{ key: string | null; fence: number } | null> {
  const kv = (await store.get(lockKeys.holder('locks', name))).kv;
  return kv === null ? null : (JSON.parse(kv.value) as { key: string | null; fence: number });
}

interface Acquired {
  key: string;
  held: boolean;
  fence: number;
  revision: number;
}

void t.test('apply: grant at once when free, FIFO waiters, fence grows and survives a free lock', async (t) => {
  const { store, log, raft } = await openLayer(t);
  raft.setLeader(false); // a follower: no promotion loop interferes with the commands applied by hand
  for (const id of [1, 2, 3]) await log.ok(grantLease(id));
  const a = await log.ok<Acquired>(acquire('m', 1));
  t.same({ held: a.held, fence: a.fence }, { held: true, fence: 1 }, 'free lock: held at once, fence 1');
  t.equal(a.key, lockKeys.waiter('locks', 'm', a.revision), 'the key is the waiter key with seq = revision');
  const b = await log.ok<Acquired>(acquire('m', 2));
  const c = await log.ok<Acquired>(acquire('m', 3));
  t.same([b.held, c.held], [false, false], 'the others wait');
  t.ok(b.key < c.key, 'key order is arrival order');
  const again = await log.ok<Acquired>(acquire('m', 2));
  t.equal(again.key, b.key, 'the same lease acquiring again gets its own key back');

  t.equal(code(await log.run(release('m', b.key))), 'CONFLICT', 'a waiter cannot release: 409');
  t.equal(code(await log.run(release('m', lockKeys.waiter('locks', 'm', 999)))), 'NOT_FOUND', 'an unknown key: 404');
  t.equal(code(await log.run(release('m', 'some/other/key'))), 'NOT_FOUND', 'a key of no lock: 404');
  await log.ok(release('m', a.key));
  t.same(await holderOf(store, 'm'), { key: null, fence: 1 }, 'released: free, the fence is kept');
  t.equal(code(await log.run(release('m', a.key))), 'NOT_FOUND', 'releasing twice: 404');

  const wrong = await log.ok<{ granted: boolean }>(lockGrant('m', c.key));
  t.equal(wrong.granted, false, 'lock.grant to a waiter that is not first does nothing');
  const right = await log.ok<{ granted: boolean; fence: number }>(lockGrant('m', b.key));
  t.same({ granted: right.granted, fence: right.fence }, { granted: true, fence: 2 }, 'the first waiter gets fence 2');
  const twice = await log.ok<{ granted: boolean }>(lockGrant('m', b.key));
  t.equal(twice.granted, false, 'a held lock is not granted again');
});

void t.test('apply: a revoked holder frees the lock in the same revision; fenced puts follow the holder', async (t) => {
  const { store, log, raft } = await openLayer(t);
  raft.setLeader(false);
  await log.ok(grantLease(1));
  await log.ok(grantLease(2));
  const a = await log.ok<Acquired>(acquire('m', 1));
  const b = await log.ok<Acquired>(acquire('m', 2));
  t.ok((await log.ok(fencedPut('data', 'x', 'm', a.fence))).revision > 0, 'the holder fence writes');
  t.equal(code(await log.run(fencedPut('data', 'y', 'm', a.fence + 1))), 'FENCE_REJECTED', 'a future token is rejected');
  t.equal(code(await log.run(fencedPut('data', 'y', 'other', 1))), 'FENCE_REJECTED', 'a lock nobody holds rejects');
  const before = store.revision();
  await log.ok(revoke(1));
  t.equal(store.revision(), before + 1, 'one revision');
  t.same(await holderOf(store, 'm'), { key: null, fence: 1 }, 'the holder went with its lease, in that revision');
  t.equal((await store.get(a.key)).kv, null, 'its waiter key is gone');
  t.equal(code(await log.run(fencedPut('data', 'late', 'm', a.fence))), 'FENCE_REJECTED', 'the ex-holder is fenced out');
  await log.ok(lockGrant('m', b.key));
  t.equal((await holderOf(store, 'm'))?.fence, 2);
  t.equal(code(await log.run(fencedPut('data', 'late', 'm', a.fence))), 'FENCE_REJECTED', 'still fenced out under the new holder');
  t.ok((await log.ok(fencedPut('data', 'b', 'm', 2))).revision > 0, 'the new holder writes with fence 2');
  t.equal((await store.get('data')).kv?.value, 'b');
});

void t.test('apply: acquire with ttl grants its own lease; release revokes it; bad input refused', async (t) => {
  const { store, log, layer, raft } = await openLayer(t);
  raft.setLeader(false);
  const a = await log.ok<Acquired & { lease: number }>(acquire('m', 55, { ttl: 5 }));
  t.ok(a.held);
  t.ok(layer.lessor.status(55), 'the lease exists');
  t.equal(code(await log.run(acquire('m', 56))), 'LEASE_NOT_FOUND', 'an unknown lease cannot acquire');
  t.equal(code(await log.run(acquire('m', 55, { ttl: 5 }))), 'CONFLICT', 'a ttl acquire with a taken lease id: 409');
  await log.ok(release('m', a.key));
  t.equal(layer.lessor.status(55), null, 'releasing revoked the lease the acquire made');
  t.same(await holderOf(store, 'm'), { key: null, fence: 1 });
  for (const bad of [
    ext('lock.acquire', { kind: 'locks', name: 'bad name', lease: 1, value: '' }),
    ext('lock.acquire', { kind: 'queues', name: 'm', lease: 1, value: '' }),
    ext('lock.acquire', { kind: 'locks', name: 'm', lease: 0, value: '' }),
    ext('lock.release', { kind: 'locks', name: 'm', key: a.key }),
  ]) {
    t.ok(['INVALID_ARGUMENT', 'NOT_FOUND'].includes(code(await log.run(bad)) ?? ''), `refused: ${JSON.stringify(bad)}`);
  }
});

void t.test('apply: elections proclaim only by the leader', async (t) => {
  const { store, log, raft } = await openLayer(t);
  raft.setLeader(false);
  await log.ok(grantLease(1));
  await log.ok(grantLease(2));
  const a = await log.ok<Acquired>(ext('lock.acquire', { kind: 'elections', name: 'e', lease: 1, value: 'alice' }));
  const b = await log.ok<Acquired>(ext('lock.acquire', { kind: 'elections', name: 'e', lease: 2, value: 'bob' }));
  await log.ok(ext('election.proclaim', { name: 'e', key: a.key, value: 'alice-2' }));
  const leader = JSON.parse((await store.get(lockKeys.holder('elections', 'e'))).kv!.value) as { value: string; fence: number };
  t.same({ value: leader.value, fence: leader.fence }, { value: 'alice-2', fence: 1 });
  t.equal(code(await log.run(ext('election.proclaim', { name: 'e', key: b.key, value: 'x' }))), 'CONFLICT', 'a candidate: 409');
  t.equal(
    code(await log.run(ext('election.proclaim', { name: 'e', key: lockKeys.waiter('elections', 'e', 9999), value: 'x' }))),
    'NOT_FOUND',
    'unknown: 404',
  );
});

void t.test('service: FIFO hand-over by the leader; an expired first waiter is never promoted', async (t) => {
  // The expiry loop is driven by hand here, so the promotion decision is seen on its own.
  const { layer, clock } = await openLayer(t, { expiryIntervalMs: 3_600_000 });
  const locks = layer.locks;
  const a = await locks.acquire('locks', 'm', { ttl: 10, requestId: 'a' });
  t.equal(a.fence, 1);
  const { id: bLease } = await layer.lessor.grant(1);
  const { id: cLease } = await layer.lessor.grant(30);
  const bOutcome = locks.acquire('locks', 'm', { lease: bLease, waitMs: 60_000, requestId: 'b' }).then(
    () => 'held',
    (err: { code?: string }) => err.code,
  );
  await sleep(20);
  const cWaiting = locks.acquire('locks', 'm', { lease: cLease, waitMs: 60_000, requestId: 'c' });
  await sleep(20);
  t.same((await locks.state('locks', 'm')).waiters, 2, 'two waiters, b first');
  clock.advance(1500); // b's lease (ttl 1) is past its deadline on the leader's clock; c's and a's are alive
  await locks.release('locks', 'm', a.key, 'rel-a');
  await sleep(100);
  const free = await locks.state('locks', 'm');
  t.same({ holder: free.holder, waiters: free.waiters }, { holder: null, waiters: 2 }, 'b is first but expired: not promoted, and c waits its turn');
  layer.lessor['expireDue'](); // the leader's expiry round: revokes b's lease, which removes b and touches the lock
  const c = await cWaiting;
  t.equal(await bOutcome, 'LEASE_NOT_FOUND', 'the expired waiter was revoked, never promoted');
  t.equal(c.fence, 2, 'the next live waiter holds it with fence 2');
  const state = await locks.state('locks', 'm');
  t.same({ key: state.holder?.key, fence: state.holder?.fence, waiters: state.waiters }, { key: c.key, fence: 2, waiters: 0 });
});

void t.test('service: waitMs reached → 408 WAIT_TIMEOUT and the waiter is withdrawn', async (t) => {
  const { layer } = await openLayer(t);
  const locks = layer.locks;
  const a = await locks.acquire('locks', 'm', { ttl: 10, requestId: 'a' });
  const started = performance.now();
  await t.rejects(locks.acquire('locks', 'm', { ttl: 10, waitMs: 150, requestId: 'b' }), { code: 'WAIT_TIMEOUT' });
  t.ok(performance.now() - started >= 140, 'it waited about waitMs');
  t.ok(await eventually(async () => (await locks.state('locks', 'm')).waiters === 0), 'the waiter is gone');
  t.equal(layer.lessor.list().length, 1, "and so is the lease the timed-out acquire made (only the holder's is left)");
  await locks.release('locks', 'm', a.key, 'rel');
  const next = await locks.acquire('locks', 'm', { ttl: 10, waitMs: 0, requestId: 'c' });
  t.equal(next.fence, 2, 'a free lock with no waiters is granted directly, fence 2');
});

void t.test('service: the waiters of one lock are bounded', async (t) => {
  const { log, layer, raft } = await openLayer(t);
  raft.setLeader(false);
  await log.ok(grantLease(1));
  await log.ok(acquire('m', 1));
  for (let i = 0; i < 999; i++) await log.ok(ext('lock.acquire', { kind: 'locks', name: 'm', lease: 100 + i, ttl: 60, value: '' }));
  const over = await log.run(ext('lock.acquire', { kind: 'locks', name: 'm', lease: 5000, ttl: 60, value: '' }));
  t.equal(code(over), 'UNAVAILABLE', 'the 1001st waiter is refused with 503');
  t.equal(layer.lessor.status(5000), null, 'and its lease was not created');
});
