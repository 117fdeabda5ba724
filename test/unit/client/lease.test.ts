// Goal: a client Lease keeps alive every ttl/3 while keepalives succeed; reports its loss exactly once (signal,
// `lost` event, `lost` promise) when a keepalive answers LEASE_NOT_FOUND, or — when the cluster cannot be reached —
// a safety margin before the server could expire it (never later than ttl after the last keepalive sent); and
// close() stops the keepalives without reporting a loss.
// Method: a Lease over a stub HttpClient whose keepalive answer is scripted; real timers with a 1 s TTL.
import t from 'tap';
import type { HttpClient } from '../../../src/client.js';
import { Lease, safetyMarginMs } from '../../../src/client/lease.js';
import { KeelError } from '../../../src/util/errors.js';

type Answer = 'ok' | 'unavailable' | 'gone';

function stub(answer: () => Answer): { http: HttpClient; calls: number[] } {
  const calls: number[] = [];
  const http = {
    async call(_method: string, path: string) {
      calls.push(Date.now());
      const what = answer();
      if (what === 'gone') throw new KeelError('LEASE_NOT_FOUND', `${path}: not found`);
      if (what === 'unavailable') throw new KeelError('UNAVAILABLE', 'cannot reach', { transport: true });
      return { status: 200, body: { id: 7, ttl: 1 }, revision: 1, endpoint: 'stub' };
    },
  } as unknown as HttpClient;
  return { http, calls };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

void t.test('keepalives every ttl/3 keep the lease; close() stops them quietly', async (t) => {
  const { http, calls } = stub(() => 'ok');
  const lease = new Lease(http, { id: 7, ttl: 1 }, Date.now());
  let lostEvents = 0;
  lease.on('lost', () => lostEvents++);
  await sleep(2_600);
  t.ok(calls.length >= 5 && calls.length <= 8, `${calls.length} keepalives in 2.6 s (every ~333 ms)`);
  t.ok(lease.isActive && !lease.signal.aborted, 'still held past 2.5 TTLs');
  await lease.close();
  const after = calls.length;
  await sleep(800);
  t.equal(calls.length, after, 'no keepalive after close()');
  t.equal(lostEvents, 0, 'closing is not a loss');
  t.notOk(lease.signal.aborted);
});

void t.test('LEASE_NOT_FOUND from a keepalive is reported once, at once', async (t) => {
  const { http, calls } = stub(() => 'gone');
  const startedMs = Date.now();
  const lease = new Lease(http, { id: 7, ttl: 1 }, startedMs);
  let lostEvents = 0;
  lease.on('lost', () => lostEvents++);
  const error = await lease.lost;
  t.match(error, { code: 'LEASE_NOT_FOUND' });
  t.ok(Date.now() - startedMs < 700, `lost at the first keepalive (${Date.now() - startedMs} ms)`);
  t.equal(lease.signal.reason, error, 'the signal carries the same error');
  await sleep(700);
  t.equal(lostEvents, 1);
  t.equal(calls.length, 1, 'no keepalive after the loss');
});

void t.test('an unreachable cluster: lost a safety margin before the TTL since the last good keepalive', async (t) => {
  let answer: Answer = 'ok';
  const { http } = stub(() => answer);
  const lease = new Lease(http, { id: 7, ttl: 1 }, Date.now());
  await sleep(400); // one good keepalive at ~333 ms
  answer = 'unavailable';
  const cutMs = Date.now();
  const error = await lease.lost;
  const lostAfterMs = Date.now() - cutMs;
  t.match(error, { code: 'LEASE_NOT_FOUND', details: { local: true } });
  // The last good keepalive was sent at ~333 ms, so the deadline is ~1333 - margin(100) ms after the start.
  // Due at ~833 ms after the cut (1333 - 100 - 400); up to 250 ms of timer lag on a loaded machine is tolerated.
  const dueMs = 1_000 + 333 - safetyMarginMs(1) - 400;
  t.ok(lostAfterMs > 400 && lostAfterMs < dueMs + 250, `declared lost ${lostAfterMs} ms after the cut (due ~${dueMs})`);
  t.notOk(lease.isActive);
});
