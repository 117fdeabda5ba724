// Goal: KeelClient's key-value calls give the API.md results and typed errors against a real cluster, and a
// KeelClient watch survives the kill -9 of the node it streams from: it reconnects to another node and resumes,
// delivering every written revision exactly once, in order (no gap, no duplicate), including txns that write two
// keys in one revision; a watch from a compacted revision fails with a COMPACTED KeelError.
// Method: 3 real `keel start` processes (test/helpers/cluster.ts). A watch client lists the leader first, so the
// watch streams from the leader; a writer (listing the leader last) puts keys and txns in a loop while the leader
// is killed with SIGKILL half-way. The writes that answered 2xx are compared with the events the watch delivered.
import t from 'tap';
import { KeelClient } from '../../src/index.js';
import type { WatchEvent } from '../../src/index.js';
import { startCluster } from '../helpers/cluster.js';

void t.test('KV calls: results, revisions and typed errors', async (t) => {
  const cluster = await startCluster(t);
  await cluster.waitForLeader(30_000);
  const client = new KeelClient(cluster.nodes.map((n) => n.client));
  t.teardown(() => client.close());

  const first = await client.put('app/a', 'one');
  const second = await client.put('app/b', 'two', { prevKv: true });
  t.equal(second.revision, first.revision + 1, 'one revision per write');
  t.equal(second.prevKv, undefined, 'no previous version of a new key');
  const a = await client.get('app/a');
  t.match(a, { key: 'app/a', value: 'one', version: 1, modRevision: first.revision, createRevision: first.revision, lease: 0 });
  t.equal(await client.get('app/missing'), null, 'a missing key is null, not an error');
  t.equal((await client.get('app/a', { revision: first.revision }))?.value, 'one', 'read the past');

  const range = await client.range('app/');
  t.same(range.kvs.map((kv) => kv.key), ['app/a', 'app/b']);
  t.equal(range.count, 2);
  t.ok(range.revision >= second.revision, 'the range carries the revision it reflects');
  t.match(await client.range('app/', { limit: 1 }), { count: 2, more: true });

  await t.rejects(client.put('app/a', 'x', { ifModRevision: 0 }), { name: 'KeelError', code: 'PRECONDITION_FAILED', details: { kv: { key: 'app/a' } } });
  await t.rejects(client.put('', 'x'), { code: 'INVALID_ARGUMENT' });

  const txn = await client.txn({
    compare: [{ key: 'app/a', target: 'value', op: '==', value: 'one' }],
    success: [{ put: { key: 'app/a', value: 'uno' } }, { get: { key: 'app/', prefix: true } }],
    failure: [],
  });
  t.equal(txn.succeeded, true);
  t.equal(txn.results.length, 2);

  const deleted = await client.delete('app/', { prefix: true, prevKv: true });
  t.equal(deleted.deleted, 2);
  t.same(deleted.prevKvs?.map((kv) => kv.value), ['uno', 'two']);

  const compacted = await client.compact(txn.revision);
  t.equal(compacted.compactRevision, txn.revision);
  await t.rejects(client.get('app/a', { revision: first.revision }), { code: 'COMPACTED' });
  const stale = client.watch('app/', { prefix: true, fromRevision: first.revision });
  await t.rejects(
    (async () => {
      for await (const _event of stale) t.fail('no event from a compacted revision');
    })(),
    { code: 'COMPACTED', details: { compactRevision: txn.revision } },
  );
});

void t.test('watch resumes on another node after kill -9, without gap or duplicate', async (t) => {
  const cluster = await startCluster(t);
  const leader = await cluster.waitForLeader(30_000);
  const others = cluster.nodes.filter((n) => n.id !== leader);
  const watcher = new KeelClient([cluster.node(leader).client, ...others.map((n) => n.client)]);
  const writer = new KeelClient({ endpoints: [...others.map((n) => n.client), cluster.node(leader).client], retryMs: 15_000 });
  t.teardown(async () => {
    await watcher.close();
    await writer.close();
  });

  const start = await writer.put('seed', 'x');
  const watch = watcher.watch('w/', { prefix: true, fromRevision: start.revision + 1, progressMs: 500 });
  const events: WatchEvent[] = [];
  const consumed = (async () => {
    for await (const event of watch) events.push(event);
  })();

  // Expected events by revision, from the writes that answered 2xx.
  const expected = new Map<number, string[]>();
  const total = 240;
  let killedAt = -1;
  for (let i = 0; i < total; i++) {
    if (i === total / 2) {
      t.equal(watch.endpoint, `http://${cluster.node(leader).client}`, 'the watch streams from the leader');
      killedAt = i;
      await cluster.kill(leader, 'SIGKILL');
    }
    if (i % 10 === 5) {
      const result = await writer.txn({ success: [{ put: { key: `w/${i}/a`, value: `${i}` } }, { put: { key: `w/${i}/b`, value: `${i}` } }] });
      expected.set(result.revision, [`w/${i}/a=${i}`, `w/${i}/b=${i}`]);
    } else {
      const result = await writer.put(`w/${i}`, `${i}`);
      expected.set(result.revision, [`w/${i}=${i}`]);
    }
  }
  const lastRevision = Math.max(...expected.keys());
  const deadline = Date.now() + 20_000;
  while (events.length < [...expected.values()].flat().length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  watch.close();
  await consumed;

  t.ok(killedAt > 0 && watch.reconnects >= 1, `the watch reconnected (${watch.reconnects} times), now on ${watch.endpoint}`);
  t.not(watch.endpoint, `http://${cluster.node(leader).client}`);
  const got = new Map<number, string[]>();
  for (const event of events) got.set(event.revision, [...(got.get(event.revision) ?? []), `${event.kv.key}=${event.kv.value}`]);
  const revisions = events.map((e) => e.revision);
  t.ok(revisions.every((r, i) => i === 0 || r >= revisions[i - 1]!), 'revisions never go back');
  t.equal(events.length, new Set(events.map((e) => `${e.revision}/${e.kv.key}`)).size, 'no duplicate event');
  const missing = [...expected.keys()].filter((r) => !got.has(r));
  t.same(missing, [], 'no revision missing');
  for (const [revision, writes] of expected) {
    if (JSON.stringify([...(got.get(revision) ?? [])].sort()) !== JSON.stringify([...writes].sort())) t.fail(`revision ${revision}: ${JSON.stringify(got.get(revision))} != ${JSON.stringify(writes)}`);
  }
  t.equal(Math.max(...revisions), lastRevision, 'the watch reached the last write');
});
