// Keepalive throughput for many leases, through the public HTTP API of a real three-node cluster (the built
// dist/bin/keel.js, started by the test launcher on ephemeral ports, default timings tickMs 50 × electionTicks 10).
// 1. grants `leases` leases (ttl `ttl` s) with `concurrency` requests in flight;
// 2. for `seconds`, keeps `concurrency` keepalive requests in flight, rotating over the leases and over the three
//    nodes (two of three requests land on followers, which coalesce and forward them);
// 3. checks that no lease expired meanwhile.
// Prints JSON: keepalives/s, latency percentiles, Raft entries/s (the coalescing), and the failure counts.
// With --batch N (> 1) each request refreshes N leases through POST /v1/leases/keepalive {ids} instead.
// Usage: npm run build && npx tsx bench/lease-keepalive.ts [--leases 10000] [--seconds 10] [--concurrency 256] [--ttl 60]
//        [--batch 1]
import { Agent, request } from 'undici';
import { startCluster, type TestCluster } from '../test/helpers/cluster.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

const agent = new Agent({ connections: 512, keepAliveTimeout: 30_000, pipelining: 1 });

async function post(address: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const response = await request(`http://${address}${path}`, {
    method: 'POST',
    dispatcher: agent,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? null : JSON.stringify(body),
    headersTimeout: 15_000,
    bodyTimeout: 15_000,
  });
  const text = await response.body.text();
  return { status: response.statusCode, json: text === '' ? null : JSON.parse(text) };
}

async function get(address: string, path: string): Promise<unknown> {
  const response = await request(`http://${address}${path}`, { method: 'GET', dispatcher: agent });
  return JSON.parse(await response.body.text());
}

/** Runs `work(i)` for i in [0, count) with `concurrency` in flight. */
async function pool(count: number, concurrency: number, work: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) await work(next++);
    }),
  );
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? 0;
}

async function commitIndex(cluster: TestCluster, leader: string): Promise<number> {
  return (await cluster.status(leader))?.commitIndex ?? 0;
}

async function main(): Promise<void> {
  const leaseCount = arg('leases', 10_000);
  const seconds = arg('seconds', 10);
  const concurrency = arg('concurrency', 256);
  const ttl = arg('ttl', 60);
  const batch = arg('batch', 1);
  const teardowns: (() => void | Promise<void>)[] = [];
  const fakeTap = { teardown: (fn: () => void | Promise<void>) => teardowns.push(fn), passing: () => true, comment: () => undefined };
  const cluster = await startCluster(fakeTap, { logLevel: 'warn' });
  try {
    const leader = await cluster.waitForLeader(15_000);
    const addresses = cluster.nodes.map((n) => n.client);

    const grantStarted = performance.now();
    const ids: number[] = new Array<number>(leaseCount);
    await pool(leaseCount, Math.min(concurrency, 128), async (i) => {
      const answer = await post(addresses[i % addresses.length]!, '/v1/leases', { ttl });
      if (answer.status !== 201) throw new Error(`grant: ${answer.status} ${JSON.stringify(answer.json)}`);
      ids[i] = (answer.json as { id: number }).id;
    });
    const grantSeconds = (performance.now() - grantStarted) / 1000;

    const latencies: number[] = [];
    let ok = 0;
    let notFound = 0;
    let failed = 0;
    let counter = 0;
    const entriesBefore = await commitIndex(cluster, leader);
    const started = performance.now();
    const deadline = started + seconds * 1000;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (performance.now() < deadline) {
          const n = counter++;
          const sent = performance.now();
          try {
            const address = addresses[n % addresses.length]!;
            const answer =
              batch > 1
                ? await post(address, '/v1/leases/keepalive', { ids: Array.from({ length: batch }, (_, j) => ids[(n * batch + j) % leaseCount]!) })
                : await post(address, `/v1/leases/${ids[n % leaseCount]!}/keepalive`);
            if (answer.status === 200) {
              const body = answer.json as { leases?: unknown[]; notFound?: unknown[] };
              ok += batch > 1 ? (body.leases?.length ?? 0) : 1;
              notFound += batch > 1 ? (body.notFound?.length ?? 0) : 0;
              latencies.push(performance.now() - sent);
            } else if (answer.status === 404) notFound++;
            else if (failed++ === 0) process.stderr.write(`first failure: ${answer.status} ${JSON.stringify(answer.json)}\n`);
          } catch (err) {
            if (failed++ === 0) process.stderr.write(`first failure: ${(err as Error).message}\n`);
          }
        }
      }),
    );
    const elapsed = (performance.now() - started) / 1000;
    const entries = (await commitIndex(cluster, leader)) - entriesBefore;
    latencies.sort((a, b) => a - b);
    const listed = ((await get(addresses[0]!, '/v1/leases')) as { leases: unknown[] }).leases.length;
    const result = {
      bench: 'lease-keepalive',
      leases: leaseCount,
      concurrency,
      leasesPerRequest: batch,
      seconds: Math.round(elapsed * 100) / 100,
      grantsPerSecond: Math.round(leaseCount / grantSeconds),
      keepalivesPerSecond: Math.round(ok / elapsed),
      keepalives: ok,
      everyLeaseRefreshedEverySeconds: Math.round((leaseCount / (ok / elapsed)) * 100) / 100,
      p50Ms: Math.round(percentile(latencies, 50) * 10) / 10,
      p99Ms: Math.round(percentile(latencies, 99) * 10) / 10,
      raftEntriesPerSecond: Math.round(entries / elapsed),
      keepalivesPerEntry: entries > 0 ? Math.round(ok / entries) : null,
      notFound,
      failed,
      leasesAliveAfter: listed,
    };
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    await agent.close();
    for (const fn of teardowns.reverse()) await fn();
    await cluster.destroy();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
