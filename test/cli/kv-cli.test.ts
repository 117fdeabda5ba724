// Goal: the CLI's key-value commands (`keel get|put|del|txn|compact|watch`) print what README.md's CLI section
// says, in text and with --json, with exit code 0 on success and 1 with the error's code on failure; and
// `keel watch` survives the death (kill -9) and the graceful stop of the node it is connected to, printing every
// revision exactly once and in order while writes continue through another node.
// Method: real 3-node clusters on 127.0.0.1 (test/helpers/cluster.ts); every command is the built CLI
// (dist/bin/keel.js) run as a child process with --endpoints of the cluster, its stdout, stderr and exit code
// checked. Watches run as long-lived children whose output is collected line by line; they are stopped with
// SIGINT (Ctrl-C, exit 0 expected) and, if a check failed first, SIGKILLed by PID in teardown. The fail-over
// check writes distinct values through a node the watch is not connected to, records the revision of every
// acknowledged write, and compares them with the revisions the watch printed (--json).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { HttpClient } from '../../src/client.js';
import { isKeelError } from '../../src/util/errors.js';
import { freePort, keelBin, sleep, startCluster, type TestCluster } from '../helpers/cluster.js';
import { runKeel, type CliRun } from '../helpers/keel-cli.js';

type Run = Omit<CliRun, 'ms'>;

const commandTimeoutMs = 20_000;

/** Runs the CLI to completion (optionally with stdin) and returns its output and exit code (compared whole). */
async function keel(args: readonly string[], input?: string): Promise<Run> {
  const { code, stdout, stderr } = await runKeel(args, commandTimeoutMs, input);
  return { code, stdout, stderr };
}

/** A long-running `keel watch` child: its stdout lines as they come, its exit code when it ends. */
class WatchProcess {
  readonly lines: string[] = [];
  stderr = '';
  readonly exited: Promise<number | null>;
  private readonly child: ChildProcess;
  private pending = '';

  constructor(args: readonly string[]) {
    this.child = spawn(process.execPath, [keelBin, 'watch', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (chunk: Buffer) => {
      this.pending += chunk.toString('utf8');
      const parts = this.pending.split('\n');
      this.pending = parts.pop()!;
      this.lines.push(...parts);
    });
    this.child.stderr!.on('data', (chunk: Buffer) => (this.stderr += chunk.toString('utf8')));
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
  }

  async waitFor(predicate: (lines: readonly string[]) => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (!predicate(this.lines)) {
      if (performance.now() > deadline) throw new Error(`watch: no ${what} within ${timeoutMs} ms; stdout ${JSON.stringify(this.lines)}, stderr ${this.stderr}`);
      await sleep(20);
    }
  }

  /** Ctrl-C; resolves with the exit code. */
  async interrupt(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.pid !== undefined) process.kill(this.child.pid, 'SIGINT');
    return this.exited;
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null && this.child.pid !== undefined) process.kill(this.child.pid, 'SIGKILL');
  }
}

function startWatch(t: Test, args: readonly string[]): WatchProcess {
  const watch = new WatchProcess(args);
  t.teardown(() => watch.kill());
  return watch;
}

function endpointsOf(cluster: TestCluster, ids: readonly string[] = cluster.nodes.map((n) => n.id)): string {
  return ids.map((id) => cluster.node(id).client).join(',');
}

/** Waits until a --json watch is registered on the server: its first line is `created`. */
async function waitForCreated(watch: WatchProcess): Promise<void> {
  await watch.waitFor((lines) => lines.some((line) => line.includes('"created"')), 10_000, 'created line');
}

void t.test('key-value commands against a 3-node cluster', async (t) => {
  const cluster = await startCluster(t);
  await cluster.waitForLeader(30_000);
  const endpoints = ['--endpoints', endpointsOf(cluster)];
  const run = (args: readonly string[], input?: string): Promise<Run> => keel([...args, ...endpoints], input);

  await t.test('put and get: text, --json, exit codes', async (t) => {
    const put = await run(['put', 'app/a', 'hello']);
    t.equal(put.code, 0, put.stderr);
    const putRevision = Number(/^OK revision (\d+)\n$/.exec(put.stdout)?.[1]);
    t.ok(putRevision > 0, `put prints "OK revision N": ${put.stdout}`);
    // Independent reads run side by side: each CLI run is a process start (slow on a busy machine).
    const [text, json, missing, missingJson] = await Promise.all([
      run(['get', 'app/a']),
      run(['get', 'app/a', '--json']),
      run(['get', 'app/missing']),
      run(['get', 'app/missing', '--json']),
    ]);
    t.same(text, { code: 0, stdout: 'app/a = hello\n', stderr: '' });
    t.equal(json.code, 0);
    const body = JSON.parse(json.stdout) as { kv: { value: string; modRevision: number; version: number }; revision: number };
    t.match(body, { kv: { key: 'app/a', value: 'hello', createRevision: putRevision, modRevision: putRevision, version: 1, lease: 0 } });
    t.ok(body.revision >= putRevision, 'the JSON carries the revision the answer reflects');

    t.equal(missing.code, 1, 'a missing key exits 1');
    t.equal(missing.stdout, '');
    t.match(missing.stderr, /^keel: KEY_NOT_FOUND: /);
    t.equal(missingJson.code, 1);
    t.equal((JSON.parse(missingJson.stderr) as { error: { code: string } }).error.code, 'KEY_NOT_FOUND');

    const second = await run(['put', 'app/a', 'world', '--prev-kv']);
    t.match(second.stdout, /^OK revision \d+\nprev: app\/a = hello\n$/);
    const secondJson = await run(['put', 'app/a', 'again', '--prev-kv', '--json']);
    t.match(JSON.parse(secondJson.stdout), { revision: Number, prevKv: { key: 'app/a', value: 'world', version: 2 } });
    const [past, serializable, stdin] = await Promise.all([
      run(['get', 'app/a', '--revision', String(putRevision)]),
      run(['get', 'app/a', '--serializable']),
      run(['put', 'app/b c', '-'], 'line 1\nline 2\n'),
    ]);
    t.equal(past.stdout, 'app/a = hello\n', '--revision reads the past');
    t.equal(serializable.code, 0);
    t.equal(stdin.code, 0, stdin.stderr);
    t.equal(JSON.parse((await run(['get', 'app/b c', '--json'])).stdout).kv.value, 'line 1\nline 2\n', '"-" reads the value from stdin as is');
  });

  await t.test('put preconditions and leases', async (t) => {
    const created = await run(['put', 'cas/k', 'v1', '--if-mod-revision', '0']);
    t.equal(created.code, 0, '--if-mod-revision 0 creates a missing key');
    const revision = Number(/revision (\d+)/.exec(created.stdout)?.[1]);
    const again = await run(['put', 'cas/k', 'v2', '--if-mod-revision', '0']);
    t.equal(again.code, 1);
    t.match(again.stderr, /^keel: PRECONDITION_FAILED: /);
    const againJson = await run(['put', 'cas/k', 'v2', '--if-mod-revision', '0', '--json']);
    t.match(JSON.parse(againJson.stderr), { error: { code: 'PRECONDITION_FAILED', kv: { key: 'cas/k', modRevision: revision } } });
    t.equal((await run(['put', 'cas/k', 'v2', '--if-mod-revision', String(revision)])).code, 0);
    t.equal((await run(['put', 'cas/k', 'v3', '--if-version', '2'])).code, 0);
    t.equal((await run(['put', 'cas/k', 'v4', '--if-version', '2'])).code, 1);
    const [lease, badNumber] = await Promise.all([run(['put', 'cas/k', 'v', '--lease', '987654321']), run(['put', 'cas/k', 'v', '--if-version', 'two'])]);
    t.match(lease.stderr, /^keel: LEASE_NOT_FOUND: /);
    t.equal(badNumber.code, 1, 'a bad number is refused before any request');
    t.match(badNumber.stderr, /integer/);
  });

  await t.test('get over a prefix', async (t) => {
    for (const [key, value] of [['list/b', '2'], ['list/a', '1'], ['list/c', '3']]) t.equal((await run(['put', key!, value!])).code, 0);
    const [all, keysOnly, countOnly, sorted, limited, limitedJson, verbose, empty, flagWithoutPrefix, badSort] = await Promise.all([
      run(['get', 'list/', '--prefix']),
      run(['get', 'list/', '--prefix', '--keys-only']),
      run(['get', 'list/', '--prefix', '--count-only']),
      run(['get', 'list/', '--prefix', '--sort', 'modRevision', '--order', 'desc', '--keys-only']),
      run(['get', 'list/', '--prefix', '--limit', '1']),
      run(['get', 'list/', '--prefix', '--limit', '1', '--json']),
      run(['get', 'list/', '--prefix', '--verbose']),
      run(['get', 'nothing/', '--prefix']),
      run(['get', 'list/a', '--limit', '1']),
      run(['get', 'list/', '--prefix', '--sort', 'size']),
    ]);
    t.equal(all.stdout, 'list/a = 1\nlist/b = 2\nlist/c = 3\n');
    t.equal(keysOnly.stdout, 'list/a\nlist/b\nlist/c\n');
    t.equal(countOnly.stdout, '3\n');
    t.equal(sorted.stdout, 'list/c\nlist/a\nlist/b\n');
    t.equal(limited.stdout, 'list/a = 1\n');
    t.match(limited.stderr, /2 more keys not shown/);
    t.match(JSON.parse(limitedJson.stdout), { kvs: [{ key: 'list/a' }], count: 3, more: true });
    t.match(verbose.stdout, /^KEY +VALUE +CREATE_REV +MOD_REV +VERSION +LEASE\nlist\/a +1 +\d+ +\d+ +1 +0\n/);
    t.match(verbose.stdout, /3 of 3 keys at revision \d+\n$/);
    t.same(empty, { code: 0, stdout: '', stderr: '' }, 'an empty range prints nothing');
    t.equal(flagWithoutPrefix.code, 1);
    t.match(flagWithoutPrefix.stderr, /INVALID_ARGUMENT: --limit needs --prefix/);
    t.equal(badSort.code, 1, 'unknown --sort targets are refused');
  });

  await t.test('del', async (t) => {
    await Promise.all(['gone/a', 'gone/b', 'gone/c', 'gone/d'].map((key) => run(['put', key, `v-${key}`])));
    t.same(await run(['del', 'gone/a']), { code: 0, stdout: '1\n', stderr: '' });
    t.same(await run(['del', 'gone/a']), { code: 0, stdout: '0\n', stderr: '' }, 'deleting nothing is not an error');
    t.match(JSON.parse((await run(['del', 'gone/d', '--prev-kv', '--json'])).stdout), { revision: Number, deleted: 1, prevKvs: [{ key: 'gone/d', value: 'v-gone/d' }] });
    t.equal((await run(['del', 'gone/', '--prefix', '--prev-kv'])).stdout, '2\ngone/b = v-gone/b\ngone/c = v-gone/c\n');
  });

  await t.test('txn from stdin and --file', async (t) => {
    await run(['put', 'txn/k', '1']);
    const body = {
      compare: [{ key: 'txn/k', target: 'value', op: '==', value: '1' }],
      success: [{ put: { key: 'txn/k', value: '2' } }, { get: { key: 'txn/k' } }, { delete: { key: 'txn/none' } }],
      failure: [{ get: { key: 'txn/k' } }],
    };
    const succeeded = await run(['txn'], JSON.stringify(body));
    t.equal(succeeded.code, 0, succeeded.stderr);
    t.match(succeeded.stdout, /^SUCCEEDED revision (\d+)\nput: OK revision \1\nget: 1 key\n {2}txn\/k = 2\ndelete: 0 deleted\n$/);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'keel-txn-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, 'txn.json');
    writeFileSync(file, JSON.stringify(body));
    const [failed, failedJson, notJson, badShape] = await Promise.all([
      run(['txn', '--file', file]),
      run(['txn', '--file', file, '--json']),
      run(['txn'], '{nope'),
      run(['txn'], JSON.stringify({ success: [{ bogus: {} }] })),
    ]);
    t.equal(failed.code, 0, 'a failed compare is an answer, not an error (as etcdctl)');
    t.match(failed.stdout, /^FAILED revision \d+\nget: 1 key\n {2}txn\/k = 2\n$/);
    t.match(JSON.parse(failedJson.stdout), { succeeded: false, results: [{ get: { count: 1 } }] });
    t.equal(notJson.code, 1);
    t.match(notJson.stderr, /^keel: INVALID_ARGUMENT: the txn body is not JSON/);
    t.equal(badShape.code, 1);
    t.match(badShape.stderr, /^keel: INVALID_ARGUMENT: /);
  });

  await t.test('compact', async (t) => {
    const first = Number(/revision (\d+)/.exec((await run(['put', 'hist/k', 'old'])).stdout)?.[1]);
    const second = Number(/revision (\d+)/.exec((await run(['put', 'hist/k', 'new'])).stdout)?.[1]);
    t.same(await run(['compact', String(second)]), { code: 0, stdout: `OK compacted history before revision ${second}\n`, stderr: '' });
    const [past, again, future, current] = await Promise.all([
      run(['get', 'hist/k', '--revision', String(first)]),
      run(['compact', String(second), '--json']),
      run(['compact', '999999999']),
      run(['get', 'hist/k']),
    ]);
    t.equal(past.code, 1);
    t.match(past.stderr, /^keel: COMPACTED: /);
    t.equal(again.code, 1);
    t.match(JSON.parse(again.stderr), { error: { code: 'COMPACTED', compactRevision: second } });
    t.match(future.stderr, /^keel: INVALID_ARGUMENT: /, 'a future revision is refused');
    t.equal(current.stdout, 'hist/k = new\n');
  });

  await t.test('watch prints events; Ctrl-C exits 0', async (t) => {
    const text = startWatch(t, ['w/', '--prefix', '--prev-kv', ...endpoints]);
    const json = startWatch(t, ['w/', '--prefix', '--json', ...endpoints]);
    await waitForCreated(json);
    // The text watch prints nothing on creation: make sure it is registered by waiting for a first event.
    await run(['put', 'w/ready', '1']);
    await text.waitFor((lines) => lines.length === 1, 10_000, 'first event');
    const put = Number(/revision (\d+)/.exec((await run(['put', 'w/a', '1'])).stdout)?.[1]);
    await run(['put', 'w/a', '2']);
    await run(['del', 'w/a']);
    await run(['txn'], JSON.stringify({ success: [{ put: { key: 'w/b', value: 'x' } }, { put: { key: 'w/c', value: 'y' } }] }));
    await run(['put', 'other', 'not watched']);
    const expected = [
      `PUT w/ready = 1 (rev ${put - 1})`,
      `PUT w/a = 1 (rev ${put})`,
      `PUT w/a = 2 (rev ${put + 1}) [prev: 1]`,
      `DELETE w/a (rev ${put + 2}) [prev: 2]`,
      `PUT w/b = x (rev ${put + 3})`,
      `PUT w/c = y (rev ${put + 3})`,
    ];
    await text.waitFor((lines) => lines.length >= expected.length, 10_000, 'all events');
    await json.waitFor((lines) => lines.length >= expected.length + 1, 10_000, 'all events');
    t.same(text.lines, expected);
    const parsed = json.lines.map((line) => JSON.parse(line) as { type: string; revision: number; kv?: { key: string } });
    t.same(
      parsed.map((m) => [m.type, m.revision, m.kv?.key]),
      [['created', put - 2, undefined], ['put', put - 1, 'w/ready'], ['put', put, 'w/a'], ['put', put + 1, 'w/a'], ['delete', put + 2, 'w/a'], ['put', put + 3, 'w/b'], ['put', put + 3, 'w/c']],
    );
    t.equal(await text.interrupt(), 0, 'Ctrl-C exits 0');
    t.equal(await json.interrupt(), 0);
    t.equal(text.stderr, '');

    const replay = startWatch(t, ['w/a', '--from-revision', String(put), ...endpoints]);
    await replay.waitFor((lines) => lines.length >= 3, 10_000, 'replayed events');
    t.same(replay.lines, [expected[1], expected[2]?.replace(/ \[prev: 1\]$/, ''), expected[3]?.replace(/ \[prev: 2\]$/, '')]);
    t.equal(await replay.interrupt(), 0);
  });

  await t.test('watch from a compacted revision exits 1', async (t) => {
    const revision = Number(/revision (\d+)/.exec((await run(['put', 'wc/k', 'v'])).stdout)?.[1]);
    t.equal((await run(['compact', String(revision)])).code, 0);
    const watch = startWatch(t, ['wc/', '--prefix', '--from-revision', '1', ...endpoints]);
    t.equal(await watch.exited, 1);
    t.match(watch.stderr, new RegExp(`^keel: COMPACTED: revision 1 is compacted: watch again with --from-revision ${revision} or later`));
    const json = startWatch(t, ['wc/', '--prefix', '--from-revision', '1', '--json', ...endpoints]);
    t.equal(await json.exited, 1);
    t.match(JSON.parse(json.stderr), { error: { code: 'COMPACTED', compactRevision: revision } });
  });
});

void t.test('watch gives up after --retry-ms with no endpoint reachable', async (t) => {
  // Ports that were just free: nothing listens there.
  const dead = [`127.0.0.1:${await freePort()}`, `127.0.0.1:${await freePort()}`].join(',');
  const started = performance.now();
  const result = await keel(['watch', 'k', '--retry-ms', '1000', '--endpoints', dead]);
  const elapsedMs = performance.now() - started;
  t.equal(result.code, 1);
  t.match(result.stderr, /^keel: watch: lost 127\.0\.0\.1:\d+ \(connect ECONNREFUSED .*\); resuming on 127\.0\.0\.1:\d+ from now\n/);
  t.match(result.stderr, /resuming on 127\.0\.0\.1:\d+ from now in 100 ms\n/, 'then with a growing back-off');
  t.match(result.stderr, /keel: UNAVAILABLE: no endpoint served the watch for 1000 ms/);
  t.ok(elapsedMs < 8_000, `gave up in ${Math.round(elapsedMs)} ms`);
});

interface Writer {
  /** Revision -> value of every acknowledged write. */
  readonly acked: Map<number, string>;
  /** Values of writes whose outcome is unknown (TIMEOUT): they may or may not appear, once. */
  readonly unknown: Set<string>;
  stop(): Promise<void>;
}

/** Writes distinct values to fo/k<i % 4> through `client` as fast as acknowledgements come, until stopped. */
function startWriter(client: HttpClient): Writer {
  const acked = new Map<number, string>();
  const unknown = new Set<string>();
  let isStopped = false;
  const loop = (async () => {
    for (let i = 0; !isStopped; i++) {
      const value = `v${i}`;
      try {
        const { body } = await client.call<{ revision: number }>('PUT', `/v1/kv/fo/k${i % 4}`, { value });
        acked.set(body.revision, value);
      } catch (err) {
        if (!isKeelError(err) || (err.code !== 'TIMEOUT' && err.code !== 'UNAVAILABLE')) throw err;
        unknown.add(value); // UNAVAILABLE after a transport error may have applied it too
      }
      await sleep(5);
    }
  })();
  return {
    acked,
    unknown,
    stop: async () => {
      isStopped = true;
      await loop;
    },
  };
}

async function waitForAcks(writer: Writer, count: number, timeoutMs: number): Promise<void> {
  const target = writer.acked.size + count;
  const deadline = performance.now() + timeoutMs;
  while (writer.acked.size < target) {
    if (performance.now() > deadline) throw new Error(`only ${writer.acked.size} of ${target} writes acknowledged within ${timeoutMs} ms`);
    await sleep(20);
  }
}

void t.test('watch resumes on another endpoint when its node is killed or stopped, missing and repeating nothing', async (t) => {
  const cluster = await startCluster(t);
  const leader = await cluster.waitForLeader(30_000);
  // The watch starts on the leader (the hardest case: its death also costs an election); writes go through a
  // third node the watch is never connected to before the end.
  const others = cluster.nodes.map((n) => n.id).filter((id) => id !== leader);
  const [second, writerNode] = others as [string, string];
  const watch = startWatch(t, ['fo/', '--prefix', '--json', '--retry-ms', '20000', '--endpoints', endpointsOf(cluster, [leader, second, writerNode])]);
  await waitForCreated(watch);
  const created = (JSON.parse(watch.lines[0]!) as { revision: number }).revision;
  const writer = startWriter(cluster.client([writerNode], { retryMs: 10_000 }));
  let isWriterStopped = false;
  t.teardown(async () => {
    if (!isWriterStopped) await writer.stop().catch(() => undefined);
  });

  await waitForAcks(writer, 40, 10_000);
  await cluster.kill(leader, 'SIGKILL');
  await waitForAcks(writer, 60, 20_000);
  await watch.waitFor(() => watch.stderr.includes(`resuming on ${cluster.node(second).client}`), 10_000, 'reconnection after kill -9');

  // Bring the killed node back, then stop the node the watch moved to gracefully: it resumes on the third.
  cluster.start(leader);
  await cluster.waitForLeader(15_000, cluster.nodes.map((n) => n.id));
  await waitForAcks(writer, 20, 10_000);
  const stopped = await cluster.stop(second, 'SIGTERM');
  t.equal(stopped.code, 0, 'the stopped node exits 0');
  await waitForAcks(writer, 60, 20_000);
  isWriterStopped = true;
  await writer.stop();
  await watch.waitFor(() => watch.stderr.includes(`resuming on ${cluster.node(writerNode).client}`), 10_000, 'reconnection after SIGTERM');

  const lastAcked = Math.max(...writer.acked.keys());
  const events = (): { revision: number; kv: { value: string } }[] => watch.lines.slice(1).map((line) => JSON.parse(line) as { revision: number; kv: { value: string } });
  await watch.waitFor(() => events().some((e) => e.revision >= lastAcked), 15_000, `revision ${lastAcked}`);
  t.equal(await watch.interrupt(), 0);

  const printed = events();
  const revisions = printed.map((e) => e.revision);
  // Only this test writes to this cluster, one key per write: the revisions after `created` are exactly ours.
  t.same(revisions, Array.from({ length: revisions.length }, (_, i) => created + 1 + i), 'every revision once, in order, none missing');
  const wrong = [...writer.acked].filter(([revision, value]) => printed[revision - created - 1]?.kv.value !== value);
  t.same(wrong, [], 'each acknowledged write is printed at its revision');
  const unacked = printed.filter((e) => !writer.acked.has(e.revision)).map((e) => e.kv.value);
  t.ok(unacked.every((value) => writer.unknown.has(value)), `only writes of unknown outcome were not acknowledged: ${unacked.join(',')}`);
  t.comment(`${printed.length} events, ${writer.acked.size} acknowledged writes, ${writer.unknown.size} of unknown outcome; watch stderr:\n${watch.stderr}`);
});
