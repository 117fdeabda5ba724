// Watch recorders (S13, S14, S17): each watcher streams every key (NDJSON) from one node; when the stream ends or
// fails it records a `reconnect` and resumes on a random node with fromRevision = last complete revision + 1.
// The events of one revision arrive together and become one WatchMessageRecord; a revision still incomplete
// when the stream broke is dropped and asked for again, so a duplicate or a gap is the server's, not ours.
import { Client } from 'undici';
import type { Prng } from '../../../src/util/prng.js';
import type { WatchMessageRecord } from '../history.js';
import type { Endpoint } from './recorder.js';
import { sleep } from './recorder.js';

type Event = NonNullable<WatchMessageRecord['events']>[number];
interface Line {
  type: string;
  revision?: number;
  compactRevision?: number;
  kv?: { key: string; value?: string; modRevision: number };
}

export class WatchRecorder {
  /** Last revision of which every event was received. */
  lastRevision = 0;
  private readonly abort = new AbortController();
  private done: Promise<void> = Promise.resolve();

  constructor(
    readonly watcher: number,
    private readonly endpoints: readonly Endpoint[],
    private readonly records: WatchMessageRecord[],
    private readonly prng: Prng,
  ) {}

  start(fromRevision = 1): void {
    this.lastRevision = fromRevision - 1;
    this.done = this.loop();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.done;
  }

  /** Waits until the watcher has every revision up to `revision` (false on timeout). */
  async caughtUp(revision: number, timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (this.lastRevision < revision) {
      if (performance.now() > deadline) return false;
      await sleep(50);
    }
    return true;
  }

  private async loop(): Promise<void> {
    while (!this.abort.signal.aborted) {
      const endpoint = this.endpoints[this.prng.int(0, this.endpoints.length - 1)]!;
      // Every connect, the first included, is recorded with the fromRevision it asks for (history.ts).
      this.records.push({ watcher: this.watcher, node: endpoint.id, timeMs: performance.now(), kind: 'reconnect', revision: this.lastRevision + 1 });
      try {
        await this.stream(endpoint);
      } catch {
        // Reset, refused, timeout: reconnect below.
      }
      if (this.abort.signal.aborted) break;
      await sleep(100);
    }
  }

  private async stream(endpoint: Endpoint): Promise<void> {
    const client = new Client(`http://${endpoint.address}`, { connectTimeout: 1000, bodyTimeout: 3000, headersTimeout: 3000 });
    try {
      const response = await client.request({
        method: 'GET',
        path: `/v1/watch?prefix=true&fromRevision=${this.lastRevision + 1}&progressMs=500`,
        signal: this.abort.signal,
      });
      if (response.statusCode !== 200) {
        const body = await response.body.text();
        this.records.push({ watcher: this.watcher, node: endpoint.id, timeMs: performance.now(), kind: 'error', revision: this.lastRevision, events: [] });
        if (response.statusCode === 410) throw new Error(`compacted: ${body}`);
        return;
      }
      let pending: { revision: number; events: Event[] } | null = null;
      const flush = (): void => {
        if (pending === null) return;
        this.records.push({ watcher: this.watcher, node: endpoint.id, timeMs: performance.now(), kind: 'events', revision: pending.revision, events: pending.events });
        this.lastRevision = Math.max(this.lastRevision, pending.revision);
        pending = null;
      };
      let buffered = '';
      for await (const chunk of response.body) {
        buffered += (chunk as Buffer).toString('utf8');
        let newline = buffered.indexOf('\n');
        while (newline >= 0) {
          const line = JSON.parse(buffered.slice(0, newline)) as Line;
          buffered = buffered.slice(newline + 1);
          newline = buffered.indexOf('\n');
          this.take(line, endpoint, () => pending, (p) => (pending = p), flush);
        }
      }
    } finally {
      await client.destroy().catch(() => undefined);
    }
  }

  private take(
    line: Line,
    endpoint: Endpoint,
    get: () => { revision: number; events: Event[] } | null,
    set: (p: { revision: number; events: Event[] }) => void,
    flush: () => void,
  ): void {
    const now = performance.now();
    if (line.type === 'put' || line.type === 'delete') {
      const revision = line.revision ?? 0;
      const pending = get();
      if (pending !== null && pending.revision !== revision) flush();
      const current = get() ?? { revision, events: [] };
      const kv = line.kv!;
      current.events.push({ type: line.type, key: kv.key, ...(line.type === 'put' && kv.value !== undefined ? { value: kv.value } : {}), modRevision: kv.modRevision });
      set(current);
      return;
    }
    flush();
    if (line.type === 'progress') {
      this.records.push({ watcher: this.watcher, node: endpoint.id, timeMs: now, kind: 'progress', revision: line.revision ?? 0 });
      this.lastRevision = Math.max(this.lastRevision, line.revision ?? 0);
    } else if (line.type === 'compacted') {
      this.records.push({ watcher: this.watcher, node: endpoint.id, timeMs: now, kind: 'compacted', revision: line.compactRevision ?? 0 });
    } else if (line.type === 'error') {
      this.records.push({ watcher: this.watcher, node: endpoint.id, timeMs: now, kind: 'error', revision: this.lastRevision });
    }
  }
}
