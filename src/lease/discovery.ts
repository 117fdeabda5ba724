// Service discovery reads: the instances of a service, the per-service summary, and the wait of a blocking query.
// All of it reads the applied state of this node's store (the API puts the read barrier in front for
// linearizable reads) and answers with the store revision it read at, which is the blocking-query `index`.
//
// A blocking query (index=r, waitMs) waits for a change of the registry keys it is about — one service's prefix,
// or the whole services prefix for the summary — after revision r. It is a store watch from r + 1 on that prefix:
// history already past r (a change the client has not seen) wakes it at once through catch-up, a compacted r
// wakes it at once (the set may have changed), and writes to other keys never reach it.
import type { KvStore, Watcher } from '../store/index.js';
import { serviceKeys } from './prefixes.js';
import type { Instance } from './registry.js';
import { instanceFromKv } from './registry.js';

export interface ServiceSummary {
  readonly name: string;
  readonly instances: number;
  /** Instances whose status is "passing". */
  readonly healthy: number;
}

export interface InstanceFilter {
  /** Only "passing" instances. */
  readonly isHealthyOnly?: boolean;
  /** Only instances carrying this tag. */
  readonly tag?: string;
}

/** The instances of `service` in instance-id order, as of the store's current revision. */
export async function readInstances(store: KvStore, service: string): Promise<{ instances: Instance[]; revision: number }> {
  const { kvs, revision } = await store.range({ key: serviceKeys.service(service), prefix: true });
  const instances: Instance[] = [];
  for (const kv of kvs) {
    const instance = instanceFromKv(kv);
    if (instance !== null) instances.push(instance);
  }
  return { instances, revision };
}

/** One instance, or null when it is not registered. */
export async function readInstance(store: KvStore, service: string, id: string): Promise<{ instance: Instance | null; revision: number }> {
  const { kv, revision } = await store.get(serviceKeys.instance(service, id));
  return { instance: kv === null ? null : instanceFromKv(kv), revision };
}

export function filterInstances(instances: readonly Instance[], filter: InstanceFilter): Instance[] {
  return instances.filter(
    (instance) =>
      (filter.isHealthyOnly !== true || instance.status === 'passing') &&
      (filter.tag === undefined || instance.tags.includes(filter.tag)),
  );
}

/** Every service with at least one instance, in name order. */
export async function readServices(store: KvStore): Promise<{ services: ServiceSummary[]; revision: number }> {
  const { kvs, revision } = await store.range({ key: serviceKeys.prefix, prefix: true });
  const byName = new Map<string, { instances: number; healthy: number }>();
  for (const kv of kvs) {
    const instance = instanceFromKv(kv);
    if (instance === null) continue;
    const counts = byName.get(instance.service) ?? { instances: 0, healthy: 0 };
    counts.instances += 1;
    if (instance.status === 'passing') counts.healthy += 1;
    byName.set(instance.service, counts);
  }
  // Keys come in byte order and names are ASCII, so the map is already in name order.
  return { services: [...byName].map(([name, counts]) => ({ name, ...counts })), revision };
}

export type WaitOutcome = 'changed' | 'timedOut' | 'aborted';

/**
 * Resolves when a key under `prefix` changes after `afterRevision` ('changed'; also when the watch cannot go on:
 * compacted history, a snapshot restore, the store closing — the caller then reads and answers what is there),
 * after `waitMs` without a change ('timedOut'), or when `signal` aborts (the client went away).
 * Throws KeelError UNAVAILABLE when the node already serves its maximum of watchers.
 */
export function waitForChange(store: KvStore, prefix: string, afterRevision: number, waitMs: number, signal: AbortSignal): Promise<WaitOutcome> {
  if (signal.aborted) return Promise.resolve('aborted');
  const watcher: Watcher = store.watch({ key: prefix, prefix: true, fromRevision: afterRevision + 1 });
  return new Promise((resolve) => {
    let isDone = false;
    const finish = (outcome: WaitOutcome): void => {
      if (isDone) return;
      isDone = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      watcher.cancel();
      resolve(outcome);
    };
    const onAbort = (): void => finish('aborted');
    const timer = setTimeout(() => finish('timedOut'), waitMs);
    signal.addEventListener('abort', onAbort, { once: true });
    // Any message (events or compacted), the end, or an error all mean "answer now".
    watcher.next().then(
      () => finish('changed'),
      () => finish('changed'),
    );
  });
}
