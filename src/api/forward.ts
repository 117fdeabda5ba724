// The write path seen from the API: a command goes into the log through the leader. On the leader it is
// proposed directly; on a follower it is sent to the leader's internal propose route and the leader's answer
// (result or typed error) is relayed, so clients never need to find the leader themselves.
//
// When no leader is known (an election is running), the proposer waits for one up to `leaderWaitMs` before
// answering UNAVAILABLE: the write was not proposed, so it was not applied.
import { Agent, request } from 'undici';
import { KeelError, errorCatalog, type ErrorCode } from '../util/errors.js';

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
  private readonly agent = new Agent({ connections: 128, keepAliveTimeout: 30_000, connectTimeout: 2_000 });
  private readonly leaderWaitMs: number;
  private readonly forwardTimeoutMs: number;

  constructor(view: LeaderView, options: { leaderWaitMs: number; forwardTimeoutMs: number }) {
    this.view = view;
    this.leaderWaitMs = options.leaderWaitMs;
    this.forwardTimeoutMs = options.forwardTimeoutMs;
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
      response = await request(`http://${leader}${internalProposePath}`, {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream' },
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
    const code = error?.code !== undefined && error.code in errorCatalog ? (error.code as ErrorCode) : 'TIMEOUT';
    const { code: _c, message, ...details } = (error ?? {}) as Record<string, unknown>;
    throw new KeelError(code, typeof message === 'string' ? message : `leader answered ${response.statusCode}`, details);
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}
