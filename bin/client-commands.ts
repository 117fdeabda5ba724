// Client commands of the CLI: they talk to --endpoints (default: the client addresses of ./cluster.config.json)
// and print human text, or JSON with --json. This file holds what they share (the client wrappers, printing,
// argument parsing, Ctrl-C handling) and `keel status`.
import { existsSync, readFileSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import type { NodeStatus } from '../src/api/index.js';
import { HttpClient, type ClientOptions, type ClientTlsOptions } from '../src/client.js';
import { KeelClient } from '../src/keel-client.js';
import { loadClusterConfig } from '../src/config.js';
import { isKeelError } from '../src/util/errors.js';

export interface GlobalOptions {
  endpoints?: string;
  json?: boolean;
  config?: string;
  cacert?: string;
  cert?: string;
  key?: string;
  token?: string;
}

/**
 * The client options of a command: its endpoints, bearer token and TLS. --cacert/--cert/--key (or KEEL_CACERT, KEEL_CERT,
 * KEEL_KEY) name PEM files; without --endpoints the config file's client addresses are used, over https with its
 * tls.client.ca when it sets tls.client.
 */
export function clientOptionsOf(options: GlobalOptions): ClientOptions {
  const endpoints = endpointsOf(options);
  const file = (flag: string | undefined, env: string): Buffer | undefined => {
    const name = flag ?? process.env[env];
    return name === undefined || name === '' ? undefined : readFileSync(name);
  };
  const tls: { -readonly [K in keyof ClientTlsOptions]: ClientTlsOptions[K] } = {};
  let isTls = false;
  if (options.endpoints === undefined) {
    const clientTls = loadClusterConfig(options.config ?? 'cluster.config.json').tls?.client ?? null;
    if (clientTls !== null) {
      isTls = true;
      if (clientTls.ca !== null) tls.ca = readFileSync(clientTls.ca);
    }
  }
  const ca = file(options.cacert, 'KEEL_CACERT');
  const cert = file(options.cert, 'KEEL_CERT');
  const key = file(options.key, 'KEEL_KEY');
  if (ca !== undefined) tls.ca = ca;
  if (cert !== undefined) tls.cert = cert;
  if (key !== undefined) tls.key = key;
  isTls ||= ca !== undefined || cert !== undefined || key !== undefined;
  const token = tokenOf(options);
  return { endpoints, ...(isTls && { tls }), ...(token !== undefined && { token }) };
}

/** The bearer token: --token, else the KEEL_TOKEN environment variable (needed once auth is enabled). */
export function tokenOf(options: GlobalOptions): string | undefined {
  const token = options.token ?? process.env.KEEL_TOKEN;
  return token === undefined || token === '' ? undefined : token;
}

export function endpointsOf(options: GlobalOptions): string[] {
  if (options.endpoints !== undefined) return options.endpoints.split(',').map((e) => e.trim()).filter((e) => e !== '');
  const file = options.config ?? 'cluster.config.json';
  if (!existsSync(file)) throw new Error(`no --endpoints given and no ${file} here`);
  return loadClusterConfig(file).nodes.map((n) => n.client);
}

/** What a client command talks through; closed when the command ends. */
interface Closable {
  close(): Promise<void>;
}

/**
 * A wrapper for client commands that talk through the client `connect` builds from --endpoints: it prints a
 * KeelError by code (exit code 1; as `{"error": {...}}` with --json) and closes the client.
 */
function commandWith<C extends Closable>(connect: (options: ClientOptions) => C) {
  return <A extends unknown[], O extends GlobalOptions = GlobalOptions>(action: (client: C, options: O, ...args: A) => Promise<void>) =>
    async (...all: [...A, O, Command]): Promise<void> => {
      const command = all[all.length - 1] as Command;
      const options = command.optsWithGlobals<O>();
      const args = all.slice(0, -2) as A;
      const client = connect(clientOptionsOf(options));
      try {
        await action(client, options, ...args);
      } catch (err) {
        if (!isKeelError(err)) throw err;
        const line = options.json === true ? JSON.stringify({ error: { code: err.code, message: err.message, ...err.details } }) : `keel: ${err.code}: ${err.message}`;
        process.stderr.write(`${line}\n`);
        process.exitCode = 1;
      } finally {
        await client.close();
      }
    };
}

/** Commands that make raw HTTP calls (key-value, watch, status). */
export const withClient = commandWith((options) => new HttpClient(options));
/** Commands on KeelClient (leases, services, locks, elections). */
export const withKeel = commandWith((options) => new KeelClient(options));

/** Resolves with the name of the first SIGINT/SIGTERM (or 'aborted' when `also` aborts), then stops listening. */
export function untilStopped(also?: AbortSignal): { readonly stopped: Promise<string>; readonly signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  let resolve: (why: string) => void = () => {};
  const stopped = new Promise<string>((r) => {
    resolve = r;
  });
  const on = (why: string) => (): void => {
    resolve(why);
    controller.abort();
  };
  const onInt = on('SIGINT');
  const onTerm = on('SIGTERM');
  const onAlso = on('aborted');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  also?.addEventListener('abort', onAlso, { once: true });
  const dispose = (): void => {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    also?.removeEventListener('abort', onAlso);
  };
  return { stopped, signal: controller.signal, dispose };
}

/** stderr notes of the long-running commands: a line of text, or a JSON object per line with --json. */
export function note(options: GlobalOptions, json: Record<string, unknown>, human: string): void {
  process.stderr.write(options.json === true ? `${JSON.stringify(json)}\n` : `${human}\n`);
}

export function print(options: GlobalOptions, json: unknown, human: string): void {
  process.stdout.write(options.json === true ? `${JSON.stringify(json, null, 2)}\n` : `${human}\n`);
}

export function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

/** A commander parser for integer flags and arguments at or above `min`. */
export function integerAtLeast(min: number): (text: string) => number {
  return (text) => {
    const value = Number(text);
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < min) throw new InvalidArgumentError(`expected an integer >= ${min}`);
    return value;
  };
}

async function statusCommand(client: HttpClient, options: GlobalOptions): Promise<void> {
  const results = await Promise.all(
    client.endpoints.map(async (endpoint) => {
      try {
        return { endpoint, status: (await client.once<NodeStatus>(endpoint, 'GET', '/v1/status')).body };
      } catch (err) {
        return { endpoint, error: isKeelError(err) ? err.message : String(err) };
      }
    }),
  );
  const statuses = results.flatMap((r) => ('status' in r && r.status !== undefined ? [r.status] : []));
  const leader = statuses.find((s) => s.role === 'leader');
  const view = leader ?? statuses[0];
  if (options.json === true) {
    print(options, { leader: leader?.id ?? null, nodes: results }, '');
    return;
  }
  const rows: string[][] = [['ID', 'ENDPOINT', 'ROLE', 'TERM', 'COMMIT', 'APPLIED', 'REVISION', 'LAG', 'REACHABLE']];
  for (const result of results) {
    const s = 'status' in result ? result.status : undefined;
    const member = view?.members.find((m) => m.id === s?.id);
    rows.push([
      s?.id ?? '?', result.endpoint, s?.role ?? 'down', s === undefined ? '-' : String(s.term),
      s === undefined ? '-' : String(s.commitIndex), s === undefined ? '-' : String(s.appliedIndex),
      s === undefined ? '-' : String(s.revision), member?.lag === null || member?.lag === undefined ? '-' : String(member.lag),
      s === undefined ? `no (${'error' in result ? result.error : ''})` : 'yes',
    ]);
  }
  const header = view === undefined ? 'no node reachable' : `cluster "${view.cluster}", leader: ${leader?.id ?? view.leader ?? 'none'}`;
  print(options, null, `${header}\n${table(rows)}`);
  if (statuses.length === 0) process.exitCode = 1;
}

export function registerClientCommands(program: Command): void {
  program
    .option('--endpoints <list>', 'comma-separated host:port or https://host:port client addresses (default: from ./cluster.config.json)')
    .option('--cacert <file>', 'PEM CA bundle to verify TLS client ports with (or KEEL_CACERT); bare host:port endpoints then use https')
    .option('--cert <file>', 'PEM client certificate for client ports that require one (or KEEL_CERT)')
    .option('--key <file>', 'PEM key of --cert (or KEEL_KEY)')
    .option('--json', 'print JSON instead of text')
    .option('--token <token>', 'bearer token when auth is enabled (default: $KEEL_TOKEN)');
  program.command('status').description('print the cluster at a glance').action(withClient(statusCommand));
}
