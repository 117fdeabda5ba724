// Goal: state machine safety on real processes (RELIABILITY.md S5): after a randomized write workload (puts,
// single and prefix deletes, txns with compares, a compaction, short leases that expire or are revoked with their
// keys) sent through random nodes, with a follower and then the leader restarted gracefully (SIGTERM, then start)
// in the middle, every node holds the same revision and the same state hash (/v1/debug/hash) at the current
// revision and at past revisions.
// Method: one real three-node cluster with small snapshot thresholds, so that snapshots are taken during the run
// and a restarted node usually catches up from one (the counts are printed). Four concurrent workers draw
// operations from a seeded PRNG (the seed is printed; KEEL_SEED=<seed> replays the same operation mix, not the
// same interleaving) and send each to a random running node; refusals that faults explain (503, 504, a refused
// connection, a lease that expired meanwhile) are tolerated, a 500 never is. Once the workers stop and every lease
// is revoked, the test waits until every node's appliedIndex reaches the leader's commitIndex, then compares
// revisions, hashes at a sample of revisions, and the full key listing.
import { randomInt } from 'node:crypto';
import t, { type Test } from 'tap';
import { sleep, startCluster } from '../helpers/cluster.js';
import { call, closeHttp, keyPath, metricValue, waitForApplied } from '../helpers/http.js';
import { SeededPrng } from '../../src/util/prng.js';

const seed = Number(process.env.KEEL_SEED ?? randomInt(2 ** 31));
t.comment(`seed ${seed} (KEEL_SEED=${seed} replays the operation mix)`);
const prng = new SeededPrng(seed);

const cluster = await startCluster(t, { raft: { snapshotEntries: 100, snapshotKeepEntries: 10 } });
t.teardown(closeHttp);
await cluster.waitForLeader(60_000);

const keys = Array.from({ length: 40 }, (_, i) => `hash/${['a', 'b', 'c', 'd'][i % 4]}/${i}`);
const pick = <T>(list: readonly T[]): T => list[prng.int(0, list.length - 1)]!;

/** Leases granted so far (some expire during the run: the leader proposes their expiry through the log). */
const leases: number[] = [];

/** One random request: [method, path, body]. */
function randomOperation(): [string, string, unknown] {
  const roll = prng.int(1, 100);
  const key = pick(keys);
  const value = `v${prng.int(0, 1_000_000)}-${'x'.repeat(prng.int(0, 200))}`;
  if (roll <= 3) return ['POST', '/v1/leases', { ttl: prng.int(1, 3) }];
  if (roll <= 10 && leases.length > 0) return ['PUT', `/v1/kv/${keyPath(key)}`, { value, lease: pick(leases) }];
  if (roll <= 11 && leases.length > 0) return ['DELETE', `/v1/leases/${pick(leases)}`, undefined];
  if (roll <= 50) return ['PUT', `/v1/kv/${keyPath(key)}`, { value, ...(prng.int(0, 3) === 0 && { prevKv: true }) }];
  if (roll <= 60) return ['DELETE', `/v1/kv/${keyPath(key)}`, undefined];
  if (roll <= 63) return ['DELETE', `/v1/kv/hash/${pick(['a', 'b', 'c', 'd'])}/${prng.int(1, 3)}?prefix=true`, undefined];
  if (roll <= 70) return ['PUT', `/v1/kv/${keyPath(key)}`, { value, ifVersion: prng.int(0, 3) }];
  const compareKey = pick(keys);
  const target = pick(['value', 'version', 'createRevision', 'modRevision', 'lease'] as const);
  const compareValue = target === 'value' ? `v${prng.int(0, 1_000_000)}` : prng.int(0, 50);
  const op = (): unknown => {
    const which = prng.int(1, 10);
    if (which <= 5) return { put: { key: pick(keys), value: `t${prng.int(0, 1_000)}` } };
    if (which <= 7) return { delete: { key: pick(keys) } };
    if (which <= 8) return { delete: { key: `hash/${pick(['a', 'b', 'c', 'd'])}/2`, prefix: true } };
    return { get: { key: 'hash/', prefix: true, limit: prng.int(0, 5) } };
  };
  return [
    'POST',
    '/v1/txn',
    {
      compare: [{ key: compareKey, target, op: pick(['==', '!=', '<', '>']), value: compareValue }],
      success: Array.from({ length: prng.int(1, 6) }, op),
      failure: Array.from({ length: prng.int(0, 3) }, op),
    },
  ];
}

const outcomes = new Map<string, number>();
let highestAcknowledged = 0;
let running = true;

async function worker(t: Test): Promise<void> {
  while (running) {
    const nodes = cluster.running();
    if (nodes.length === 0) {
      await sleep(20);
      continue;
    }
    const node = pick(nodes);
    const [method, path, body] = randomOperation();
    let outcome: string;
    try {
      const answer = await call(node.client, method, path, { ...(body !== undefined && { body }), timeoutMs: 10_000 });
      outcome = String(answer.status);
      if (answer.status === 200 && typeof answer.json?.revision === 'number') {
        highestAcknowledged = Math.max(highestAcknowledged, answer.json.revision);
      }
      if (answer.status === 201 && path === '/v1/leases') leases.push(answer.json.id);
      if (answer.status >= 500 && answer.status !== 503 && answer.status !== 504) {
        t.fail(`${method} ${path} via ${node.id} answered ${answer.status}: ${answer.text.slice(0, 300)}`);
      }
    } catch {
      outcome = 'transport error';
      await sleep(20);
    }
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
  }
}

async function restart(t: Test, id: string): Promise<void> {
  const { code, ms } = await cluster.stop(id);
  t.equal(code, 0, `${id} stopped gracefully with exit code 0 (${Math.round(ms)} ms)`);
  await sleep(2_500); // writes go on without it (long enough to need a snapshot to catch up)
  cluster.start(id);
}

void t.test('random workload with restarts: every node ends with the same state hash', async (t) => {
  const workers = Array.from({ length: 4 }, () => worker(t));
  try {
    await sleep(1_500);
    const firstLeader = await cluster.waitForLeader(60_000);
    const follower = cluster.nodes.map((n) => n.id).find((id) => id !== firstLeader)!;
    await restart(t, follower);
    await sleep(1_000);
    // Compact part of the history while the workload runs: history must be dropped identically everywhere.
    const status = await cluster.status(firstLeader);
    const compactRevision = Math.max(1, (status?.revision ?? 1) - 100);
    const compacted = await call(cluster.node(firstLeader).client, 'POST', '/v1/compact', { body: { revision: compactRevision } });
    t.ok(compacted.status === 200 || compacted.status === 503, `compact at ${compactRevision}: ${compacted.status}`);
    await cluster.waitForLeader(60_000);
    await sleep(1_500);
    const leader = await cluster.waitForLeader(60_000);
    await restart(t, leader);
    await cluster.waitForLeader(60_000);
    await sleep(2_000);
  } finally {
    running = false;
    await Promise.all(workers);
  }
  // No lease may expire while the nodes are compared: revoke every one still alive (404: already gone).
  for (const lease of leases) {
    const revoked = await call(cluster.node(cluster.running()[0]!.id).client, 'DELETE', `/v1/leases/${lease}`);
    t.ok(revoked.status === 200 || revoked.status === 404, `revoke lease ${lease}: ${revoked.status}`);
  }
  t.comment(`outcomes: ${JSON.stringify(Object.fromEntries(outcomes))}; ${leases.length} leases granted`);
  t.ok((outcomes.get('200') ?? 0) >= 200, `enough writes were acknowledged (${outcomes.get('200') ?? 0})`);

  await waitForApplied(cluster, 60_000);
  const statuses = await Promise.all(cluster.nodes.map((n) => cluster.status(n.id)));
  t.ok(statuses.every((s) => s !== null), 'every node answers');
  const revisions = statuses.map((s) => s!.revision);
  const compactRevisions = statuses.map((s) => s!.compactRevision);
  t.equal(new Set(revisions).size, 1, `same revision on every node: ${revisions.join(', ')}`);
  t.equal(new Set(compactRevisions).size, 1, `same compactRevision on every node: ${compactRevisions.join(', ')}`);
  const revision = revisions[0]!;
  t.ok(revision >= highestAcknowledged, `no acknowledged revision lost (${revision} >= ${highestAcknowledged})`);

  // Hashes at the current revision and at a sample of past ones that survived the compaction.
  const low = Math.max(1, compactRevisions[0]!);
  const sample = new Set([revision, low]);
  for (let i = 1; i <= 8; i++) sample.add(low + Math.floor(((revision - low) * i) / 9));
  for (const at of [...sample].sort((a, b) => a - b)) {
    const hashes = [];
    for (const node of cluster.nodes) {
      const answer = await call(node.client, 'GET', `/v1/debug/hash?revision=${at}`);
      t.equal(answer.status, 200, `${node.id}: hash at ${at}`);
      hashes.push(answer.json?.hash);
    }
    t.equal(new Set(hashes).size, 1, `every node has the same state hash at revision ${at}`);
  }
  if (low > 1) {
    const below = await call(cluster.node(cluster.nodes[0]!.id).client, 'GET', `/v1/debug/hash?revision=${low - 1}`);
    t.equal(below.status, 410, 'a hash below the compact revision is refused as compacted');
  }
  // And the plain listing agrees too (serializable: each node's own state).
  const listings = [];
  for (const node of cluster.nodes) {
    const answer = await call(node.client, 'GET', '/v1/kv/hash/?prefix=true&consistency=serializable');
    t.equal(answer.status, 200);
    t.equal(answer.revision, revision, `${node.id} lists at revision ${revision}`);
    listings.push(JSON.stringify(answer.json));
  }
  t.equal(new Set(listings).size, 1, 'every node lists the same keys, values and metadata');
  for (const node of cluster.nodes) {
    const metrics = (await call(node.client, 'GET', '/metrics')).text;
    const taken = metricValue(metrics, 'keel_raft_snapshots_taken_total');
    const installed = metricValue(metrics, 'keel_raft_snapshots_installed_total');
    t.comment(`${node.id}: snapshots taken ${taken}, installed ${installed} (since its last start)`);
  }
});
