// Goal: client auth end to end on a real cluster (issue 8, item 3): off by default; `keel auth enable` (the CLI)
// makes root and prints its token once; then a request without a token gets 401 on every node while /health and
// /metrics stay open; a read-only token reads (200) and is refused writes (403) through the leader AND through a
// follower (the check runs on the node the client called, before forwarding); a watch without permission gets 403;
// a readwrite token writes through a follower; `_keel/auth/` never shows in KV answers; a revoked token gets 401
// on every node; and all of it survives a restart of every node.
// Method: real `keel start` processes (test/helpers/cluster.ts, ephemeral loopback ports), the built CLI for the
// auth commands (so the CLI is tested as an operator runs it), HttpClient.once() per node for exact status codes.
// The time from the revoke's answer to the last node refusing the token is printed.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import t from 'tap';
import { HttpClient } from '../../src/client.js';
import { keelBin, startCluster, type TestCluster } from '../helpers/cluster.js';
import { getText, setupWaitMs, waitFor } from '../helpers/runtime.js';

const run = promisify(execFile);

async function keel(cluster: TestCluster, args: string[], token?: string): Promise<Record<string, unknown>> {
  const endpoints = cluster.nodes.map((n) => n.client).join(',');
  const env = { ...process.env, KEEL_TOKEN: token ?? '' };
  const { stdout } = await run(process.execPath, [keelBin, '--endpoints', endpoints, '--json', ...args], { env, timeout: 30_000 });
  return JSON.parse(stdout) as Record<string, unknown>;
}

/** The error code of a call, or 'ok'. */
async function outcome(call: Promise<unknown>): Promise<string> {
  try {
    await call;
    return 'ok';
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

void t.test('auth: 401 without a token, 403 beyond the role, revocation everywhere, survives restart', async (t) => {
  // Auth needs the cluster secret: it is what keeps /internal/v1/propose from bypassing the token checks.
  const cluster = await startCluster(t, { nodes: 3, config: { peerSecret: 'auth-test-cluster-secret-0123456789' } });
  const leader = await cluster.waitForLeader(setupWaitMs);
  const follower = cluster.nodes.find((n) => n.id !== leader)!;
  const urls = cluster.nodes.map((n) => `http://${n.client}`);
  const urlOf = (id: string): string => `http://${cluster.node(id).client}`;
  const clientWith = (token?: string): HttpClient => {
    const client = new HttpClient({ endpoints: urls, retryMs: 3_000, ...(token !== undefined && { token }) });
    t.teardown(() => client.close());
    return client;
  };
  const anonymous = clientWith();

  // Off by default: no token needed.
  t.equal(await outcome(anonymous.call('PUT', '/v1/kv/app/x', { value: 'before' })), 'ok', 'auth is off by default');
  t.same((await anonymous.call('GET', '/v1/auth/status')).body, { enabled: false });

  const enabled = await keel(cluster, ['auth', 'enable']);
  t.equal(enabled.user, 'root');
  t.match(enabled.token, /^keel_[A-Za-z0-9_-]{43}$/, 'the root token is printed once');
  const rootToken = enabled.token as string;
  cluster.token = rootToken;
  const second = await keel(cluster, ['auth', 'enable'], rootToken).then(
    () => null,
    (err: { code?: number; stderr?: string }) => err,
  );
  t.equal(second?.code, 1, 'a second enable exits 1');
  t.match(second?.stderr, /CONFLICT/, 'with CONFLICT');

  for (const url of urls) {
    // A node refuses once it applied the enable entry (the leader answered the CLI after applying it).
    await waitFor(`401 from ${url}`, 5_000, async () => ((await outcome(anonymous.once(url, 'GET', '/v1/kv/app/x'))) === 'UNAUTHENTICATED' ? true : null));
    t.equal(await outcome(anonymous.once(url, 'PUT', '/v1/kv/app/y', { value: 'v' })), 'UNAUTHENTICATED', `${url}: a write without a token gets 401`);
    t.equal(await outcome(anonymous.once(url, 'GET', '/v1/status')), 'UNAUTHENTICATED', `${url}: status needs a token`);
    t.equal((await getText(url.slice(7), '/health')).status, 200, `${url}: /health stays open`);
    t.equal((await getText(url.slice(7), '/metrics')).status, 200, `${url}: /metrics stays open (auth.protectMetrics is off)`);
  }
  t.equal(await outcome(clientWith('keel_' + 'A'.repeat(43)).once(urls[0]!, 'GET', '/v1/kv/app/x')), 'UNAUTHENTICATED', 'an unknown token gets 401');

  // An operator sets up a read-only user and a writer with the CLI, as the README shows.
  await keel(cluster, ['user', 'add', 'reader'], rootToken);
  await keel(cluster, ['role', 'add', 'app-ro'], rootToken);
  await keel(cluster, ['role', 'grant', 'app-ro', 'read', 'key', 'app/'], rootToken);
  await keel(cluster, ['user', 'grant', 'reader', 'app-ro'], rootToken);
  const readerToken = (await keel(cluster, ['token', 'create', 'reader'], rootToken)) as { token: string; id: string };
  await keel(cluster, ['user', 'add', 'writer'], rootToken);
  await keel(cluster, ['role', 'add', 'app-rw'], rootToken);
  await keel(cluster, ['role', 'grant', 'app-rw', 'readwrite', 'key', 'app/'], rootToken);
  await keel(cluster, ['user', 'grant', 'writer', 'app-rw'], rootToken);
  const writerToken = (await keel(cluster, ['token', 'create', 'writer', '--ttl', '3600'], rootToken)) as { token: string };
  const reader = clientWith(readerToken.token);
  const writer = clientWith(writerToken.token);

  for (const id of [leader, follower.id]) {
    const url = urlOf(id);
    const where = id === leader ? 'leader' : 'follower';
    await waitFor(`reader known on ${where}`, 5_000, async () => ((await outcome(reader.once(url, 'GET', '/v1/kv/app/x'))) === 'ok' ? true : null));
    t.equal(await outcome(reader.once(url, 'GET', '/v1/kv/app/x')), 'ok', `${where}: a read-only token reads (200)`);
    t.equal(await outcome(reader.once(url, 'PUT', '/v1/kv/app/x', { value: 'no' })), 'PERMISSION_DENIED', `${where}: a read-only token's write gets 403`);
    t.equal(await outcome(reader.once(url, 'GET', '/v1/kv/other')), 'PERMISSION_DENIED', `${where}: a read outside the role gets 403`);
    t.equal(await outcome(reader.once(url, 'GET', '/v1/kv/ap?prefix=true')), 'PERMISSION_DENIED', `${where}: the range "ap" is wider than "app/"`);
    t.equal(await outcome(reader.once(url, 'POST', '/v1/txn', { success: [{ put: { key: 'app/t', value: 'v' } }] })), 'PERMISSION_DENIED', `${where}: a txn put gets 403`);
    t.equal(await outcome(reader.once(url, 'POST', '/v1/compact', { revision: 1 })), 'PERMISSION_DENIED', `${where}: admin routes get 403`);
    t.equal(await outcome(reader.stream(url, '/v1/watch/other/?prefix=true')), 'PERMISSION_DENIED', `${where}: a watch without permission gets 403`);
    const controller = new AbortController();
    const stream = await reader.stream(url, '/v1/watch/app/?prefix=true', { signal: controller.signal });
    t.equal(stream.status, 200, `${where}: a watch inside the role opens`);
    controller.abort();
    await waitFor(`writer known on ${where}`, 5_000, async () => ((await outcome(writer.once(url, 'GET', '/v1/kv/app/x'))) === 'ok' ? true : null));
    t.equal(await outcome(writer.once(url, 'PUT', '/v1/kv/app/x', { value: `by writer via ${where}` })), 'ok', `${where}: a readwrite token writes`);
  }
  const got = (await reader.once<{ kv: { value: string } }>(urlOf(follower.id), 'GET', '/v1/kv/app/x')).body.kv.value;
  t.equal(got, 'by writer via follower', 'the write forwarded by the follower was applied');

  // _keel/auth/ holds token hashes: never shown in KV answers, even to root.
  const root = clientWith(rootToken);
  const everything = (await root.call<{ kvs: { key: string }[]; count: number }>('GET', '/v1/kv?prefix=true')).body;
  t.notOk(everything.kvs.some((kv) => kv.key.startsWith('_keel/auth/')), 'a full listing hides _keel/auth/');
  t.equal(everything.count, everything.kvs.length, 'and its count does not include them');
  t.equal(await outcome(root.call('GET', '/v1/kv/_keel/auth/enabled')), 'PERMISSION_DENIED', 'naming a key inside _keel/auth/ is refused');

  // Services, locks and leases: a user with a service grant registers its service only; revoking a lease needs
  // the right to delete what is attached to it.
  await keel(cluster, ['user', 'add', 'svc'], rootToken);
  await keel(cluster, ['role', 'add', 'web-rw'], rootToken);
  await keel(cluster, ['role', 'grant', 'web-rw', 'readwrite', 'service', 'web'], rootToken);
  await keel(cluster, ['user', 'grant', 'svc', 'web-rw'], rootToken);
  const svc = clientWith(((await keel(cluster, ['token', 'create', 'svc'], rootToken)) as { token: string }).token);
  await waitFor('svc token known', 5_000, async () => ((await outcome(svc.call('GET', '/v1/services/web'))) === 'ok' ? true : null));
  const registered = await svc.call<{ lease: number }>('PUT', '/v1/services/web/instances/i1', { address: '10.0.0.1', port: 80, ttl: 30 });
  t.equal(registered.status, 200, 'a service grant registers that service (with a ttl lease)');
  t.equal(await outcome(svc.call('PUT', '/v1/services/db/instances/i1', { address: '10.0.0.2', port: 5432 })), 'PERMISSION_DENIED', 'but not another service');
  t.equal(await outcome(svc.call('GET', '/v1/services')), 'PERMISSION_DENIED', 'listing every service needs read on the prefix ""');
  t.equal(await outcome(svc.call('POST', '/v1/locks/jobs/acquire', { ttl: 5 })), 'PERMISSION_DENIED', 'a lock needs a lock grant');
  // Through every node at once after the registration: a follower checks after a ReadIndex barrier, so it never
  // authorizes against fewer keys than the revoke would delete.
  for (const url of urls) {
    t.equal(await outcome(writer.once(url, 'DELETE', `/v1/leases/${registered.body.lease}`)), 'PERMISSION_DENIED', `${url}: revoking the instance's lease needs the service`);
  }
  t.equal(await outcome(svc.call('DELETE', `/v1/leases/${registered.body.lease}`)), 'ok', 'which the service user has');
  const listed = (await keel(cluster, ['token', 'list'], rootToken)) as { tokens: Record<string, unknown>[] };
  t.equal(listed.tokens.length, 4, 'token list: root, reader, writer, svc');
  t.notOk(JSON.stringify(listed).includes('hash'), 'token list shows no hashes');
  const users = (await keel(cluster, ['user', 'list'], rootToken)) as { users: { name: string; roles: string[] }[] };
  t.same(users.users.map((u) => u.name), ['reader', 'root', 'svc', 'writer']);

  // Revoke the reader's token (through a follower); every node refuses it once it applied the revoke.
  await keel(cluster, ['token', 'revoke', readerToken.id], rootToken);
  const revokedAt = performance.now();
  for (const url of urls) {
    await waitFor(`revoked on ${url}`, 5_000, async () => ((await outcome(reader.once(url, 'GET', '/v1/kv/app/x'))) === 'UNAUTHENTICATED' ? true : null), 10);
  }
  t.comment(`revoked token refused by every node ${Math.round(performance.now() - revokedAt)} ms after the revoke was answered`);
  for (const url of urls) t.equal(await outcome(reader.once(url, 'GET', '/v1/kv/app/x')), 'UNAUTHENTICATED', `${url}: a revoked token gets 401`);

  // Restart every node: auth state is in the replicated store.
  await Promise.all(cluster.nodes.map((n) => cluster.stop(n.id)));
  for (const node of cluster.nodes) cluster.start(node.id);
  const newLeader = await cluster.waitForLeader(setupWaitMs);
  t.ok(newLeader.length > 0, `leader ${newLeader} after the restart (status read with the root token)`);
  for (const url of urls) {
    t.equal(await outcome(anonymous.once(url, 'GET', '/v1/kv/app/x')), 'UNAUTHENTICATED', `${url}: still 401 without a token after restart`);
    t.equal(await outcome(reader.once(url, 'GET', '/v1/kv/app/x')), 'UNAUTHENTICATED', `${url}: the revoked token stays revoked`);
    t.equal(await outcome(writer.once(url, 'GET', '/v1/kv/app/?prefix=true')), 'ok', `${url}: the writer's token still works`);
    t.equal(await outcome(writer.once(url, 'DELETE', '/v1/kv/app/?prefix=true')), 'ok', `${url}: and may delete inside app/`);
  }
  const whoami = (await writer.call<{ user: string; roles: string[] }>('GET', '/v1/auth/whoami')).body;
  t.same({ user: whoami.user, roles: whoami.roles }, { user: 'writer', roles: ['app-rw'] });
  t.equal(await outcome(writer.call('GET', '/v1/auth/users')), 'PERMISSION_DENIED', 'managing auth needs admin');

  // Turning auth off opens the cluster again.
  await keel(cluster, ['auth', 'disable'], rootToken);
  for (const url of urls) {
    await waitFor(`open again on ${url}`, 5_000, async () => ((await outcome(anonymous.once(url, 'GET', '/v1/kv?prefix=true'))) === 'ok' ? true : null));
  }
  t.pass('auth disable: requests without a token are served again on every node');
});

void t.test('auth: enable is refused without the cluster secret (the internal route would bypass it)', async (t) => {
  const cluster = await startCluster(t, { nodes: 1 });
  await cluster.waitForLeader(setupWaitMs);
  const client = new HttpClient({ endpoints: [cluster.node('n1').client], retryMs: 3_000 });
  t.teardown(() => client.close());
  t.equal(await outcome(client.call('POST', '/v1/auth/enable', {})), 'CONFLICT', 'enable answers 409 CONFLICT');
  t.same((await client.call('GET', '/v1/auth/status')).body, { enabled: false }, 'auth stays off');
});
