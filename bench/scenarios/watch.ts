// Put-to-watch-event latency: one watcher open on a key on the leader (Keel: GET /v1/watch/<key> NDJSON; etcd:
// POST /v3/watch through the gateway, one JSON per line), then `puts` sequential puts of that key. Each sample is
// the time from sending the put to receiving its event on the stream (the put's own answer is awaited too before
// the next put). Each value carries its sequence number, so an event is matched to its put, never to another.
import { randomBytes } from 'node:crypto';
import type { BenchCluster, BenchNode } from '../lib/cluster.js';
import { openLineStream, sendOk } from '../lib/http.js';
import { latencyMeasurement, type Measurement } from '../lib/load.js';
import { valueBytes } from './put.js';

const eventTimeoutMs = 5_000;
const warmupPuts = 20;

export async function watchLatency(cluster: BenchCluster, leader: BenchNode, puts: number): Promise<Measurement> {
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
    const started = performance.now();
    for (let seq = 0; seq < warmupPuts + puts; seq++) {
      const value = `w${seq}:`.padEnd(valueBytes, 'x');
      const sentAt = performance.now();
      await sendOk(leader.clientUrl, cluster.api.put(key, value));
      if (seq >= warmupPuts) answers.push(performance.now() - sentAt);
      const ok = await waitFor(() => arrived.has(seq), eventTimeoutMs, null, (w) => (wake = w));
      if (!ok) missed++;
      else if (seq >= warmupPuts) samples.push(arrived.get(seq)! - sentAt);
    }
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
