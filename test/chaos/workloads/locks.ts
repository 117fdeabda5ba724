// Fenced lock counter (S16): clients take one lock, read the counter, sometimes stall past their lease (a
// simulated GC pause: no keepalive), then write counter+1 guarded by their fence and by the modRevision they
// read. A stale holder's write must be refused (412 FENCE_REJECTED); the final counter must equal the number of
// increments that applied (no lost update).
import type { Prng } from '../../../src/util/prng.js';
import { type ChaosHttp, classifyAnswer, type Completion, type Recorder, sleep } from './recorder.js';

export interface LockOptions {
  readonly processes: number;
  readonly firstProcess: number;
  readonly lock: string;
  readonly key: string;
  readonly ttl: number;
}

export async function runLockCounter(http: ChaosHttp, recorder: Recorder, prng: Prng, options: LockOptions, stop: AbortSignal): Promise<void> {
  const nodes = http.endpoints.map((e) => e.id);
  const client = async (first: number): Promise<void> => {
    let process = first;
    while (!stop.aborted) {
      const node = nodes[prng.int(0, nodes.length - 1)]!;
      let holder: { key: string; fence: number } | null = null;
      const acquired = await recorder.op(process, 'acquire', { lock: options.lock }, node, 'la', async (id) => {
        const answer = await http.send(node, 'POST', `/v1/locks/${options.lock}/acquire`, { ttl: options.ttl, waitMs: 3000 }, id, 5000);
        if (answer.status !== 200) return classifyAnswer(answer);
        const body = answer.body as { key: string; fence: number };
        holder = { key: body.key, fence: body.fence };
        return { type: 'ok', value: { fence: body.fence, revision: answer.revision ?? 0 }, ...(answer.revision === undefined ? {} : { revision: answer.revision }) };
      });
      if (acquired.type === 'info') process += 10_000;
      const held = holder as { key: string; fence: number } | null;
      if (held === null) {
        await sleep(50);
        continue;
      }
      const current = await http.send(node, 'GET', `/v1/kv/${options.key}`, undefined, `chaos-lr-${process}-${performance.now()}`).catch(() => null);
      if (current === null || (current.status !== 200 && current.status !== 404)) continue; // the lease will expire
      const kv = current.status === 200 ? (current.body as { kv: { value: string; modRevision: number } }).kv : null;
      const expect = kv === null ? 0 : Number(kv.value);
      // One holder in four stalls past its lease before writing (its fence must then be refused).
      if (prng.next() < 0.25) await sleep(options.ttl * 1000 + 1500);
      const args = { lock: options.lock, fence: held.fence, key: options.key, expect, value: expect + 1 };
      const incr: Completion = await recorder.op(process, 'incr', args, node, 'li', async (id) => {
        const body = { value: String(expect + 1), fence: { lock: options.lock, token: held.fence }, ifModRevision: kv?.modRevision ?? 0 };
        const answer = await http.send(node, 'PUT', `/v1/kv/${options.key}`, body, id);
        if (answer.status !== 200) return classifyAnswer(answer);
        const revision = (answer.body as { revision: number }).revision;
        return { type: 'ok', value: { revision }, revision };
      });
      if (incr.type === 'info') process += 10_000;
      const released = await recorder.op(process, 'release', { lock: options.lock, fence: held.fence }, node, 'lr', async (id) => {
        const answer = await http.send(node, 'POST', `/v1/locks/${options.lock}/release`, { key: held.key }, id);
        if (answer.status !== 200) return classifyAnswer(answer);
        return { type: 'ok', value: {} };
      });
      if (released.type === 'info') process += 10_000;
    }
  };
  await Promise.all(Array.from({ length: options.processes }, (_, i) => client(options.firstProcess + i)));
}

/** The counter's final value (linearizable read after the heal). */
export async function readCounter(http: ChaosHttp, node: string, key: string): Promise<number | null> {
  const answer = await http.send(node, 'GET', `/v1/kv/${key}`, undefined, `chaos-final-${key}`, 10_000);
  if (answer.status === 404) return null;
  if (answer.status !== 200) throw new Error(`final counter read answered ${answer.status}`);
  return Number((answer.body as { kv: { value: string } }).kv.value);
}
