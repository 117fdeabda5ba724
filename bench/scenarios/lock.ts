// Lock hand-off latency (Keel only): client A holds a lock, client B waits in POST /v1/locks/<name>/acquire;
// a sample is the time from A sending POST /v1/locks/<name>/release to B's acquire answering 200 (the lock
// passed through the log twice: the release, then the leader's grant to the first waiter). Then the roles swap.
// Before each release we check (GET /v1/locks/<name>, serializable, on the leader) that B is queued.
import { randomBytes } from 'node:crypto';
import type { BenchNode } from '../lib/cluster.js';
import { send, sendOk, sleep, type HttpRequest } from '../lib/http.js';
import { latencyMeasurement, type Measurement } from '../lib/load.js';
import { notApplicable } from './lease.js';

const json = { 'content-type': 'application/json' };

export async function lockHandoff(leader: BenchNode, handoffs: number): Promise<Measurement> {
  const name = `bench-${randomBytes(4).toString('hex')}`;
  const acquire: HttpRequest = { method: 'POST', path: `/v1/locks/${name}/acquire`, headers: json, body: JSON.stringify({ ttl: 60, waitMs: 10_000 }) };
  const release = (key: string): HttpRequest => ({ method: 'POST', path: `/v1/locks/${name}/release`, headers: json, body: JSON.stringify({ key }) });
  const state: HttpRequest = { method: 'GET', path: `/v1/locks/${name}?consistency=serializable`, headers: {} };

  const first = await send(leader.clientUrl, acquire);
  if (first.status !== 200) return notApplicable(`lock acquire answered ${first.status} ${first.text.slice(0, 120)}`);
  let holder = first.json<{ key: string }>().key;
  const samples: number[] = [];
  const started = performance.now();
  for (let i = 0; i < handoffs; i++) {
    const waiting = sendOk(leader.clientUrl, acquire, 15_000);
    await queued(leader, state);
    const releasedAt = performance.now();
    const released = sendOk(leader.clientUrl, release(holder));
    const next = await waiting;
    samples.push(performance.now() - releasedAt);
    await released;
    holder = next.json<{ key: string }>().key;
  }
  const seconds = (performance.now() - started) / 1000;
  await sendOk(leader.clientUrl, release(holder));
  return latencyMeasurement(samples, seconds);
}

async function queued(leader: BenchNode, state: HttpRequest): Promise<void> {
  const deadline = performance.now() + 5_000;
  for (;;) {
    const answer = await sendOk(leader.clientUrl, state);
    if (answer.json<{ waiters: number }>().waiters >= 1) return;
    if (performance.now() > deadline) throw new Error('the second acquire never showed up as a waiter');
    await sleep(2);
  }
}
