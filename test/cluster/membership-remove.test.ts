// Goal (issue 8 item 1): removing the LEADER hands leadership to another voter first, then the new leader removes
// it; the removed process notices and exits, it is gone from every member list, and writes continue. Leader
// transfer to a chosen node completes (2xx, /v1/status names it), and is refused for a learner (409), an unknown
// member (404) and a bad id (400).
// Method: real processes (test/helpers/cluster.ts), a background writer through every endpoint; children are
// killed by PID in teardown.
import t from 'tap';
import { startCluster } from '../helpers/cluster.js';
import { call, closeHttp, stateOfEveryNode } from '../helpers/http.js';
import { addMember, keysUnder, memberIds, startWriter } from '../helpers/members.js';
import { setupWaitMs, waitFor } from '../helpers/runtime.js';

t.teardown(closeHttp);

void t.test('leader transfer to a chosen node, then remove the leader while writes continue', async (t) => {
  const cluster = await startCluster(t, { nodes: 4 });
  const leader = await cluster.waitForLeader(setupWaitMs);
  const others = cluster.nodes.filter((n) => n.id !== leader).map((n) => n.id);
  const writer = startWriter(t, cluster.client(cluster.nodes.map((n) => n.id), { retryMs: 20_000 }), 'rm/');
  await waitFor('50 acknowledged writes', setupWaitMs, () => (writer.acked() >= 50 ? true : null));

  // Transfer: refused cases first.
  const via = cluster.node(others[0]!).client;
  t.equal((await call(via, 'POST', '/v1/leader/transfer', { body: { to: 'bad id' } })).status, 400, 'bad id: 400');
  t.equal((await call(via, 'POST', '/v1/leader/transfer', { body: { to: 'nobody' } })).status, 404, 'unknown member: 404');
  t.equal((await call(via, 'POST', '/v1/leader/transfer', { body: {} })).status, 400, 'missing "to": 400');
  const learner = await cluster.addNode('n9');
  t.equal((await addMember(via, learner)).status, 201, 'n9 added as a learner (never started)');
  const toLearner = await call(via, 'POST', '/v1/leader/transfer', { body: { to: 'n9' } });
  t.equal(toLearner.status, 409, `transfer to a learner: 409 (${toLearner.json?.error?.message})`);
  t.equal((await call(via, 'DELETE', '/v1/members/n9')).status, 200, 'the learner removed again');

  const target = others[1]!;
  const started = performance.now();
  const moved = await call(via, 'POST', '/v1/leader/transfer', { body: { to: target } });
  t.equal(moved.status, 200, `transfer to ${target}: ${moved.text}`);
  t.comment(`transfer to ${target} took ${Math.round(performance.now() - started)} ms`);
  t.equal(await cluster.waitForLeader(setupWaitMs), target, `${target} leads`);

  // Remove the leader (asked through another node): it hands over, then the new leader removes it.
  const oldLeader = target;
  const removedAt = performance.now();
  const asked = others.find((id) => id !== oldLeader)!;
  const removed = await call(cluster.node(asked).client, 'DELETE', `/v1/members/${oldLeader}`);
  t.equal(removed.status, 200, `DELETE the leader ${oldLeader}: ${removed.text.slice(0, 300)}`);
  t.not(removed.json?.leader, oldLeader, `the answer comes from the new leader ${removed.json?.leader}`);
  const exited = await waitFor(`${oldLeader} to exit`, setupWaitMs, () => (cluster.node(oldLeader).process === null ? true : null), 100);
  t.ok(exited, `${oldLeader} noticed its removal and exited ${Math.round(performance.now() - removedAt)} ms after the DELETE`);
  const remaining = cluster.nodes.filter((n) => n.id !== oldLeader && n.id !== 'n9').map((n) => n.id);
  const newLeader = await cluster.waitForLeader(setupWaitMs, remaining);
  t.not(newLeader, oldLeader, `new leader ${newLeader}`);
  for (const id of remaining) t.same(await memberIds(cluster, id), remaining.slice().sort(), `${id}: ${oldLeader} is out of the members`);

  const before = writer.acked();
  await waitFor('50 more writes after the removal', setupWaitMs, () => (writer.acked() >= before + 50 ? true : null));
  const { acked, failed } = await writer.stop();
  t.comment(`writer: ${acked.length} acknowledged, ${failed} failed`);
  const present = await keysUnder(cluster.node(newLeader).client, 'rm/');
  t.same(acked.filter((k) => !present.has(k)), [], `all ${acked.length} acknowledged writes present`);
  const states = await stateOfEveryNode(cluster);
  t.equal(new Set(states.map((s) => s.hash)).size, 1, `remaining nodes agree: ${JSON.stringify(states)}`);

  const restart = cluster.node(oldLeader);
  cluster.start(restart.id);
  const code = await new Promise<number | null>((resolve) => restart.process!.once('exit', (c) => resolve(c)));
  t.not(code, 0, `the removed node refuses to start again (exit ${code})`);
});
