// Goal: with client auth on, a member removed while it could not hear about it still notices and exits
// (src/members.ts RemovalWatch). It asks the other members for their member list; /v1/members needs a client
// token, which a node does not have (it answered 401, and the removed node ran on, leaderless, forever), so it asks
// their internal listing, GET /internal/v1/members, with the cluster secret's proof. Without that proof the
// internal listing is refused (401), and a client token does not stand for it.
// Method: three real processes with a cluster secret, auth enabled through the CLI. A follower is frozen
// (SIGSTOP, by PID) so it misses its own removal, removed through the leader with the root token, then thawed
// (SIGCONT). It hears from no leader and must exit on its own; the others list two members. Every child is killed
// by PID in teardown.
import t from 'tap';
import { startCluster } from '../helpers/cluster.js';
import { call, closeHttp } from '../helpers/http.js';
import { runKeel } from '../helpers/keel-cli.js';
import { setupWaitMs, waitFor } from '../helpers/runtime.js';

t.teardown(closeHttp);

void t.test('with auth on, a member removed while frozen notices its removal and exits', async (t) => {
  const cluster = await startCluster(t, { nodes: 3, config: { peerSecret: 'removal-watch-test-secret-0123456789' } });
  const leader = await cluster.waitForLeader(setupWaitMs);
  const endpoints = cluster.nodes.map((n) => n.client).join(',');
  const enabled = await runKeel(['--endpoints', endpoints, '--json', 'auth', 'enable'], 30_000);
  if (enabled.code !== 0) throw new Error(`keel auth enable exited ${enabled.code}: ${enabled.stderr}`);
  const token = (JSON.parse(enabled.stdout) as { token: string }).token;
  cluster.token = token;
  const bearer = { authorization: `Bearer ${token}` };
  const leaderAddress = cluster.node(leader).client;

  t.equal((await call(leaderAddress, 'GET', '/v1/members')).status, 401, '/v1/members needs a token with auth on');
  t.equal((await call(leaderAddress, 'GET', '/internal/v1/members')).status, 401, 'the internal listing without the peer proof: 401');
  const withToken = await call(leaderAddress, 'GET', '/internal/v1/members', { headers: bearer });
  t.equal(withToken.status, 401, 'a client token does not stand for the peer proof');

  const removed = cluster.nodes.find((n) => n.id !== leader)!.id;
  const survivors = cluster.nodes.filter((n) => n.id !== removed).map((n) => n.id);
  await cluster.kill(removed, 'SIGSTOP');
  const answer = await call(leaderAddress, 'DELETE', `/v1/members/${removed}`, { headers: bearer });
  t.equal(answer.status, 200, `DELETE ${removed} while it is frozen: ${answer.text.slice(0, 200)}`);
  const thawedAt = performance.now();
  await cluster.kill(removed, 'SIGCONT');
  const exited = await waitFor(`${removed} to exit`, setupWaitMs, () => (cluster.node(removed).process === null ? true : null), 100);
  t.ok(exited, `${removed} noticed its removal and exited ${Math.round(performance.now() - thawedAt)} ms after it was thawed`);
  for (const id of survivors) {
    const listing = await call(cluster.node(id).client, 'GET', '/v1/members', { headers: bearer });
    const ids = ((listing.json?.members ?? []) as { id: string }[]).map((m) => m.id).sort();
    t.same(ids, survivors.slice().sort(), `${id} lists ${ids.join(', ')}`);
  }
});
