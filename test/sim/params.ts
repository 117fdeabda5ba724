// Everything a simulator run depends on, drawn from its seed: cluster size, core knobs, fault rates, nemesis
// weights, disk latencies, workload. Separate PRNG streams (network, nemesis, clients, each node's core, crash
// survival) are derived from the seed, so every run replays exactly.
import { SeededPrng } from '../../src/util/prng.js';

export type NemesisAction = 'partition' | 'crash' | 'pause' | 'transfer' | 'membership' | 'heal';

export interface NetworkParams {
  /** Probability that a message is lost (faulty phase only). */
  readonly dropRate: number;
  /** Probability that a message is delivered twice. */
  readonly dupRate: number;
  readonly delayMinMs: number;
  /** Uniform extra delay; any jitter reorders messages. */
  readonly delayJitterMs: number;
  /** Probability that a message is held back much longer (a slow link). */
  readonly spikeRate: number;
  readonly spikeMs: number;
  /** Probability that a send over a cut link is reported to the core as `unreachable`. */
  readonly unreachableRate: number;
}

export interface SimParams {
  readonly seed: number;
  readonly nodes: number;
  readonly tickMs: number;
  /** Per-node tick rate skew: each node ticks every tickMs * (1 + u * tickSkew), u in [0, 1). */
  readonly tickSkew: number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly inflightMessagesMax: number;
  readonly appendBytesMax: number;
  readonly proposalQueueMax: number;
  readonly snapshotChunkBytes: number;
  readonly net: NetworkParams;
  /** Upper bounds of a synced write, an unsynced write and an apply, in virtual ms (0: instantaneous). */
  readonly syncMsMax: number;
  readonly writeMsMax: number;
  readonly applyMsMax: number;
  readonly faultyMs: number;
  readonly healedMs: number;
  /** At the end of the healed phase clients stop, and every member must catch up. */
  readonly quiesceMs: number;
  readonly nemesisGapMinMs: number;
  readonly nemesisGapMaxMs: number;
  readonly nemesisWeights: Readonly<Record<NemesisAction, number>>;
  /** Probability that a new leader is crashed or isolated soon after its election (leader churn). */
  readonly leaderFaultRate: number;
  readonly leaderFaultDelayMaxMs: number;
  readonly snapshotEvery: number;
  readonly snapshotKeep: number;
  readonly clients: number;
  readonly thinkMsMax: number;
  readonly readRatio: number;
  readonly batchRatio: number;
}

export interface ParamOverrides {
  readonly nodes?: number;
}

/** A 32-bit seed for one PRNG stream of a run (FNV-1a over the seed and the stream's name). */
export function deriveSeed(seed: number, ...parts: (string | number)[]): number {
  let hash = 0x811c9dc5;
  const text = `${seed}/${parts.join('/')}`;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

export function streamPrng(seed: number, ...parts: (string | number)[]): SeededPrng {
  return new SeededPrng(deriveSeed(seed, ...parts));
}

export function drawParams(seed: number, overrides: ParamOverrides = {}): SimParams {
  const p = streamPrng(seed, 'params');
  const chance = (x: number): boolean => p.next() < x;
  const between = (lo: number, hi: number): number => round(lo + p.next() * (hi - lo));
  const pick = <T>(options: readonly T[]): T => options[p.int(0, options.length - 1)]!;
  const weight = (): number => (chance(0.15) ? 0 : between(0.2, 1));
  const drawnNodes = chance(0.5) ? 3 : 5;
  const nemesisGapMinMs = p.int(20, 150);
  return {
    seed,
    nodes: overrides.nodes ?? drawnNodes,
    tickMs: 10,
    tickSkew: between(0, 0.1),
    electionTicks: 10,
    heartbeatTicks: 1,
    preVote: chance(0.85),
    checkQuorum: chance(0.85),
    inflightMessagesMax: pick([1, 2, 4, 16, 256]),
    appendBytesMax: pick([64, 200, 4096, 1024 * 1024]),
    proposalQueueMax: pick([16, 256, 10_000]),
    snapshotChunkBytes: p.int(16, 128),
    net: {
      dropRate: chance(0.25) ? 0 : between(0, 0.2),
      dupRate: chance(0.4) ? 0 : between(0, 0.1),
      delayMinMs: between(0.1, 3),
      delayJitterMs: chance(0.2) ? 0 : between(0, 30),
      spikeRate: chance(0.5) ? 0 : between(0, 0.05),
      spikeMs: between(20, 300),
      unreachableRate: between(0, 1),
    },
    syncMsMax: chance(0.2) ? 0 : between(0.1, 4),
    writeMsMax: chance(0.5) ? 0 : between(0, 0.3),
    applyMsMax: chance(0.3) ? 0 : between(0, 2),
    faultyMs: p.int(2500, 5000),
    healedMs: 4000,
    quiesceMs: 1000,
    nemesisGapMinMs,
    nemesisGapMaxMs: nemesisGapMinMs + p.int(50, 600),
    nemesisWeights: {
      partition: weight(),
      crash: weight(),
      pause: weight(),
      transfer: weight(),
      membership: weight(),
      heal: between(0.1, 0.5),
    },
    leaderFaultRate: chance(0.4) ? 0 : between(0.1, 0.6),
    leaderFaultDelayMaxMs: between(0, 40),
    snapshotEvery: p.int(20, 50),
    snapshotKeep: p.int(0, 10),
    clients: p.int(1, 4),
    thinkMsMax: between(5, 60),
    readRatio: between(0.1, 0.5),
    batchRatio: between(0, 0.2),
  };
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** One line per group, for failure reports and verbose replays. */
export function formatParams(params: SimParams): string {
  const { net } = params;
  const weights = Object.entries(params.nemesisWeights)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  return [
    `seed=${params.seed} nodes=${params.nodes} preVote=${params.preVote} checkQuorum=${params.checkQuorum} ` +
      `tickSkew=${params.tickSkew} inflight=${params.inflightMessagesMax} appendBytes=${params.appendBytesMax} ` +
      `queue=${params.proposalQueueMax} chunk=${params.snapshotChunkBytes}`,
    `net: drop=${net.dropRate} dup=${net.dupRate} delay=${net.delayMinMs}+${net.delayJitterMs}ms ` +
      `spike=${net.spikeRate}x${net.spikeMs}ms unreachable=${net.unreachableRate}`,
    `disk: sync<=${params.syncMsMax}ms write<=${params.writeMsMax}ms apply<=${params.applyMsMax}ms ` +
      `snapshotEvery=${params.snapshotEvery} keep=${params.snapshotKeep}`,
    `phases: faulty=${params.faultyMs}ms healed=${params.healedMs}ms quiesce=${params.quiesceMs}ms ` +
      `nemesis gap=${params.nemesisGapMinMs}..${params.nemesisGapMaxMs}ms ${weights} ` +
      `leaderFault=${params.leaderFaultRate}@<=${params.leaderFaultDelayMaxMs}ms`,
    `clients=${params.clients} think<=${params.thinkMsMax}ms reads=${params.readRatio} batches=${params.batchRatio}`,
  ].join('\n');
}
