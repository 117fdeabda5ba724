// Goal: a running 3-node cluster grows to 5 while a writer keeps writing (issue 8 item 1): each new node joins as
// a learner with `keel start --join`, catches up (by snapshot: the log is compacted long before it joins), is
// refused promotion with 409 while it lags and promoted after; no acknowledged write is lost and all 5 nodes end
// with the same /v1/debug/hash. Also: bad input 400, unknown member 404, learners shown in /v1/status.
// Method: real processes (test/helpers/cluster.ts) with snapshotEntries 100 so the leader compacts often; n4 is
// added BEFORE its process starts, so its matchIndex is 0 and promote must be refused. Children killed by PID.
import t from 'tap';
import { startCluster } from '../helpers/cluster.js';
import { call, closeHttp, stateOfEveryNode } from '../helpers/http.js';
import { addMember, keysUnder, memberIds, promoteWhenCaughtUp, startWriter } from '../helpers/members.js';
import { setupWaitMs, waitFor, metricValue, getText } from '../helpers/runtime.js';

t.teardown(closeHttp);

void t.test('grow 3 → 5 under writes: learners catch up, promote is refused until caught up', async (t) => {
  const cluster = await startCluster(t, { nodes: 3, raft: { snapshotEntries: 100, snapshotKeepEntries: 10 } });
  const leader = await cluster.waitForLeader(setupWaitMs);
  const follower = cluster.nodes.find((n) => n.id !== leader)!;
  const writer = startWriter(t, cluster.client(['n1', 'n2', 'n3'], { retryMs: 20_000 }), 'grow/');
  await waitFor('300 acknowledged writes', setupWaitMs, () => (writer.acked() >= 300 ? true : null));

  // Bad input and unknown members, through a follower (relayed to the leader).
  const bad = await call(follower.client, 'POST', '/v1/members', { body: { id: 'x y', peerUrl: '127.0.0.1:1', clientUrl: '127.0.0.1:2' } });
  t.equal(bad.status, 400, 'a bad member id is 400');
  t.equal(bad.json?.error?.code, 'INVALID_ARGUMENT');
  const badPort = await call(follower.client, 'POST', '/v1/members', { body: { id: 'n9', peerUrl: '127.0.0.1:0', clientUrl: '127.0.0.1:2' } });
  t.equal(badPort.status, 400, 'a bad address is 400');
  const unknown = await call(follower.client, 'POST', '/v1/members/nobody/promote', { body: {} });
  t.equal(unknown.status, 404, 'promoting an unknown member is 404');
  t.equal(unknown.json?.error?.code, 'NOT_FOUND');
  const unknownDelete = await call(follower.client, 'DELETE', '/v1/members/nobody');
  t.equal(unknownDelete.status, 404, 'removing an unknown member is 404');

  for (const id of ['n4', 'n5']) {
    const node = await cluster.addNode(id);
    const added = await addMember(follower.client, node);
    t.equal(added.status, 201, `${id} added (through a follower): ${added.text.slice(0, 200)}`);
    const again = await addMember(follower.client, node);
    t.equal(again.status, 409, `adding ${id} twice is 409`);
    const status = (await cluster.status(leader))!;
    const learner = status.members.find((m) => m.id === id);
    t.same({ role: learner?.role, voter: learner?.voter }, { role: 'learner', voter: false }, `${id} is a learner in /v1/status`);

    const early = await call(follower.client, 'POST', `/v1/members/${id}/promote`, { body: {} });
    t.equal(early.status, 409, `promoting ${id} before it runs is refused with 409`);
    t.match(early.json?.error?.message, /lag \d+ entries/, `the 409 names the lag: ${early.json?.error?.message}`);

    const started = performance.now();
    cluster.start(id);
    const refused = await promoteWhenCaughtUp(cluster.node(leader).client, id, 60_000);
    t.comment(`${id} promoted ${Math.round(performance.now() - started)} ms after its start, after ${refused.length} refusals`);
    const after = (await cluster.status(leader))!;
    t.ok(after.members.find((m) => m.id === id)?.voter, `${id} is a voter`);
  }
  t.same(await memberIds(cluster, 'n5'), ['n1', 'n2', 'n3', 'n4', 'n5'], 'n5 lists all five members');
  const metrics = await getText(cluster.node('n4').client, '/metrics');
  t.ok((metricValue(metrics.text, 'keel_raft_snapshots_installed_total') ?? 0) >= 1, 'n4 caught up through a snapshot');

  await waitFor('100 more writes after the growth', setupWaitMs, () => (writer.acked() >= 400 ? true : null));
  const { acked, failed } = await writer.stop();
  t.comment(`writer: ${acked.length} acknowledged, ${failed} failed`);
  const present = await keysUnder(cluster.node('n5').client, 'grow/');
  const lost = acked.filter((k) => !present.has(k));
  t.same(lost, [], `every one of the ${acked.length} acknowledged writes is present`);
  const states = await stateOfEveryNode(cluster);
  t.equal(states.length, 5, 'five nodes running');
  t.equal(new Set(states.map((s) => `${s.revision}:${s.hash}`)).size, 1, `all five have the same hash: ${JSON.stringify(states)}`);
});
