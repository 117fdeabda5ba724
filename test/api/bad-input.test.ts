// Goal: bad input never reaches the log and never gets a 5xx: malformed JSON, wrong types, unknown fields,
// missing fields, keys/values/bodies over their limits (413), bad revisions and query values, an unknown lease
// (404 LEASE_NOT_FOUND), a fenced put without a lock (412 FENCE_REJECTED), empty keys, malformed txns, too many
// txn ops, bad X-Keel-Request-Id headers and unknown routes each get the documented 4xx status, code and
// {"error": {"code", "message"}} body; afterwards the cluster is healthy and no stored data changed.
// Method: one real three-node cluster. Seed some keys, record every node's revision and state hash
// (/v1/debug/hash), send every bad request through the leader and through a follower, check each answer, then
// check that every node is healthy, that a good write still works, and that revision and hash on every node are
// exactly what they were before the bad requests.
import net from 'node:net';
import t from 'tap';
import { sleep, startCluster } from '../helpers/cluster.js';
import { call, closeHttp, roles, stateOfEveryNode, waitForApplied, type CallOptions } from '../helpers/http.js';
import type { ErrorCode } from '../../src/util/errors.js';
import { expectError, expectOk } from './expect.js';

const cluster = await startCluster(t);
t.teardown(closeHttp);
const { leader, followers } = await roles(cluster);
const targets = [
  { via: 'leader', address: cluster.node(leader).client },
  { via: 'follower', address: cluster.node(followers[0]!).client },
];

interface Case {
  readonly name: string;
  readonly method: string;
  readonly path: string;
  readonly options?: CallOptions;
  readonly code: ErrorCode;
}

const kib = 1024;
const mib = 1024 * kib;
const json = (text: string): CallOptions => ({ body: text, headers: { 'content-type': 'application/json' } });
const put = (name: string, body: unknown, code: ErrorCode, key = 'bad/k'): Case => ({ name, method: 'PUT', path: `/v1/kv/${key}`, options: { body }, code });
const txn = (name: string, body: unknown, code: ErrorCode = 'INVALID_ARGUMENT'): Case => ({ name, method: 'POST', path: '/v1/txn', options: { body }, code });
const get = (name: string, path: string, code: ErrorCode = 'INVALID_ARGUMENT'): Case => ({ name, method: 'GET', path, code });
const manyOps = (count: number): unknown[] => Array.from({ length: count }, (_, i) => ({ put: { key: `bad/many/${i}`, value: 'x' } }));

function cases(futureRevision: number): Case[] {
  return [
    // Malformed bodies.
    { name: 'malformed JSON', method: 'PUT', path: '/v1/kv/bad/k', options: json('{"value": '), code: 'INVALID_ARGUMENT' },
    { name: 'malformed JSON (txn)', method: 'POST', path: '/v1/txn', options: json('{"compare": [}'), code: 'INVALID_ARGUMENT' },
    { name: 'malformed JSON (compact)', method: 'POST', path: '/v1/compact', options: json('revision=1'), code: 'INVALID_ARGUMENT' },
    { name: 'empty JSON body', method: 'PUT', path: '/v1/kv/bad/k', options: json(''), code: 'INVALID_ARGUMENT' },
    { name: 'no body at all', method: 'PUT', path: '/v1/kv/bad/k', code: 'INVALID_ARGUMENT' },
    { name: 'JSON that is not an object', method: 'PUT', path: '/v1/kv/bad/k', options: json('"just a string"'), code: 'INVALID_ARGUMENT' },
    { name: 'JSON array body', method: 'PUT', path: '/v1/kv/bad/k', options: json('[{"value": "x"}]'), code: 'INVALID_ARGUMENT' },
    { name: 'JSON null body', method: 'PUT', path: '/v1/kv/bad/k', options: json('null'), code: 'INVALID_ARGUMENT' },
    { name: 'not JSON content type', method: 'PUT', path: '/v1/kv/bad/k', options: { body: 'value=x', headers: { 'content-type': 'text/plain' } }, code: 'INVALID_ARGUMENT' },
    // Wrong types, unknown and missing fields.
    put('value as a number', { value: 5 }, 'INVALID_ARGUMENT'),
    put('value as null', { value: null }, 'INVALID_ARGUMENT'),
    put('lease as a string', { value: 'x', lease: '5' }, 'INVALID_ARGUMENT'),
    put('lease negative', { value: 'x', lease: -1 }, 'INVALID_ARGUMENT'),
    put('lease fractional', { value: 'x', lease: 1.5 }, 'INVALID_ARGUMENT'),
    put('prevKv as a string', { value: 'x', prevKv: 'true' }, 'INVALID_ARGUMENT'),
    put('ifModRevision as a string', { value: 'x', ifModRevision: '3' }, 'INVALID_ARGUMENT'),
    put('ifModRevision negative', { value: 'x', ifModRevision: -1 }, 'INVALID_ARGUMENT'),
    put('ifVersion fractional', { value: 'x', ifVersion: 0.5 }, 'INVALID_ARGUMENT'),
    put('fence without token', { value: 'x', fence: { lock: 'l' } }, 'INVALID_ARGUMENT'),
    put('fence token as a string', { value: 'x', fence: { lock: 'l', token: '1' } }, 'INVALID_ARGUMENT'),
    put('fence with an unknown field', { value: 'x', fence: { lock: 'l', token: 1, holder: 'me' } }, 'INVALID_ARGUMENT'),
    put('unknown body field', { value: 'x', ttl: 5 }, 'INVALID_ARGUMENT'),
    put('missing value', { prevKv: true }, 'INVALID_ARGUMENT'),
    put('empty object', {}, 'INVALID_ARGUMENT'),
    put('lone surrogate in the value', { value: '\uD800' }, 'INVALID_ARGUMENT'),
    // Limits.
    put('key over 4096 bytes', { value: 'x' }, 'TOO_LARGE', 'k'.repeat(4097)),
    put('key over 4096 bytes as UTF-8 (2049 two-byte characters)', { value: 'x' }, 'TOO_LARGE', encodeURIComponent('é'.repeat(2049))),
    put('key over 4096 bytes, percent-encoded to 15000 characters', { value: 'x' }, 'TOO_LARGE', '%20'.repeat(5000)),
    put('key over 4096 bytes, longer than the router takes (13000 characters)', { value: 'x' }, 'TOO_LARGE', 'k'.repeat(13_000)),
    put('key over 4096 bytes, request head over 16 KiB', { value: 'x' }, 'TOO_LARGE', encodeURIComponent('é'.repeat(6_000))),
    put('value over 1 MiB', { value: 'v'.repeat(mib + 1) }, 'TOO_LARGE'),
    put('value over 1 MiB as UTF-8', { value: 'é'.repeat(mib / 2 + 1) }, 'TOO_LARGE'),
    { name: 'body over 1.5 MiB', method: 'PUT', path: '/v1/kv/bad/k', options: { body: { value: 'v'.repeat(1.5 * mib) } }, code: 'TOO_LARGE' },
    txn('txn body over 1.5 MiB', { success: [{ put: { key: 'bad/a', value: 'v'.repeat(800 * kib) } }, { put: { key: 'bad/b', value: 'v'.repeat(800 * kib) } }] }, 'TOO_LARGE'),
    txn('txn put value over 1 MiB', { success: [{ put: { key: 'bad/a', value: 'v'.repeat(mib + 1) } }] }, 'TOO_LARGE'),
    txn('txn key over 4096 bytes', { success: [{ get: { key: 'k'.repeat(4097) } }] }, 'TOO_LARGE'),
    // Bad percent-encoding in the path.
    get('malformed percent-encoding', '/v1/kv/bad/a%zz'),
    get('truncated percent-encoding', '/v1/kv/bad/a%'),
    put('percent-encoded lone surrogate (not UTF-8)', { value: 'x' }, 'INVALID_ARGUMENT', 'bad/%ED%A0%80'),
    get('malformed percent-encoding (watch)', '/v1/watch/bad/a%zz'),
    { name: 'malformed percent-encoding (delete)', method: 'DELETE', path: '/v1/kv/bad/%E0%A4%A', code: 'INVALID_ARGUMENT' },
    // Bad revisions and query values.
    get('revision negative', '/v1/kv/bad/seed?revision=-1'),
    get('revision not an integer', '/v1/kv/bad/seed?revision=1.5'),
    get('revision not a number', '/v1/kv/bad/seed?revision=latest'),
    get('revision in the future', `/v1/kv/bad/seed?revision=${futureRevision}`),
    get('revision in the future (list)', `/v1/kv/bad/?prefix=true&revision=${futureRevision}`),
    get('sort=foo', '/v1/kv/bad/?prefix=true&sort=foo'),
    get('order=sideways', '/v1/kv/bad/?prefix=true&order=sideways'),
    get('limit=-1', '/v1/kv/bad/?prefix=true&limit=-1'),
    get('limit=ten', '/v1/kv/bad/?prefix=true&limit=ten'),
    get('prefix=maybe', '/v1/kv/bad/?prefix=maybe'),
    get('consistency=strong', '/v1/kv/bad/seed?consistency=strong'),
    get('unknown query parameter', '/v1/kv/bad/seed?rangeEnd=z'),
    { name: 'delete with ifModRevision=-1', method: 'DELETE', path: '/v1/kv/bad/seed?ifModRevision=-1', code: 'INVALID_ARGUMENT' },
    { name: 'delete with prefix=yes', method: 'DELETE', path: '/v1/kv/bad/?prefix=yes', code: 'INVALID_ARGUMENT' },
    { name: 'delete a prefix with ifModRevision', method: 'DELETE', path: '/v1/kv/bad/?prefix=true&ifModRevision=3', code: 'INVALID_ARGUMENT' },
    get('watch fromRevision=-1', '/v1/watch/bad/seed?fromRevision=-1'),
    get('watch progressMs too small', '/v1/watch/bad/seed?progressMs=1'),
    get('watch unknown parameter', '/v1/watch/bad/seed?since=3'),
    get('watch the empty key without prefix', '/v1/watch/'),
    { name: 'compact revision 0', method: 'POST', path: '/v1/compact', options: { body: { revision: 0 } }, code: 'INVALID_ARGUMENT' },
    { name: 'compact revision as a string', method: 'POST', path: '/v1/compact', options: { body: { revision: '1' } }, code: 'INVALID_ARGUMENT' },
    { name: 'compact a future revision', method: 'POST', path: '/v1/compact', options: { body: { revision: futureRevision } }, code: 'INVALID_ARGUMENT' },
    // Refused by the state machine: the entry is applied as a failure, nothing changes.
    put('unknown lease', { value: 'x', lease: 424242 }, 'LEASE_NOT_FOUND'),
    txn('txn put with an unknown lease', { success: [{ put: { key: 'bad/txn-lease', value: 'x', lease: 424242 } }] }, 'LEASE_NOT_FOUND'),
    put('fenced put without a lock', { value: 'x', fence: { lock: 'no-such-lock', token: 1 } }, 'FENCE_REJECTED'),
    // Empty keys.
    put('empty key on PUT', { value: 'x' }, 'INVALID_ARGUMENT', ''),
    { name: 'empty key on DELETE', method: 'DELETE', path: '/v1/kv/', code: 'INVALID_ARGUMENT' },
    txn('txn put with an empty key', { success: [{ put: { key: '', value: 'x' } }] }),
    txn('txn compare with an empty key', { compare: [{ key: '', target: 'version', op: '==', value: 0 }] }),
    // Malformed txns.
    txn('txn op without value', { success: [{ put: { key: 'bad/a' } }] }),
    txn('txn op with two kinds', { success: [{ put: { key: 'bad/a', value: 'x' }, get: { key: 'bad/a' } }] }),
    txn('txn op of an unknown kind', { success: [{ increment: { key: 'bad/a' } }] }),
    txn('txn op that is not an object', { success: ['put bad/a x'] }),
    txn('txn op with an unknown field', { success: [{ delete: { key: 'bad/a', limit: 3 } }] }),
    txn('txn ops not an array', { success: { put: { key: 'bad/a', value: 'x' } } }),
    txn('txn compare target unknown', { compare: [{ key: 'bad/a', target: 'size', op: '==', value: 1 }] }),
    txn('txn compare op unknown', { compare: [{ key: 'bad/a', target: 'version', op: '>=', value: 1 }] }),
    txn('txn compare version with a string', { compare: [{ key: 'bad/a', target: 'version', op: '==', value: 'one' }] }),
    txn('txn compare value with a number', { compare: [{ key: 'bad/a', target: 'value', op: '==', value: 1 }] }),
    txn('txn compare missing value', { compare: [{ key: 'bad/a', target: 'version', op: '==' }] }),
    txn('txn unknown top-level field', { compare: [], success: [], orElse: [] }),
    txn('txn with too many ops', { success: manyOps(129) }),
    txn('txn with too many compares', { compare: Array.from({ length: 129 }, () => ({ key: 'bad/a', target: 'version', op: '==', value: 0 })) }),
    // Bad request ids.
    { name: 'request id too long', method: 'PUT', path: '/v1/kv/bad/k', options: { body: { value: 'x' }, headers: { 'x-keel-request-id': 'r'.repeat(129) } }, code: 'INVALID_ARGUMENT' },
    { name: 'request id with a space', method: 'PUT', path: '/v1/kv/bad/k', options: { body: { value: 'x' }, headers: { 'x-keel-request-id': 'a b' } }, code: 'INVALID_ARGUMENT' },
    { name: 'empty request id', method: 'PUT', path: '/v1/kv/bad/k', options: { body: { value: 'x' }, headers: { 'x-keel-request-id': '' } }, code: 'INVALID_ARGUMENT' },
    { name: 'bad request id on a txn', method: 'POST', path: '/v1/txn', options: { body: { success: [] }, headers: { 'x-keel-request-id': 'x\ty' } }, code: 'INVALID_ARGUMENT' },
    { name: 'bad request id on a delete', method: 'DELETE', path: '/v1/kv/bad/seed', options: { headers: { 'x-keel-request-id': 'é'.repeat(3) } }, code: 'INVALID_ARGUMENT' },
    // Unknown routes and methods.
    get('unknown route', '/v1/nothing-here', 'NOT_FOUND'),
    get('unknown version', '/v2/kv/bad/seed', 'NOT_FOUND'),
    get('root', '/', 'NOT_FOUND'),
    { name: 'POST to a key', method: 'POST', path: '/v1/kv/bad/seed', options: { body: { value: 'x' } }, code: 'NOT_FOUND' },
    { name: 'GET on txn', method: 'GET', path: '/v1/txn', code: 'NOT_FOUND' },
    { name: 'DELETE on compact', method: 'DELETE', path: '/v1/compact', code: 'NOT_FOUND' },
    // The internal route followers forward to refuses what is not an encoded command.
    { name: 'garbage to the internal propose route', method: 'POST', path: '/internal/v1/propose', options: { body: Buffer.from([0xc1, 0xff, 0x00, 0x13]), headers: { 'content-type': 'application/octet-stream' } }, code: 'INVALID_ARGUMENT' },
    { name: 'JSON to the internal propose route', method: 'POST', path: '/internal/v1/propose', options: { body: { kind: 'put', key: 'bad/k', value: 'x' } }, code: 'INVALID_ARGUMENT' },
  ];
}

// Seed a few keys so that the state hash covers real data, and learn the revision.
const client = cluster.client();
for (const [key, value] of [['bad/seed', 'seed'], ['bad/other', 'other'], ['elsewhere', 'x']] as const) {
  await client.call('PUT', `/v1/kv/${key}`, { value });
}
await waitForApplied(cluster);
const before = await stateOfEveryNode(cluster);

void t.test('before: every node agrees', async (t) => {
  t.equal(new Set(before.map((s) => `${s.revision}/${s.hash}`)).size, 1, JSON.stringify(before));
});

for (const { via, address } of targets) {
  void t.test(`bad requests via ${via}`, async (t) => {
    for (const c of cases(before[0]!.revision + 1_000)) {
      const answer = await call(address, c.method, c.path, c.options ?? {});
      t.ok(answer.status >= 400 && answer.status < 500, `${c.name}: a 4xx (got ${answer.status})`);
      const error = expectError(t, answer, c.code, c.name);
      t.same(Object.keys(answer.json ?? {}), ['error'], `${c.name}: the body is {"error": ...}`);
      if (c.code === 'PRECONDITION_FAILED') t.ok('kv' in error);
    }
  });
}

/** Sends raw bytes on a fresh connection and returns what comes back before the server closes it. */
async function rawExchange(address: string, bytes: string): Promise<{ status: number; body: string }> {
  const [host, port] = address.split(':');
  const text = await new Promise<string>((resolve, reject) => {
    const socket = net.connect(Number(port), host!, () => socket.write(bytes));
    let out = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (out += chunk));
    socket.on('close', () => resolve(out));
    socket.on('error', reject);
    socket.setTimeout(5_000, () => socket.destroy(new Error('no answer within 5 s')));
  });
  const [head = '', body = ''] = text.split('\r\n\r\n');
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), body };
}

for (const { via, address } of targets) {
  void t.test(`malformed HTTP request heads via ${via}`, async (t) => {
    const rows: [string, string, number, string][] = [
      ['not HTTP at all', 'HELLO THERE\r\n\r\n', 400, 'INVALID_ARGUMENT'],
      ['bad header line', 'GET /v1/kv/bad/seed HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n', 400, 'INVALID_ARGUMENT'],
      ['request head over 16 KiB', `GET /v1/kv/bad/seed HTTP/1.1\r\nHost: x\r\nX-Filler: ${'f'.repeat(20_000)}\r\n\r\n`, 413, 'TOO_LARGE'],
    ];
    for (const [name, bytes, status, code] of rows) {
      const answer = await rawExchange(address, bytes);
      t.equal(answer.status, status, `${name}: ${status}`);
      let parsed: { error?: { code?: string; message?: string } } = {};
      try {
        parsed = JSON.parse(answer.body);
      } catch {
        t.fail(`${name}: body is not JSON: ${answer.body.slice(0, 200)}`);
      }
      t.equal(parsed.error?.code, code, `${name}: code ${code}`);
      t.ok(typeof parsed.error?.message === 'string', `${name}: has a message`);
    }
  });
}

void t.test('afterwards: healthy, writable, and no stored data changed', async (t) => {
  const after = await stateOfEveryNode(cluster);
  t.same(after, before, 'same revision and state hash on every node');
  t.ok(await cluster.waitForLeader(30_000), 'the nodes agree on a leader');
  for (const node of cluster.nodes) {
    // /health is 503 for a moment whenever a node has not yet applied the commit index it last heard.
    const deadline = performance.now() + 10_000;
    let health = await call(node.client, 'GET', '/health');
    while (health.status !== 200 && performance.now() < deadline) {
      await sleep(50);
      health = await call(node.client, 'GET', '/health');
    }
    t.equal(health.status, 200, `${node.id} healthy`);
  }
  for (const key of ['bad/k', 'bad/a', 'bad/many/0', 'bad/txn-lease', '']) {
    if (key === '') continue;
    const answer = await call(targets[0]!.address, 'GET', `/v1/kv/${key}`);
    expectError(t, answer, 'KEY_NOT_FOUND', `${key} was never written`);
  }
  const good = expectOk(t, await call(targets[1]!.address, 'PUT', '/v1/kv/bad/k', { body: { value: 'fine' } }), 'a good write still works');
  t.equal(good.json.revision, before[0]!.revision + 1, 'the next revision follows the one before the bad requests');
  const hashAtBefore = await call(targets[1]!.address, 'GET', `/v1/debug/hash?revision=${before[0]!.revision}`);
  t.equal(hashAtBefore.json.hash, before[0]!.hash, 'the hash of the old revision is unchanged');
});
