// The chaos cluster: real `keel start` processes (test/helpers/cluster.ts) with the debug endpoint on, and every
// node-to-node byte (Raft peer traffic AND forwarded HTTP) routed through a fault proxy per directed pair, set in
// each node's config as a test-only `dial` override.
import { createCluster, type TestCluster } from '../helpers/cluster.js';
import type { Prng } from '../../src/util/prng.js';
import { FaultProxy } from './proxy.js';
import type { ProxyMap } from './nemesis.js';

export interface ChaosCluster {
  readonly cluster: TestCluster;
  readonly proxies: ProxyMap;
  close(): Promise<void>;
}

export const chaosRaft = {
  tickMs: 50,
  electionTicks: 10,
  heartbeatTicks: 1,
  proposalTimeoutMs: 2000,
  readTimeoutMs: 2000,
  snapshotEntries: 4000,
  snapshotKeepEntries: 500,
} as const;

export const electionTimeoutMs = chaosRaft.tickMs * chaosRaft.electionTicks;

export async function startChaosCluster(nodes: number, prng: Prng, logLevel = 'info'): Promise<ChaosCluster> {
  const proxies = new Map<string, FaultProxy[]>();
  const cluster = await createCluster(
    {
      nodes,
      raft: { ...chaosRaft },
      logLevel,
      debug: true,
      dial: async (members) => {
        const dial: Record<string, Record<string, { peer: string; client: string }>> = {};
        const nodePorts = new Set(members.flatMap((m) => [m.peer, m.client].map((a) => Number(a.slice(a.lastIndexOf(':') + 1)))));
        for (const from of members) {
          dial[from.id] = {};
          for (const to of members) {
            if (to.id === from.id) continue;
            const peer = new FaultProxy(`${from.id}->${to.id}:peer`, to.peer, prng);
            const client = new FaultProxy(`${from.id}->${to.id}:client`, to.client, prng);
            await peer.listen(nodePorts);
            await client.listen(nodePorts);
            proxies.set(`${from.id}->${to.id}`, [peer, client]);
            dial[from.id]![to.id] = { peer: peer.address, client: client.address };
          }
        }
        return dial;
      },
    },
    'keel-chaos-',
  );
  for (const node of cluster.nodes) cluster.start(node.id);
  return {
    cluster,
    proxies,
    close: async () => {
      await cluster.destroy();
      for (const list of proxies.values()) for (const proxy of list) await proxy.close();
    },
  };
}
