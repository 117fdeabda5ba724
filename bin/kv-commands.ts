// Key-value client commands of the CLI (shared/API.md "Key-value"): get, put, del, txn, compact, and watch
// (bin/watch-command.ts). Each one is a thin shell over one HTTP call: it builds the request from the flags,
// prints the answer as `key = value` lines (or the answer's JSON with --json), and leaves error rendering and the
// exit code to withClient.
import { readFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import type { CompactResult, DeleteResult, KV, PutResult, RangeResult, TxnOpResult, TxnResult } from '../src/store/index.js';
import type { HttpClient } from '../src/client.js';
import { KeelError } from '../src/util/errors.js';
import { keyPath, query } from '../src/client/paths.js';
import { integerAtLeast, print, table, withClient, type GlobalOptions } from './client-commands.js';
import { watchCommand } from './watch-command.js';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

const kvLine = (kv: KV): string => `${kv.key} = ${kv.value}`;

/** A value fit for one table cell: control characters escaped, long values cut. */
function cell(value: string): string {
  const escaped = JSON.stringify(value).slice(1, -1);
  return escaped.length > 60 ? `${escaped.slice(0, 59)}…` : escaped;
}

function kvTable(kvs: readonly KV[]): string {
  const rows = [['KEY', 'VALUE', 'CREATE_REV', 'MOD_REV', 'VERSION', 'LEASE']];
  for (const kv of kvs) rows.push([kv.key, cell(kv.value), String(kv.createRevision), String(kv.modRevision), String(kv.version), String(kv.lease)]);
  return table(rows);
}

// ---- get

interface GetOptions extends GlobalOptions {
  prefix?: boolean;
  limit?: number;
  keysOnly?: boolean;
  countOnly?: boolean;
  revision?: number;
  serializable?: boolean;
  sort?: 'key' | 'createRevision' | 'modRevision';
  order?: 'asc' | 'desc';
  verbose?: boolean;
}

function rangeText(result: RangeResult, options: GetOptions, revision: number | null): string {
  if (options.countOnly === true) return String(result.count);
  if (options.verbose === true) {
    const more = result.more ? `, ${result.count - result.kvs.length} more not shown` : '';
    return `${kvTable(result.kvs)}\n${result.kvs.length} of ${result.count} keys at revision ${revision ?? '?'}${more}`;
  }
  if (result.more) process.stderr.write(`keel: ${result.count - result.kvs.length} more keys not shown (--limit)\n`);
  return result.kvs.map((kv) => (options.keysOnly === true ? kv.key : kvLine(kv))).join('\n');
}

async function getCommand(client: HttpClient, options: GetOptions, key: string): Promise<void> {
  const isRange = options.prefix === true || key === '';
  for (const [flag, value] of [['--limit', options.limit], ['--count-only', options.countOnly], ['--sort', options.sort], ['--order', options.order]] as const) {
    if (!isRange && value !== undefined) throw new KeelError('INVALID_ARGUMENT', `${flag} needs --prefix`);
  }
  const search = query({
    prefix: isRange ? true : undefined,
    limit: options.limit,
    keysOnly: options.keysOnly,
    countOnly: options.countOnly,
    revision: options.revision,
    consistency: options.serializable === true ? 'serializable' : undefined,
    sort: options.sort,
    order: options.order,
  });
  const response = await client.call<RangeResult | { kv: KV }>('GET', `${keyPath('/v1/kv', key)}${search}`);
  const body = response.body;
  let human: string;
  if ('kv' in body) {
    human = options.verbose === true ? `${kvTable([body.kv])}\nat revision ${response.revision ?? '?'}` : options.keysOnly === true ? body.kv.key : kvLine(body.kv);
  } else {
    human = rangeText(body, options, response.revision);
  }
  if (human === '' && options.json !== true) return;
  print(options, { ...body, revision: response.revision }, human);
}

// ---- put, del, compact

interface PutOptions extends GlobalOptions {
  lease?: number;
  prevKv?: boolean;
  ifModRevision?: number;
  ifVersion?: number;
}

async function putCommand(client: HttpClient, options: PutOptions, key: string, value: string): Promise<void> {
  const body = {
    value: value === '-' ? await readStdin() : value,
    ...(options.lease !== undefined && { lease: options.lease }),
    ...(options.prevKv === true && { prevKv: true }),
    ...(options.ifModRevision !== undefined && { ifModRevision: options.ifModRevision }),
    ...(options.ifVersion !== undefined && { ifVersion: options.ifVersion }),
  };
  const { body: result } = await client.call<PutResult>('PUT', keyPath('/v1/kv', key), body);
  const prev = result.prevKv === undefined ? '' : `\nprev: ${kvLine(result.prevKv)}`;
  print(options, result, `OK revision ${result.revision}${prev}`);
}

interface DelOptions extends GlobalOptions {
  prefix?: boolean;
  prevKv?: boolean;
}

async function delCommand(client: HttpClient, options: DelOptions, key: string): Promise<void> {
  const search = query({ prefix: options.prefix === true ? true : undefined, prevKv: options.prevKv === true ? true : undefined });
  const { body: result } = await client.call<DeleteResult>('DELETE', `${keyPath('/v1/kv', key)}${search}`);
  print(options, result, [String(result.deleted), ...(result.prevKvs ?? []).map(kvLine)].join('\n'));
}

async function compactCommand(client: HttpClient, options: GlobalOptions, revision: number): Promise<void> {
  const { body: result } = await client.call<CompactResult>('POST', '/v1/compact', { revision });
  print(options, result, `OK compacted history before revision ${result.compactRevision}`);
}

// ---- txn

interface TxnOptions extends GlobalOptions {
  file?: string;
}

function opText(result: TxnOpResult): string {
  if ('put' in result) return `put: OK revision ${result.put.revision}`;
  if ('delete' in result) return `delete: ${result.delete.deleted} deleted`;
  const lines = result.get.kvs.map((kv) => `  ${kvLine(kv)}`);
  return [`get: ${result.get.count} ${result.get.count === 1 ? 'key' : 'keys'}${result.get.more ? ' (more not shown)' : ''}`, ...lines].join('\n');
}

async function txnCommand(client: HttpClient, options: TxnOptions): Promise<void> {
  if (options.file === undefined && process.stdin.isTTY) {
    throw new KeelError('INVALID_ARGUMENT', 'give the txn body (JSON) on stdin or with --file');
  }
  const text = options.file === undefined ? await readStdin() : await readFile(options.file, 'utf8');
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (err) {
    throw new KeelError('INVALID_ARGUMENT', `the txn body is not JSON: ${(err as Error).message.replace(/\s+/g, ' ')}`);
  }
  const { body: result } = await client.call<TxnResult>('POST', '/v1/txn', body);
  const header = `${result.succeeded ? 'SUCCEEDED' : 'FAILED'} revision ${result.revision}`;
  print(options, result, [header, ...result.results.map(opText)].join('\n'));
}

export function registerKvCommands(program: Command): void {
  program
    .command('get')
    .description('read a key, or every key under a prefix (`key = value` lines)')
    .argument('<key>', 'the key (with --prefix: the prefix; "" = every key)')
    .option('--prefix', 'read every key that starts with <key>')
    .option('--limit <n>', 'at most n keys (with --prefix)', integerAtLeast(0))
    .option('--keys-only', 'print keys without values')
    .option('--count-only', 'print only how many keys match (with --prefix)')
    .option('--revision <n>', 'read the store as it was at revision n', integerAtLeast(1))
    .option('--serializable', 'read this node\'s local state (faster, possibly stale)')
    .addOption(new Option('--sort <target>', 'sort by (with --prefix)').choices(['key', 'createRevision', 'modRevision']))
    .addOption(new Option('--order <order>', 'sort order (with --prefix)').choices(['asc', 'desc']))
    .option('-v, --verbose', 'print a table with revisions, version and lease')
    .action(withClient<[string], GetOptions>(getCommand));
  program
    .command('put')
    .description('write a value; prints the revision of the write')
    .argument('<key>', 'the key')
    .argument('<value>', 'the value ("-" reads it from stdin, as is)')
    .option('--lease <id>', 'attach the key to a lease', integerAtLeast(1))
    .option('--prev-kv', 'also print the previous value')
    .option('--if-mod-revision <n>', 'only if the key\'s modRevision is n (0: only if it does not exist)', integerAtLeast(0))
    .option('--if-version <n>', 'only if the key\'s version is n (0: only if it does not exist)', integerAtLeast(0))
    .action(withClient<[string, string], PutOptions>(putCommand));
  program
    .command('del')
    .description('delete a key, or every key under a prefix; prints how many were deleted')
    .argument('<key>', 'the key (with --prefix: the prefix)')
    .option('--prefix', 'delete every key that starts with <key>')
    .option('--prev-kv', 'also print the deleted keys and values')
    .action(withClient<[string], DelOptions>(delCommand));
  program
    .command('txn')
    .description('run a transaction: reads the POST /v1/txn body (JSON) from stdin or --file')
    .option('-f, --file <file>', 'read the txn body from this file instead of stdin')
    .action(withClient<[], TxnOptions>(txnCommand));
  program
    .command('compact')
    .description('drop the history before a revision')
    .argument('<revision>', 'the first revision to keep', integerAtLeast(1))
    .action(withClient<[number]>(compactCommand));
  program
    .command('watch')
    .description('print the changes to a key or prefix as they happen; survives the loss of its node')
    .argument('<key>', 'the key (with --prefix: the prefix; "" = every key)')
    .option('--prefix', 'watch every key that starts with <key>')
    .option('--from-revision <n>', 'start with the changes at revision n (replays history)', integerAtLeast(1))
    .option('--prev-kv', 'also print the previous value of each change')
    .option('--retry-ms <ms>', 'give up after this long with no endpoint reachable', integerAtLeast(0), 30_000)
    .action(withClient(watchCommand));
}
