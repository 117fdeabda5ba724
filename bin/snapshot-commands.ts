// Backup and maintenance commands of the CLI (README "Backup and restore", "Disk space"):
//   keel snapshot save <file> [--serializable] [--data-dir <dir>]   stream GET /v1/snapshot (or read a stopped
//        node's data dir) to <file>.part, verify its checksum, rename it to <file>
//   keel snapshot status <file>                                      verify a backup and print its header
//   keel snapshot restore <file> --config <file> [--bump-revision n] build the data dirs of a new cluster
//   keel defrag                                                       online LevelDB compaction on every endpoint
import { createReadStream, createWriteStream } from 'node:fs';
import { cp, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import type { DefragResult } from '../src/api/index.js';
import { HttpClient } from '../src/client.js';
import { loadClusterConfig } from '../src/config.js';
import { isEmptyDir, KvStore, readBackup, restoreBackup, type BackupHeader } from '../src/store/index.js';
import { KeelError, isKeelError } from '../src/util/errors.js';
import { endpointsOf, integerAtLeast, print, table, withClient, type GlobalOptions } from './client-commands.js';

/** Default revision bump of a restore: above any write the old cluster could plausibly take after the backup. */
const bumpRevisionDefault = 1_000_000;

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** Counts bytes as they pass; on a terminal redraws "saving: 12.3 MiB (4.5 MiB/s)" in place, at most 5 times a second. */
function progress(label: string): { meter: Transform; bytes: () => number; done: () => void } {
  let bytes = 0;
  let last = 0;
  const started = performance.now();
  const tty = process.stderr.isTTY;
  const draw = (): void => {
    const seconds = (performance.now() - started) / 1000;
    process.stderr.write(`\r${label}: ${mib(bytes)} (${mib(bytes / Math.max(seconds, 0.001))}/s)\u001b[K`);
  };
  const meter = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      bytes += chunk.byteLength;
      if (tty && performance.now() - last > 200) {
        last = performance.now();
        draw();
      }
      callback(null, chunk);
    },
  });
  return {
    meter,
    bytes: () => bytes,
    done: () => {
      if (tty) {
        draw();
        process.stderr.write('\n');
      }
    },
  };
}

async function streamFromCluster(client: HttpClient, serializable: boolean): Promise<AsyncIterable<Buffer>> {
  const query = serializable ? '?consistency=serializable' : '';
  let lastError: unknown = null;
  for (const endpoint of client.endpoints) {
    try {
      return (await client.stream(endpoint, `/v1/snapshot${query}`, { idleMs: 60_000 })).body;
    } catch (err) {
      if (!isKeelError(err) || (err.code !== 'UNAVAILABLE' && err.code !== 'TIMEOUT')) throw err;
      lastError = err;
    }
  }
  throw lastError ?? new KeelError('UNAVAILABLE', 'no endpoint answered');
}

/** A stopped node's store, read directly (quorum loss: the survivor's data, see README). */
async function streamFromDataDir(dataDir: string, cluster: string): Promise<{ chunks: AsyncIterable<Buffer>; close: () => Promise<void> }> {
  const dir = path.join(dataDir, 'store');
  if (await isEmptyDir(dir)) throw new KeelError('INVALID_ARGUMENT', `${dir} holds no store`);
  let store: KvStore;
  try {
    store = await KvStore.open(dir);
  } catch (err) {
    if ((err as { cause?: { code?: string } }).cause?.code !== 'LEVEL_LOCKED') throw err;
    throw new KeelError('INVALID_ARGUMENT', `${dir} is in use by a running node: stop it first, or save from the running node with --serializable`);
  }
  return { chunks: (await store.openBackup(cluster)).chunks, close: () => store.close() };
}

async function verifyFile(file: string): Promise<{ header: BackupHeader; bytes: number }> {
  return readBackup(createReadStream(file, { highWaterMark: 1024 * 1024 }));
}

function headerText(header: BackupHeader, bytes: number): string {
  return table([
    ['cluster', 'revision', 'compactRevision', 'appliedIndex', 'keys', 'size'],
    [header.cluster, String(header.revision), String(header.compactRevision), String(header.appliedIndex), String(header.keyCount), mib(bytes)],
  ]);
}

interface SaveOptions extends GlobalOptions {
  serializable?: boolean;
  dataDir?: string;
}

async function save(file: string, options: SaveOptions): Promise<void> {
  const part = `${file}.part`;
  const meter = progress(`saving ${file}`);
  let client: HttpClient | null = null;
  let closeStore = async (): Promise<void> => {};
  try {
    let chunks: AsyncIterable<Buffer>;
    if (options.dataDir === undefined) {
      client = new HttpClient({ endpoints: endpointsOf(options) });
      chunks = await streamFromCluster(client, options.serializable === true);
    } else {
      const cluster = options.config === undefined ? 'keel' : loadClusterConfig(options.config).cluster;
      const opened = await streamFromDataDir(path.resolve(options.dataDir), cluster);
      closeStore = opened.close;
      chunks = opened.chunks;
    }
    await pipeline(chunks, meter.meter, createWriteStream(part));
    meter.done();
    const { header, bytes } = await verifyFile(part);
    await rename(part, file);
    print(options, { file, bytes, ...header }, `saved ${file}: checksum verified\n${headerText(header, bytes)}`);
  } catch (err) {
    await rm(part, { force: true });
    throw err;
  } finally {
    await closeStore();
    await client?.close();
  }
}

interface RestoreOptions extends GlobalOptions {
  config: string;
  bumpRevision: number;
}

async function restore(file: string, options: RestoreOptions): Promise<void> {
  const config = loadClusterConfig(options.config);
  for (const node of config.nodes) {
    if (!(await isEmptyDir(node.dataDir))) {
      throw new KeelError('INVALID_ARGUMENT', `data dir of ${node.id} (${node.dataDir}) is not empty: restore builds a NEW cluster into empty dirs`);
    }
  }
  const [first, ...others] = config.nodes;
  const firstStore = path.join(first!.dataDir, 'store');
  let restored;
  try {
    restored = await restoreBackup(() => createReadStream(file, { highWaterMark: 1024 * 1024 }), firstStore, { bumpRevision: options.bumpRevision });
    // Every node starts from the same bytes (a closed LevelDB directory copies as files).
    for (const node of others) await cp(firstStore, path.join(node.dataDir, 'store'), { recursive: true });
  } catch (err) {
    // Leave no half-built cluster behind: the dirs were empty before.
    for (const node of config.nodes) await rm(node.dataDir, { recursive: true, force: true });
    throw err;
  }
  const { header } = restored;
  const human = [
    `restored ${file} (cluster "${header.cluster}", revision ${header.revision}, ${restored.keyCount} keys) into ${config.nodes.length} data dirs`,
    `the new cluster "${config.cluster}" starts at revision ${restored.revision}; older revisions answer 410 COMPACTED`,
    `start it: keel cluster up --config ${options.config}   (or keel start --config ${options.config} --node <id> on each node)`,
  ].join('\n');
  print(options, { file, cluster: config.cluster, nodes: config.nodes.map((n) => n.id), revision: restored.revision, keyCount: restored.keyCount, backup: header }, human);
}

/** Runs a command that does not go through withClient, rendering KeelErrors the same way (exit code 1). */
function rendered<A extends unknown[]>(action: (...args: A) => Promise<void>) {
  return async (...args: A): Promise<void> => {
    try {
      await action(...args);
    } catch (err) {
      if (!isKeelError(err)) throw err;
      process.stderr.write(`keel: ${err.code}: ${err.message}\n`);
      process.exitCode = 1;
    }
  };
}

export function registerSnapshotCommands(program: Command): void {
  const snapshot = program.command('snapshot').description('save, verify and restore backups of the store');
  snapshot
    .command('save <file>')
    .description('stream a consistent backup from the cluster (or a stopped node\'s --data-dir) to <file>')
    .option('--serializable', 'back up the answering node\'s state without asking the leader (no quorum needed)')
    .option('--data-dir <dir>', 'read the data dir of a STOPPED node instead of asking the cluster')
    .option('-c, --config <file>', 'cluster config (for the cluster name with --data-dir)')
    .action(rendered(async (file: string, _o: SaveOptions, command: Command) => save(file, command.optsWithGlobals<SaveOptions>())));
  snapshot
    .command('status <file>')
    .description('verify a backup\'s checksum and print its header')
    .action(
      rendered(async (file: string, _o: GlobalOptions, command: Command) => {
        const options = command.optsWithGlobals<GlobalOptions>();
        const { header, bytes } = await verifyFile(file);
        print(options, { file, bytes, ...header }, `${file}: checksum verified\n${headerText(header, bytes)}`);
      }),
    );
  snapshot
    .command('restore <file>')
    .description('build the data dirs of a NEW cluster (every node of --config, dirs must be empty) from a backup')
    .requiredOption('-c, --config <file>', 'the new cluster\'s config')
    .option('--bump-revision <n>', 'the new cluster starts this many revisions above the backup', integerAtLeast(1), bumpRevisionDefault)
    .action(rendered(async (file: string, _o: RestoreOptions, command: Command) => restore(file, command.optsWithGlobals<RestoreOptions>())));

  program
    .command('defrag')
    .description('compact the LevelDB store of every endpoint online (gives back space after deletes and compaction)')
    .action(
      withClient(async (client, options) => {
        const rows = [['ENDPOINT', 'BEFORE', 'AFTER', 'MS', 'ALARMS']];
        const results = [];
        for (const endpoint of client.endpoints) {
          const result = (await client.once<DefragResult>(endpoint, 'POST', '/v1/maintenance/defrag', undefined, undefined, { timeoutMs: 600_000 })).body;
          results.push({ endpoint, ...result });
          rows.push([endpoint, mib(result.beforeBytes), mib(result.afterBytes), String(result.durationMs), result.alarms.join(',') || '-']);
        }
        print(options, { results }, table(rows));
      }),
    );
}
