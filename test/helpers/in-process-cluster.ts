// Several real nodes in one process: the real core, LevelDB log, KvStore and driver, connected by the in-memory
// transport (which still runs every message through the wire codec). For tests and the group-commit benchmark.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bootstrapEntry, raftConfig, RaftNode } from '../../src/raft/index.js';
import { LevelLogStorage, MemoryNetwork, MemoryTransport, RaftDriver } from '../../src/raft/io/index.js';
import { KvStore } from '../../src/store/index.js';
import { systemClock } from '../../src/util/clock.js';
import { silentLogger } from '../../src/util/logger.js';
import { SeededPrng } from '../../src/util/prng.js';

export interface InProcessNode {
  readonly id: string;
  readonly storage: LevelLogStorage;
  readonly store: KvStore;
  readonly driver: RaftDriver;
  readonly transport: MemoryTransport;
}

export interface InProcessCluster {
  readonly nodes: InProcessNode[];
  readonly dir: string;
  leader(): InProcessNode | null;
  waitForLeader(timeoutMs: number): Promise<InProcessNode>;
  close(): Promise<void>;
}

export async function startInProcessCluster(options: { nodes?: number; tickMs?: number; snapshotEntries?: number; commitHoldMs?: number } = {}): Promise<InProcessCluster> {
  const count = options.nodes ?? 3;
  const ids = Array.from({ length: count }, (_, i) => `n${i + 1}`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'keel-inproc-'));
  const network = new MemoryNetwork();
  const nodes: InProcessNode[] = [];
  for (const [i, id] of ids.entries()) {
    const storage = await LevelLogStorage.open(path.join(dir, id, 'raft'));
    const { entry, hardState } = bootstrapEntry(ids);
    await storage.save({ hardState, entries: [entry], snapshot: null }, true);
    const store = await KvStore.open(path.join(dir, id, 'store'));
    const node = new RaftNode(raftConfig({ id, storage, prng: new SeededPrng(1000 + i), logger: silentLogger, applied: store.appliedIndex() }));
    const transport = new MemoryTransport(network, {
      id,
      cluster: 'inproc',
      listen: `memory:${i + 1}`,
      peers: new Map(ids.filter((p) => p !== id).map((p) => [p, `memory:${ids.indexOf(p) + 1}`])),
    });
    const driver = new RaftDriver({
      node, storage, transport, stateMachine: store, clock: systemClock, logger: silentLogger,
      tickMs: options.tickMs ?? 20, snapshotEntries: options.snapshotEntries ?? 100_000, snapshotKeepEntries: 1000,
      proposalTimeoutMs: 10_000, readTimeoutMs: 5_000,
      ...(options.commitHoldMs !== undefined && { commitHoldMs: options.commitHoldMs }),
      onFatal: (err) => {
        throw err;
      },
    });
    nodes.push({ id, storage, store, driver, transport });
  }
  for (const node of nodes) await node.transport.start();
  for (const node of nodes) node.driver.start();
  const leader = (): InProcessNode | null => nodes.find((n) => n.driver.status().role === 'leader') ?? null;
  return {
    nodes,
    dir,
    leader,
    async waitForLeader(timeoutMs) {
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        const found = leader();
        if (found !== null && found.driver.status().commitIndex > 1) return found;
        if (performance.now() > deadline) throw new Error('no leader elected');
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    },
    async close() {
      for (const node of nodes) await node.driver.close();
      for (const node of nodes) {
        await node.transport.close();
        await node.storage.close();
        await node.store.close();
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
