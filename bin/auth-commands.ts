// Auth commands of the CLI (README "Security"): `keel auth enable|disable|status`, `keel user ...`,
// `keel role ...`, `keel token ...`. They call the /v1/auth routes with --token / $KEEL_TOKEN (admin once auth is
// on). `keel auth enable` and `keel token create` print a token once: only its hash is kept by the cluster.
import { Argument, type Command } from 'commander';
import type { HttpClient } from '../src/client.js';
import { integerAtLeast, print, table, withClient, type GlobalOptions } from './client-commands.js';

interface UserRow {
  name: string;
  roles: string[];
}
interface RoleRow {
  name: string;
  permissions: { kind: string; access: string; prefix: string }[];
}
interface TokenRow {
  id: string;
  user: string;
  createdAtMs: number;
  expiresAtMs: number | null;
}

const name = (value: string): string => encodeURIComponent(value);
const when = (ms: number | null): string => (ms === null ? 'never' : new Date(ms).toISOString());

function registerAuth(program: Command): void {
  const auth = program.command('auth').description('client auth: enable, disable, status');
  auth
    .command('enable')
    .description('turn auth on: creates the root user and prints its token ONCE (every request then needs a token)')
    .action(
      withClient(async (client: HttpClient, options: GlobalOptions) => {
        const { body } = await client.call<{ user: string; id: string; token: string }>('POST', '/v1/auth/enable', {});
        print(options, body, `auth enabled. Token of user "${body.user}" (id ${body.id}); it is shown only now, keep it safe:\n${body.token}`);
      }),
    );
  auth
    .command('disable')
    .description('turn auth off (users, roles and tokens are kept for the next enable)')
    .action(
      withClient(async (client: HttpClient, options: GlobalOptions) => {
        const { body } = await client.call('POST', '/v1/auth/disable', {});
        print(options, body, 'auth disabled');
      }),
    );
  auth
    .command('status')
    .description('whether auth is enabled, and who the token is')
    .action(
      withClient(async (client: HttpClient, options: GlobalOptions) => {
        const status = (await client.call<{ enabled: boolean }>('GET', '/v1/auth/status')).body;
        const whoami = (await client.call<{ user: string | null; roles?: string[] }>('GET', '/v1/auth/whoami')).body;
        const who = whoami.user === null ? '' : `; token of user "${whoami.user}" (roles: ${(whoami.roles ?? []).join(', ') || 'none'})`;
        print(options, { ...status, ...whoami }, `auth ${status.enabled ? 'enabled' : 'disabled'}${who}`);
      }),
    );
}

function registerUsers(program: Command): void {
  const user = program.command('user').description('users: add, list, remove, grant/revoke a role');
  user.command('add <name>').description('add a user (no roles; give it a token with `keel token create`)').action(
    withClient(async (client: HttpClient, options: GlobalOptions, userName: string) => {
      print(options, (await client.call('POST', '/v1/auth/users', { name: userName })).body, `user ${userName} added`);
    }),
  );
  user.command('list').description('list users and their roles').action(
    withClient(async (client: HttpClient, options: GlobalOptions) => {
      const { users } = (await client.call<{ users: UserRow[] }>('GET', '/v1/auth/users')).body;
      print(options, { users }, table([['USER', 'ROLES'], ...users.map((u) => [u.name, u.roles.join(',') || '-'])]));
    }),
  );
  user.command('remove <name>').description('remove a user and revoke all its tokens').action(
    withClient(async (client: HttpClient, options: GlobalOptions, userName: string) => {
      print(options, (await client.call('DELETE', `/v1/auth/users/${name(userName)}`)).body, `user ${userName} removed`);
    }),
  );
  user.command('grant <user> <role>').description('give a user a role').action(
    withClient(async (client: HttpClient, options: GlobalOptions, userName: string, role: string) => {
      print(options, (await client.call('POST', `/v1/auth/users/${name(userName)}/roles`, { role })).body, `user ${userName} has role ${role}`);
    }),
  );
  user.command('revoke <user> <role>').description('take a role from a user').action(
    withClient(async (client: HttpClient, options: GlobalOptions, userName: string, role: string) => {
      const { body } = await client.call('DELETE', `/v1/auth/users/${name(userName)}/roles/${name(role)}`);
      print(options, body, `user ${userName} no longer has role ${role}`);
    }),
  );
}

function registerRoles(program: Command): void {
  const role = program.command('role').description('roles: add, list, remove, grant/revoke a permission');
  role.command('add <name>').description('add a role (no permissions)').action(
    withClient(async (client: HttpClient, options: GlobalOptions, roleName: string) => {
      print(options, (await client.call('POST', '/v1/auth/roles', { name: roleName })).body, `role ${roleName} added`);
    }),
  );
  role.command('list').description('list roles and their permissions').action(
    withClient(async (client: HttpClient, options: GlobalOptions) => {
      const { roles } = (await client.call<{ roles: RoleRow[] }>('GET', '/v1/auth/roles')).body;
      const rows = roles.flatMap((r) => (r.permissions.length === 0 ? [[r.name, '-', '-', '-']] : r.permissions.map((p) => [r.name, p.access, p.kind, JSON.stringify(p.prefix)])));
      print(options, { roles }, table([['ROLE', 'ACCESS', 'KIND', 'PREFIX'], ...rows]));
    }),
  );
  role.command('remove <name>').description('remove a role (and take it from every user)').action(
    withClient(async (client: HttpClient, options: GlobalOptions, roleName: string) => {
      print(options, (await client.call('DELETE', `/v1/auth/roles/${name(roleName)}`)).body, `role ${roleName} removed`);
    }),
  );
  for (const verb of ['grant', 'revoke'] as const) {
    role
      .command(verb)
      .description(`${verb === 'grant' ? 'give a role' : 'take from a role'} read or readwrite on names starting with <prefix> ('' = all; admin takes none)`)
      .argument('<role>')
      .addArgument(new Argument('<access>').choices(['read', 'readwrite']))
      .addArgument(new Argument('<kind>').choices(['key', 'service', 'lock', 'admin']))
      .argument('[prefix]', 'key, service or lock/election name prefix', '')
      .action(
        withClient(async (client: HttpClient, options: GlobalOptions, roleName: string, access: string, kind: string, prefix: string) => {
          const path = `/v1/auth/roles/${name(roleName)}/permissions${verb === 'revoke' ? '/revoke' : ''}`;
          const { body } = await client.call('POST', path, { access, kind, prefix });
          print(options, body, `role ${roleName}: ${verb === 'grant' ? '+' : '-'}${access} ${kind} ${JSON.stringify(prefix)}`);
        }),
      );
  }
}

function registerTokens(program: Command): void {
  const token = program.command('token').description('bearer tokens: create, list, revoke');
  token
    .command('create <user>')
    .description('make a token for a user; it is printed ONCE')
    .option('--ttl <seconds>', 'the token expires after this many seconds (default: never)', integerAtLeast(1))
    .action(
      withClient(async (client: HttpClient, options: GlobalOptions & { ttl?: number }, user: string) => {
        const { body } = await client.call<TokenRow & { token: string }>('POST', '/v1/auth/tokens', { user, ...(options.ttl !== undefined && { ttl: options.ttl }) });
        print(options, body, `token ${body.id} for ${user} (expires: ${when(body.expiresAtMs)}); shown only now:\n${body.token}`);
      }),
    );
  token.command('list').description('list tokens (ids, users, expiry; never the tokens)').action(
    withClient(async (client: HttpClient, options: GlobalOptions) => {
      const { tokens } = (await client.call<{ tokens: TokenRow[] }>('GET', '/v1/auth/tokens')).body;
      print(options, { tokens }, table([['ID', 'USER', 'CREATED', 'EXPIRES'], ...tokens.map((x) => [x.id, x.user, when(x.createdAtMs), when(x.expiresAtMs)])]));
    }),
  );
  token.command('revoke <id>').description('revoke a token by its id (every node refuses it once applied)').action(
    withClient(async (client: HttpClient, options: GlobalOptions, id: string) => {
      print(options, (await client.call('DELETE', `/v1/auth/tokens/${name(id)}`)).body, `token ${id} revoked`);
    }),
  );
}

export function registerAuthCommands(program: Command): void {
  registerAuth(program);
  registerUsers(program);
  registerRoles(program);
  registerTokens(program);
}
