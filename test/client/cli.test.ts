// Goal: the lease, service, lock and elect commands of the CLI do what README.md says: `keel lock n -- cmd` runs
// the command with KEEL_FENCE set (a larger fence each time), exits with its exit code and frees the lock;
// `lease grant|list|revoke` print JSON with --json; `service register` heartbeats until SIGINT and then
// deregisters; `elect` prints when elected and resigns on SIGINT.
// Method: the built CLI (dist/bin/keel.js) run as child processes against 3 real `keel start` processes; outputs,
// exit codes and the cluster's state (read with KeelClient) are checked.
import { spawn, type ChildProcess } from 'node:child_process';
import t from 'tap';
import { KeelClient } from '../../src/index.js';
import { keelBin, startCluster } from '../helpers/cluster.js';
import { waitFor } from '../helpers/runtime.js';

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function launch(endpoints: string, args: readonly string[]): { child: ChildProcess; done: Promise<Run>; stdout: () => string } {
  const child = spawn(process.execPath, [keelBin, '--endpoints', endpoints, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<Run>((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
  return { child, done, stdout: () => stdout };
}

async function keel(endpoints: string, args: readonly string[], timeoutMs = 20_000): Promise<Run> {
  const run = launch(endpoints, args);
  const timer = setTimeout(() => run.child.kill('SIGKILL'), timeoutMs);
  try {
    return await run.done;
  } finally {
    clearTimeout(timer);
  }
}

void t.test('keel lease, service, lock and elect', async (t) => {
  const cluster = await startCluster(t);
  await cluster.waitForLeader(30_000);
  const endpoints = cluster.nodes.map((n) => n.client).join(',');
  const client = new KeelClient(cluster.nodes.map((n) => n.client));
  const children: ChildProcess[] = [];
  t.teardown(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await client.close();
  });

  await t.test('lock runs the command with KEEL_FENCE and exits with its code', async (t) => {
    const first = await keel(endpoints, ['lock', 'deploy', '--', 'sh', '-c', 'echo $KEEL_FENCE']);
    t.equal(first.code, 0, first.stderr);
    t.match(first.stdout, /^\d+\n$/, 'stdout is the fence (keel notes go to stderr)');
    const second = await keel(endpoints, ['lock', 'deploy', '--ttl', '3', '--', 'sh', '-c', 'echo $KEEL_FENCE']);
    t.equal(second.code, 0, second.stderr);
    t.ok(Number(second.stdout) > Number(first.stdout), `fences increase: ${first.stdout.trim()} < ${second.stdout.trim()}`);
    const failing = await keel(endpoints, ['lock', 'deploy', '--', 'sh', '-c', 'exit 3']);
    t.equal(failing.code, 3, 'the command exit code');
    t.equal((await client.locks.state('deploy')).holder, null, 'released after each run');
    const missing = await keel(endpoints, ['lock', 'deploy', '--', 'no-such-command-keel']);
    t.equal(missing.code, 127);
  });

  await t.test('lock stops the command when the lock is lost', async (t) => {
    const run = launch(endpoints, ['lock', 'fragile', '--ttl', '3', '--grace-ms', '1000', '--', 'sleep', '60']);
    children.push(run.child);
    const holder = await waitFor('the lock to be held', 10_000, async () => (await client.locks.state('fragile')).holder);
    const revokedAt = Date.now();
    await client.leases.revoke(holder.lease); // the lock's lease goes behind the CLI's back
    const result = await run.done;
    const stoppedMs = Date.now() - revokedAt;
    t.equal(result.code, 128 + 15, 'the command was stopped with SIGTERM (exit 143)');
    t.ok(stoppedMs < 5_000, `stopped ${stoppedMs} ms after the loss`);
    t.match(result.stderr, /lock fragile lost/);
  });

  await t.test('lease grant, list, revoke with --json', async (t) => {
    const granted = await keel(endpoints, ['--json', 'lease', 'grant', '30']);
    t.equal(granted.code, 0, granted.stderr);
    const { id, ttl } = JSON.parse(granted.stdout) as { id: number; ttl: number };
    t.equal(ttl, 30);
    const listed = JSON.parse((await keel(endpoints, ['--json', 'lease', 'list'])).stdout) as { leases: { id: number }[] };
    t.ok(listed.leases.some((l) => l.id === id));
    t.equal((await keel(endpoints, ['lease', 'revoke', String(id)])).code, 0);
    const again = await keel(endpoints, ['--json', 'lease', 'revoke', String(id)]);
    t.equal(again.code, 1);
    t.match(JSON.parse(again.stderr), { error: { code: 'LEASE_NOT_FOUND' } });
  });

  await t.test('service register heartbeats until SIGINT, then deregisters', async (t) => {
    const run = launch(endpoints, ['service', 'register', 'api', 'a1', '--address', '10.1.1.1', '--port', '9000', '--tag', 'blue', '--ttl', '2']);
    children.push(run.child);
    await waitFor('a1 to be registered', 10_000, async () => ((await client.services.get('api')).instances.length === 1 ? true : null));
    await new Promise((r) => setTimeout(r, 4_500));
    const listed = await keel(endpoints, ['--json', 'service', 'get', 'api', '--tag', 'blue']);
    t.match(JSON.parse(listed.stdout), { service: 'api', instances: [{ id: 'a1', address: '10.1.1.1', port: 9000, tags: ['blue'] }] }, 'alive past 2 TTLs');
    run.child.kill('SIGINT');
    const result = await run.done;
    t.equal(result.code, 0, result.stderr);
    t.same((await client.services.get('api')).instances, [], 'deregistered at once');
  });

  await t.test('elect prints when elected and resigns on SIGINT', async (t) => {
    const run = launch(endpoints, ['elect', 'leader', 'me', '--ttl', '3']);
    children.push(run.child);
    await waitFor('elected', 10_000, () => (run.stdout().includes('elected') ? true : null));
    t.equal((await client.elections.leader('leader'))?.value, 'me');
    run.child.kill('SIGINT');
    const result = await run.done;
    t.equal(result.code, 0, result.stderr);
    t.equal(await client.elections.leader('leader'), null, 'resigned');
  });
});
