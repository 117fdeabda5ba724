// Register workload (S8-S10): several logical clients run get / put / CAS (a txn) / delete / multi-key txns over a
// handful of keys, every written value unique in the run, each request to one node (sticky, moved at random and
// after errors). Histories follow history.ts.
import type { Prng } from '../../../src/util/prng.js';
import type { CasArgs, DeleteArgs, ReadArgs, TxnArgs, WriteArgs } from '../history.js';
import { type ChaosHttp, classifyAnswer, type Completion, errorCodeOf, type Recorder } from './recorder.js';

export interface RegisterOptions {
  readonly processes: number;
  readonly keys: number;
  /** First logical process id (ids are unique across workloads). */
  readonly firstProcess: number;
  readonly prefix: string;
  /** Keys of the multi-key txns: separate from the single-key registers, which the WGL checker takes per key. */
  readonly txnPrefix: string;
}

interface KvJson { value: string; modRevision: number }

async function read(http: ChaosHttp, node: string, key: string, requestId: string): Promise<Completion> {
  const answer = await http.send(node, 'GET', `/v1/kv/${key}`, undefined, requestId);
  const revision = answer.revision;
  if (answer.status === 200) {
    const kv = (answer.body as { kv: KvJson }).kv;
    return { type: 'ok', value: { value: kv.value, modRevision: kv.modRevision }, ...(revision === undefined ? {} : { revision }) };
  }
  if (answer.status === 404 && (answer.body as { error?: { code?: string } }).error?.code === 'KEY_NOT_FOUND') {
    return { type: 'ok', value: { value: null, modRevision: 0 }, ...(revision === undefined ? {} : { revision }) };
  }
  // A failed read changed nothing: fail, whatever the cause.
  return { type: 'fail', error: errorCodeOf(answer) };
}

async function write(http: ChaosHttp, node: string, args: WriteArgs, requestId: string): Promise<Completion> {
  const answer = await http.send(node, 'PUT', `/v1/kv/${args.key}`, { value: args.value }, requestId);
  if (answer.status !== 200) return classifyAnswer(answer);
  const revision = (answer.body as { revision: number }).revision;
  return { type: 'ok', value: { revision }, revision };
}

async function remove(http: ChaosHttp, node: string, args: DeleteArgs, requestId: string): Promise<Completion> {
  const answer = await http.send(node, 'DELETE', `/v1/kv/${args.key}`, undefined, requestId);
  if (answer.status !== 200) return classifyAnswer(answer);
  const body = answer.body as { revision: number; deleted: number };
  return { type: 'ok', value: { deleted: body.deleted, revision: body.revision }, revision: body.revision };
}

async function cas(http: ChaosHttp, node: string, args: CasArgs, requestId: string): Promise<Completion> {
  const compare = args.expect === null
    ? { key: args.key, target: 'version', op: '==', value: 0 }
    : { key: args.key, target: 'value', op: '==', value: args.expect };
  const answer = await http.send(node, 'POST', '/v1/txn', { compare: [compare], success: [{ put: { key: args.key, value: args.value } }], failure: [] }, requestId);
  if (answer.status !== 200) return classifyAnswer(answer);
  const body = answer.body as { succeeded: boolean; revision: number };
  return { type: 'ok', value: { succeeded: body.succeeded, revision: body.revision }, revision: body.revision };
}

async function txn(http: ChaosHttp, node: string, args: TxnArgs, requestId: string): Promise<Completion> {
  const success = [...args.reads.map((key) => ({ get: { key } })), ...args.writes.map((w) => ({ put: { key: w.key, value: w.value } }))];
  const answer = await http.send(node, 'POST', '/v1/txn', { compare: [], success, failure: [] }, requestId);
  if (answer.status !== 200) return classifyAnswer(answer);
  const body = answer.body as { revision: number; results: { get?: { kvs: KvJson[] } }[] };
  const reads = args.reads.map((key, i) => {
    const kv = body.results[i]?.get?.kvs[0];
    return { key, value: kv?.value ?? null, modRevision: kv?.modRevision ?? 0 };
  });
  return { type: 'ok', value: { reads, revision: body.revision }, revision: body.revision };
}

/** Runs the register clients until `stop` is aborted. */
export async function runRegisters(http: ChaosHttp, recorder: Recorder, prng: Prng, options: RegisterOptions, stop: AbortSignal): Promise<void> {
  const keys = Array.from({ length: options.keys }, (_, i) => `${options.prefix}${i}`);
  const txnKeys = Array.from({ length: 3 }, (_, i) => `${options.txnPrefix}${i}`);
  const nodes = http.endpoints.map((e) => e.id);
  let seq = 0;
  const client = async (first: number): Promise<void> => {
    // After an info op the logical process is "crashed" (its op may still take effect): it goes on as a new one.
    let process = first;
    let node = nodes[prng.int(0, nodes.length - 1)]!;
    const seen = new Map<string, string | null>();
    while (!stop.aborted) {
      const key = keys[prng.int(0, keys.length - 1)]!;
      const dice = prng.next();
      const value = `v${process}-${++seq}`;
      let done: Completion;
      if (dice < 0.4) {
        const args: ReadArgs = { key };
        done = await recorder.op(process, 'read', args, node, 'r', (id) => read(http, node, key, id));
        if (done.type === 'ok') seen.set(key, (done.value as { value: string | null }).value);
      } else if (dice < 0.65) {
        const args: WriteArgs = { key, value };
        done = await recorder.op(process, 'write', args, node, 'w', (id) => write(http, node, args, id));
      } else if (dice < 0.8) {
        const args: CasArgs = { key, expect: seen.get(key) ?? null, value };
        done = await recorder.op(process, 'cas', args, node, 'c', (id) => cas(http, node, args, id));
      } else if (dice < 0.85) {
        const args: DeleteArgs = { key };
        done = await recorder.op(process, 'delete', args, node, 'd', (id) => remove(http, node, args, id));
      } else {
        const [first, other] = [txnKeys[prng.int(0, txnKeys.length - 1)]!, txnKeys[prng.int(0, txnKeys.length - 1)]!];
        const args: TxnArgs = { reads: [first, other].filter((k, i, all) => all.indexOf(k) === i), writes: [{ key: other, value }] };
        done = await recorder.op(process, 'txn', args, node, 't', (id) => txn(http, node, args, id));
      }
      if (done.type === 'info') process += 10_000;
      if (done.type !== 'ok' || prng.next() < 0.05) node = nodes[prng.int(0, nodes.length - 1)]!;
      if (done.type !== 'ok') await new Promise((resolve) => setTimeout(resolve, done.error === 'ECONNREFUSED' ? 100 : 20));
    }
  };
  await Promise.all(Array.from({ length: options.processes }, (_, i) => client(options.firstProcess + i)));
}
