// A node's security wiring, kept in one place so createNode only spreads it in: TLS material for the client and
// peer ports (read from the files the config names), the cluster-secret authenticator shared by the peer
// transport and the internal HTTP routes, and the metric that counts refused peers.
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import { Counter, type Registry } from 'prom-client';
import type { ClusterConfig, NodeConfig } from './config.js';
import { readNodeTls } from './config-security.js';
import type { ForwardSecurity } from './api/index.js';
import { PeerAuth, type PeerTlsOptions, type TransportStats } from './raft/io/index.js';

export interface NodeSecurity {
  readonly peerAuth: PeerAuth | null;
  /** Spread into TcpTransport's options. */
  readonly transport: { tls?: PeerTlsOptions; auth?: PeerAuth };
  /** Spread into the Proposer's options (the follower -> leader forwarder dials client ports). */
  readonly forward: ForwardSecurity;
  /** Spread into buildApi's deps. */
  readonly api: { https?: HttpsServerOptions; peerAuth?: PeerAuth };
  /** 'https' when the client port speaks TLS. */
  readonly clientScheme: 'http' | 'https';
}

export function nodeSecurity(cluster: ClusterConfig, node: NodeConfig): NodeSecurity {
  const tls = readNodeTls(cluster, node);
  const peerAuth = cluster.peerSecret === undefined ? null : new PeerAuth(cluster.peerSecret, cluster.cluster);
  const transport: NodeSecurity['transport'] = {};
  if (tls.peer !== null) transport.tls = tls.peer;
  if (peerAuth !== null) transport.auth = peerAuth;
  const forward: { -readonly [K in keyof ForwardSecurity]: ForwardSecurity[K] } = {};
  const api: { -readonly [K in keyof NodeSecurity['api']]: NodeSecurity['api'][K] } = {};
  const client = tls.client;
  if (client !== null) {
    api.https = {
      cert: client.cert,
      key: client.key,
      ...(client.ca === null ? {} : { ca: client.ca }),
      requestCert: client.requireClientCert,
      rejectUnauthorized: client.requireClientCert,
    };
    // A node dials other nodes' client ports as a client: with its own certificate when they demand one.
    forward.tls = { ca: client.ca, ...(client.requireClientCert ? { cert: client.cert, key: client.key } : {}) };
  }
  if (peerAuth !== null) {
    api.peerAuth = peerAuth;
    forward.peerAuth = { auth: peerAuth, from: node.id };
  }
  return { peerAuth, transport, forward, api, clientScheme: client === null ? 'http' : 'https' };
}

/**
 * keel_peer_auth_rejections_total{kind="raft"|"internal"}: peers turned away for a missing or wrong proof;
 * keel_peer_connections_rejected_total: inbound peer connections refused for any reason (TLS handshake, proof,
 * wrong cluster, garbage).
 */
export function registerSecurityMetrics(registry: Registry, peerAuth: PeerAuth | null, transportStats: () => TransportStats): void {
  let lastRejected = 0;
  new Counter({
    name: 'keel_peer_connections_rejected_total',
    help: 'Inbound peer connections refused (failed TLS handshake or cluster-secret proof, wrong cluster, garbage).',
    registers: [registry],
    collect() {
      const now = transportStats().connectionsRejected;
      this.inc(now - lastRejected);
      lastRejected = now;
    },
  });
  const last = { raft: 0, internal: 0 };
  new Counter({
    name: 'keel_peer_auth_rejections_total',
    help: 'Peer connections (kind=raft) and internal requests (kind=internal) refused for a missing or wrong cluster-secret proof.',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      for (const kind of ['raft', 'internal'] as const) {
        const now = peerAuth?.rejections[kind] ?? 0;
        this.inc({ kind }, now - last[kind]);
        last[kind] = now;
      }
    },
  });
}
