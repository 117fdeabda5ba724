// Membership routes (shared/API.md "Cluster and operations"): GET/POST /v1/members, POST /v1/members/<id>/promote,
// DELETE /v1/members/<id>, POST /v1/leader/transfer. Every one of them runs on the leader: a follower relays the
// request to the leader's client address and relays its answer (at most twice, so a stale view cannot bounce it).
// Removing the leader hands leadership to a caught-up voter first; the new leader then removes the old one.
// GET /internal/v1/members is the same listing as this node sees it (no relay), for a member checking whether it
// was removed (src/members.ts RemovalWatch): with a cluster secret it needs the peer proof, not a client token.
import type { ForwardSecurity } from '../forward.js';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { Agent, request as httpRequest } from 'undici';
import { KeelError } from '../../util/errors.js';
import type { MemberStatus } from './cluster.js';

export interface MemberInput {
  readonly id: string;
  /** host:port */
  readonly peer: string;
  /** host:port */
  readonly client: string;
}

export interface MembersBackend {
  readonly self: string;
  readonly leaderWaitMs: number;
  isLeader(): boolean;
  leaderClientAddress(): string | null;
  waitForLeaderChange(ms: number): Promise<void>;
  list(): { leader: string | null; members: MemberStatus[] };
  /** Leader: adds a learner; resolves once the change is applied on the leader. */
  add(member: MemberInput): Promise<void>;
  promote(id: string): Promise<void>;
  /** Leader: removes another member. */
  remove(id: string): Promise<void>;
  /** Leader: hands leadership to a caught-up voter (to remove itself); resolves with the new leader's id. */
  handOver(): Promise<string>;
  transfer(to: string): Promise<void>;
  /** Other nodes' client ports speak TLS: relays dial them with these settings (absent: plain HTTP). */
  readonly clientTls?: ForwardSecurity['tls'];
}

const forwardedHeader = 'x-keel-forwarded';
export const internalMembersPath = '/internal/v1/members';
const idPattern = /^[A-Za-z0-9._-]{1,64}$/;

function invalid(message: string): KeelError {
  return new KeelError('INVALID_ARGUMENT', message);
}

export function checkMemberId(value: unknown, field: string): string {
  if (typeof value !== 'string' || !idPattern.test(value)) throw invalid(`${field} must be a string matching ${idPattern}`);
  return value;
}

/** "host:port", "tcp://host:port" or "http://host:port" → "host:port" (port 1..65535, no path). */
export function parseMemberAddress(value: unknown, field: string): string {
  if (typeof value !== 'string') throw invalid(`${field} must be a string "host:port" (or with a scheme)`);
  const bare = value.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '').replace(/\/$/, '');
  const match = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$/.exec(bare);
  const port = match === null ? 0 : Number(match[2]);
  if (match === null || port < 1 || port > 65535) throw invalid(`${field} must be "host:port" with a port in 1..65535, got ${JSON.stringify(value)}`);
  return bare;
}

function parseAddBody(body: unknown): MemberInput {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid('body must be a JSON object');
  const fields = body as Record<string, unknown>;
  for (const key of Object.keys(fields)) {
    if (!['id', 'peerUrl', 'clientUrl', 'learner'].includes(key)) throw invalid(`unknown field "${key}"`);
  }
  if (fields.learner !== undefined && typeof fields.learner !== 'boolean') throw invalid('learner must be a boolean');
  if (fields.learner === false) {
    throw invalid('a new member always joins as a learner: add it with "learner": true (or omitted), then promote it once caught up');
  }
  const member = {
    id: checkMemberId(fields.id, 'id'),
    peer: parseMemberAddress(fields.peerUrl, 'peerUrl'),
    client: parseMemberAddress(fields.clientUrl, 'clientUrl'),
  };
  if (member.peer === member.client) throw invalid('peerUrl and clientUrl must differ');
  return member;
}

export const memberRoutes: FastifyPluginAsync<{ backend: MembersBackend }> = async (app, { backend }) => {
  const tls = backend.clientTls;
  const connect = tls === undefined ? {} : { connect: { ...(tls.ca !== null && { ca: tls.ca }), ...(tls.cert !== undefined && { cert: tls.cert }), ...(tls.key !== undefined && { key: tls.key }) } };
  const agent = new Agent({ connections: 8, keepAliveTimeout: 10_000, connectTimeout: 2_000, ...connect });
  app.addHook('onClose', async () => agent.close());
  const onLeader = async (request: FastifyRequest, reply: FastifyReply, run: () => Promise<unknown>, status = 200): Promise<FastifyReply> => {
    if (backend.isLeader()) return reply.code(status).send(await run());
    return relay(request, reply, backend, agent);
  };
  const listing = (): unknown => backend.list();

  app.get('/v1/members', async (request, reply) => onLeader(request, reply, async () => listing()));
  app.get(internalMembersPath, async () => listing());

  app.post('/v1/members', async (request, reply) => {
    const member = parseAddBody(request.body);
    return onLeader(request, reply, async () => {
      await backend.add(member);
      return { added: member.id, ...backend.list() };
    }, 201);
  });

  app.post<{ Params: { id: string } }>('/v1/members/:id/promote', async (request, reply) => {
    const id = checkMemberId(request.params.id, 'member id');
    return onLeader(request, reply, async () => {
      await backend.promote(id);
      return { promoted: id, ...backend.list() };
    });
  });

  app.delete<{ Params: { id: string } }>('/v1/members/:id', async (request, reply) => {
    const id = checkMemberId(request.params.id, 'member id');
    if (backend.isLeader() && id === backend.self) {
      // The leader removes itself: hand over, then the new leader removes this node.
      await backend.handOver();
      return relay(request, reply, backend, agent);
    }
    return onLeader(request, reply, async () => {
      await backend.remove(id);
      return { removed: id, ...backend.list() };
    });
  });

  app.post('/v1/leader/transfer', async (request, reply) => {
    const body = request.body;
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid('body must be a JSON object {"to": id}');
    const fields = body as Record<string, unknown>;
    for (const key of Object.keys(fields)) if (key !== 'to') throw invalid(`unknown field "${key}"`);
    const to = checkMemberId(fields.to, 'to');
    return onLeader(request, reply, async () => {
      await backend.transfer(to);
      return { leader: to };
    });
  });
};

/** Sends the request on to the leader and answers with the leader's status and body. */
async function relay(request: FastifyRequest, reply: FastifyReply, backend: MembersBackend, agent: Agent): Promise<FastifyReply> {
  // A request is relayed at most twice (follower → leader, and a leader that handed over → the new leader).
  const hops = Number(request.headers[forwardedHeader] ?? 0);
  if (!Number.isSafeInteger(hops) || hops >= 2) throw new KeelError('UNAVAILABLE', 'this node is not the leader (relayed request)');
  const deadline = performance.now() + backend.leaderWaitMs;
  let leader = backend.leaderClientAddress();
  while ((leader === null || backend.isLeader()) && performance.now() < deadline) {
    await backend.waitForLeaderChange(Math.min(100, deadline - performance.now()));
    leader = backend.leaderClientAddress();
  }
  if (leader === null || backend.isLeader()) throw new KeelError('UNAVAILABLE', 'no leader elected (or its address is unknown)');
  const hasBody = request.body !== undefined && request.body !== null;
  let response;
  try {
    // The client's token goes along: the leader checks it again (auth-hook.ts).
    const authorization = request.headers.authorization;
    response = await httpRequest(`${backend.clientTls === undefined ? 'http' : 'https'}://${leader}${request.url}`, {
      method: request.method as 'POST',
      headers: {
        [forwardedHeader]: String(hops + 1),
        ...(hasBody && { 'content-type': 'application/json' }),
        ...(authorization !== undefined && { authorization }),
      },
      body: hasBody ? JSON.stringify(request.body) : null,
      dispatcher: agent,
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
    });
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ECONNREFUSED' || code === 'UND_ERR_CONNECT_TIMEOUT') {
      throw new KeelError('UNAVAILABLE', `the leader at ${leader} is unreachable`);
    }
    throw new KeelError('TIMEOUT', `relaying to the leader at ${leader} failed: ${(err as Error).message}`);
  }
  const text = await response.body.text();
  return reply.code(response.statusCode).type('application/json; charset=utf-8').send(text);
}
