// `keel member list|add|remove|promote` and `keel leader transfer`: membership at run time through the HTTP API
// (any node answers; followers relay to the leader). Human text by default, JSON with --json.
import type { Command } from 'commander';
import type { MemberStatus } from '../src/api/index.js';
import type { HttpClient } from '../src/client.js';
import { print, table, withClient, type GlobalOptions } from './client-commands.js';

interface MemberList {
  readonly leader: string | null;
  readonly members: readonly MemberStatus[];
}

function memberTable(list: MemberList): string {
  const rows: string[][] = [['ID', 'ROLE', 'VOTER', 'PEER', 'CLIENT', 'MATCH', 'LAG', 'REACHABLE']];
  for (const m of list.members) {
    rows.push([
      m.id, m.role, m.voter ? 'yes' : 'no', m.peerUrl, m.clientUrl,
      m.matchIndex === null ? '-' : String(m.matchIndex), m.lag === null ? '-' : String(m.lag), m.reachable ? 'yes' : 'no',
    ]);
  }
  return `leader: ${list.leader ?? 'none'}\n${table(rows)}`;
}

export function registerMemberCommands(program: Command): void {
  const member = program.command('member').description('list and change the cluster membership');
  member
    .command('list')
    .description('members with role, addresses and (from the leader) replication lag')
    .action(
      withClient(async (client: HttpClient, options: GlobalOptions) => {
        const { body } = await client.call<MemberList>('GET', '/v1/members');
        print(options, body, memberTable(body));
      }),
    );
  member
    .command('add <id> <peer> <client>')
    .description('add a member as a learner (peer and client as host:port); then start it with --join and promote it')
    .action(
      withClient(async (client: HttpClient, options: GlobalOptions, id: string, peer: string, clientUrl: string) => {
        const { body } = await client.call<MemberList>('POST', '/v1/members', { id, peerUrl: peer, clientUrl, learner: true });
        print(options, body, `added ${id} as a learner\n${memberTable(body)}`);
      }),
    );
  member
    .command('promote <id>')
    .description('make a caught-up learner a voter (refused with CONFLICT while it lags)')
    .action(
      withClient(async (client: HttpClient, options: GlobalOptions, id: string) => {
        const { body } = await client.call<MemberList>('POST', `/v1/members/${encodeURIComponent(id)}/promote`, {});
        print(options, body, `promoted ${id} to voter\n${memberTable(body)}`);
      }),
    );
  member
    .command('remove <id>')
    .description('remove a member (the leader hands over leadership first)')
    .action(
      withClient(async (client: HttpClient, options: GlobalOptions, id: string) => {
        const { body } = await client.call<MemberList>('DELETE', `/v1/members/${encodeURIComponent(id)}`, undefined);
        print(options, body, `removed ${id}\n${memberTable(body)}`);
      }),
    );
  const leader = program.command('leader').description('leadership');
  leader
    .command('transfer <id>')
    .description('hand leadership to a caught-up voter')
    .action(
      withClient(async (client: HttpClient, options: GlobalOptions, id: string) => {
        const { body } = await client.call<{ leader: string }>('POST', '/v1/leader/transfer', { to: id });
        print(options, body, `leader is now ${body.leader}`);
      }),
    );
}
