// Client commands of the CLI: they talk to --endpoints (default: the client addresses of ./cluster.config.json)
// and print human text, or JSON with --json. This file holds what they share (the client wrappers, printing,
// argument parsing, Ctrl-C handling) and `keel status`.
import { existsSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import type { NodeStatus } from '../src/api/index.js';
import { HttpClient } from '../src/client.js';
import { KeelClient } from '../src/keel-client.js';
import { loadClusterConfig } from '../src/config.js';
import { isKeelError } from '../src/util/errors.js';

export interface GlobalOptions {
  endpoints?: string;
  json?: boolean;
  config?: string;
  token?: string;
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
function commandWith<C extends Closable>(connect: (endpoints: string[], token: string | undefined) => C) {
  return <A extends unknown[], O extends GlobalOptions = GlobalOptions>(action: (client: C, options: O, ...args: A) => Promise<void>) =>
    async (...all: [...A, O, Command]): Promise<void> => {
      const command = all[all.length - 1] as Command;
      const options = command.optsWithGlobals<O>();
      const args = all.slice(0, -2) as A;
      const client = connect(endpointsOf(options), tokenOf(options));
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
export const withClient = commandWith((endpoints, token) => new HttpClient({ endpoints, ...(token !== undefined && { token }) }));
/** Commands on KeelClient (leases, services, locks, elections). */
export const withKeel = commandWith((endpoints, token) => new KeelClient({ endpoints, ...(token !== undefined && { token }) }));

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
    .option('--endpoints <list>', 'comma-separated host:port client addresses (default: from ./cluster.config.json)')
    .option('--json', 'print JSON instead of text')
    .option('--token <token>', 'bearer token when auth is enabled (default: $KEEL_TOKEN)');
  program.command('status').description('print the cluster at a glance').action(withClient(statusCommand));
}
