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
        const revision = await grantRevision(http, node, options.lock, body, id);
        return { type: 'ok', value: { fence: body.fence, ...(revision === undefined ? {} : { revision }) }, ...(revision === undefined ? {} : { revision }) };
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
        const revision = (answer.body as { revision: number }).revision;
        return { type: 'ok', value: { revision }, revision };
      });
      if (released.type === 'info') process += 10_000;
    }
  };
  await Promise.all(Array.from({ length: options.processes }, (_, i) => client(options.firstProcess + i)));
}

/**
 * The revision of the grant: the modRevision of the lock's holder record while it still names this holder (the
 * acquire answer's X-Keel-Revision is only an upper bound: the node's revision when it answered). Undefined when
 * the lock already moved on.
 */
async function grantRevision(http: ChaosHttp, node: string, lock: string, held: { key: string; fence: number }, id: string): Promise<number | undefined> {
  const answer = await http.send(node, 'GET', `/v1/kv/_keel/locks/${lock}/holder`, undefined, `${id}:holder`).catch(() => null);
  if (answer?.status !== 200) return undefined;
  const kv = (answer.body as { kv: { value: string; modRevision: number } }).kv;
  const record = JSON.parse(kv.value) as { key: string | null; fence: number };
  return record.key === held.key && record.fence === held.fence ? kv.modRevision : undefined;
}

/** The counter's final value (linearizable read after the heal). */
export async function readCounter(http: ChaosHttp, node: string, key: string): Promise<number | null> {
  const answer = await http.send(node, 'GET', `/v1/kv/${key}`, undefined, `chaos-final-${key}`, 10_000);
  if (answer.status === 404) return null;
  if (answer.status !== 200) throw new Error(`final counter read answered ${answer.status}`);
  return Number((answer.body as { kv: { value: string } }).kv.value);
}
