// Membership at run time, node layer: the member directory (id → peer and client address), the conf changes
// behind /v1/members, leadership transfer, `keel start --join`, and a node noticing it was removed.
//
// Addresses travel in the conf change's context (JSON of {id, peer, client}; the bootstrap entry carries the
// founding members as an array). The store records the context of every applied conf change, so snapshots carry
// them and a restart restores them. Precedence: the config file's own entries, then the applied contexts, then
// what `--join` fetched (kept in <dataDir>/members.json until the log arrives).
import { existsSync } from 'node:fs';
import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, request } from 'undici';
import type { MemberInput, MemberStatus, MembersBackend } from './api/index.js';
import { internalMembersPath, parseMemberAddress } from './api/index.js';
import { HttpClient } from './client.js';
import type { NodeConfig } from './config.js';
import { applyConfChange, isMember, members, type ConfChange, type ConfState, type RaftStatus } from './raft/index.js';
import type { RaftDriver, TcpTransport } from './raft/io/index.js';
import type { KvStore } from './store/index.js';
import { isKeelError, KeelError } from './util/errors.js';
import type { Logger } from './util/logger.js';
import { peerAuthHeader, type PeerAuth } from './util/peer-auth.js';

export type MemberAddress = MemberInput;

/** A learner is caught up (may be promoted, may take leadership) within this many entries of the leader. */
export const promoteLagMax = 500;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeMemberContext(value: MemberAddress | readonly MemberAddress[]): Uint8Array {
  const plain = (m: MemberAddress): MemberAddress => ({ id: m.id, peer: m.peer, client: m.client });
  return encoder.encode(JSON.stringify(Array.isArray(value) ? value.map(plain) : plain(value as MemberAddress)));
}

/** Decodes a context; anything that is not one (another tool's, damaged) yields nothing rather than failing. */
export function decodeMemberContext(bytes: Uint8Array): MemberAddress[] {
  let raw: unknown;
  try {
    raw = JSON.parse(decoder.decode(bytes));
  } catch {
    return [];
  }
  return (Array.isArray(raw) ? raw : [raw]).flatMap((m: unknown) => {
    const { id, peer, client } = (m ?? {}) as Record<string, unknown>;
    return typeof id === 'string' && typeof peer === 'string' && typeof client === 'string' ? [{ id, peer, client }] : [];
  });
}

export class MemberDirectory {
  private readonly configured: Map<string, MemberAddress>;
  private applied = new Map<string, MemberAddress>();
  private joined = new Map<string, MemberAddress>();

  /** The other nodes' client ports speak TLS (verified with `ca`; cert/key presented when they demand one). */
  readonly clientTls: ClientPortTls | undefined;
  readonly clientScheme: 'http' | 'https';
  private readonly dial: NodeConfig['dial'];

  /** `dial` (test-only) overrides the address this node dials for a member (e.g. a fault proxy). */
  constructor(config: readonly NodeConfig[], options: { dial?: NodeConfig['dial']; clientTls?: ClientPortTls } = {}) {
    this.configured = new Map(config.map((n) => [n.id, { id: n.id, peer: n.peer, client: n.client }]));
    this.dial = options.dial;
    this.clientTls = options.clientTls;
    this.clientScheme = options.clientTls === undefined ? 'http' : 'https';
  }

  /** The client address this node dials to reach member `id` (its own address unless `dial` overrides it). */
  dialClient(id: string): string | undefined {
    return this.dial?.[id]?.client ?? this.get(id)?.client;
  }

  get(id: string): MemberAddress | undefined {
    return this.configured.get(id) ?? this.applied.get(id) ?? this.joined.get(id);
  }

  ids(): string[] {
    return [...new Set([...this.configured.keys(), ...this.applied.keys(), ...this.joined.keys()])];
  }

  setJoined(list: readonly MemberAddress[]): void {
    this.joined = new Map(list.map((m) => [m.id, m]));
  }

  setApplied(list: readonly MemberAddress[]): void {
    this.applied = new Map(list.map((m) => [m.id, m]));
  }

  noteChange(change: ConfChange): void {
    if (change.type === 'remove') this.applied.delete(change.id);
    else if (change.context !== undefined) for (const m of decodeMemberContext(change.context)) this.applied.set(m.id, m);
  }

  /** Peer addresses for the transport: the members of `conf` (everyone known while conf is still empty). */
  peers(self: string, conf: ConfState): Map<string, string> {
    const ids = conf.voters.length + conf.learners.length === 0 ? this.ids() : members(conf);
    const out = new Map<string, string>();
    for (const id of ids) {
      const address = this.get(id);
      if (id !== self && address !== undefined) out.set(id, this.dial?.[id]?.peer ?? address.peer);
    }
    return out;
  }
}

/** Reloads the applied contexts from the store (after start and after a snapshot replaced them). */
export async function loadAppliedMembers(store: KvStore, directory: MemberDirectory): Promise<void> {
  const list = (await store.memberContexts()).flatMap(([, bytes]) => decodeMemberContext(bytes));
  directory.setApplied(list);
}

const joinFile = 'members.json';
const removedFile = 'removed';
/** How long a removed node keeps answering in-flight requests before it stops. */
const removedStopDelayMs = 1_000;

/** `--join`: the membership as the cluster's leader sees it, kept in the data dir until the log arrives. */
export async function fetchJoinMembers(dataDir: string, endpoints: readonly string[], logger: Logger, directory: MemberDirectory): Promise<MemberAddress[]> {
  // Over TLS when the cluster's client ports use it; with $KEEL_TOKEN (an admin token) when auth is enabled.
  const tls = directory.clientTls;
  const token = process.env.KEEL_TOKEN;
  const client = new HttpClient({
    endpoints,
    retryMs: 30_000,
    timeoutMs: 5_000,
    ...(tls !== undefined && { tls: { ...(tls.ca !== null && { ca: tls.ca }), ...(tls.cert !== undefined && { cert: tls.cert, key: tls.key }) } }),
    ...(token !== undefined && token !== '' && { token }),
  });
  try {
    const { body } = await client.call<{ members: MemberStatus[] }>('GET', '/v1/members');
    const list = body.members.flatMap((m) =>
      m.peerUrl === '' || m.clientUrl === ''
        ? []
        : [{ id: m.id, peer: parseMemberAddress(m.peerUrl, 'peerUrl'), client: parseMemberAddress(m.clientUrl, 'clientUrl') }],
    );
    const file = path.join(dataDir, joinFile);
    await writeFile(`${file}.tmp`, JSON.stringify(list, null, 2));
    await rename(`${file}.tmp`, file);
    logger.info({ members: list.map((m) => m.id), from: endpoints }, 'joining: fetched the cluster membership');
    return list;
  } finally {
    await client.close();
  }
}

/** What an earlier --join stored (null if this node never joined). */
export async function readJoinMembers(dataDir: string): Promise<MemberAddress[] | null> {
  const file = path.join(dataDir, joinFile);
  if (!existsSync(file)) return null;
  return decodeMemberContext(encoder.encode(await readFile(file, 'utf8')));
}

export function removedMarker(dataDir: string): string {
  return path.join(dataDir, removedFile);
}

export interface MembershipDeps {
  readonly self: string;
  readonly driver: RaftDriver;
  readonly transport: TcpTransport;
  readonly directory: MemberDirectory;
  readonly electionTimeoutMs: number;
  readonly leaderWaitMs: number;
  readonly waitForLeaderChange: (ms: number) => Promise<void>;
  readonly logger: Logger;
}

/** The members as this node sees them (progress and lag only on the leader). */
export function memberStatuses(self: string, raft: RaftStatus, directory: MemberDirectory, isConnected: (id: string) => boolean): MemberStatus[] {
  const roleOf = (id: string): MemberStatus['role'] => {
    if (raft.conf.learners.includes(id)) return 'learner';
    if (id === raft.leader) return 'leader';
    if (id === self) return raft.role === 'precandidate' ? 'candidate' : raft.role === 'leader' ? 'leader' : raft.role;
    return 'follower';
  };
  return members(raft.conf).map((id): MemberStatus => {
    const address = directory.get(id);
    const progress = raft.progress?.find((p) => p.id === id) ?? null;
    return {
      id,
      peerUrl: address === undefined ? '' : `tcp://${address.peer}`,
      clientUrl: address === undefined ? '' : `${directory.clientScheme}://${address.client}`,
      role: roleOf(id),
      voter: raft.conf.voters.includes(id),
      reachable: id === self || isConnected(id),
      matchIndex: progress?.matchIndex ?? null,
      lag: progress === null ? null : raft.lastIndex - progress.matchIndex,
    };
  });
}

/** The leader-side operations behind the member routes; one membership operation at a time (else 409). */
export class Membership implements MembersBackend {
  readonly self: string;
  readonly leaderWaitMs: number;
  private busy: string | null = null;

  constructor(private readonly deps: MembershipDeps) {
    this.self = deps.self;
    this.leaderWaitMs = deps.leaderWaitMs;
  }

  get clientTls(): ClientPortTls | undefined {
    return this.deps.directory.clientTls;
  }

  isLeader(): boolean {
    return this.deps.driver.role === 'leader';
  }

  leaderClientAddress(): string | null {
    const leader = this.deps.driver.leader;
    return leader === null ? null : (this.deps.directory.dialClient(leader) ?? null);
  }

  waitForLeaderChange(ms: number): Promise<void> {
    return this.deps.waitForLeaderChange(ms);
  }

  list(): { leader: string | null; members: MemberStatus[] } {
    const raft = this.deps.driver.status();
    return { leader: raft.leader, members: memberStatuses(this.self, raft, this.deps.directory, (id) => this.deps.transport.isConnected(id)) };
  }

  async add(member: MemberAddress): Promise<void> {
    await this.exclusive(`adding ${member.id}`, async () => {
      const conf = this.deps.driver.conf;
      if (isMember(conf, member.id)) throw new KeelError('CONFLICT', `member ${member.id} already exists`);
      for (const id of members(conf)) {
        const known = this.deps.directory.get(id);
        if (known !== undefined && (known.peer === member.peer || known.client === member.client)) {
          throw new KeelError('CONFLICT', `member ${id} already uses that address`);
        }
      }
      await this.propose({ type: 'addLearner', id: member.id, context: encodeMemberContext(member) });
      this.deps.logger.info({ member }, 'member added as a learner');
    });
  }

  async promote(id: string): Promise<void> {
    await this.exclusive(`promoting ${id}`, async () => {
      const conf = this.deps.driver.conf;
      if (conf.voters.includes(id)) throw new KeelError('CONFLICT', `member ${id} is already a voter`);
      if (!conf.learners.includes(id)) throw new KeelError('NOT_FOUND', `no member ${id}`);
      this.checkCaughtUp(id, 'promoted');
      await this.propose({ type: 'promote', id });
      this.deps.logger.info({ id }, 'learner promoted to voter');
    });
  }

  async remove(id: string): Promise<void> {
    await this.exclusive(`removing ${id}`, async () => {
      if (!isMember(this.deps.driver.conf, id)) throw new KeelError('NOT_FOUND', `no member ${id}`);
      await this.propose({ type: 'remove', id });
      this.deps.logger.info({ id }, 'member removed');
    });
  }

  async handOver(): Promise<string> {
    return this.exclusive('handing over leadership to remove the leader', async () => {
      const raft = this.deps.driver.status();
      if (raft.conf.voters.length === 1) throw new KeelError('CONFLICT', 'cannot remove the last voter');
      const target = (raft.progress ?? [])
        .filter((p) => p.id !== this.self && raft.conf.voters.includes(p.id) && this.deps.transport.isConnected(p.id))
        .filter((p) => p.matchIndex > 0 && raft.lastIndex - p.matchIndex <= promoteLagMax)
        .sort((a, b) => b.matchIndex - a.matchIndex)[0];
      if (target === undefined) throw new KeelError('UNAVAILABLE', 'no reachable, caught-up voter to hand leadership to; nothing was changed');
      await this.transferTo(target.id);
      return target.id;
    });
  }

  async transfer(to: string): Promise<void> {
    if (to === this.self) return;
    await this.exclusive(`transferring leadership to ${to}`, async () => {
      const conf = this.deps.driver.conf;
      if (!isMember(conf, to)) throw new KeelError('NOT_FOUND', `no member ${to}`);
      if (!conf.voters.includes(to)) throw new KeelError('CONFLICT', `member ${to} is a learner; promote it first`);
      this.checkCaughtUp(to, 'made leader');
      await this.transferTo(to);
    });
  }

  private async transferTo(to: string): Promise<void> {
    const { driver, electionTimeoutMs, logger } = this.deps;
    logger.info({ to }, 'transferring leadership');
    driver.transferLeader(to);
    const timeoutMs = 2 * electionTimeoutMs + 1_000;
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const raft = driver.status();
      if (raft.leader === to && raft.role !== 'leader') return;
      await this.deps.waitForLeaderChange(Math.max(1, Math.min(50, deadline - performance.now())));
    }
    throw new KeelError('TIMEOUT', `leadership did not move to ${to} within ${timeoutMs} ms (it may still)`);
  }

  /**
   * Proposes one change. The core refuses a change while an earlier one (or a new leader's first entry) is not
   * applied yet: this process runs one change at a time, so that wait is short and bounded, not a conflict.
   */
  private async propose(change: ConfChange): Promise<void> {
    const deadline = performance.now() + this.leaderWaitMs;
    for (;;) {
      try {
        await this.deps.driver.proposeConfChange(change);
        return;
      } catch (err) {
        const pending = isKeelError(err, 'CONFLICT') ? err.details.pendingIndex : undefined;
        if (typeof pending !== 'number' || performance.now() > deadline) throw err;
        while (this.deps.driver.appliedIndex < pending && performance.now() < deadline) await sleep(20);
      }
    }
  }

  private checkCaughtUp(id: string, what: string): void {
    const raft = this.deps.driver.status();
    const progress = raft.progress?.find((p) => p.id === id);
    const matchIndex = progress?.matchIndex ?? 0;
    const lag = raft.lastIndex - matchIndex;
    const connected = this.deps.transport.isConnected(id);
    if (matchIndex > 0 && lag <= promoteLagMax && connected) return;
    const why = connected ? '' : ', and it is not connected';
    throw new KeelError(
      'CONFLICT',
      `member ${id} is not caught up and cannot be ${what}: matchIndex ${matchIndex}, leader lastIndex ${raft.lastIndex}, lag ${lag} entries (at most ${promoteLagMax})${why}`,
      { lag, matchIndex },
    );
  }

  private async exclusive<T>(what: string, run: () => Promise<T>): Promise<T> {
    if (this.busy !== null) throw new KeelError('CONFLICT', `another membership change is in progress (${this.busy})`);
    this.busy = what;
    try {
      return await run();
    } finally {
      this.busy = null;
    }
  }
}

export interface RemovalWatchDeps {
  readonly self: string;
  readonly dataDir: string;
  readonly driver: RaftDriver;
  readonly directory: MemberDirectory;
  readonly electionTimeoutMs: number;
  readonly logger: Logger;
  readonly onRemoved: (reason: string) => void;
  /** The cluster secret, if configured: the other members' internal listing needs its proof. */
  readonly peerAuth: PeerAuth | null;
}

/**
 * Notices that this node was removed: it applied its own removal, or (the usual case: the leader stops talking to
 * a removed member before it learns the commit) it has heard no leader for a while and the leader, asked over
 * HTTP through any other member, no longer lists it. A node that never was a member (a joiner not added yet) waits.
 */
export class RemovalWatch {
  private wasMember: boolean;
  private leaderlessSinceMs: number | null = null;
  private timer: NodeJS.Timeout | null = null;
  private fired = false;
  private checking = false;
  /** Consecutive checks in which a leader did not list this node: two are needed (a stale leader steps down). */
  private unlisted = 0;
  private readonly agent: Agent;

  constructor(private readonly deps: RemovalWatchDeps) {
    this.agent = new Agent({ connections: 2, connectTimeout: 1_000, ...clientConnect(deps.directory.clientTls) });
    this.wasMember = isMember(deps.driver.conf, deps.self);
  }

  start(): void {
    this.timer = setInterval(() => void this.check(), 500);
    this.timer.unref();
  }

  onConfApplied(change: ConfChange): void {
    if (change.type === 'remove' && change.id === this.deps.self) this.fire('this node applied its own removal');
    else if (isMember(this.deps.driver.conf, this.deps.self)) this.wasMember = true;
  }

  async close(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    await this.agent.close();
  }

  private async check(): Promise<void> {
    const raft = this.deps.driver.status();
    if (isMember(raft.conf, this.deps.self)) this.wasMember = true;
    if (!this.wasMember || this.fired || this.checking || raft.leader !== null) {
      if (raft.leader !== null) [this.leaderlessSinceMs, this.unlisted] = [null, 0];
      return;
    }
    this.leaderlessSinceMs ??= performance.now();
    if (performance.now() - this.leaderlessSinceMs < 3 * this.deps.electionTimeoutMs) return;
    this.checking = true;
    try {
      for (const id of this.deps.directory.ids()) {
        const address = this.deps.directory.dialClient(id);
        if (id === this.deps.self || address === undefined) continue;
        const view = await this.askMembers(address);
        if (view === null) continue;
        const listed = view.leader === null || view.members.some((m) => m.id === this.deps.self);
        this.unlisted = listed ? 0 : this.unlisted + 1;
        if (this.unlisted >= 2) this.fire(`the leader ${view.leader} no longer lists this node as a member`);
        return;
      }
    } finally {
      this.checking = false;
    }
  }

  /**
   * The member list as `client` sees it, from its internal route: a client token is not needed there (with auth
   * on, /v1/members answered this node 401 and it never noticed its removal), the cluster secret's proof is.
   */
  private async askMembers(client: string): Promise<{ leader: string | null; members: { id: string }[] } | null> {
    const { peerAuth, self } = this.deps;
    const headers = peerAuth === null ? {} : { [peerAuthHeader]: peerAuth.internalHeader(self, 'GET', internalMembersPath, null, Date.now()) };
    try {
      const url = `${this.deps.directory.clientScheme}://${client}${internalMembersPath}`;
      const response = await request(url, { dispatcher: this.agent, headers, headersTimeout: 2_000, bodyTimeout: 2_000 });
      const text = await response.body.text();
      return response.statusCode === 200 ? (JSON.parse(text) as { leader: string | null; members: { id: string }[] }) : null;
    } catch {
      return null;
    }
  }

  private fire(reason: string): void {
    if (this.fired) return;
    this.fired = true;
    this.deps.logger.warn({ reason }, 'this node was removed from the cluster; it stops serving');
    // Stop a moment later, not at once: the request that removed this node may still be on its way back through
    // it (a follower relayed DELETE of the leader to it, and it relayed that to the new leader), and a stop closes
    // the HTTP server under it. A removed node cannot commit anything meanwhile.
    void writeFile(removedMarker(this.deps.dataDir), `${reason}\n`)
      .catch((err: unknown) => this.deps.logger.error({ err }, 'could not write the removed marker'))
      .then(() => new Promise((resolve) => setTimeout(resolve, removedStopDelayMs).unref()))
      .finally(() => this.deps.onRemoved(reason));
  }
}

export interface MembershipWiring {
  readonly self: string;
  readonly dataDir: string;
  readonly driver: RaftDriver;
  readonly transport: TcpTransport;
  readonly store: KvStore;
  readonly directory: MemberDirectory;
  readonly electionTimeoutMs: number;
  readonly leaderWaitMs: number;
  readonly waitForLeaderChange: (ms: number) => Promise<void>;
  readonly logger: Logger;
  readonly onRemoved: (reason: string) => void;
  readonly peerAuth: PeerAuth | null;
}

/**
 * Keeps the directory and the transport's peers in step with the applied membership (each conf change, and a
 * snapshot that replaced it), and builds the member routes' backend and the removal watch.
 */
export function wireMembership(w: MembershipWiring): { membership: Membership; removalWatch: RemovalWatch } {
  const logger = w.logger.child({ component: 'members' });
  let conf = w.driver.conf;
  const syncPeers = (next = w.driver.conf): void => w.transport.setPeers(w.directory.peers(w.self, next));
  let reloads = Promise.resolve();
  const reload = (): void => {
    reloads = reloads
      .then(() => loadAppliedMembers(w.store, w.directory))
      .then(() => syncPeers())
      .catch((err: unknown) => logger.error({ err }, 'could not reload the member addresses'));
  };
  const removalWatch = new RemovalWatch({ ...w, logger });
  w.driver.on('confApplied', (change: ConfChange) => {
    // Emitted before the core takes the change in (at advance): the peers follow the configuration it makes.
    w.directory.noteChange(change);
    syncPeers(applyConfChange(w.driver.conf, change));
    removalWatch.onConfApplied(change);
  });
  w.driver.on('applied', () => {
    const now = w.driver.conf;
    if (now === conf) return;
    // A snapshot replaced the membership (and the store's contexts with it).
    conf = now;
    reload();
  });
  const membership = new Membership({ ...w, logger });
  return { membership, removalWatch };
}

/** TLS for dialing other nodes' client ports (the forwarder's settings: node-security.ts). */
export interface ClientPortTls {
  readonly ca: Buffer | null;
  readonly cert?: Buffer;
  readonly key?: Buffer;
}

/** undici Agent options that dial client ports with `tls` (none for plain HTTP). */
export function clientConnect(tls: ClientPortTls | undefined): { connect?: { ca?: Buffer; cert?: Buffer; key?: Buffer } } {
  if (tls === undefined) return {};
  return { connect: { ...(tls.ca !== null && { ca: tls.ca }), ...(tls.cert !== undefined && { cert: tls.cert }), ...(tls.key !== undefined && { key: tls.key }) } };
}
