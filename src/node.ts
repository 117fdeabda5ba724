// createNode(config, nodeId, deps): the one place where everything is wired — the durable Raft log, the core,
// the peer transport, the state machine, the driver, metrics and the HTTP API. bin/keel.ts calls listen.
import { randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApi, Proposer, type ApiDeps, type LeaderView } from './api/index.js';
import { NodeMetrics } from './api/index.js';
import type { NodeStatus } from './api/index.js';
import type { ClusterConfig, NodeConfig } from './config.js';
import { splitHostPort } from './config.js';
import { bootstrapEntry, raftConfig, RaftNode, type StateMachine } from './raft/index.js';
import { LevelLogStorage, RaftDriver, TcpTransport } from './raft/io/index.js';
import { HealthChecker, LeaseLayer, registryExtensions, type RaftView } from './lease/index.js';
import { KvStore } from './store/index.js';
import { authExtension, AuthState } from './auth/index.js';
import type { Clock } from './util/clock.js';
import type { Logger } from './util/logger.js';
import { SeededPrng } from './util/prng.js';
import { directorySize } from './util/fs.js';
import { nodeSecurity, registerSecurityMetrics } from './node-security.js';
import { createOperations } from './node-ops.js';
import {
  encodeMemberContext, fetchJoinMembers, loadAppliedMembers, MemberDirectory, memberStatuses, readJoinMembers,
  removedMarker, wireMembership,
} from './members.js';

export const version = '0.1.0';

export interface NodeDeps {
  readonly clock: Clock;
  readonly logger: Logger;
  /** The node hit an unrecoverable fault (failed assertion, storage error): the process should exit. */
  readonly onFatal: (err: unknown) => void;
  /** `--join`: client endpoints of the running cluster; a node with an empty data dir then never bootstraps. */
  readonly join?: readonly string[];
  /** This node was removed from the cluster (it should stop). Default: onFatal. */
  readonly onRemoved?: (reason: string) => void;
}

export interface KeelNode {
  readonly id: string;
  readonly config: NodeConfig;
  readonly api: FastifyInstance;
  readonly driver: RaftDriver;
  readonly store: KvStore;
  readonly leases: LeaseLayer;
  status(): Promise<NodeStatus>;
  /** Graceful: stop accepting, hand over leadership, finish in-flight work, close the databases. */
  close(): Promise<void>;
}

export async function createNode(cluster: ClusterConfig, nodeId: string, deps: NodeDeps): Promise<KeelNode> {
  const config = cluster.nodes.find((n) => n.id === nodeId);
  if (config === undefined) throw new Error(`node "${nodeId}" is not in the config`);
  const logger = deps.logger.child({ node: nodeId });
  const security = nodeSecurity(cluster, config);
  const leases = new LeaseLayer({ clock: deps.clock, logger });
  // Auth state is read from the store, so the cache is made once the store is open; applied auth commands and
  // snapshot restores drop it (on every node).
  let authState: AuthState | null = null;
  const authChanged = (): void => authState?.invalidate();
  // `dial` (test-only) routes this node's connections to a peer through another address, e.g. a fault proxy.
  const directory = new MemberDirectory(cluster.nodes, {
    ...(config.dial !== undefined && { dial: config.dial }),
    ...(security.forward.tls !== undefined && { clientTls: security.forward.tls }),
  });
  const { storage, store } = await openDurableState(cluster, config, logger, leases, { authChanged, directory, join: deps.join ?? [] });
  authState = new AuthState(store, () => deps.clock.wallMs());
  const raft = newRaftNode(cluster, nodeId, storage, store.appliedIndex(), logger);
  const transport = new TcpTransport({
    id: nodeId,
    cluster: cluster.cluster,
    listen: config.peer,
    peers: directory.peers(nodeId, raft.status().conf),
    logger: logger.child({ component: 'transport' }),
    ...security.transport,
  });
  const driver = newDriver(cluster, { raft, storage, transport, stateMachine: leaseAwareStateMachine(store, leases, authChanged) }, deps, logger);
  const startedAtMs = deps.clock.nowMs();
  let dbSizeBytes = 0;
  const status = async (): Promise<NodeStatus> => {
    dbSizeBytes = await directorySize(config.dataDir);
    return { ...nodeStatus(cluster, nodeId, driver, store, transport, directory, dbSizeBytes, deps.clock.nowMs() - startedAtMs), ...ops.statusFields() };
  };
  const metrics = nodeMetrics(cluster, nodeId, driver, store, () => dbSizeBytes, () => leases.lessor.size());
  const ops = createOperations({ cluster, node: config, store, driver, metrics, logger });
  const proposeLocal = ops.guard(observedPropose(driver, leases));
  const view = leaderView(directory, driver, proposeLocal);
  const electionTimeoutMs = cluster.raft.electionTicks * cluster.raft.tickMs;
  const proposer = new Proposer(view, { leaderWaitMs: 2 * electionTimeoutMs, forwardTimeoutMs: cluster.raft.proposalTimeoutMs + 1_000, ...security.forward });
  await leases.start({ store, raft: raftView(driver), propose: (command) => proposer.propose(command) });
  const { membership, removalWatch } = wireMembership({
    self: nodeId, dataDir: config.dataDir, driver, transport, store, directory, logger, electionTimeoutMs,
    leaderWaitMs: 2 * electionTimeoutMs, waitForLeaderChange: (ms) => view.waitForLeaderChange(ms),
    onRemoved: deps.onRemoved ?? ((reason) => deps.onFatal(new Error(`removed from the cluster: ${reason}`))),
    peerAuth: security.peerAuth,
  });
  registerSecurityMetrics(metrics.registry, security.peerAuth, () => transport.stats());
  await ops.start(proposeLocal);
  const api = await buildApi({
    ...apiDeps(driver, store, proposer, proposeLocal, leases, metrics, status, logger),
    ...security.api,
    auth: authDeps(authState, proposer, driver, store, deps.clock, cluster),
    operations: ops.backend,
    members: membership,
  });
  // Health checks run on the leader only: started and stopped with this node's role.
  const healthChecker = new HealthChecker({ store, proposeLocal, clock: deps.clock, logger });
  driver.on('softState', (softState: { role: string }) => healthChecker.setLeader(softState.role === 'leader'));

  await transport.start();
  driver.start();
  removalWatch.start();

  let closing: Promise<void> | null = null;
  const close = async (): Promise<void> => {
    closing ??= (async () => {
      await api.close();
      ops.close();
      await removalWatch.close();
      await healthChecker.close();
      await leases.close();
      await proposer.close();
      await driver.close();
      await transport.close();
      await storage.close();
      await store.close();
    })();
    return closing;
  };
  return { id: nodeId, config, api, driver, store, leases, status, close };
}

function newDriver(
  cluster: ClusterConfig,
  parts: { raft: RaftNode; storage: LevelLogStorage; transport: TcpTransport; stateMachine: StateMachine },
  deps: NodeDeps,
  logger: Logger,
): RaftDriver {
  return new RaftDriver({
    node: parts.raft,
    storage: parts.storage,
    transport: parts.transport,
    stateMachine: parts.stateMachine,
    clock: deps.clock,
    logger: logger.child({ component: 'driver' }),
    tickMs: cluster.raft.tickMs,
    snapshotEntries: cluster.raft.snapshotEntries,
    snapshotKeepEntries: cluster.raft.snapshotKeepEntries,
    proposalTimeoutMs: cluster.raft.proposalTimeoutMs,
    readTimeoutMs: cluster.raft.readTimeoutMs,
    onFatal: deps.onFatal,
  });
}

function newRaftNode(cluster: ClusterConfig, nodeId: string, storage: LevelLogStorage, applied: number, logger: Logger): RaftNode {
  return new RaftNode(
    raftConfig({
      id: nodeId,
      storage,
      prng: new SeededPrng(randomInt(2 ** 31)),
      logger: logger.child({ component: 'raft' }),
      applied,
      electionTicks: cluster.raft.electionTicks,
      heartbeatTicks: cluster.raft.heartbeatTicks,
    }),
  );
}

function apiDeps(
  driver: RaftDriver,
  store: KvStore,
  proposer: Proposer,
  proposeLocal: (command: Uint8Array) => Promise<unknown>,
  leases: LeaseLayer,
  metrics: NodeMetrics,
  status: () => Promise<NodeStatus>,
  logger: Logger,
): ApiDeps {
  return {
    kv: {
      store,
      proposer,
      readBarrier: async () => {
        await driver.readIndex();
      },
      proposeLocal,
    },
    services: {
      store,
      proposer,
      readBarrier: async () => {
        await driver.readIndex();
      },
      proposeLocal,
      leases: leases.lessor,
    },
    leases: {
      lessor: leases.lessor,
      locks: leases.locks,
      elections: leases.elections,
      store,
      readBarrier: async () => {
        await driver.readIndex();
      },
    },
    logger: logger.child({ component: 'api' }),
    metrics,
    cluster: {
      status,
      isHealthy: () => {
        const s = driver.status();
        return s.leader !== null && s.appliedIndex >= s.commitIndex;
      },
      revision: () => store.revision(),
    },
  };
}

function authDeps(state: AuthState, proposer: Proposer, driver: RaftDriver, store: KvStore, clock: Clock, cluster: ClusterConfig): ApiDeps['auth'] & object {
  return {
    peerSecret: cluster.peerSecret !== undefined,
    state,
    proposer,
    readBarrier: async () => {
      await driver.readIndex();
    },
    wallMs: () => clock.wallMs(),
    leaseKeys: async (lease) => {
      await driver.readIndex();
      return (await store.leaseKeys(lease)).keys;
    },
    protectMetrics: cluster.auth?.protectMetrics ?? false,
  };
}

/** The store as the driver's state machine; a snapshot restore also reloads the lease deadlines. */
function leaseAwareStateMachine(store: KvStore, leases: LeaseLayer, authChanged: () => void): StateMachine {
  return {
    appliedIndex: () => store.appliedIndex(),
    apply: (entries, answer) => store.apply(entries, answer),
    snapshot: () => store.snapshot(),
    persist: () => store.persist(),
    restore: async (snapshot) => {
      await store.restore(snapshot);
      authChanged();
      // The lease records changed wholesale: every lease gets now + ttl (late, never early).
      await leases.reload();
    },
  };
}

/**
 * Proposes on this node (leader). Every command proposed here (its own and those followers forward) is shown to
 * the lessor, so its expiry loop never revokes a lease whose keepalive is already in the log.
 */
function observedPropose(driver: RaftDriver, leases: LeaseLayer): (command: Uint8Array) => Promise<unknown> {
  return (command) => {
    const outcome = driver.propose(command);
    leases.lessor.observeProposal(command, outcome);
    return outcome;
  };
}

function raftView(driver: RaftDriver): RaftView {
  return {
    isLeader: () => driver.role === 'leader',
    appliedIndex: () => driver.appliedIndex,
    lastIndex: () => driver.lastIndex,
    onApplied: (listener) => {
      const onEvent = (index: number): void => listener(index);
      driver.on('applied', onEvent);
      return () => driver.off('applied', onEvent);
    },
    onLeaderChange: (listener) => {
      const onEvent = (): void => listener();
      driver.on('softState', onEvent);
      return () => driver.off('softState', onEvent);
    },
  };
}

function leaderView(
  directory: MemberDirectory,
  driver: RaftDriver,
  proposeLocal: (command: Uint8Array) => Promise<unknown>,
): LeaderView {
  return {
    isLeader: () => driver.role === 'leader',
    leaderClientAddress: () => {
      const leader = driver.leader;
      return leader === null ? null : (directory.dialClient(leader) ?? null);
    },
    proposeLocal,
    waitForLeaderChange: (ms) =>
      new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          driver.off('softState', done);
          resolve();
        };
        const timer = setTimeout(done, ms);
        driver.on('softState', done);
      }),
  };
}

/** Opens the Raft log and the store, bootstrapping a founding member on first start. */
async function openDurableState(
  cluster: ClusterConfig,
  config: NodeConfig,
  logger: Logger,
  leases: LeaseLayer,
  wiring: { authChanged: () => void; directory: MemberDirectory; join: readonly string[] },
): Promise<{ storage: LevelLogStorage; store: KvStore }> {
  const { authChanged, directory, join } = wiring;
  if (existsSync(removedMarker(config.dataDir))) {
    throw new Error(`node "${config.id}" was removed from its cluster (${removedMarker(config.dataDir)}); wipe its dataDir and start it with --join to add it again`);
  }
  await mkdir(config.dataDir, { recursive: true });
  const storage = await LevelLogStorage.open(path.join(config.dataDir, 'raft'));
  const fresh = storage.lastIndex() === 0 && storage.initialState().hardState.term === 0;
  const joined = await readJoinMembers(config.dataDir);
  if (fresh && join.length > 0) {
    // A new member: it takes the membership from the cluster and waits for the leader; it never bootstraps.
    directory.setJoined(await fetchJoinMembers(config.dataDir, join, logger, directory));
  } else if (joined !== null) {
    directory.setJoined(joined);
  } else if (fresh) {
    const voters = cluster.nodes.map((n) => n.id);
    // The founding members' addresses ride in the bootstrap entry, so members added later learn them from the log.
    const { entry, hardState } = bootstrapEntry(voters, encodeMemberContext(cluster.nodes));
    await storage.save({ hardState, entries: [entry], snapshot: null }, true);
    logger.info({ voters }, 'bootstrapped a new cluster member');
  }
  // Every node's store is opened with the same extensions and hooks: apply must be deterministic.
  const store = await KvStore.open(path.join(config.dataDir, 'store'), {
    extensions: [...leases.extensions, ...registryExtensions(leases.lessor), authExtension(authChanged)],
    hooks: leases.hooks,
    logger: logger.child({ component: 'store' }),
    ...(cluster.debug === true ? { recordApplied: true } : {}),
  });
  const snapshotIndex = storage.snapshotMetadata().index;
  if (store.appliedIndex() < snapshotIndex) {
    // A crash after a received snapshot was persisted but before the store was restored from it. A snapshot taken
    // here without data is never ahead of the store (the store is synced before it is recorded): if one is, the
    // store lost synced writes, and replaying the log cannot rebuild what its compacted entries did.
    if (!storage.snapshotExported()) {
      throw new Error(
        `the store in ${config.dataDir} has applied up to ${store.appliedIndex()}, behind the Raft log's snapshot at ${snapshotIndex} ` +
          'which has no data: the store lost synced writes. Remove this member and add it back with an empty data dir.',
      );
    }
    await store.restore(storage.snapshot());
  }
  await loadAppliedMembers(store, directory);
  return { storage, store };
}

function nodeMetrics(
  cluster: ClusterConfig,
  nodeId: string,
  driver: RaftDriver,
  store: KvStore,
  dbSizeBytes: () => number,
  leaseCount: () => number,
): NodeMetrics {
  const metrics = new NodeMetrics(
    {
      readings: () => {
        const raftStatus = driver.status();
        return {
          term: raftStatus.term,
          isLeader: raftStatus.role === 'leader',
          commitIndex: raftStatus.commitIndex,
          appliedIndex: raftStatus.appliedIndex,
          leaderChanges: driver.counters.leaderChanges,
          proposalsCommitted: driver.counters.proposalsCommitted,
          proposalsFailed: driver.counters.proposalsFailed,
          snapshotsTaken: driver.counters.snapshotsTaken,
          snapshotsExported: driver.counters.snapshotsExported,
          snapshotsInstalled: driver.counters.snapshotsInstalled,
          revision: store.revision(),
          keys: store.keyCount(),
          dbSizeBytes: dbSizeBytes(),
          watchers: store.watchHub.size(),
          leases: leaseCount(),
        };
      },
    },
    { node: nodeId, cluster: cluster.cluster },
  );
  driver.on('persisted', (event: { sync: boolean; durationMs: number }) => {
    if (event.sync) metrics.fsyncSeconds.observe(event.durationMs / 1000);
  });
  driver.on('peerRtt', (event: { peer: string; ms: number }) => metrics.peerRttSeconds.observe({ peer: event.peer }, event.ms / 1000));
  return metrics;
}

function nodeStatus(
  cluster: ClusterConfig,
  nodeId: string,
  driver: RaftDriver,
  store: KvStore,
  transport: TcpTransport,
  directory: MemberDirectory,
  dbSizeBytes: number,
  uptimeMs: number,
): NodeStatus {
  const raft = driver.status();
  const members = memberStatuses(nodeId, raft, directory, (id) => transport.isConnected(id));
  const self = members.find((m) => m.id === nodeId);
  const ownRole = raft.role === 'precandidate' ? 'candidate' : raft.role;
  return {
    id: nodeId,
    name: nodeId,
    cluster: cluster.cluster,
    version,
    role: self?.role ?? (ownRole === 'leader' ? 'leader' : raft.conf.voters.includes(nodeId) ? ownRole : 'learner'),
    leader: raft.leader,
    term: raft.term,
    commitIndex: raft.commitIndex,
    appliedIndex: raft.appliedIndex,
    revision: store.revision(),
    compactRevision: store.compactRevision(),
    dbSizeBytes,
    uptimeMs: Math.round(uptimeMs),
    members,
  };
}

export { splitHostPort };
