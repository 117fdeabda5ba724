// Writes: PUT of 256-byte values at a fixed concurrency against the leader. Every request writes another key
// (a counter rotating over `keySpace` keys), so no two in-flight requests touch the same key and both stores keep
// a realistic MVCC history. Keel: PUT /v1/kv/<key> {"value"}; etcd: POST /v3/kv/put {key, value} (base64).
import type { BenchCluster, BenchNode } from '../lib/cluster.js';
import { runLoad, type Measurement } from '../lib/load.js';

export const valueBytes = 256;
export const keySpace = 10_000;

export interface StepTimes {
  readonly seconds: number;
  readonly warmupSeconds: number;
}

export async function putLoad(cluster: BenchCluster, leader: BenchNode, connections: number, times: StepTimes): Promise<Measurement> {
  const value = 'v'.repeat(valueBytes);
  const build = (n: number) => cluster.api.put(`bench/put/${n % keySpace}`, value);
  if (times.warmupSeconds > 0) await runLoad({ url: leader.clientUrl, connections, seconds: times.warmupSeconds, build });
  return runLoad({ url: leader.clientUrl, connections, seconds: times.seconds, build });
}
