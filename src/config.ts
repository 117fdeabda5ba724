// cluster.config.json: load, validate, fill in defaults. A bad file is reported as one line naming the field
// (ConfigError), and the CLI exits with code 2.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseNodeTls, parseSecurity } from './config-security.js';
import { parseSpaceConfig, type SpaceConfig } from './space-config.js';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export interface NodeConfig {
  readonly id: string;
  /** host:port of the Raft peer listener. */
  readonly peer: string;
  /** host:port of the HTTP API. */
  readonly client: string;
  /** Absolute (resolved against the config file's folder). */
  readonly dataDir: string;
  /**
   * Test-only dial overrides (fault injection): peer id -> the address THIS node dials instead of that peer's
   * `peer` and/or `client` address (e.g. a TCP proxy per directed node pair). Listening addresses are unchanged.
   */
  readonly dial?: Readonly<Record<string, { readonly peer?: string; readonly client?: string }>>;
  /** This node's own certificate and key, overriding the cluster-wide tls.client / tls.peer ones (absolute paths). */
  readonly tls?: { readonly client?: CertKeyFiles; readonly peer?: CertKeyFiles };
}

export interface CertKeyFiles {
  readonly cert: string;
  readonly key: string;
}

/** TLS for the client (HTTP API) port: `cert`/`key` may be absent when every node entry gives its own. */
export interface ClientTlsConfig {
  readonly cert: string | null;
  readonly key: string | null;
  /** CA bundle that signed the nodes' (and, with requireClientCert, the clients') certificates; null = system roots. */
  readonly ca: string | null;
  readonly requireClientCert: boolean;
}

/** TLS for the Raft peer port: every node both serves and dials, so the CA is required. */
export interface PeerTlsConfig {
  readonly cert: string | null;
  readonly key: string | null;
  readonly ca: string;
  /** Mutual TLS: the listener demands and verifies a client certificate, and dialers present theirs. */
  readonly mutual: boolean;
  /** With mutual TLS: the common name a dialing peer's certificate must have (etcd's --peer-cert-allowed-cn). */
  readonly allowedCn: string | null;
}

export interface TlsConfig {
  readonly client: ClientTlsConfig | null;
  readonly peer: PeerTlsConfig | null;
}

export interface RaftTimings {
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly snapshotEntries: number;
  readonly snapshotKeepEntries: number;
  readonly proposalTimeoutMs: number;
  readonly readTimeoutMs: number;
}

export interface ClusterConfig {
  readonly cluster: string;
  readonly nodes: readonly NodeConfig[];
  readonly raft: RaftTimings;
  readonly log: { readonly level: string };
  /** Client auth options (auth itself is switched on with `keel auth enable`, not here). */
  readonly auth?: { readonly protectMetrics: boolean };
  /** Store quota and automatic compaction (`limits.quotaBytes`, `autoCompaction`; see space-config.ts). */
  readonly space: SpaceConfig;
  /** The file it was read from (absolute), if any. */
  readonly file: string | null;
  /** Test-only: serve GET /v1/debug/applied and record every applied entry for it (also env KEEL_DEBUG=1). */
  readonly debug?: boolean;
  /** TLS for the client and peer ports (absent: plain TCP/HTTP). */
  readonly tls?: TlsConfig;
  /** The cluster secret that authenticates peer traffic (absent: peers are not authenticated). */
  readonly peerSecret?: string;
}

export const defaultRaftTimings: RaftTimings = {
  tickMs: 100,
  electionTicks: 10,
  heartbeatTicks: 1,
  snapshotEntries: 50_000,
  snapshotKeepEntries: 1_000,
  proposalTimeoutMs: 5_000,
  readTimeoutMs: 5_000,
};

const logLevels = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

export function loadClusterConfig(file: string): ClusterConfig {
  const absolute = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(absolute, 'utf8');
  } catch (err) {
    throw new ConfigError(`${file}: cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${file}: not valid JSON (${(err as Error).message})`);
  }
  return parseClusterConfig(raw, absolute);
}

export function parseClusterConfig(raw: unknown, file: string | null): ClusterConfig {
  const where = file ?? 'config';
  const root = object(raw, where, '(root)');
  allowOnly(root, ['cluster', 'nodes', 'raft', 'log', 'limits', 'auth', 'tls', 'peerSecret', 'peerSecretFile', 'debug', 'autoCompaction'], where, '');
  const cluster = root.cluster === undefined ? 'keel' : text(root.cluster, where, 'cluster', /^[A-Za-z0-9._-]{1,64}$/);
  if (!Array.isArray(root.nodes) || root.nodes.length === 0) {
    throw new ConfigError(`${where}: field "nodes" must be a non-empty array`);
  }
  const baseDir = file === null ? process.cwd() : path.dirname(file);
  const nodes = root.nodes.map((value, i) => parseNode(value, `nodes[${i}]`, where, baseDir));
  for (const field of ['id', 'peer', 'client', 'dataDir'] as const) {
    const seen = new Set<string>();
    nodes.forEach((node, i) => {
      if (seen.has(node[field])) throw new ConfigError(`${where}: field "nodes[${i}].${field}" duplicates another node's`);
      seen.add(node[field]);
    });
  }
  const raft = parseRaft(root.raft, where);
  const log = root.log === undefined ? { level: 'info' } : parseLog(root.log, where);
  if (root.debug !== undefined && typeof root.debug !== 'boolean') throw new ConfigError(`${where}: field "debug" must be a boolean`);
  const debug = root.debug === true || process.env.KEEL_DEBUG === '1';
  const security = parseSecurity(root, nodes, where, baseDir);
  const space = parseSpaceConfig(root.limits, root.autoCompaction, where);
  return {
    cluster,
    nodes,
    raft,
    log,
    space,
    ...(root.auth !== undefined && { auth: parseAuth(root.auth, where) }),
    file,
    ...security,
    ...(debug ? { debug } : {}),
  };
}

/** `auth.protectMetrics`: while auth is enabled, GET /metrics needs a valid token too (default false). */
function parseAuth(value: unknown, where: string): { protectMetrics: boolean } {
  const auth = object(value, where, 'auth');
  allowOnly(auth, ['protectMetrics'], where, 'auth.');
  if (auth.protectMetrics !== undefined && typeof auth.protectMetrics !== 'boolean') {
    throw new ConfigError(`${where}: field "auth.protectMetrics" must be true or false`);
  }
  return { protectMetrics: auth.protectMetrics === true };
}

function parseNode(value: unknown, at: string, where: string, baseDir: string): NodeConfig {
  const node = object(value, where, at);
  allowOnly(node, ['id', 'peer', 'client', 'dataDir', 'dial', 'tls'], where, `${at}.`);
  const tls = node.tls === undefined ? undefined : parseNodeTls(node.tls, where, `${at}.tls`, baseDir);
  return {
    id: text(node.id, where, `${at}.id`, /^[A-Za-z0-9._-]{1,64}$/),
    peer: hostPort(node.peer, where, `${at}.peer`),
    client: hostPort(node.client, where, `${at}.client`),
    dataDir: path.resolve(baseDir, text(node.dataDir, where, `${at}.dataDir`, /^.+$/)),
    ...(node.dial === undefined ? {} : { dial: parseDial(node.dial, where, `${at}.dial`) }),
    ...(tls === undefined ? {} : { tls }),
  };
}

function parseDial(value: unknown, where: string, at: string): NonNullable<NodeConfig['dial']> {
  const dial: Record<string, { peer?: string; client?: string }> = {};
  for (const [peerId, entry] of Object.entries(object(value, where, at))) {
    const fields = object(entry, where, `${at}.${peerId}`);
    allowOnly(fields, ['peer', 'client'], where, `${at}.${peerId}.`);
    dial[peerId] = {
      ...(fields.peer === undefined ? {} : { peer: hostPort(fields.peer, where, `${at}.${peerId}.peer`) }),
      ...(fields.client === undefined ? {} : { client: hostPort(fields.client, where, `${at}.${peerId}.client`) }),
    };
  }
  return dial;
}

function parseRaft(value: unknown, where: string): RaftTimings {
  if (value === undefined) return defaultRaftTimings;
  const raft = object(value, where, 'raft');
  allowOnly(raft, Object.keys(defaultRaftTimings), where, 'raft.');
  const out: Record<string, number> = { ...defaultRaftTimings };
  for (const [key, v] of Object.entries(raft)) {
    if (!Number.isSafeInteger(v) || (v as number) < (key === 'snapshotKeepEntries' ? 0 : 1)) {
      throw new ConfigError(`${where}: field "raft.${key}" must be a positive integer`);
    }
    out[key] = v as number;
  }
  const timings = out as unknown as RaftTimings;
  if (timings.electionTicks <= timings.heartbeatTicks) {
    throw new ConfigError(`${where}: field "raft.electionTicks" must exceed raft.heartbeatTicks`);
  }
  return timings;
}

function parseLog(value: unknown, where: string): { level: string } {
  const log = object(value, where, 'log');
  allowOnly(log, ['level'], where, 'log.');
  if (log.level === undefined) return { level: 'info' };
  if (typeof log.level !== 'string' || !logLevels.includes(log.level)) {
    throw new ConfigError(`${where}: field "log.level" must be one of ${logLevels.join(', ')}`);
  }
  return { level: log.level };
}

function object(value: unknown, where: string, at: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(`${where}: field "${at}" must be an object`);
  }
  return value as Record<string, unknown>;
}

function allowOnly(value: Record<string, unknown>, keys: readonly string[], where: string, prefix: string): void {
  for (const key of Object.keys(value)) {
    if (!keys.includes(key)) throw new ConfigError(`${where}: unknown field "${prefix}${key}"`);
  }
}

function text(value: unknown, where: string, at: string, pattern: RegExp): string {
  if (typeof value !== 'string' || !pattern.test(value)) {
    throw new ConfigError(`${where}: field "${at}" must be a string matching ${pattern}`);
  }
  return value;
}

function hostPort(value: unknown, where: string, at: string): string {
  const s = text(value, where, at, /^.+:\d+$/);
  const port = Number(s.slice(s.lastIndexOf(':') + 1));
  // Port 0 would bind an ephemeral port that no peer or client could know from this file.
  if (port < 1 || port > 65535) throw new ConfigError(`${where}: field "${at}" has a port outside 1..65535`);
  return s;
}

export function splitHostPort(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(':');
  return { host: address.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(address.slice(at + 1)) };
}
