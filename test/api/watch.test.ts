// Goal: every example of the Watch section of shared/API.md holds on a real cluster: the `created` line then
// events; prefix watches; fromRevision catch-up from history then live with no gap or duplicate at the seam;
// prevKv; progress lines every progressMs when idle (revision = the store revision); SSE (Accept:
// text/event-stream, ids, Last-Event-ID); one txn's events together; a watch on a FOLLOWER from an old revision
// while writes continue through the leader gets every revision exactly once, in order; 1,000 concurrent watchers
// on one node all get the same events, and closing them frees them (keel_watchers); a reconnect with
// fromRevision = last seen + 1 misses nothing; and a compaction that overtakes a watch still catching up ends it
// with a `compacted` line (never a silent skip).
// Method: one real three-node cluster shared by the subtests, each under its own key prefix. Writers record the
// revision and the events of every write they make (only they write under their prefix), so each watcher's
// received messages are compared with the exact expected sequence. Streams are read with node:http (one socket
// per watch); the compaction subtest runs last because it drops history the others replay.
import http from 'node:http';
import t from 'tap';
import { sleep, startCluster } from '../helpers/cluster.js';
import { call, closeHttp, keyPath, metricValue, openStream, roles, type Stream, type StreamLine } from '../helpers/http.js';
import { expectError, expectOk } from './expect.js';

const cluster = await startCluster(t);
t.teardown(closeHttp);
const { leader, followers } = await roles(cluster);
const leaderAddress = cluster.node(leader).client;
const followerAddress = cluster.node(followers[0]!).client;
const otherFollowerAddress = cluster.node(followers[1]!).client;

const streams: Stream[] = [];
t.teardown(() => streams.forEach((s) => s.close()));

function watch(address: string, key: string, query = '', options: { sse?: boolean; agent?: http.Agent; headers?: Record<string, string> } = {}): Stream {
  const stream = openStream(address, `/v1/watch/${keyPath(key)}${query}`, options);
  streams.push(stream);
  return stream;
}

/** What a writer expects a watcher to see: per revision, its events in order. */
interface Expected {
  readonly revision: number;
  readonly events: { type: 'put' | 'delete'; key: string; value: string }[];
}

async function put(address: string, key: string, value: string): Promise<Expected> {
  const answer = await call(address, 'PUT', `/v1/kv/${keyPath(key)}`, { body: { value } });
  if (answer.status !== 200) throw new Error(`put ${key}: ${answer.status} ${answer.text}`);
  return { revision: answer.json.revision, events: [{ type: 'put', key, value }] };
}

/** Deletes a key; null when it did not exist (no revision taken). */
async function remove(address: string, key: string): Promise<Expected | null> {
  const answer = await call(address, 'DELETE', `/v1/kv/${keyPath(key)}`);
  if (answer.status !== 200) throw new Error(`delete ${key}: ${answer.status} ${answer.text}`);
  return answer.json.deleted === 0 ? null : { revision: answer.json.revision, events: [{ type: 'delete', key, value: '' }] };
}

async function removeExisting(address: string, key: string): Promise<Expected> {
  const expected = await remove(address, key);
  if (expected === null) throw new Error(`delete ${key}: it did not exist`);
  return expected;
}

/** A txn of puts then deletes; its events come in op order (a delete of a missing key has none). */
async function txn(address: string, puts: [string, string][], deletes: string[] = []): Promise<Expected> {
  const success = [...puts.map(([key, value]) => ({ put: { key, value } })), ...deletes.map((key) => ({ delete: { key } }))];
  const answer = await call(address, 'POST', '/v1/txn', { body: { success } });
  if (answer.status !== 200) throw new Error(`txn: ${answer.status} ${answer.text}`);
  const results = answer.json.results as { delete?: { deleted: number } }[];
  const deleted = deletes.filter((_, i) => results[puts.length + i]!.delete!.deleted === 1);
  return {
    revision: answer.json.revision,
    events: [...puts.map(([key, value]) => ({ type: 'put' as const, key, value })), ...deleted.map((key) => ({ type: 'delete' as const, key, value: '' }))],
  };
}

/** The event lines of a stream grouped by revision, in arrival order. */
function received(lines: readonly StreamLine[]): Expected[] {
  const out: Expected[] = [];
  for (const line of lines) {
    if (line.type !== 'put' && line.type !== 'delete') continue;
    const event = { type: line.type, key: line.kv.key, value: line.kv.value };
    const last = out[out.length - 1];
    if (last !== undefined && last.revision === line.revision) last.events.push(event);
    else out.push({ revision: line.revision, events: [event] });
  }
  return out;
}

function lastEventRevision(lines: readonly StreamLine[]): number {
  return received(lines).at(-1)?.revision ?? 0;
}

async function storeRevision(address: string): Promise<number> {
  const answer = await call(address, 'GET', '/v1/kv/watch-test-probe?prefix=true&countOnly=true');
  return answer.revision!;
}

void t.test('created line, then events for the key only', async (t) => {
  const key = 'w1/key';
  const before = await storeRevision(followerAddress);
  const stream = watch(followerAddress, key);
  // fromRevision=0 means "from now", like no fromRevision (etcd's start revision 0): it starts with `created` too.
  const fromZero = watch(followerAddress, key, '?fromRevision=0');
  const everything = openStream(followerAddress, '/v1/watch?prefix=true');
  streams.push(everything);
  const created = await stream.next();
  t.same(await fromZero.next(), { type: 'created', revision: before }, 'fromRevision=0: created line');
  t.same(await everything.next(), { type: 'created', revision: before }, 'the whole keyspace: created line');
  t.equal(stream.status, 200);
  t.match(String(stream.headers['content-type']), /^application\/x-ndjson/, 'NDJSON by default');
  t.same(created, { type: 'created', revision: before }, 'first line: created at the current revision');
  t.equal(Number(stream.headers['x-keel-revision']), before, 'X-Keel-Revision on the stream');
  const expected: Expected[] = [];
  expected.push(await put(leaderAddress, key, 'a'));
  await put(leaderAddress, `${key}-sibling`, 'not watched');
  await put(leaderAddress, 'w1/ke', 'not watched');
  expected.push(await put(followerAddress, key, 'b'));
  expected.push(await removeExisting(leaderAddress, key));
  const e1 = await stream.next();
  t.same(e1, { type: 'put', kv: { key, value: 'a', createRevision: expected[0]!.revision, modRevision: expected[0]!.revision, version: 1, lease: 0 }, revision: expected[0]!.revision });
  const e2 = await stream.next();
  t.same(e2.kv, { key, value: 'b', createRevision: expected[0]!.revision, modRevision: expected[1]!.revision, version: 2, lease: 0 });
  t.notOk('prevKv' in e2, 'no prevKv unless asked');
  const e3 = await stream.next();
  t.equal(e3.type, 'delete');
  t.equal(e3.kv.key, key);
  t.equal(e3.kv.modRevision, expected[2]!.revision, 'a delete event carries the delete revision');
  t.equal(e3.revision, expected[2]!.revision);
  t.same(received(stream.lines), expected, 'exactly the writes to the key');
  await fromZero.until((lines) => lastEventRevision(lines) >= expected[2]!.revision);
  t.same(received(fromZero.lines), expected, 'fromRevision=0: the same events');
  await everything.until((lines) => lastEventRevision(lines) >= expected[2]!.revision);
  t.equal(received(everything.lines).length, 5, 'GET /v1/watch?prefix=true watches every key');
  stream.close();
  fromZero.close();
  everything.close();
});

void t.test('prefix watch and prevKv', async (t) => {
  const prefix = 'w2/';
  const stream = watch(otherFollowerAddress, prefix, '?prefix=true&prevKv=true');
  await stream.next();
  const expected: Expected[] = [];
  expected.push(await put(leaderAddress, `${prefix}a`, '1'));
  await put(leaderAddress, 'w2', 'outside the prefix');
  await put(leaderAddress, 'w2-x', 'outside the prefix');
  expected.push(await put(leaderAddress, `${prefix}b/deep`, '2'));
  expected.push(await put(leaderAddress, `${prefix}a`, '3'));
  expected.push(await removeExisting(leaderAddress, `${prefix}a`));
  await stream.until((lines) => lastEventRevision(lines) >= expected.at(-1)!.revision);
  t.same(received(stream.lines), expected, 'the prefix, nothing else');
  const events = stream.lines.filter((l) => l.type === 'put' || l.type === 'delete');
  t.notOk('prevKv' in events[0]!, 'no prevKv for a created key');
  t.notOk('prevKv' in events[1]!);
  t.same(events[2]!.prevKv, { key: `${prefix}a`, value: '1', createRevision: expected[0]!.revision, modRevision: expected[0]!.revision, version: 1, lease: 0 });
  t.same(events[3]!.prevKv, { key: `${prefix}a`, value: '3', createRevision: expected[0]!.revision, modRevision: expected[2]!.revision, version: 2, lease: 0 }, 'a delete carries the deleted version');
  stream.close();
});

void t.test('fromRevision: history, then live, no gap or duplicate at the seam', async (t) => {
  const prefix = 'w3/';
  const expected: Expected[] = [];
  for (let i = 0; i < 40; i++) expected.push(await put(leaderAddress, `${prefix}${i % 7}`, `h${i}`));
  expected.push(await txn(leaderAddress, [[`${prefix}t1`, 'x'], [`${prefix}t2`, 'y']], [`${prefix}0`]));
  const from = expected[5]!.revision;
  // Writes continue while the watch replays and switches to live.
  let writing = true;
  const writer = (async () => {
    for (let i = 0; writing || i < 40; i++) {
      expected.push(await put(leaderAddress, `${prefix}${i % 5}`, `l${i}`));
      if (i >= 200) break;
    }
  })();
  t.teardown(async () => {
    writing = false;
    await writer;
  });
  const stream = watch(followerAddress, prefix, `?prefix=true&fromRevision=${from}`);
  try {
    await stream.until((lines) => expected.length > 60 && lastEventRevision(lines) > expected[60]!.revision);
  } finally {
    writing = false;
    await writer;
  }
  await stream.until((lines) => lastEventRevision(lines) >= expected.at(-1)!.revision);
  t.notOk(stream.lines.some((l) => l.type === 'created'), 'no created line with fromRevision');
  t.same(received(stream.lines), expected.filter((e) => e.revision >= from), 'every revision from fromRevision exactly once, in order');
  stream.close();
});

void t.test('progress lines every progressMs when idle', async (t) => {
  const stream = watch(followerAddress, 'w4/idle', '?progressMs=200');
  const created = await stream.next();
  const openedAt = performance.now();
  const progress = [await stream.next(5_000), await stream.next(5_000), await stream.next(5_000)];
  const elapsed = performance.now() - openedAt;
  t.same(progress.map((l) => l.type), ['progress', 'progress', 'progress']);
  t.same(progress.map((l) => l.revision), [created.revision, created.revision, created.revision], 'progress revision = the store revision (nothing written)');
  // Ideally 600 ms; the bound leaves room for a loaded machine but is far below the 10 s default.
  t.ok(elapsed < 3_000, `three progress lines within ${Math.round(elapsed)} ms at progressMs=200`);
  // Writes to other keys move the progress revision to the new store revision.
  const written = await put(leaderAddress, 'w4/other', 'x');
  await stream.until((lines) => lines.some((l) => l.type === 'progress' && l.revision >= written.revision), 5_000);
  const later = stream.lines.filter((l) => l.type === 'progress').at(-1)!;
  t.equal(later.revision, written.revision, 'progress reports the revision all events up to which were delivered');
  t.notOk(stream.lines.some((l) => l.type === 'put'), 'no event for other keys');
  // The key's own event, then progress again at its revision.
  const own = await put(leaderAddress, 'w4/idle', 'y');
  await stream.until((lines) => lines.some((l) => l.type === 'put'));
  await stream.until((lines) => lines.at(-1)!.type === 'progress', 5_000);
  const revisions = stream.lines.map((l) => l.revision as number);
  t.same(revisions, [...revisions].sort((a, b) => a - b), 'progress and event revisions never go backwards');
  t.equal(stream.lines.at(-1)!.revision, own.revision, 'progress after the event reports its revision');
  stream.close();
});

void t.test('SSE with Accept: text/event-stream, and Last-Event-ID resumes', async (t) => {
  const prefix = 'w5/';
  const stream = watch(followerAddress, prefix, '?prefix=true', { sse: true });
  const created = await stream.next();
  t.equal(created.type, 'created');
  t.match(String(stream.headers['content-type']), /^text\/event-stream/);
  const expected = [await put(leaderAddress, `${prefix}a`, '1'), await txn(leaderAddress, [[`${prefix}b`, '2'], [`${prefix}c`, '3']]), await put(leaderAddress, `${prefix}a`, '4')];
  await stream.until((lines) => lastEventRevision(lines) >= expected[2]!.revision);
  t.same(received(stream.lines), expected);
  t.same(stream.ids, [expected[0]!.revision, expected[1]!.revision, expected[1]!.revision, expected[2]!.revision], 'each event carries its revision as the SSE id');
  stream.close();
  // A browser's EventSource reconnects with Last-Event-ID: the stream resumes after it.
  const later = await put(leaderAddress, `${prefix}d`, '5');
  const resumed = watch(otherFollowerAddress, prefix, '?prefix=true', { sse: true, headers: { 'last-event-id': String(expected[1]!.revision) } });
  await resumed.until((lines) => lastEventRevision(lines) >= later.revision);
  t.same(received(resumed.lines), [expected[2]!, later], 'resumed after the last event id, nothing missed');
  t.notOk(resumed.lines.some((l) => l.type === 'created'));
  resumed.close();
});

void t.test("one txn's events arrive together, in one chunk", async (t) => {
  const prefix = 'w6/';
  await put(leaderAddress, `${prefix}old`, 'x');
  const stream = watch(leaderAddress, prefix, '?prefix=true');
  await stream.next();
  const single = await put(leaderAddress, `${prefix}before`, 'x');
  const big = await txn(leaderAddress, [[`${prefix}a`, '1'], [`${prefix}b`, '2'], [`${prefix}a`, '3'], [`${prefix}c`, '4']], [`${prefix}old`]);
  const after = await put(leaderAddress, `${prefix}after`, 'x');
  await stream.until((lines) => lastEventRevision(lines) >= after.revision);
  t.same(received(stream.lines), [single, big, after]);
  const txnLines = stream.lines.filter((l) => l.revision === big.revision);
  t.equal(txnLines.length, 5, 'five events, one revision');
  const chunk = stream.chunks.find((c) => c.includes(`"revision":${big.revision}`))!;
  t.equal(chunk.split('\n').filter((l) => l.includes(`"revision":${big.revision}`)).length, 5, 'written as one chunk');
  stream.close();
});

void t.test('a watch on a follower from an old revision gets every revision once, in order, while writes continue', async (t) => {
  const prefix = 'w7/';
  const expected: Expected[] = [];
  let round = 0;
  // Puts over a few keys, deletes (which may find nothing: then no revision), and txns with puts and deletes.
  const step = async (): Promise<void> => {
    const i = round++;
    const key = `${prefix}${i % 11}`;
    let written: Expected | null;
    if (i % 10 === 9) written = await txn(leaderAddress, [[`${prefix}t${i}`, 'a'], [`${prefix}u${i}`, 'b']], [`${prefix}t${i - 10}`, `${prefix}${(i + 3) % 11}`]);
    else if (i % 7 === 6) written = await remove(leaderAddress, key);
    else written = await put(leaderAddress, key, `v${i}`);
    if (written !== null) expected.push(written);
  };
  for (let i = 0; i < 150; i++) await step();
  const from = expected[20]!.revision;
  const stream = watch(followerAddress, prefix, `?prefix=true&fromRevision=${from}`);
  // Concurrent writers through the leader, while the follower replays the history and goes live.
  const deadline = performance.now() + 2_500;
  await Promise.all([1, 2].map(async () => {
    while (performance.now() < deadline) await step();
  }));
  const last = Math.max(...expected.map((e) => e.revision));
  await stream.until((lines) => lastEventRevision(lines) >= last, 60_000);
  await sleep(200);
  const want = expected.filter((e) => e.revision >= from).sort((a, b) => a.revision - b.revision);
  const got = received(stream.lines);
  t.ok(want.length > 200, `${want.length} revisions checked`);
  t.same(got.map((e) => e.revision), want.map((e) => e.revision), 'every revision exactly once, in order');
  t.same(got, want, 'with the written events');
  stream.close();
});

void t.test('1,000 concurrent watchers on one node get the same events; closing them frees them', async (t) => {
  const prefix = 'w8/';
  const count = 1_000;
  const metrics = async (): Promise<number> => {
    const answer = await call(otherFollowerAddress, 'GET', '/metrics');
    return metricValue(answer.text, 'keel_watchers') ?? -1;
  };
  const baseline = await metrics();
  t.ok(baseline >= 0, `keel_watchers is exported (baseline ${baseline})`);
  const agent = new http.Agent({ keepAlive: false, maxSockets: count + 10 });
  t.teardown(() => agent.destroy());
  const watchers: Stream[] = [];
  for (let i = 0; i < count; i++) watchers.push(watch(otherFollowerAddress, prefix, '?prefix=true', { agent }));
  await Promise.all(watchers.map((w) => w.next(30_000)));
  t.ok(watchers.every((w) => w.status === 200), 'all opened');
  t.equal(await metrics(), baseline + count, 'keel_watchers counts them');
  const expected = [
    await put(leaderAddress, `${prefix}a`, '1'),
    await txn(leaderAddress, [[`${prefix}b`, '2'], [`${prefix}c`, '3']]),
    await put(followerAddress, `${prefix}a`, '4'),
    await removeExisting(leaderAddress, `${prefix}b`),
  ];
  const last = expected.at(-1)!.revision;
  await Promise.all(watchers.map((w) => w.until((lines) => lastEventRevision(lines) >= last, 30_000)));
  const mismatched = watchers.filter((w) => JSON.stringify(received(w.lines)) !== JSON.stringify(expected));
  t.equal(mismatched.length, 0, 'every watcher received exactly the written events');
  const reference = JSON.stringify(watchers[0]!.lines.slice(1));
  t.ok(watchers.every((w) => JSON.stringify(w.lines.slice(1)) === reference), 'identical lines on every watcher');
  watchers.forEach((w) => w.close());
  const deadline = performance.now() + 30_000;
  let now = await metrics();
  while (now !== baseline && performance.now() < deadline) {
    await sleep(100);
    now = await metrics();
  }
  t.equal(now, baseline, 'closing the connections freed the watchers');
});

void t.test('a reconnect with fromRevision = last seen + 1 misses nothing', async (t) => {
  const prefix = 'w9/';
  const expected: Expected[] = [];
  let writing = true;
  const writer = (async () => {
    for (let i = 0; writing; i++) {
      expected.push(i % 4 === 3 ? await txn(leaderAddress, [[`${prefix}x${i}`, 'a'], [`${prefix}y${i}`, 'b']]) : await put(leaderAddress, `${prefix}${i % 3}`, `v${i}`));
    }
  })();
  const stopWriting = async (): Promise<void> => {
    writing = false;
    await writer;
  };
  t.teardown(stopWriting);
  const first = watch(followerAddress, prefix, '?prefix=true');
  const created = await first.next();
  await first.until((lines) => received(lines).length >= 15);
  first.close();
  await first.ended;
  const seen = received(first.lines);
  const lastSeen = seen.at(-1)!.revision;
  // Reconnect elsewhere (another node) while the writer keeps going.
  await sleep(100);
  const second = watch(otherFollowerAddress, prefix, `?prefix=true&fromRevision=${lastSeen + 1}`);
  await second.until((lines) => received(lines).length >= 15);
  await stopWriting();
  const last = expected.at(-1)!.revision;
  await second.until((lines) => lastEventRevision(lines) >= last);
  const all = [...seen, ...received(second.lines)];
  t.same(all, expected.filter((e) => e.revision > created.revision), 'the two streams together: every revision once, in order');
  second.close();
});

void t.test('a compaction that overtakes a catching-up watch ends it with a compacted line', async (t) => {
  const prefix = 'w10/';
  // History far larger than the watcher's buffer (1,000 events) plus the socket buffers, so that a watch that
  // does not read is still catching up when the compaction lands.
  const expected: Expected[] = [];
  const value = 'v'.repeat(4 * 1024);
  for (let i = 0; i < 48; i++) {
    const puts: [string, string][] = Array.from({ length: 100 }, (_, j) => [`${prefix}${String(j).padStart(3, '0')}`, `${i}:${value}`]);
    expected.push(await txn(leaderAddress, puts));
  }
  const from = expected[0]!.revision;
  const stream = watch(followerAddress, prefix, `?prefix=true&fromRevision=${from}`);
  await stream.opened();
  stream.pause();
  await sleep(500);
  const compactAt = expected.at(-1)!.revision;
  expectOk(t, await call(leaderAddress, 'POST', '/v1/compact', { body: { revision: compactAt } }), 'compact');
  // Let the follower apply the compaction before the watch reads on.
  const deadline = performance.now() + 30_000;
  while (((await cluster.status(followers[0]!))?.compactRevision ?? 0) < compactAt && performance.now() < deadline) await sleep(50);
  stream.resume();
  await stream.ended;
  const last = stream.lines.at(-1)!;
  t.same(last, { type: 'compacted', compactRevision: compactAt }, 'the last line says where history now starts');
  const got = received(stream.lines);
  t.comment(`delivered ${got.length} of ${expected.length} revisions before the compaction`);
  t.ok(got.length > 0 && got.length < expected.length, `delivered ${got.length} of ${expected.length} revisions before the compaction`);
  t.same(got, expected.slice(0, got.length), 'what was delivered is a gap-free prefix of the history');
  t.ok(got.at(-1)!.revision + 1 < compactAt, 'the skipped revisions are reported, not silently dropped');
  const again = await call(followerAddress, 'GET', `/v1/watch/${prefix}?prefix=true&fromRevision=${from}`, { timeoutMs: 30_000 });
  t.equal(expectError(t, again, 'COMPACTED', 'a new watch from there').compactRevision, compactAt);
  const fromCompact = watch(followerAddress, prefix, `?prefix=true&fromRevision=${compactAt}`);
  const first = await fromCompact.next();
  t.equal(first.revision, compactAt, 'a watch from the compact revision works');
  fromCompact.close();
});
