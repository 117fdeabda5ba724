// Lease probes (S15, L6): a client grants a lease, attaches a probe key, keeps it alive for a while, then stops
// and probes the key until it is gone. The checker bounds when the key may disappear: never before ttl after the
// last keepalive (S15), and not long after ttl + one election timeout (L6).
import type { Prng } from '../../../src/util/prng.js';
import { type ChaosHttp, classifyAnswer, errorCodeOf, type Recorder, sleep } from './recorder.js';

export interface LeaseOptions {
  readonly processes: number;
  readonly firstProcess: number;
  /** Process i uses ttls[i % length]: short leases expire often, long ones outlive a full-cluster restart. */
  readonly ttls: readonly number[];
  readonly prefix: string;
}

export async function runLeaseProbes(http: ChaosHttp, recorder: Recorder, prng: Prng, options: LeaseOptions, stop: AbortSignal): Promise<void> {
  const nodes = http.endpoints.map((e) => e.id);
  const pick = (): string => nodes[prng.int(0, nodes.length - 1)]!;
  let seq = 0;
  const client = async (first: number, ttl: number): Promise<void> => {
    let process = first;
    while (!stop.aborted) {
      let lease: number | null = null;
      const node = pick();
      const granted = await recorder.op(process, 'grant', { ttl }, node, 'lg', async (id) => {
        const answer = await http.send(node, 'POST', '/v1/leases', { ttl }, id);
        if (answer.status !== 201 && answer.status !== 200) return classifyAnswer(answer);
        lease = (answer.body as { id: number }).id;
        return { type: 'ok', value: { lease, revision: answer.revision ?? 0 }, ...(answer.revision === undefined ? {} : { revision: answer.revision }) };
      });
      if (granted.type === 'info') process += 10_000;
      const id = lease as number | null;
      if (id === null) {
        await sleep(100);
        continue;
      }
      const key = `${options.prefix}${process}-${++seq}`;
      const attached = await recorder.op(process, 'attach', { key, lease: id }, node, 'lp', async (rid) => {
        const answer = await http.send(node, 'PUT', `/v1/kv/${key}`, { value: 'probe', lease: id }, rid);
        if (answer.status !== 200) return classifyAnswer(answer);
        return { type: 'ok', value: { revision: (answer.body as { revision: number }).revision } };
      });
      if (attached.type === 'info') process += 10_000;
      if (attached.type !== 'ok') continue;
      const keepUntil = performance.now() + prng.int(1, 3) * ttl * 1000;
      const giveUpAt = keepUntil + 20_000;
      let lastKeepalive = performance.now();
      for (;;) {
        const now = performance.now();
        const probeNode = pick();
        if (now < keepUntil && now - lastKeepalive > (ttl * 1000) / 3) {
          lastKeepalive = now;
          const kept = await recorder.op(process, 'keepalive', { lease: id }, probeNode, 'lk', async (rid) => {
            const answer = await http.send(probeNode, 'POST', `/v1/leases/${id}/keepalive`, undefined, rid, 1000);
            if (answer.status !== 200) return classifyAnswer(answer);
            return { type: 'ok', value: { ttl: (answer.body as { ttl: number }).ttl } };
          });
          if (kept.type === 'info') process += 10_000;
        }
        const probe = await recorder.op(process, 'probe', { key, lease: id }, probeNode, 'lq', async (rid) => {
          const answer = await http.send(probeNode, 'GET', `/v1/kv/${key}`, undefined, rid);
          if (answer.status === 200) return { type: 'ok', value: { present: true, revision: answer.revision ?? 0 } };
          if (answer.status === 404) return { type: 'ok', value: { present: false, revision: answer.revision ?? 0 } };
          return { type: 'fail', error: errorCodeOf(answer) };
        });
        if (probe.type === 'ok' && !(probe.value as { present: boolean }).present) break;
        if (performance.now() > giveUpAt || (stop.aborted && performance.now() > keepUntil)) break;
        await sleep(100);
      }
    }
  };
  await Promise.all(Array.from({ length: options.processes }, (_, i) => client(options.firstProcess + i, options.ttls[i % options.ttls.length]!)));
}
