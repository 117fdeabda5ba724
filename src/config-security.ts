// The security part of cluster.config.json: TLS for the client and peer ports, and the cluster secret that
// authenticates peer traffic. Paths are relative to the config file (like dataDir) and are checked to be readable
// when the config is loaded, so a typo is one clear line (exit 2) instead of a node that fails later. The PEM
// contents are read when the node starts (readTlsFiles), never kept in the config object.
import { accessSync, constants as fsConstants, readFileSync } from 'node:fs';
import path from 'node:path';
import {
  ConfigError, type CertKeyFiles, type ClientTlsConfig, type ClusterConfig, type NodeConfig, type PeerTlsConfig,
  type TlsConfig,
} from './config.js';

/** A cluster secret shorter than this is refused: it must not be guessable. */
export const peerSecretCharsMin = 16;

type Raw = Record<string, unknown>;

export function parseSecurity(
  root: Raw,
  nodes: readonly NodeConfig[],
  where: string,
  baseDir: string,
): { tls?: TlsConfig; peerSecret?: string } {
  const out: { tls?: TlsConfig; peerSecret?: string } = {};
  if (root.tls !== undefined) out.tls = parseTls(root.tls, nodes, where, baseDir);
  const secret = parsePeerSecret(root, where, baseDir);
  if (secret !== undefined) out.peerSecret = secret;
  return out;
}

export function parseNodeTls(value: unknown, where: string, at: string, baseDir: string): NonNullable<NodeConfig['tls']> {
  const tls = object(value, where, at);
  allowOnly(tls, ['client', 'peer'], where, `${at}.`);
  const out: { client?: CertKeyFiles; peer?: CertKeyFiles } = {};
  for (const side of ['client', 'peer'] as const) {
    if (tls[side] === undefined) continue;
    const files = object(tls[side], where, `${at}.${side}`);
    allowOnly(files, ['cert', 'key'], where, `${at}.${side}.`);
    out[side] = { cert: file(files.cert, where, `${at}.${side}.cert`, baseDir), key: file(files.key, where, `${at}.${side}.key`, baseDir) };
  }
  return out;
}

function parseTls(value: unknown, nodes: readonly NodeConfig[], where: string, baseDir: string): TlsConfig {
  const tls = object(value, where, 'tls');
  allowOnly(tls, ['client', 'peer'], where, 'tls.');
  let client: ClientTlsConfig | null = null;
  let peer: PeerTlsConfig | null = null;
  if (tls.client !== undefined) {
    const raw = object(tls.client, where, 'tls.client');
    allowOnly(raw, ['cert', 'key', 'ca', 'requireClientCert'], where, 'tls.client.');
    const requireClientCert = flag(raw.requireClientCert, where, 'tls.client.requireClientCert');
    const ca = optionalFile(raw.ca, where, 'tls.client.ca', baseDir);
    if (requireClientCert && ca === null) throw new ConfigError(`${where}: field "tls.client.ca" is required with requireClientCert`);
    client = { ...certKey(raw, where, 'tls.client', baseDir), ca, requireClientCert };
  }
  if (tls.peer !== undefined) {
    const raw = object(tls.peer, where, 'tls.peer');
    allowOnly(raw, ['cert', 'key', 'ca', 'mutual', 'allowedCn'], where, 'tls.peer.');
    const mutual = flag(raw.mutual, where, 'tls.peer.mutual');
    const allowedCn = raw.allowedCn === undefined ? null : raw.allowedCn;
    if (allowedCn !== null && (typeof allowedCn !== 'string' || allowedCn === '')) {
      throw new ConfigError(`${where}: field "tls.peer.allowedCn" must be a non-empty string`);
    }
    // Only a listener that demands a certificate has a common name to check.
    if (allowedCn !== null && !mutual) throw new ConfigError(`${where}: field "tls.peer.allowedCn" needs "tls.peer.mutual": true`);
    peer = { ...certKey(raw, where, 'tls.peer', baseDir), ca: file(raw.ca, where, 'tls.peer.ca', baseDir), mutual, allowedCn };
  }
  // Every node must end up with a certificate and key for each TLS port: its own or the cluster-wide one.
  nodes.forEach((node, i) => {
    for (const side of ['client', 'peer'] as const) {
      const shared = side === 'client' ? client : peer;
      if (shared !== null && node.tls?.[side] === undefined && (shared.cert === null || shared.key === null)) {
        throw new ConfigError(`${where}: field "tls.${side}.cert" (or "nodes[${i}].tls.${side}") is required: node ${node.id} has no certificate`);
      }
    }
  });
  return { client, peer };
}

function certKey(raw: Raw, where: string, at: string, baseDir: string): { cert: string | null; key: string | null } {
  const cert = optionalFile(raw.cert, where, `${at}.cert`, baseDir);
  const key = optionalFile(raw.key, where, `${at}.key`, baseDir);
  if ((cert === null) !== (key === null)) throw new ConfigError(`${where}: field "${at}.${cert === null ? 'cert' : 'key'}" is required with ${at}.${cert === null ? 'key' : 'cert'}`);
  return { cert, key };
}

function parsePeerSecret(root: Raw, where: string, baseDir: string): string | undefined {
  if (root.peerSecret !== undefined && root.peerSecretFile !== undefined) {
    throw new ConfigError(`${where}: field "peerSecretFile" cannot be used together with "peerSecret"`);
  }
  let secret: string;
  let field: string;
  if (root.peerSecret !== undefined) {
    field = 'peerSecret';
    if (typeof root.peerSecret !== 'string') throw new ConfigError(`${where}: field "peerSecret" must be a string`);
    secret = root.peerSecret;
  } else if (root.peerSecretFile !== undefined) {
    field = 'peerSecretFile';
    const absolute = file(root.peerSecretFile, where, field, baseDir);
    secret = readFileSync(absolute, 'utf8').trim();
  } else {
    return undefined;
  }
  if (secret.length < peerSecretCharsMin) {
    throw new ConfigError(`${where}: field "${field}" must hold a secret of at least ${peerSecretCharsMin} characters`);
  }
  return secret;
}

/** A node's effective TLS material (its own cert/key or the cluster-wide ones), read from disk. */
export interface NodeTls {
  readonly client: { cert: Buffer; key: Buffer; ca: Buffer | null; requireClientCert: boolean } | null;
  readonly peer: { cert: Buffer; key: Buffer; ca: Buffer; mutual: boolean; allowedCn: string | null } | null;
}

export function readNodeTls(cluster: ClusterConfig, node: NodeConfig): NodeTls {
  const client = cluster.tls?.client ?? null;
  const peer = cluster.tls?.peer ?? null;
  const pair = (side: 'client' | 'peer', shared: { cert: string | null; key: string | null }): { cert: Buffer; key: Buffer } => {
    const own = node.tls?.[side];
    const cert = own?.cert ?? shared.cert;
    const key = own?.key ?? shared.key;
    if (cert === null || key === null) throw new ConfigError(`node ${node.id} has no tls.${side} certificate`);
    return { cert: readFileSync(cert), key: readFileSync(key) };
  };
  return {
    client: client === null ? null : { ...pair('client', client), ca: client.ca === null ? null : readFileSync(client.ca), requireClientCert: client.requireClientCert },
    peer: peer === null ? null : { ...pair('peer', peer), ca: readFileSync(peer.ca), mutual: peer.mutual, allowedCn: peer.allowedCn },
  };
}

function object(value: unknown, where: string, at: string): Raw {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(`${where}: field "${at}" must be an object`);
  }
  return value as Raw;
}

function allowOnly(value: Raw, keys: readonly string[], where: string, prefix: string): void {
  for (const key of Object.keys(value)) {
    if (!keys.includes(key)) throw new ConfigError(`${where}: unknown field "${prefix}${key}"`);
  }
}

function flag(value: unknown, where: string, at: string): boolean {
  if (value === undefined) return false;
  if (typeof value !== 'boolean') throw new ConfigError(`${where}: field "${at}" must be true or false`);
  return value;
}

function optionalFile(value: unknown, where: string, at: string, baseDir: string): string | null {
  return value === undefined ? null : file(value, where, at, baseDir);
}

/** A readable file's absolute path (relative ones are resolved against the config file's folder). */
function file(value: unknown, where: string, at: string, baseDir: string): string {
  if (typeof value !== 'string' || value === '') throw new ConfigError(`${where}: field "${at}" must be a file path`);
  const absolute = path.resolve(baseDir, value);
  try {
    accessSync(absolute, fsConstants.R_OK);
  } catch (err) {
    throw new ConfigError(`${where}: field "${at}": cannot read ${absolute} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  return absolute;
}
