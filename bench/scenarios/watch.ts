// Put-to-watch-event latency: one watcher open on a key on the leader (Keel: GET /v1/watch/<key> NDJSON; etcd:
// POST /v3/watch through the gateway, one JSON per line), then `puts` sequential puts of that key. Each sample is
// the time from sending the put to receiving its event on the stream (the put's own answer is awaited too before
// the next put). Each value carries its sequence number, so an event is matched to its put, never to another.
// Like every other step it first warms up for `warmupSeconds` (the same puts, not sampled): a step right after a
// c64 load otherwise measures the system's recovery from that load instead of its put-to-watch latency.
import { randomBytes } from 'node:crypto';
import type { BenchCluster, BenchNode } from '../lib/cluster.js';
import { openLineStream, sendOk } from '../lib/http.js';
import { latencyMeasurement, type Measurement } from '../lib/load.js';
import { valueBytes } from './put.js';

const eventTimeoutMs = 5_000;
/** At least this many warm-up puts, however short the warm-up time. */
const warmupPutsMin = 20;

export async function watchLatency(cluster: BenchCluster, leader: BenchNode, puts: number, warmupSeconds: number): Promise<Measurement> {
  const key = `bench/watch/${randomBytes(4).toString('hex')}`;
  const arrived = new Map<number, number>();
  let wake: (() => void) | null = null;
  let sawFirstLine = false;
  const stream = await openLineStream(leader.clientUrl, cluster.api.watch(key), (line, atMs) => {
    sawFirstLine = true;
    for (const value of cluster.api.watchedValues(line)) {
      const seq = Number(/^w(\d+):/.exec(value)?.[1]);
      if (Number.isSafeInteger(seq) && !arrived.has(seq)) arrived.set(seq, atMs);
    }
    wake?.();
  });
  try {
    if (stream.status !== 200) throw new Error(`watch answered ${stream.status}`);
    // The first line (Keel's "created", etcd's created:true) says the watcher is registered.
    await waitFor(() => sawFirstLine, eventTimeoutMs, 'the watch to be created', (w) => (wake = w));
    const samples: number[] = [];
    const answers: number[] = [];
    let missed = 0;
    let seq = 0;
    // One put and its event; sampled unless warming up. False if the event did not come within eventTimeoutMs.
    const putAndWatch = async (sampled: boolean): Promise<boolean> => {
      const at = seq++;
      const sentAt = performance.now();
      await sendOk(leader.clientUrl, cluster.api.put(key, `w${at}:`.padEnd(valueBytes, 'x')));
      if (sampled) answers.push(performance.now() - sentAt);
      const ok = await waitFor(() => arrived.has(at), eventTimeoutMs, null, (w) => (wake = w));
      if (ok && sampled) samples.push(arrived.get(at)! - sentAt);
      return ok;
    };
    const warmupEnd = performance.now() + warmupSeconds * 1000;
    while (seq < warmupPutsMin || performance.now() < warmupEnd) await putAndWatch(false);
    const started = performance.now();
    for (let i = 0; i < puts; i++) if (!(await putAndWatch(true))) missed++;
    const seconds = (performance.now() - started) / 1000;
    // The put's own answer time, for telling the write path from the watch delivery path.
    const answerP50 = latencyMeasurement(answers, seconds).p50Ms;
    const notes = [`put answer p50 ${answerP50?.toFixed(2) ?? 'n/a'} ms`];
    if (missed > 0) notes.push(`${missed} events not received within ${eventTimeoutMs} ms`);
    const measurement = latencyMeasurement(samples, seconds, notes.join('; '));
    return { ...measurement, errors: missed };
  } finally {
    stream.close();
    await stream.done.catch(() => undefined);
  }
}

/** Waits until `ready()` holds (re-checked each time the stream wakes us); false (or throws, if `what`) on timeout. */
async function waitFor(ready: () => boolean, timeoutMs: number, what: string | null, setWake: (wake: (() => void) | null) => void): Promise<boolean> {
  if (ready()) return true;
  const ok = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    setWake(() => {
      if (!ready()) return;
      clearTimeout(timer);
      resolve(true);
    });
  });
  setWake(null);
  if (!ok && what !== null) throw new Error(`timed out waiting for ${what}`);
  return ok;
}
