// Single-key reads of a 256-byte value at a fixed concurrency against the leader: linearizable (Keel: ReadIndex;
// etcd: its default, also ReadIndex) or serializable (local). Keel: GET /v1/kv/<key>?consistency=...;
// etcd: POST /v3/kv/range {key, serializable}.
import type { BenchCluster, BenchNode } from '../lib/cluster.js';
import { sendOk } from '../lib/http.js';
import { runLoad, type Measurement } from '../lib/load.js';
import { valueBytes, type StepTimes } from './put.js';

export async function readLoad(
  cluster: BenchCluster,
  leader: BenchNode,
  connections: number,
  serializable: boolean,
  times: StepTimes,
): Promise<Measurement> {
  const key = 'bench/read';
  await sendOk(leader.clientUrl, cluster.api.put(key, 'r'.repeat(valueBytes)));
  const request = cluster.api.read(key, serializable);
  const build = () => request;
  if (times.warmupSeconds > 0) await runLoad({ url: leader.clientUrl, connections, seconds: times.warmupSeconds, build });
  return runLoad({ url: leader.clientUrl, connections, seconds: times.seconds, build });
}
