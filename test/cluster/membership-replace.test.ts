// Goal (issue 8 item 1): replace a dead node. One voter is killed with SIGKILL, removed with DELETE, and a fresh
// node with an empty data dir joins (`--join`), catches up, is promoted, and the cluster keeps taking writes; all
// nodes end with the same /v1/debug/hash and every acknowledged write present. Also: membership changes run one
// at a time — of concurrent adds, the ones that arrive while another is in progress get 409.
// Method: real processes (test/helpers/cluster.ts), a background writer through every endpoint, children killed
// by PID in teardown.
import t from 'tap';
import { startCluster } from '../helpers/cluster.js';
import { call, closeHttp, stateOfEveryNode } from '../helpers/http.js';
import { addMember, keysUnder, memberIds, promoteWhenCaughtUp, startWriter } from '../helpers/members.js';
import { setupWaitMs, waitFor } from '../helpers/runtime.js';

t.teardown(closeHttp);

void t.test('replace a killed node with a fresh one; concurrent changes get 409', async (t) => {
  const cluster = await startCluster(t, { nodes: 3 });
  const leader = await cluster.waitForLeader(setupWaitMs);
  const writer = startWriter(t, cluster.client(['n1', 'n2', 'n3'], { retryMs: 20_000 }), 'replace/');
  await waitFor('50 acknowledged writes', setupWaitMs, () => (writer.acked() >= 50 ? true : null));

  // One change at a time: five adds sent together to the leader.
  const extras = await Promise.all(['x1', 'x2', 'x3', 'x4', 'x5'].map((id) => cluster.addNode(id)));
  const answers = await Promise.all(extras.map((node) => addMember(cluster.node(leader).client, node)));
  const statuses = answers.map((a) => a.status);
  t.ok(statuses.includes(201), `one concurrent add succeeded (${statuses.join(',')})`);
  const refused = answers.filter((a) => a.status === 409);
  t.ok(refused.length >= 1, `concurrent adds were refused with 409: ${refused[0]?.json?.error?.message}`);
  t.ok(statuses.every((s) => s === 201 || s === 409), 'nothing but 201 and 409');
  for (const [i, node] of extras.entries()) {
    if (answers[i]!.status === 201) t.equal((await call(cluster.node(leader).client, 'DELETE', `/v1/members/${node.id}`)).status, 200, `${node.id} removed again`);
  }

  const victim = cluster.nodes.find((n) => n.id !== leader && n.id.startsWith('n'))!.id;
  await cluster.kill(victim, 'SIGKILL');
  const survivors = ['n1', 'n2', 'n3'].filter((id) => id !== victim);
  const removed = await call(cluster.node(survivors[0]!).client, 'DELETE', `/v1/members/${victim}`);
  t.equal(removed.status, 200, `dead ${victim} removed: ${removed.text.slice(0, 200)}`);

  // Its config file lists only itself: the other members' addresses come from --join and the log.
  const fresh = await cluster.addNode('n4', { onlySelf: true });
  t.equal((await addMember(cluster.node(survivors[1]!).client, fresh)).status, 201, 'fresh n4 added as a learner');
  const started = performance.now();
  cluster.start('n4');
  await promoteWhenCaughtUp(cluster.node(survivors[0]!).client, 'n4', 60_000);
  t.comment(`n4 promoted ${Math.round(performance.now() - started)} ms after its start`);
  const members = [...survivors, 'n4'].sort();
  for (const id of members) t.same(await memberIds(cluster, id), members, `${id} lists ${members.join(',')}`);

  // Restarts: a founding member (its config has no n4) and n4 itself (its config has only n4) get the addresses
  // back from their own data, and n4 is reachable from the founder again.
  for (const id of [survivors[0]!, 'n4']) {
    t.equal((await cluster.stop(id)).code, 0, `${id} stopped gracefully`);
    cluster.start(id);
  }
  await cluster.waitForLeader(setupWaitMs, members);
  const seen = await waitFor(`${survivors[0]} to reach n4 after restarts`, setupWaitMs, async () => {
    const member = (await cluster.status(survivors[0]!))?.members.find((m) => m.id === 'n4');
    return member?.reachable === true ? member : null;
  });
  t.same([seen.peerUrl, seen.clientUrl], [`tcp://${fresh.peer}`, `http://${fresh.client}`], `${survivors[0]} knows n4's addresses after its restart`);
  const n4Status = (await cluster.status('n4'))!;
  t.ok(n4Status.members.every((m) => m.clientUrl !== ''), 'restarted n4 knows every member\'s address');

  // Writes go on with the new member as a voter.
  const now = await cluster.waitForLeader(setupWaitMs, members);
  const before = writer.acked();
  await waitFor('50 more writes with the new member', setupWaitMs, () => (writer.acked() >= before + 50 ? true : null));
  const { acked, failed } = await writer.stop();
  t.comment(`writer: ${acked.length} acknowledged, ${failed} failed; leader ${now}`);
  const present = await keysUnder(cluster.node('n4').client, 'replace/');
  t.same(acked.filter((k) => !present.has(k)), [], `all ${acked.length} acknowledged writes present on n4`);
  const states = await stateOfEveryNode(cluster);
  t.equal(states.length, 3, 'three nodes running');
  t.equal(new Set(states.map((s) => s.hash)).size, 1, `all agree: ${JSON.stringify(states)}`);
});
