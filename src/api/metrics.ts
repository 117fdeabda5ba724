// Prometheus metrics for one node, in a registry of its own (no global default registry: many nodes may run
// in one process in tests). Gauges are read at scrape time from the node's status; counters and histograms are
// fed by events (fsync durations, peer round trips, HTTP requests).
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

export interface MetricsSource {
  /** Point-in-time readings collected on every scrape. */
  readings(): MetricsReadings;
}

export interface MetricsReadings {
  readonly term: number;
  readonly isLeader: boolean;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly leaderChanges: number;
  readonly proposalsCommitted: number;
  readonly proposalsFailed: number;
  readonly snapshotsTaken: number;
  readonly snapshotsExported: number;
  readonly snapshotsInstalled: number;
  readonly revision: number;
  readonly keys: number;
  readonly dbSizeBytes: number;
  readonly watchers: number;
  readonly leases: number;
}

export class NodeMetrics {
  readonly registry = new Registry();
  readonly fsyncSeconds: Histogram;
  readonly peerRttSeconds: Histogram<'peer'>;
  readonly httpSeconds: Histogram<'method' | 'route' | 'status'>;

  constructor(source: MetricsSource, labels: { node: string; cluster: string }) {
    this.registry.setDefaultLabels(labels);
    const reg = [this.registry];
    const gauge = (name: string, help: string, read: (r: MetricsReadings) => number): void => {
      new Gauge({ name, help, registers: reg, collect() { this.set(read(source.readings())); } });
    };
    // Monotonic totals kept by the driver are exposed as counters through a collect-time delta.
    const counter = (name: string, help: string, read: (r: MetricsReadings) => number): void => {
      let last = 0;
      new Counter({
        name, help, registers: reg,
        collect() {
          const now = read(source.readings());
          if (now > last) this.inc(now - last);
          last = now;
        },
      });
    };
    gauge('keel_raft_term', 'Current Raft term.', (r) => r.term);
    gauge('keel_raft_is_leader', '1 if this node is the leader.', (r) => (r.isLeader ? 1 : 0));
    gauge('keel_raft_commit_index', 'Raft commit index.', (r) => r.commitIndex);
    gauge('keel_raft_applied_index', 'Last index applied to the state machine.', (r) => r.appliedIndex);
    gauge('keel_raft_apply_lag', 'Committed entries not yet applied.', (r) => r.commitIndex - r.appliedIndex);
    counter('keel_raft_leader_changes_total', 'Leader changes seen by this node.', (r) => r.leaderChanges);
    counter('keel_raft_proposals_committed_total', 'Proposals applied.', (r) => r.proposalsCommitted);
    counter('keel_raft_proposals_failed_total', 'Proposals refused, overwritten or timed out.', (r) => r.proposalsFailed);
    counter('keel_raft_snapshots_taken_total', 'Snapshots taken (the store synced and the log compacted).', (r) => r.snapshotsTaken);
    counter('keel_raft_snapshots_exported_total', 'Snapshots whose data was exported for a follower.', (r) => r.snapshotsExported);
    counter('keel_raft_snapshots_installed_total', 'Snapshots received from a leader and installed.', (r) => r.snapshotsInstalled);
    gauge('keel_store_revision', 'Current store revision.', (r) => r.revision);
    gauge('keel_store_keys', 'Live keys in the store.', (r) => r.keys);
    gauge('keel_store_db_size_bytes', 'Approximate size of the data directory.', (r) => r.dbSizeBytes);
    gauge('keel_watchers', 'Open watch streams.', (r) => r.watchers);
    gauge('keel_leases', 'Live leases.', (r) => r.leases);
    this.fsyncSeconds = new Histogram({
      name: 'keel_raft_fsync_duration_seconds', help: 'Duration of synced Raft log writes.', registers: reg,
      buckets: [0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1],
    });
    this.peerRttSeconds = new Histogram({
      name: 'keel_raft_peer_rtt_seconds', help: 'Heartbeat round-trip time to each peer.', labelNames: ['peer'],
      registers: reg, buckets: [0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    });
    this.httpSeconds = new Histogram({
      name: 'keel_http_request_duration_seconds', help: 'HTTP request durations.',
      labelNames: ['method', 'route', 'status'], registers: reg,
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
    });
  }

  async render(): Promise<string> {
    return this.registry.metrics();
  }

  contentType(): string {
    return this.registry.contentType;
  }
}
