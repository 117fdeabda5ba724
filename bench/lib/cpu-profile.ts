// Summarises a V8 .cpuprofile (node --cpu-prof): self time per function and per area (a Keel source folder, an
// npm package, a Node internal module, or V8's own buckets such as the garbage collector), busiest first.
import { readFileSync } from 'node:fs';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
  readonly startTime: number;
  readonly endTime: number;
}

export interface SelfTime {
  readonly name: string;
  readonly where: string;
  readonly area: string;
  readonly ms: number;
  /** Share of the non-idle time. */
  readonly percent: number;
}

export interface ProfileSummary {
  readonly totalMs: number;
  readonly idleMs: number;
  readonly busyMs: number;
  readonly functions: readonly SelfTime[];
  /** Time with the function anywhere on the stack (counted once per sample), busiest first. */
  readonly inclusive: readonly SelfTime[];
  readonly areas: readonly { readonly area: string; readonly ms: number; readonly percent: number }[];
  /** Busy time by Keel subsystem: each sample goes to the first subsystem (in `subsystems` order) on its stack. */
  readonly subsystems: readonly { readonly subsystem: string; readonly ms: number; readonly percent: number }[];
}

type Frame = ProfileNode['callFrame'];

/** Keel's write path, outermost concern last: a sample in a LevelDB call made by the store counts as the store's. */
const subsystems: readonly (readonly [string, (frame: Frame) => boolean])[] = [
  ['store snapshot (export, checksum)', (f) => f.url.includes('/store/snapshot.js')],
  ['raft log persist (LevelDB batch, fsync)', (f) => f.url.includes('/raft/io/level-log-storage.js')],
  ['store apply (entries -> one LevelDB batch)', (f) => f.url.includes('/store/kv-store.js') && /apply|write/i.test(f.functionName)],
  ['watch hub publish', (f) => f.url.includes('/store/watch-hub.js')],
  ['peer transport (frames, writev, decode)', (f) => f.url.includes('/raft/io/tcp-transport.js')],
  ['raft core (step, ready, propose)', (f) => f.url.includes('/dist/src/raft/') && !f.url.includes('/raft/io/')],
  ['raft driver loop', (f) => f.url.includes('/raft/io/driver.js')],
  ['msgpackr (command encode/decode outside apply)', (f) => f.url.includes('/msgpackr/')],
  ['HTTP (node:http, fastify, routes, ajv, JSON)', (f) => /fastify|_http_|avvio|find-my-way|ajv|\/api\/|secure-json-parse/.test(f.url)],
  ['metrics (prom-client)', (f) => f.url.includes('/prom-client/')],
  ['lease layer', (f) => f.url.includes('/dist/src/lease/')],
];

/** Which part of the system a frame belongs to, from its script URL. */
export function areaOf(url: string, functionName: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (pkg !== null) return `npm:${pkg[1]}`;
  const keel = /\/dist\/(src\/[^/]+|bin)\//.exec(url) ?? /\/dist\/(src)\/[^/]+\.js$/.exec(url);
  if (keel !== null) return `keel:${keel[1]}`;
  const internal = /^node:(internal\/[^/]+|[^/]+)/.exec(url);
  if (internal !== null) return `node:${internal[1]!.replace(/\.js$/, '')}`;
  return url;
}

/** A time window on the profiled process's monotonic clock, in µs (process.hrtime.bigint() / 1000 there). */
export interface ProfileWindow {
  readonly fromUs: number;
  readonly toUs: number;
}

/** The monotonic clock V8 stamps profiles with (CLOCK_MONOTONIC, shared by every process on the machine). */
export function monotonicUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/** Keeps only the samples taken inside `window` (start-up, warm-up and shutdown are not the workload). */
function windowed(profile: CpuProfile, window: ProfileWindow | undefined): CpuProfile {
  if (window === undefined) return profile;
  const samples: number[] = [];
  const timeDeltas: number[] = [];
  let at = profile.startTime;
  let last = window.fromUs;
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i] ?? 0;
    if (at < window.fromUs || at > window.toUs) continue;
    samples.push(profile.samples[i]!);
    timeDeltas.push(at - last);
    last = at;
  }
  return { ...profile, samples, timeDeltas, startTime: window.fromUs, endTime: window.toUs };
}

export function summariseProfile(file: string, top = 30, window?: ProfileWindow): ProfileSummary {
  const profile = windowed(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, window);
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfUs = new Map<number, number>();
  // timeDeltas[i] is the time since the previous sample: sample i ran for about timeDeltas[i + 1].
  for (let i = 0; i < profile.samples.length; i++) {
    const us = profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0;
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, us));
  }
  const perFunction = new Map<string, { name: string; where: string; area: string; us: number }>();
  const perArea = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)?.callFrame;
    if (frame === undefined) continue;
    totalUs += us;
    if (frame.functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    const { key, name, where } = frameKey(frame);
    const area = areaOf(frame.url, name);
    const entry = perFunction.get(key) ?? { name, where, area, us: 0 };
    entry.us += us;
    perFunction.set(key, entry);
    perArea.set(area, (perArea.get(area) ?? 0) + us);
  }
  const busyUs = Math.max(1, totalUs - idleUs);
  const inclusive = inclusiveTimes(profile, byId, busyUs, top);
  const bySubsystem = subsystemTimes(profile, byId, busyUs);
  const functions = [...perFunction.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map((f) => ({ name: f.name, where: f.where, area: f.area, ms: f.us / 1000, percent: (100 * f.us) / busyUs }));
  const areas = [...perArea.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([area, us]) => ({ area, ms: us / 1000, percent: (100 * us) / busyUs }));
  return { totalMs: totalUs / 1000, idleMs: idleUs / 1000, busyMs: busyUs / 1000, functions, inclusive, areas, subsystems: bySubsystem };
}

function stackOf(id: number, byId: ReadonlyMap<number, ProfileNode>, parent: ReadonlyMap<number, number>): Frame[] {
  const stack: Frame[] = [];
  for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
    const frame = byId.get(at)?.callFrame;
    if (frame !== undefined) stack.push(frame);
  }
  return stack;
}

function subsystemTimes(profile: CpuProfile, byId: ReadonlyMap<number, ProfileNode>, busyUs: number): ProfileSummary['subsystems'] {
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const totals = new Map<string, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const us = Math.max(0, profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0);
    const stack = stackOf(profile.samples[i]!, byId, parent);
    const leaf = stack[0];
    if (leaf === undefined || leaf.functionName === '(idle)') continue;
    const match = subsystems.find(([, test]) => stack.some(test));
    const name = match?.[0] ?? (leaf.functionName.startsWith('(') ? leaf.functionName : 'other');
    totals.set(name, (totals.get(name) ?? 0) + us);
  }
  return [...totals.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([subsystem, us]) => ({ subsystem, ms: us / 1000, percent: (100 * us) / busyUs }));
}

function frameKey(frame: ProfileNode['callFrame']): { key: string; name: string; where: string } {
  const name = frame.functionName === '' ? '(anonymous)' : frame.functionName;
  const where = frame.url === '' ? '' : `${shortUrl(frame.url)}:${frame.lineNumber + 1}`;
  return { key: `${name}@${where}`, name, where };
}

function inclusiveTimes(profile: CpuProfile, byId: ReadonlyMap<number, ProfileNode>, busyUs: number, top: number): SelfTime[] {
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const totals = new Map<string, { name: string; where: string; area: string; us: number }>();
  for (let i = 0; i < profile.samples.length; i++) {
    const us = Math.max(0, profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0);
    const seen = new Set<string>();
    for (let id: number | undefined = profile.samples[i]; id !== undefined; id = parent.get(id)) {
      const frame = byId.get(id)?.callFrame;
      if (frame === undefined || frame.functionName === '(root)' || frame.functionName === '(idle)') continue;
      const { key, name, where } = frameKey(frame);
      if (seen.has(key)) continue;
      seen.add(key);
      const entry = totals.get(key) ?? { name, where, area: areaOf(frame.url, name), us: 0 };
      entry.us += us;
      totals.set(key, entry);
    }
  }
  return [...totals.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, top)
    .map((f) => ({ name: f.name, where: f.where, area: f.area, ms: f.us / 1000, percent: (100 * f.us) / busyUs }));
}

function shortUrl(url: string): string {
  return url
    .replace(/^file:\/\/.*?\/node_modules\//, '')
    .replace(/^file:\/\/.*?\/dist\//, 'dist/')
    .replace(/^node:/, 'node:');
}

export function renderProfile(summary: ProfileSummary, areas = 15): string {
  const lines = [
    `profile: ${(summary.totalMs / 1000).toFixed(1)} s sampled, ${((100 * summary.idleMs) / Math.max(1, summary.totalMs)).toFixed(1)}% idle; shares below are of the busy time`,
    '',
    '| self % | self ms | function | where | area |',
    '| ---: | ---: | --- | --- | --- |',
    ...summary.functions.map((f) => `| ${f.percent.toFixed(1)} | ${f.ms.toFixed(0)} | ${f.name} | ${f.where} | ${f.area} |`),
    '',
    '| busy % | ms | subsystem (first match on the stack) |',
    '| ---: | ---: | --- |',
    ...summary.subsystems.map((x) => `| ${x.percent.toFixed(1)} | ${x.ms.toFixed(0)} | ${x.subsystem} |`),
    '',
    '| incl. % | incl. ms | function | where | area |',
    '| ---: | ---: | --- | --- | --- |',
    ...summary.inclusive.map((f) => `| ${f.percent.toFixed(1)} | ${f.ms.toFixed(0)} | ${f.name} | ${f.where} | ${f.area} |`),
    '',
    '| self % | self ms | area |',
    '| ---: | ---: | --- |',
    ...summary.areas.slice(0, areas).map((a) => `| ${a.percent.toFixed(1)} | ${a.ms.toFixed(0)} | ${a.area} |`),
  ];
  return lines.join('\n');
}
