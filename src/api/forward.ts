// The write path seen from the API: a command goes into the log through the leader. On the leader it is
// proposed directly; on a follower it is sent to the leader's internal propose route and the leader's answer
// (result or typed error) is relayed, so clients never need to find the leader themselves.
//
// When no leader is known (an election is running), the proposer waits for one up to `leaderWaitMs` before
// answering UNAVAILABLE: the write was not proposed, so it was not applied.
import { Agent, request } from 'undici';
import { KeelError, errorCatalog, type ErrorCode } from '../util/errors.js';
import { peerAuthHeader, type PeerAuth } from '../util/peer-auth.js';

export interface ForwardSecurity {
  /** The leader's client port speaks TLS: verify it with `ca` (null = system roots), present cert/key if given. */
  readonly tls?: { readonly ca: Buffer | null; readonly cert?: Buffer; readonly key?: Buffer };
  /** Prove knowledge of the cluster secret to the leader's internal route, as node `from`. */
  readonly peerAuth?: { readonly auth: PeerAuth; readonly from: string };
}

export interface LeaderView {
  /** This node is the leader and can propose. */
  isLeader(): boolean;
  /** The leader's client address (host:port), or null if no leader is known. */
  leaderClientAddress(): string | null;
  /** Proposes on this node (leader only); resolves with the state machine's result. */
  proposeLocal(command: Uint8Array): Promise<unknown>;
  /** Resolves when the known leader changes (or after `ms`). */
  waitForLeaderChange(ms: number): Promise<void>;
}

export const internalProposePath = '/internal/v1/propose';

export class Proposer {
  private readonly view: LeaderView;
  private readonly agent: Agent;
  private readonly leaderWaitMs: number;
  private readonly forwardTimeoutMs: number;
  private readonly security: ForwardSecurity;
  private readonly scheme: 'http' | 'https';

  constructor(view: LeaderView, options: { leaderWaitMs: number; forwardTimeoutMs: number } & ForwardSecurity) {
    this.view = view;
    this.leaderWaitMs = options.leaderWaitMs;
    this.forwardTimeoutMs = options.forwardTimeoutMs;
    this.security = options;
    this.scheme = options.tls === undefined ? 'http' : 'https';
    const tls = options.tls;
    this.agent = new Agent({
      connections: 128,
      keepAliveTimeout: 30_000,
      connectTimeout: 2_000,
      ...(tls === undefined ? {} : {
        connect: { ...(tls.ca === null ? {} : { ca: tls.ca }), ...(tls.cert === undefined ? {} : { cert: tls.cert }), ...(tls.key === undefined ? {} : { key: tls.key }) },
      }),
    });
  }

  async propose(command: Uint8Array, forwarded = false): Promise<unknown> {
    const deadline = performance.now() + this.leaderWaitMs;
    for (;;) {
      if (this.view.isLeader()) return this.view.proposeLocal(command);
      const leader = this.view.leaderClientAddress();
      // A forwarded command is never forwarded again: a stale view could bounce it between followers.
      if (leader !== null && !forwarded) return this.forward(leader, command);
      const left = deadline - performance.now();
      if (left <= 0) throw new KeelError('UNAVAILABLE', forwarded ? 'this node is no longer the leader' : 'no leader elected');
      await this.view.waitForLeaderChange(Math.min(left, 100));
    }
  }

  private async forward(leader: string, command: Uint8Array): Promise<unknown> {
    let response;
    try {
      const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
      const peerAuth = this.security.peerAuth;
      if (peerAuth !== undefined) {
        headers[peerAuthHeader] = peerAuth.auth.internalHeader(peerAuth.from, 'POST', internalProposePath, command, Date.now());
      }
      response = await request(`${this.scheme}://${leader}${internalProposePath}`, {
        method: 'POST',
        headers,
        body: command,
        dispatcher: this.agent,
        headersTimeout: this.forwardTimeoutMs,
        bodyTimeout: this.forwardTimeoutMs,
      });
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'ECONNREFUSED' || code === 'UND_ERR_CONNECT_TIMEOUT') {
        // Nothing was sent: definitely not applied.
        throw new KeelError('UNAVAILABLE', `the leader at ${leader} is unreachable`, {}, { cause: err });
      }
      // The request may or may not have reached the leader before the connection failed.
      throw new KeelError('TIMEOUT', `forwarding to the leader at ${leader} failed: ${(err as Error).message}`, {}, { cause: err });
    }
    const text = await response.body.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      throw new KeelError('TIMEOUT', `the leader at ${leader} answered ${response.statusCode} without JSON`);
    }
    if (response.statusCode === 200) return (body as { result: unknown }).result;
    const error = (body as { error?: { code?: string; message?: string } }).error;
    let code = error?.code !== undefined && error.code in errorCatalog ? (error.code as ErrorCode) : 'TIMEOUT';
    // The leader refused this node's peer proof (a secret mismatch): the command was not proposed, and the
    // client's own credentials are not what failed.
    if (code === 'UNAUTHENTICATED') code = 'UNAVAILABLE';
    const { code: _c, message, ...details } = (error ?? {}) as Record<string, unknown>;
    throw new KeelError(code, typeof message === 'string' ? message : `leader answered ${response.statusCode}`, details);
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}
