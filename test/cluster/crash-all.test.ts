// Goal: acknowledged writes survive kill -9 of every node at once (RELIABILITY.md S6): after a restart every PUT
// that was answered 2xx is present with its value. A PUT answered 503/504 or cut by a connection error may or may
// not be present; a key that is present holds the value that was written to it (each key is written once).
// Method: a real 3-node cluster (test/helpers/cluster.ts); 12 concurrent writers, spread over all three nodes, each
// PUT distinct keys and record which were acknowledged. Mid-load all three nodes get SIGKILL together (by PID),
// the writers drain, the nodes restart on their data dirs, and a linearizable prefix listing is compared with the
// record. The whole cycle runs twice, the second time on top of the first one's data. Every child is killed by
// PID in teardown.
import t from 'tap';
import type { HttpClient } from '../../src/client.js';
import { isKeelError } from '../../src/util/errors.js';
import { sleep, startCluster } from '../helpers/cluster.js';
import { setupWaitMs } from '../helpers/runtime.js';

const writers = 12;

interface WriteLog {
  readonly acknowledged: Map<string, string>;
  readonly attempted: Map<string, string>;
  readonly outcomes: Map<string, number>;
}

void t.test('kill -9 of all nodes under write load loses no acknowledged write', async (t) => {
  const cluster = await startCluster(t, { nodes: 3 });
  await cluster.waitForLeader(setupWaitMs);
  const record: WriteLog = { acknowledged: new Map(), attempted: new Map(), outcomes: new Map() };

  for (let round = 1; round <= 2; round++) {
    let stop = false;
    // One client per writer, each preferring a different node, so followers forward writes too.
    const ids = cluster.nodes.map((n) => n.id);
    const load = Array.from({ length: writers }, (_, w) => {
      const client = cluster.client([...ids.slice(w % ids.length), ...ids.slice(0, w % ids.length)], { retryMs: 1_000, timeoutMs: 3_000 });
      return writer(client, `r${round}w${w}`, record, () => stop);
    });
    // Let the load run long enough for many writes to be in flight at the moment of the crash.
    const before = record.acknowledged.size;
    const loadDeadline = performance.now() + 20_000;
    while (record.acknowledged.size < before + 300 && performance.now() < loadDeadline) await sleep(20);
    t.ok(record.acknowledged.size >= before + 300, `round ${round}: ≥ 300 writes acknowledged before the crash`);
    await Promise.all(cluster.nodes.map((n) => cluster.kill(n.id, 'SIGKILL')));
    stop = true;
    await Promise.all(load);
    t.comment(`round ${round}: ${record.attempted.size} PUTs attempted, ${record.acknowledged.size} acknowledged; outcomes ${JSON.stringify(Object.fromEntries(record.outcomes))}`);

    for (const node of cluster.nodes) cluster.start(node.id);
    await cluster.waitForLeader(setupWaitMs);
    const listed = await cluster.client().call<{ kvs: { key: string; value: string }[] }>('GET', '/v1/kv/crash/?prefix=true');
    const found = new Map(listed.body.kvs.map((kv) => [kv.key, kv.value]));
    const lost = [...record.acknowledged].filter(([key, value]) => found.get(key) !== value);
    t.same(lost.slice(0, 20), [], `round ${round}: all ${record.acknowledged.size} acknowledged writes are present with their values (${lost.length} lost)`);
    const foreign = [...found].filter(([key, value]) => record.attempted.get(key) !== value);
    t.same(foreign.slice(0, 20), [], `round ${round}: every present key holds the value written to it (${found.size} keys)`);
    t.comment(`round ${round}: ${found.size - record.acknowledged.size} unacknowledged writes were applied anyway`);
  }
});

/** PUTs distinct keys until told to stop; records what was attempted and what was acknowledged. */
async function writer(client: HttpClient, name: string, record: WriteLog, stopped: () => boolean): Promise<void> {
  for (let i = 0; !stopped(); i++) {
    const key = `crash/${name}/${i}`;
    const value = `${name}-${i}`;
    record.attempted.set(key, value);
    let outcome: string;
    try {
      await client.call('PUT', `/v1/kv/${key}`, { value });
      record.acknowledged.set(key, value);
      outcome = 'ok';
    } catch (err) {
      // Anything else (400, 412, ...) would be a bug in this test or the server: let it fail the test.
      if (!isKeelError(err, 'UNAVAILABLE') && !isKeelError(err, 'TIMEOUT')) throw err;
      outcome = err.details.transport === true ? 'connection error' : err.code;
      await sleep(50);
    }
    record.outcomes.set(outcome, (record.outcomes.get(outcome) ?? 0) + 1);
  }
}
