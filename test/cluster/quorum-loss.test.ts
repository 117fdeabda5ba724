// Goal (issue 8): the documented recovery from quorum loss works as written in README "Recovering from quorum
// loss": with two of three nodes dead, the survivor's data is saved (online with --serializable while it still
// runs, or offline from its --data-dir once it is stopped) and restored as a new single-node cluster that serves
// every write the survivor had applied; members are then added back (membership API).
// Method: a real 3-node cluster, kill -9 of two nodes, the CLI as child processes, a new 1-node cluster started
// from the restored data dir on new ports.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import type { NodeStatus } from '../../src/api/index.js';
import type { KV } from '../../src/store/index.js';
import { freePort, removeTestDir, sleep, startCluster, TestCluster, type TestNode } from '../helpers/cluster.js';
import { runKeel } from '../helpers/keel-cli.js';

void t.test('survivor data -> new single-node cluster', async (t) => {
  const old = await startCluster(t);
  await old.waitForLeader(30_000);
  const client = old.client();
  let revision = 0;
  for (let i = 0; i < 50; i++) revision = (await client.call<{ revision: number }>('PUT', `/v1/kv/key/${i}`, { value: `v${i}` })).body.revision;
  // The survivor has applied everything (it is one of the quorum that acknowledged the writes, or caught up).
  const deadline = performance.now() + 30_000;
  while (((await old.status('n3'))?.revision ?? 0) < revision && performance.now() < deadline) await sleep(50);
  await old.kill('n1');
  await old.kill('n2');

  const online = path.join(old.dir, 'online.snapshot');
  const saved = await runKeel(['snapshot', 'save', online, '--serializable', '--endpoints', old.node('n3').client]);
  t.equal(saved.code, 0, `online --serializable save from the quorum-less survivor (${saved.stderr})`);
  await old.kill('n3');
  const offline = path.join(old.dir, 'offline.snapshot');
  const savedOffline = await runKeel(['snapshot', 'save', offline, '--data-dir', path.join(old.dir, 'data', 'n3'), '--config', old.configFile, '--json']);
  t.equal(savedOffline.code, 0, `offline save from the stopped survivor's data dir (${savedOffline.stderr})`);
  const header = JSON.parse(savedOffline.stdout) as { revision: number; cluster: string };
  t.equal(header.revision, revision, 'the survivor had applied every write');
  t.equal(header.cluster, 'test');

  const dir = mkdtempSync(path.join(os.tmpdir(), 'keel-recover-'));
  t.teardown(() => removeTestDir(t, dir));
  const node: TestNode = { id: 'n3', peer: `127.0.0.1:${await freePort()}`, client: `127.0.0.1:${await freePort()}`, process: null };
  const configFile = path.join(dir, 'cluster.config.json');
  writeFileSync(configFile, JSON.stringify({ cluster: 'test', nodes: [{ id: node.id, peer: node.peer, client: node.client, dataDir: 'data/n3' }], raft: { tickMs: 50, electionTicks: 10, heartbeatTicks: 1 } }));
  const restored = await runKeel(['snapshot', 'restore', offline, '--config', configFile]);
  t.equal(restored.code, 0, `restore (${restored.stderr})`);
  const single = new TestCluster(dir, configFile, [node], 'info');
  t.teardown(() => single.destroy());
  single.start('n3');
  await single.waitForLeader(30_000);
  const reader = single.client();
  for (let i = 0; i < 50; i++) {
    const kv = (await reader.call<{ kv: KV }>('GET', `/v1/kv/key/${i}`)).body.kv;
    if (kv.value !== `v${i}`) t.fail(`key/${i} is ${kv.value}`);
  }
  t.pass('all 50 keys served by the new single-node cluster');
  const put = await reader.call<{ revision: number }>('PUT', '/v1/kv/after', { value: 'x' });
  t.ok(put.body.revision > revision, 'it takes writes above the old revision');
  const status = (await reader.call<NodeStatus>('GET', '/v1/status')).body;
  t.equal(status.members.length, 1);
});
