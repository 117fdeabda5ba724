// Goal: SIGTERM and SIGINT stop a node gracefully — exit code 0 within 5 s, whether it is the leader or a
// follower, whether it stops alone or with the whole cluster — and a cluster restarted on the same data dirs
// resumes: every key written before is readable with its value, the term has not gone backwards, a leader is
// elected again and writes are accepted.
// Method: a real 3-node cluster (test/helpers/cluster.ts). Round 1 stops the nodes one at a time with SIGTERM:
// the leader (which hands leadership over), then the node it handed over to (whose log must name the one node
// still running as its transferee, not the stopped one), then the last; round 2 sends SIGINT to all three at
// once, as Ctrl-C in a terminal does. After each round all nodes are restarted on their data dirs and checked.
// Every child is killed by PID in teardown.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { NodeStatus } from '../../src/api/index.js';
import type { HttpClient } from '../../src/client.js';
import { startCluster, type TestCluster } from '../helpers/cluster.js';
import { setupWaitMs, waitFor } from '../helpers/runtime.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const stopDeadlineMs = 5_000;

void t.test('SIGTERM and SIGINT stop nodes with code 0 in time and a restart resumes on the same data', async (t) => {
  const cluster = await startCluster(t, { nodes: 3 });
  let leader = await cluster.waitForLeader(setupWaitMs);
  const written = new Map<string, string>();
  await writeKeys(cluster.client(), written, 'before-round-1', 20);
  let termBefore = await maxTerm(t, cluster);

  // Round 1: SIGTERM, one node at a time: the leader, then the leader it handed over to, then the last node.
  const first = await stopChecked(t, cluster, leader, 'SIGTERM', '(leader)');
  const second = await cluster.waitForLeader(setupWaitMs, cluster.running().map((n) => n.id));
  const last = cluster.running().find((n) => n.id !== second)!.id;
  await stopChecked(t, cluster, second, 'SIGTERM', '(the new leader)');
  // The new leader must hand over to the node still running, not to the one that just stopped.
  t.same(transferTargets(cluster, second), [last], `${second} handed leadership to the running ${last}, not to the stopped ${first}`);
  await stopChecked(t, cluster, last, 'SIGTERM', '(the last node)');
  leader = await restartAndCheck(t, cluster, written, termBefore, 'after SIGTERM');
  await writeKeys(cluster.client(), written, 'before-round-2', 20);
  termBefore = await maxTerm(t, cluster);

  // Round 2: SIGINT to every node at once.
  const stops = await Promise.all(cluster.nodes.map((n) => cluster.stop(n.id, 'SIGINT')));
  stops.forEach(({ code, ms }, i) => {
    const id = cluster.nodes[i]!.id;
    t.equal(code, 0, `${id}${id === leader ? ' (leader)' : ''}: SIGINT → exit code 0`);
    t.ok(ms < stopDeadlineMs, `${id}: stopped in ${Math.round(ms)} ms (bound ${stopDeadlineMs})`);
  });
  await restartAndCheck(t, cluster, written, termBefore, 'after SIGINT');
});

async function stopChecked(t: Test, cluster: TestCluster, id: string, signal: NodeJS.Signals, what: string): Promise<string> {
  const { code, ms } = await cluster.stop(id, signal);
  t.equal(code, 0, `${id} ${what}: ${signal} → exit code 0`);
  t.ok(ms < stopDeadlineMs, `${id}: stopped in ${Math.round(ms)} ms (bound ${stopDeadlineMs})`);
  return id;
}

/** The peers a node tried to hand leadership to on shutdown, from its log (JSON lines, info level). */
function transferTargets(cluster: TestCluster, id: string): string[] {
  return readFileSync(path.join(cluster.dir, `${id}.log`), 'utf8')
    .split('\n')
    .filter((line) => line.includes('shutting down: transferring leadership'))
    .map((line) => (JSON.parse(line) as { to: string }).to);
}

async function writeKeys(client: HttpClient, written: Map<string, string>, prefix: string, count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const key = `graceful/${prefix}/${i}`;
    const value = `${prefix}-value-${i}`;
    await client.call('PUT', `/v1/kv/${key}`, { value });
    written.set(key, value);
  }
}

async function maxTerm(t: Test, cluster: TestCluster): Promise<number> {
  const statuses = await Promise.all(cluster.running().map((n) => cluster.status(n.id)));
  t.ok(statuses.every((s) => s !== null), 'every running node answers /v1/status');
  return Math.max(...statuses.map((s) => s?.term ?? 0));
}

/** Restarts every node, waits for a leader, and checks terms, every written key and a new write. */
async function restartAndCheck(t: Test, cluster: TestCluster, written: Map<string, string>, termBefore: number, when: string): Promise<string> {
  for (const node of cluster.nodes) cluster.start(node.id);
  const leader = await cluster.waitForLeader(setupWaitMs);
  t.pass(`${when}: restarted nodes elected ${leader}`);
  const statuses = (await Promise.all(cluster.nodes.map((n) => cluster.status(n.id)))) as (NodeStatus | null)[];
  for (const status of statuses) {
    t.ok(status !== null && status.term >= termBefore, `${when}: ${status?.id} term ${status?.term} ≥ ${termBefore} before the stop`);
  }
  const client = cluster.client();
  const listed = await client.call<{ kvs: { key: string; value: string }[] }>('GET', '/v1/kv/graceful/?prefix=true');
  const found = new Map(listed.body.kvs.map((kv) => [kv.key, kv.value]));
  const missing = [...written].filter(([key, value]) => found.get(key) !== value);
  t.same(missing, [], `${when}: all ${written.size} keys written before are readable with their values`);
  // Every node serves them from its own store too (serializable reads are local).
  // A follower may still be applying the new leader's first entries: poll briefly.
  for (const node of cluster.nodes) {
    const local = cluster.client([node.id]);
    const count = await waitFor(`${node.id} to hold every key locally`, 5_000, async () => {
      const response = await local.call<{ count: number }>('GET', '/v1/kv/graceful/?prefix=true&countOnly=true&consistency=serializable');
      return response.body.count >= written.size ? response.body.count : null;
    }).catch(() => -1);
    t.ok(count >= written.size, `${when}: ${node.id} holds ≥ ${written.size} keys locally`);
  }
  await client.call('PUT', `/v1/kv/graceful/${when.replace(/\W+/g, '-')}`, { value: 'resumed' });
  t.pass(`${when}: a new write is acknowledged`);
  return leader;
}
