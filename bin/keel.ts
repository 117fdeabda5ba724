#!/usr/bin/env node
// The keel CLI: parses arguments, calls into src/, prints. `start` runs one node; `cluster up` runs every node of
// a config as child processes; the other commands are clients of the HTTP API.
import { Command, Option } from 'commander';
import { registerAuthCommands } from './auth-commands.js';
import { clusterUp } from './cluster-up.js';
import { registerClientCommands } from './client-commands.js';
import { registerKvCommands } from './kv-commands.js';
import { registerLeaseCommands } from './lease-commands.js';
import { registerLockCommands } from './lock-command.js';
import { registerMemberCommands } from './member-commands.js';
import { runNode } from './run-node.js';
import { registerSnapshotCommands } from './snapshot-commands.js';

const program = new Command();
program
  .name('keel')
  .description('Keel: a Raft coordination server (KV, leases, services, locks, elections, watches over HTTP)')
  .version('0.1.0');

program
  .command('start')
  .description('run one node of the cluster in the foreground')
  .option('-c, --config <file>', 'cluster config file', 'cluster.config.json')
  .requiredOption('-n, --node <id>', 'id of this node in the config')
  .addOption(new Option('--log-level <level>', 'log level (overrides the config)').choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']))
  .option('--pretty', 'human-readable logs (default when stdout is a terminal)')
  .option('--join <endpoints>', 'join a running cluster: its client address(es), comma-separated (only used while the data dir is empty)')
  .action(async (options: { config: string; node: string; logLevel?: string; pretty?: boolean; join?: string }) => {
    await runNode(options);
  });

const cluster = program.command('cluster').description('run a local cluster');
cluster
  .command('up')
  .description('run every node of the config as child processes; Ctrl-C stops them all')
  .option('-c, --config <file>', 'cluster config file', 'cluster.config.json')
  .addOption(new Option('--log-level <level>', 'log level for every node').choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']))
  .action(async (options: { config: string; logLevel?: string }) => {
    await clusterUp(options);
  });

registerClientCommands(program);
registerKvCommands(program);
registerLeaseCommands(program);
registerLockCommands(program);
registerAuthCommands(program);
registerSnapshotCommands(program);
registerMemberCommands(program);

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`keel: ${(err as Error).message}\n`);
  process.exit(1);
});
