// Operations wiring of one node (issue 8, backup and space), kept out of node.ts: the store quota and its
// NOSPACE alarm (store/space-quota.ts), periodic automatic compaction on the leader, online defrag, the backup
// stream, and their metrics.
import path from 'node:path';
import { Gauge } from 'prom-client';
import type { DefragResult, NodeMetrics, OperationsBackend } from './api/index.js';
import type { ClusterConfig, NodeConfig } from './config.js';
import { extensionNames } from './lease/index.js';
import type { RaftDriver } from './raft/io/index.js';
import { encodeCommand, SpaceQuota, type KvStore } from './store/index.js';
import { isKeelError } from './util/errors.js';
import type { Logger } from './util/logger.js';
import { directorySize } from './util/fs.js';

type Propose = (command: Uint8Array) => Promise<unknown>;

/** Extension commands allowed under the NOSPACE alarm: they free space or keep what exists alive. */
const allowedUnderAlarm = [
  extensionNames.leaseKeepalive,
  extensionNames.leaseRevoke,
  extensionNames.serviceDeregister,
  extensionNames.serviceStatus,
  extensionNames.lockRelease,
  extensionNames.lockGrant,
];

export interface NodeOperations {
  readonly space: SpaceQuota;
  readonly backend: OperationsBackend;
  /** `propose` that refuses commands adding data while the NOSPACE alarm is raised (507 NO_SPACE). */
  guard(propose: Propose): Propose;
  statusFields(): { alarms: readonly string[]; storeSizeBytes: number; quotaBytes: number };
  /** Measures the store, starts the space check and automatic compaction loops. */
  start(proposeLocal: Propose): Promise<void>;
  close(): void;
}

export function createOperations(deps: {
  cluster: ClusterConfig;
  node: NodeConfig;
  store: KvStore;
  driver: RaftDriver;
  metrics: NodeMetrics;
  logger: Logger;
}): NodeOperations {
  const { cluster, store, driver } = deps;
  const logger = deps.logger.child({ component: 'operations' });
  const storeDir = path.join(deps.node.dataDir, 'store');
  const space = new SpaceQuota({
    quotaBytes: cluster.space.quotaBytes,
    checkIntervalMs: cluster.space.checkIntervalMs,
    measure: () => directorySize(storeDir),
    allowedExtensions: allowedUnderAlarm,
    logger,
  });
  registerSpaceMetrics(deps.metrics, space);
  let compactionTimer: NodeJS.Timeout | null = null;
  const defrag = async (): Promise<DefragResult> => {
    // Catch up with the leader first: right after `keel compact` (README's recovery from NOSPACE) a follower may
    // not have applied the compaction yet, and its defrag would give nothing back. Best effort: a node that cannot
    // reach a leader (no read index within readTimeoutMs) defrags what it has.
    await driver.readIndex().catch((err: unknown) => logger.warn({ err }, 'defrag: could not catch up with the leader first'));
    const beforeBytes = await space.check();
    const started = performance.now();
    await store.defrag();
    const durationMs = Math.round(performance.now() - started);
    const afterBytes = await space.check();
    logger.info({ beforeBytes, afterBytes, durationMs }, 'defragmented the store');
    return { beforeBytes, afterBytes, durationMs, alarms: space.alarms() };
  };
  return {
    space,
    backend: {
      readBarrier: async () => {
        await driver.readIndex();
      },
      openBackup: () => store.openBackup(cluster.cluster),
      defrag,
    },
    guard: (propose) => (command) => {
      try {
        space.guard(command);
      } catch (err) {
        return Promise.reject(err as Error);
      }
      return propose(command);
    },
    statusFields: () => ({ alarms: space.alarms(), storeSizeBytes: space.storeSizeBytes, quotaBytes: space.quotaBytes }),
    start: async (proposeLocal) => {
      await space.start();
      const { retainRevisions, intervalMs } = cluster.space.autoCompaction;
      if (retainRevisions === 0) return;
      compactionTimer = setInterval(() => void autoCompact(store, driver, retainRevisions, proposeLocal, logger), intervalMs);
      compactionTimer.unref();
    },
    close: () => {
      space.close();
      if (compactionTimer !== null) clearInterval(compactionTimer);
    },
  };
}

/** On the leader: compacts history older than the last `retain` revisions, if there is any. */
async function autoCompact(store: KvStore, driver: RaftDriver, retain: number, proposeLocal: Propose, logger: Logger): Promise<void> {
  if (driver.role !== 'leader') return;
  const revision = store.revision() - retain;
  if (revision <= store.compactRevision()) return;
  try {
    await proposeLocal(encodeCommand({ requestId: '', cmd: { kind: 'compact', revision } }));
    logger.info({ revision, retain }, 'automatic compaction');
  } catch (err) {
    // A lost leadership or a concurrent manual compaction: the next round tries again.
    logger.warn({ err, revision, expected: isKeelError(err) }, 'automatic compaction not applied');
  }
}

function registerSpaceMetrics(metrics: NodeMetrics, space: SpaceQuota): void {
  const registers = [metrics.registry];
  new Gauge({ name: 'keel_space_alarm', help: '1 while the NOSPACE alarm is raised (store over limits.quotaBytes).', registers, collect() { this.set(space.isAlarmed() ? 1 : 0); } });
  new Gauge({ name: 'keel_store_size_bytes', help: 'Bytes of the store directory at the last measurement.', registers, collect() { this.set(space.storeSizeBytes); } });
  new Gauge({ name: 'keel_store_quota_bytes', help: 'The store quota (limits.quotaBytes).', registers, collect() { this.set(space.quotaBytes); } });
}
