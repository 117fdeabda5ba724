// Leases: grant throughput (Keel: POST /v1/leases {"ttl"}; etcd: POST /v3/lease/grant {"TTL"}) and keepalive
// throughput over a pool of granted leases (Keel: POST /v1/leases/<id>/keepalive; etcd: POST
// /v3/lease/keepalive {"ID"}, one request and one answer per call through the gateway). TTLs are long (one hour)
// so no lease made here expires, and no revoke storm disturbs a later step. A system that does not serve the
// route (Keel's lease API is young) gets a row marked n/a with the answer it gave, instead of failing the run.
import type { BenchCluster, BenchNode } from '../lib/cluster.js';
import { send } from '../lib/http.js';
import { runLoad, type Measurement } from '../lib/load.js';
import type { StepTimes } from './put.js';

const ttlSeconds = 3600;
const keepalivePool = 256;

export function notApplicable(note: string): Measurement {
  return { rps: null, p50Ms: null, p99Ms: null, count: 0, seconds: 0, non2xx: 0, errors: 0, timeouts: 0, note };
}

/** Grants one lease; null with the reason when the route is not served (or refuses). */
async function grantOne(cluster: BenchCluster, leader: BenchNode): Promise<{ id: string } | { absent: string }> {
  const answer = await send(leader.clientUrl, cluster.api.leaseGrant(ttlSeconds));
  if (answer.status < 200 || answer.status > 299) return { absent: `lease grant answered ${answer.status} ${answer.text.slice(0, 120)}` };
  return { id: cluster.api.leaseId(answer.text) };
}

export async function leaseGrantLoad(cluster: BenchCluster, leader: BenchNode, connections: number, times: StepTimes): Promise<Measurement> {
  const probe = await grantOne(cluster, leader);
  if ('absent' in probe) return notApplicable(probe.absent);
  const request = cluster.api.leaseGrant(ttlSeconds);
  const build = () => request;
  if (times.warmupSeconds > 0) await runLoad({ url: leader.clientUrl, connections, seconds: times.warmupSeconds, build });
  return runLoad({ url: leader.clientUrl, connections, seconds: times.seconds, build });
}

export async function leaseKeepaliveLoad(cluster: BenchCluster, leader: BenchNode, connections: number, times: StepTimes): Promise<Measurement> {
  const ids: string[] = [];
  while (ids.length < keepalivePool) {
    const grants = await Promise.all(Array.from({ length: 32 }, () => grantOne(cluster, leader)));
    for (const grant of grants) {
      if ('absent' in grant) return notApplicable(grant.absent);
      ids.push(grant.id);
    }
  }
  const probe = await send(leader.clientUrl, cluster.api.leaseKeepalive(ids[0]!));
  if (probe.status < 200 || probe.status > 299) return notApplicable(`lease keepalive answered ${probe.status} ${probe.text.slice(0, 120)}`);
  const requests = ids.map((id) => cluster.api.leaseKeepalive(id));
  const build = (n: number) => requests[n % requests.length]!;
  if (times.warmupSeconds > 0) await runLoad({ url: leader.clientUrl, connections, seconds: times.warmupSeconds, build });
  return runLoad({ url: leader.clientUrl, connections, seconds: times.seconds, build });
}
