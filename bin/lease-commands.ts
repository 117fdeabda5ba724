// Lease, service registry, lock and election commands of the CLI, all on KeelClient (src/keel-client.ts):
//   keel lease grant <ttl> | keepalive <id> | revoke <id> | list | info <id>
//   keel service register <service> <id> --address a --port p [--tag t]... [--meta k=v]... [--weight w] [--ttl s]
//              | deregister <service> <id> | list | get <service> [--healthy] [--tag t]
//   keel lock <name> [--ttl s] [--wait-ms n] [--grace-ms n] -- <command...>   (in bin/lock-command.ts)
//   keel elect <name> <value> [--ttl s] [--wait-ms n]                         (in bin/lock-command.ts)
// The long-running ones (keepalive, register, lock, elect) run until Ctrl-C or SIGTERM and then clean up: a
// registration is deregistered, leadership resigned, a lock released. Results go to stdout (JSON with --json);
// progress notes of the long-running commands go to stderr, so stdout stays machine-readable.
import { InvalidArgumentError, type Command } from 'commander';
import type { KeelClient } from '../src/keel-client.js';
import type { Instance, InstanceSpec } from '../src/client/types.js';
import { integerAtLeast, note, print, table, untilStopped, withKeel, type GlobalOptions } from './client-commands.js';

// ---- lease

async function leaseKeepalive(client: KeelClient, options: GlobalOptions, id: number): Promise<void> {
  const lease = await client.leases.keepAlive(id);
  note(options, { event: 'keepalive', id, ttl: lease.ttl }, `keeping lease ${id} alive (TTL ${lease.ttl} s, every ${(lease.ttl / 3).toFixed(1)} s); Ctrl-C stops`);
  const stop = untilStopped(lease.signal);
  try {
    const why = await stop.stopped;
    if (why === 'aborted') {
      const error = lease.signal.reason as Error;
      note(options, { event: 'lost', id, message: error.message }, `keel: lease ${id} lost: ${error.message}`);
      process.exitCode = 1;
    }
  } finally {
    stop.dispose();
    await lease.close();
  }
}

function registerLeaseSubcommands(program: Command): void {
  const lease = program.command('lease').description('grant, keep alive, revoke and list leases');
  lease
    .command('grant <ttl>')
    .description('grant a lease of <ttl> seconds (not kept alive: see keepalive)')
    .action(
      withKeel(async (client, options, ttlText: string) => {
        const granted = await client.leases.grant(integerAtLeast(1)(ttlText), { keepalive: false });
        print(options, { id: granted.id, ttl: granted.ttl }, `lease ${granted.id} granted with TTL ${granted.ttl} s`);
      }),
    );
  lease
    .command('keepalive <id>')
    .description('keep a lease alive until Ctrl-C (exit 1 if it is lost)')
    .action(withKeel(async (client, options, idText: string) => leaseKeepalive(client, options, integerAtLeast(1)(idText))));
  lease
    .command('revoke <id>')
    .description('revoke a lease and delete its keys')
    .action(
      withKeel(async (client, options, idText: string) => {
        const id = integerAtLeast(1)(idText);
        await client.leases.revoke(id);
        print(options, { id, revoked: true }, `lease ${id} revoked`);
      }),
    );
  lease
    .command('info <id>')
    .description("a lease's remaining TTL and keys")
    .action(
      withKeel(async (client, options, idText: string) => {
        const info = await client.leases.timeToLive(integerAtLeast(1)(idText));
        const keys = info.keys.length === 0 ? '(no keys)' : info.keys.join('\n');
        print(options, info, `lease ${info.id}: ${info.ttl} s left of ${info.grantedTtl} s\n${keys}`);
      }),
    );
  lease
    .command('list')
    .description('every live lease')
    .action(
      withKeel(async (client, options) => {
        const leases = await client.leases.list();
        const rows = [['ID', 'TTL'], ...leases.map((l) => [String(l.id), String(l.ttl)])];
        print(options, { leases }, leases.length === 0 ? 'no leases' : table(rows));
      }),
    );
}

// ---- service

interface RegisterFlags extends GlobalOptions {
  address: string;
  port: number;
  tag?: string[];
  meta?: string[];
  weight?: number;
  ttl?: number;
}

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

function metaOf(pairs: readonly string[] | undefined): Record<string, string> | undefined {
  if (pairs === undefined) return undefined;
  const meta: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new InvalidArgumentError(`--meta expects key=value, got ${pair}`);
    meta[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return meta;
}

async function serviceRegister(client: KeelClient, options: RegisterFlags, service: string, id: string): Promise<void> {
  const meta = metaOf(options.meta);
  const instance: InstanceSpec = {
    id,
    address: options.address,
    port: options.port,
    ...(options.tag !== undefined && { tags: options.tag }),
    ...(meta !== undefined && { meta }),
    ...(options.weight !== undefined && { weight: options.weight }),
  };
  const registration = await client.registerService(service, instance, { ttl: options.ttl ?? 10 });
  const first = registration.registration!;
  note(options, { event: 'registered', ...first }, `registered ${service}/${id} (lease ${first.lease}, TTL ${registration.ttl} s); heartbeating until Ctrl-C`);
  registration.on('lost', (err) => note(options, { event: 'lost', message: err.message }, `keel: registration lost (${err.message}); registering again`));
  registration.on('registered', (r) => note(options, { event: 'registered', ...r }, `registered again (lease ${r.lease})`));
  registration.on('error', (err) => note(options, { event: 'error', message: (err as Error).message }, `keel: register failed: ${(err as Error).message}; retrying`));
  const stop = untilStopped();
  try {
    await stop.stopped;
  } finally {
    stop.dispose();
    await registration.close();
    note(options, { event: 'deregistered', service, id }, `deregistered ${service}/${id}`);
  }
}

function instanceRows(instances: readonly Instance[]): string {
  const rows = [['ID', 'ADDRESS', 'PORT', 'STATUS', 'WEIGHT', 'TAGS', 'LEASE']];
  for (const i of instances) rows.push([i.id, i.address, String(i.port), i.status, String(i.weight), i.tags.join(','), String(i.lease)]);
  return table(rows);
}

function registerServiceCommands(program: Command): void {
  const service = program.command('service').description('register, deregister and discover service instances');
  service
    .command('register <service> <id>')
    .description('register an instance and heartbeat until Ctrl-C, then deregister it')
    .requiredOption('--address <address>', 'the address clients connect to')
    .requiredOption('--port <port>', 'the port clients connect to', integerAtLeast(1))
    .option('--tag <tag>', 'a tag (repeatable)', collect)
    .option('--meta <key=value>', 'a metadata entry (repeatable)', collect)
    .option('--weight <weight>', 'relative weight for weighted picking (default 1)', integerAtLeast(0))
    .option('--ttl <seconds>', 'expire the instance after this long without heartbeat (default 10)', integerAtLeast(1))
    .action(withKeel(serviceRegister));
  service
    .command('deregister <service> <id>')
    .description('remove an instance')
    .action(
      withKeel(async (client, options, name: string, id: string) => {
        await client.services.deregister(name, id);
        print(options, { service: name, id, deregistered: true }, `deregistered ${name}/${id}`);
      }),
    );
  service
    .command('list')
    .description('every service with its instance counts')
    .action(
      withKeel(async (client, options) => {
        const services = await client.services.list();
        const rows = [['SERVICE', 'INSTANCES', 'HEALTHY'], ...services.map((s) => [s.name, String(s.instances), String(s.healthy)])];
        print(options, { services }, services.length === 0 ? 'no services' : table(rows));
      }),
    );
  service
    .command('get <service>')
    .description("a service's instances")
    .option('--healthy', 'only passing instances')
    .option('--tag <tag>', 'only instances with this tag')
    .action(
      withKeel(async (client, options: GlobalOptions & { healthy?: boolean; tag?: string }, name: string) => {
        const answer = await client.services.get(name, {
          ...(options.healthy === true && { healthy: true }),
          ...(options.tag !== undefined && { tag: options.tag }),
        });
        print(options, answer, answer.instances.length === 0 ? `no instances of ${name}` : instanceRows(answer.instances));
      }),
    );
}

/** `keel lease ...` and `keel service ...` (lock and elect: registerLockCommands in bin/lock-command.ts). */
export function registerLeaseCommands(program: Command): void {
  registerLeaseSubcommands(program);
  registerServiceCommands(program);
}
