// Goal (issue 8, backup and restore): `keel snapshot save` under a write load produces a verified backup holding
// every write acknowledged before the save began; `keel snapshot restore` builds the data dirs of a NEW cluster
// (new dirs, new ports) that serves those keys, starts above the old revision (watchers see only newer revisions;
// a read or watch from an old revision gets 410 COMPACTED), keeps leases with a fresh TTL, and refuses non-empty
// data dirs; a truncated or corrupted backup is refused with a clear message and a non-zero exit code.
// Method: a real 3-node cluster (test/helpers/cluster.ts), writers running concurrently through the CLI save
// (dist/bin/keel.js as a child process); then a second real cluster started from the restored dirs.
import { mkdtempSync, readFileSync, statSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { NodeStatus } from '../../src/api/index.js';
import type { KV } from '../../src/store/index.js';
import { isKeelError } from '../../src/util/errors.js';
import { freePort, removeTestDir, startCluster, TestCluster, type TestNode } from '../helpers/cluster.js';
import { runKeel } from '../helpers/keel-cli.js';

const bump = 1_000_000;

async function newClusterConfig(t: Test, name: string): Promise<{ dir: string; configFile: string; nodes: TestNode[] }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'keel-restore-'));
  t.teardown(() => removeTestDir(t, dir));
  const nodes: TestNode[] = [];
  for (let i = 1; i <= 3; i++) nodes.push({ id: `r${i}`, peer: `127.0.0.1:${await freePort()}`, client: `127.0.0.1:${await freePort()}`, process: null });
  const configFile = path.join(dir, 'cluster.config.json');
  writeFileSync(configFile, JSON.stringify({
    cluster: name,
    nodes: nodes.map((n) => ({ id: n.id, peer: n.peer, client: n.client, dataDir: `data/${n.id}` })),
    raft: { tickMs: 50, electionTicks: 10, heartbeatTicks: 1 },
  }, null, 2));
  return { dir, configFile, nodes };
}

void t.test('save under load, restore to a new cluster, read, watch, compacted history, bad files', async (t) => {
  const old = await startCluster(t);
  await old.waitForLeader(30_000);
  const client = old.client();
  const acked = new Map<string, string>();
  for (let i = 0; i < 200; i++) {
    await client.call('PUT', `/v1/kv/pre/${i}`, { value: `value-${i}-${'x'.repeat(i % 50)}` });
    acked.set(`pre/${i}`, `value-${i}-${'x'.repeat(i % 50)}`);
  }
  // Bulk (about 3 MiB) so that a stalled backup reader really fills the socket buffers and holds the stream.
  const bulk = 'b'.repeat(16 * 1024);
  for (let batch = 0; batch < 4; batch++) {
    await Promise.all(Array.from({ length: 50 }, (_, i) => client.call('PUT', `/v1/kv/bulk/${batch}/${i}`, { value: bulk })));
    for (let i = 0; i < 50; i++) acked.set(`bulk/${batch}/${i}`, bulk);
  }
  const lease = (await client.call<{ id: number }>('POST', '/v1/leases', { ttl: 600 })).body.id;
  await client.call('PUT', '/v1/kv/leased', { value: 'held', lease });
  acked.set('leased', 'held');

  // A write load through every node while the backup is taken.
  let loading = true;
  const load = async (worker: number): Promise<number> => {
    let n = 0;
    const writer = old.client([old.nodes[worker % 3]!.id]);
    while (loading) {
      const key = `load/${worker}/${n}`;
      await writer.call('PUT', `/v1/kv/${key}`, { value: `w${worker}-${n}` });
      acked.set(key, `w${worker}-${n}`);
      n += 1;
    }
    return n;
  };
  const loaders = [0, 1, 2, 3].map((w) => load(w));
  await new Promise((resolve) => setTimeout(resolve, 300));
  const ackedBeforeSave = new Map(acked);
  const file = path.join(old.dir, 'backup.snapshot');
  const saved = await runKeel(['snapshot', 'save', file, '--endpoints', old.nodes.map((n) => n.client).join(','), '--json']);
  loading = false;
  const loadWrites = (await Promise.all(loaders)).reduce((a, b) => a + b, 0);
  t.equal(saved.code, 0, `save exits 0 (${saved.stderr})`);
  t.notOk(existsSync(`${file}.part`), 'the .part file was renamed');
  const info = JSON.parse(saved.stdout) as { revision: number; bytes: number; cluster: string; keyCount: number };
  t.equal(info.cluster, 'test');
  t.equal(info.bytes, statSync(file).size);
  t.comment(`saved ${info.bytes} bytes at revision ${info.revision} in ${Math.round(saved.ms)} ms with ${loadWrites} writes under way`);
  t.ok(loadWrites > 0, 'writes went on during the save');
  const oldRevision = (await client.call<NodeStatus>('GET', '/v1/status')).body.revision;

  // A backup stream whose reader stalls holds a LevelDB snapshot, not a lock: writes and reads go on meanwhile.
  const stalled = await client.stream(`http://${old.nodes[0]!.client}`, '/v1/snapshot');
  const iterator = stalled.body[Symbol.asyncIterator]();
  await iterator.next();
  const started = performance.now();
  const during = await client.call<{ revision: number }>('PUT', '/v1/kv/during-stalled-backup', { value: 'x' });
  await client.call('GET', '/v1/kv/during-stalled-backup');
  const ms = performance.now() - started;
  t.ok(during.body.revision > info.revision && ms < 10_000, `a write and a read took ${Math.round(ms)} ms while a backup stream stalled`);
  await iterator.return?.();

  const verified = await runKeel(['snapshot', 'status', file]);
  t.equal(verified.code, 0, 'status verifies the file');
  t.match(verified.stdout, /checksum verified/);

  // Damaged files are refused with a clear message and a non-zero exit code, and restore writes nothing.
  const bytes = readFileSync(file);
  const truncated = path.join(old.dir, 'truncated.snapshot');
  writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.byteLength * 0.6)));
  const corrupted = path.join(old.dir, 'corrupted.snapshot');
  const flipped = Buffer.from(bytes);
  flipped[Math.floor(bytes.byteLength / 2)] = flipped[Math.floor(bytes.byteLength / 2)]! ^ 0x01;
  writeFileSync(corrupted, flipped);
  const target = await newClusterConfig(t, 'restored');
  for (const [bad, pattern] of [[truncated, /truncated/], [corrupted, /checksum mismatch|corrupted/]] as const) {
    const status = await runKeel(['snapshot', 'status', bad]);
    t.not(status.code, 0, `status of ${path.basename(bad)} fails`);
    t.match(status.stderr, pattern);
    const refused = await runKeel(['snapshot', 'restore', bad, '--config', target.configFile]);
    t.not(refused.code, 0, `restore of ${path.basename(bad)} fails`);
    t.match(refused.stderr, /backup rejected/);
    t.notOk(existsSync(path.join(target.dir, 'data')), 'nothing was written');
  }

  const restored = await runKeel(['snapshot', 'restore', file, '--config', target.configFile, '--json']);
  t.equal(restored.code, 0, `restore exits 0 (${restored.stderr})`);
  const startRevision = (JSON.parse(restored.stdout) as { revision: number }).revision;
  t.equal(startRevision, info.revision + bump);
  const again = await runKeel(['snapshot', 'restore', file, '--config', target.configFile]);
  t.not(again.code, 0, 'a second restore into the same dirs is refused');
  t.match(again.stderr, /not empty/);

  const fresh = new TestCluster(target.dir, target.configFile, target.nodes, 'info');
  t.teardown(() => fresh.destroy());
  for (const node of target.nodes) fresh.start(node.id);
  await fresh.waitForLeader(30_000);
  const reader = fresh.client();
  const status = (await reader.call<NodeStatus>('GET', '/v1/status')).body;
  t.equal(status.cluster, 'restored');
  t.ok(status.revision >= startRevision && status.revision > oldRevision, `revision ${status.revision} above the old cluster's ${oldRevision}`);
  t.equal(status.compactRevision, startRevision);

  let missing = 0;
  for (const [key, value] of ackedBeforeSave) {
    const got = await reader.call<{ kv: KV }>('GET', `/v1/kv/${key}`).then((r) => r.body.kv.value, () => null);
    if (got !== value) missing += 1;
  }
  t.equal(missing, 0, `all ${ackedBeforeSave.size} writes acknowledged before the save are there with their values`);

  // The lease is kept, with a fresh TTL.
  const leaseInfo = (await reader.call<{ ttl: number; keys: string[] }>('GET', `/v1/leases/${lease}`)).body;
  t.ok(leaseInfo.ttl > 300 && leaseInfo.ttl <= 600, `lease ${lease} kept with ttl ${leaseInfo.ttl}`);
  t.same(leaseInfo.keys, ['leased']);

  // Old revisions are compacted, for reads and for watches.
  const oldRead = await reader.call('GET', `/v1/kv/pre/1?revision=${info.revision}`).then(() => null, (e: unknown) => e);
  t.ok(isKeelError(oldRead, 'COMPACTED'), 'a read at the backup revision answers 410 COMPACTED');
  const oldWatch = await reader.stream(`http://${target.nodes[1]!.client}`, `/v1/watch/pre/?prefix=true&fromRevision=${info.revision}`).then(() => null, (e: unknown) => e);
  t.ok(isKeelError(oldWatch, 'COMPACTED'), 'a watch from the backup revision answers 410 COMPACTED');

  // A watch from "now" sees new writes at revisions above everything the old cluster handed out.
  const controller = new AbortController();
  const watch = await reader.stream(`http://${target.nodes[2]!.client}`, '/v1/watch/pre/?prefix=true', { signal: controller.signal });
  const put = await reader.call<{ revision: number }>('PUT', '/v1/kv/pre/new', { value: 'after restore' });
  t.ok(put.body.revision > oldRevision, `the first write after restore has revision ${put.body.revision}`);
  let text = '';
  for await (const chunk of watch.body) {
    text += chunk.toString('utf8');
    if (text.includes('"put"')) break;
  }
  controller.abort();
  const events = text.trim().split('\n').map((line) => JSON.parse(line) as { type: string; revision: number; kv?: KV });
  t.equal(events[0]?.type, 'created');
  const event = events.find((e) => e.type === 'put');
  t.equal(event?.kv?.key, 'pre/new');
  t.equal(event?.revision, put.body.revision);
  t.ok((event?.revision ?? 0) > oldRevision, 'the watch starts above the old revision');
});
