// Helpers for the membership tests (test/cluster/membership*.test.ts): a background writer that records which
// writes were acknowledged, member changes through the HTTP API, and waits.
import type { HttpClient } from '../../src/client.js';
import { isKeelError } from '../../src/util/errors.js';
import type { TestCluster, TestNode } from './cluster.js';
import { sleep } from './cluster.js';
import { call, type Answer } from './http.js';

export interface Writer {
  /** Stops writing; resolves with the keys whose write was acknowledged (2xx) and the count of failed ones. */
  stop(): Promise<{ acked: string[]; failed: number }>;
  acked(): number;
}

/** Writes `prefix<n>` keys one after another on `concurrency` workers until stopped (at the latest in teardown). */
export function startWriter(t: { teardown(fn: () => Promise<unknown>): void }, client: HttpClient, prefix: string, concurrency = 2): Writer {
  let running = true;
  let next = 0;
  const acked: string[] = [];
  let failed = 0;
  const worker = async (): Promise<void> => {
    while (running) {
      const key = `${prefix}${String(next++).padStart(6, '0')}`;
      try {
        await client.call('PUT', `/v1/kv/${key}`, { value: `v-${key}` }, { retryMs: 20_000, timeoutMs: 10_000 });
        acked.push(key);
      } catch (err) {
        if (!isKeelError(err)) throw err;
        failed++;
        await sleep(50);
      }
    }
  };
  const workers = Array.from({ length: concurrency }, worker);
  const stop = async (): Promise<{ acked: string[]; failed: number }> => {
    running = false;
    await Promise.all(workers);
    return { acked, failed };
  };
  t.teardown(stop);
  return { acked: () => acked.length, stop };
}

export async function addMember(address: string, node: TestNode): Promise<Answer> {
  return call(address, 'POST', '/v1/members', { body: { id: node.id, peerUrl: node.peer, clientUrl: node.client } });
}

/** Promotes `id` once the leader considers it caught up; returns the 409 answers seen before that. */
export async function promoteWhenCaughtUp(address: string, id: string, timeoutMs: number): Promise<Answer[]> {
  const refused: Answer[] = [];
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const answer = await call(address, 'POST', `/v1/members/${id}/promote`, { body: {} });
    if (answer.status === 200) return refused;
    if (answer.status !== 409 && answer.status !== 503) throw new Error(`promote ${id}: ${answer.status} ${answer.text}`);
    refused.push(answer);
    if (performance.now() > deadline) throw new Error(`promote ${id} still refused after ${timeoutMs} ms: ${answer.text}`);
    await sleep(200);
  }
}

/** Every key under `prefix` as one node sees it (linearizable read). */
export async function keysUnder(address: string, prefix: string): Promise<Set<string>> {
  const answer = await call(address, 'GET', `/v1/kv/${prefix}?prefix=true&keysOnly=true`);
  if (answer.status !== 200) throw new Error(`list ${prefix}: ${answer.status} ${answer.text}`);
  return new Set((answer.json.kvs as { key: string }[]).map((kv) => kv.key));
}

/** The member ids one node lists; a 503 (e.g. it is installing a snapshot just after catching up) is retried for 10 s. */
export async function memberIds(cluster: TestCluster, id: string): Promise<string[]> {
  const deadline = performance.now() + 10_000;
  for (;;) {
    const answer = await call(cluster.node(id).client, 'GET', '/v1/members');
    if (answer.status === 200) return (answer.json.members as { id: string }[]).map((m) => m.id).sort();
    if (answer.status !== 503 || performance.now() > deadline) throw new Error(`members from ${id}: ${answer.status} ${answer.text}`);
    await sleep(100);
  }
}
