// Goal: every example of the Key-value section of shared/API.md holds on a real cluster, through the leader AND
// through a follower: put/get with the KV fields (createRevision, modRevision, version reset by delete, lease),
// X-Keel-Revision on every read and write answer, prefix lists (limit/more/count, keysOnly, countOnly, sort and
// order, the whole keyspace), reads of the past, serializable reads, prevKv, ifModRevision/ifVersion (412 with
// the current kv), prefix deletes, txns (every compare target, every op kind, one revision, results in order),
// compaction (410 COMPACTED with compactRevision for reads and watches below it), percent-encoded keys, and a
// write retried with the same X-Keel-Request-Id applied once.
// Method: one real three-node cluster (built dist/, real processes on loopback) shared by every subtest. Each
// example runs once against the leader's address and once against a follower's, under its own key prefix, so
// the two runs do not see each other's keys; every answer is checked field by field, revisions exactly.
import t from 'tap';
import { startCluster } from '../helpers/cluster.js';
import { call, closeHttp, keyPath, openStream, roles, type Answer } from '../helpers/http.js';
import { expectError, expectOk, kvFields } from './expect.js';

const cluster = await startCluster(t);
t.teardown(closeHttp);
const { leader, followers } = await roles(cluster);
const targets = [
  { via: 'leader', address: cluster.node(leader).client },
  { via: 'follower', address: cluster.node(followers[0]!).client },
];

/** The revision the store is at, as a linearizable read through `address` reports it. */
async function currentRevision(address: string): Promise<number> {
  const answer = await call(address, 'GET', '/v1/kv/no-such-key-for-revision?countOnly=true&prefix=true');
  if (answer.status !== 200 || answer.revision === null) throw new Error(`revision probe answered ${answer.status}`);
  return answer.revision;
}

for (const { via, address } of targets) {
  const p = `kv-${via}/`;
  const put = (key: string, body: unknown, headers?: Record<string, string>): Promise<Answer> =>
    call(address, 'PUT', `/v1/kv/${keyPath(key)}`, { body, ...(headers && { headers }) });
  const get = (key: string, query = ''): Promise<Answer> => call(address, 'GET', `/v1/kv/${keyPath(key)}${query}`);
  const del = (key: string, query = ''): Promise<Answer> => call(address, 'DELETE', `/v1/kv/${keyPath(key)}${query}`);
  const txn = (body: unknown, headers?: Record<string, string>): Promise<Answer> =>
    call(address, 'POST', '/v1/txn', { body, ...(headers && { headers }) });

  void t.test(`via ${via}: put and get, KV fields, version reset by delete`, async (t) => {
    const key = `${p}a`;
    const first = expectOk(t, await put(key, { value: 'one' }), 'put 1');
    const r1 = first.json.revision as number;
    t.same(Object.keys(first.json), ['revision'], 'a put answers only its revision');
    t.equal(first.revision, r1, 'X-Keel-Revision is the write revision');

    const read1 = expectOk(t, await get(key), 'get 1');
    t.same(Object.keys(read1.json.kv).sort(), kvFields, 'KV has exactly the documented fields');
    t.same(read1.json.kv, { key, value: 'one', createRevision: r1, modRevision: r1, version: 1, lease: 0 });
    t.ok(read1.revision! >= r1, 'a linearizable read reflects the acknowledged write');

    const second = expectOk(t, await put(key, { value: 'two' }), 'put 2');
    const r2 = second.json.revision as number;
    t.equal(r2, r1 + 1, 'one revision per write (nothing else writes meanwhile)');
    t.same((await get(key)).json.kv, { key, value: 'two', createRevision: r1, modRevision: r2, version: 2, lease: 0 });

    const removed = expectOk(t, await del(key), 'delete');
    t.same(removed.json, { revision: r2 + 1, deleted: 1 });
    t.equal(removed.revision, r2 + 1);
    const missing = expectError(t, await get(key), 'KEY_NOT_FOUND', 'get after delete');
    t.notOk('kv' in missing, 'a 404 carries no kv');

    const again = expectOk(t, await put(key, { value: 'three' }), 'put after delete');
    const r4 = again.json.revision as number;
    t.equal(r4, r2 + 2);
    t.same((await get(key)).json.kv, { key, value: 'three', createRevision: r4, modRevision: r4, version: 1, lease: 0 }, 'version starts again at 1');

    const nothing = expectOk(t, await del(`${p}never-existed`), 'delete of a missing key');
    t.same(nothing.json, { revision: r4, deleted: 0 }, 'deleting nothing takes no revision');
    t.equal(await currentRevision(address), r4, 'revision unchanged');
  });

  void t.test(`via ${via}: the KV lease field, and txn compares on it`, async (t) => {
    const granted = expectOk(t, await call(address, 'POST', '/v1/leases', { body: { ttl: 300 } }), 'grant a lease', 201);
    const lease = granted.json.id as number;
    t.ok(Number.isSafeInteger(lease) && lease > 0, `lease id ${lease}`);
    const key = `${p}leased`;
    const r1 = expectOk(t, await put(key, { value: 'held', lease }), 'put with the lease').json.revision as number;
    t.same((await get(key)).json.kv, { key, value: 'held', createRevision: r1, modRevision: r1, version: 1, lease });
    const listed = expectOk(t, await get(key, '?prefix=true'), 'list');
    t.equal(listed.json.kvs[0].lease, lease, 'lists carry the lease too');
    const held = await call(address, 'GET', `/v1/leases/${lease}`);
    t.ok(held.status === 200 && (held.json.keys as string[]).includes(key), 'the lease lists the key');
    const compare = (op: string, value: number): unknown => ({ compare: [{ key, target: 'lease', op, value }], success: [{ get: { key } }], failure: [] });
    t.equal(expectOk(t, await txn(compare('==', lease)), 'lease == id').json.succeeded, true);
    t.equal(expectOk(t, await txn(compare('>', 0)), 'lease > 0').json.succeeded, true);
    t.equal(expectOk(t, await txn(compare('!=', lease)), 'lease != id').json.succeeded, false);
    t.equal(expectOk(t, await txn(compare('<', lease)), 'lease < id').json.succeeded, false);
    const r2 = expectOk(t, await put(key, { value: 'free' }), 'put without a lease detaches it').json.revision as number;
    t.same((await get(key)).json.kv, { key, value: 'free', createRevision: r1, modRevision: r2, version: 2, lease: 0 });
    t.equal(expectOk(t, await txn(compare('==', 0)), 'lease == 0 after detaching').json.succeeded, true);
    expectOk(t, await call(address, 'DELETE', `/v1/leases/${lease}`), 'revoke');
    t.same((await get(key)).json.kv.value, 'free', 'a detached key survives the revoke');
  });

  void t.test(`via ${via}: prefix lists with limit, more, count, keysOnly, countOnly, sort and order`, async (t) => {
    const base = `${p}list/`;
    // Created out of key order, and one key updated, so that key, createRevision and modRevision orders differ.
    const created: Record<string, number> = {};
    for (const name of ['c', 'a', 'e', 'b', 'd']) {
      created[name] = expectOk(t, await put(`${base}${name}`, { value: `v-${name}` }), `put ${name}`).json.revision;
    }
    const updateA = expectOk(t, await put(`${base}a`, { value: 'v-a2' }), 'update a').json.revision as number;
    expectOk(t, await put(`${p}lisz`, { value: 'not in the prefix' }), 'neighbour key');
    const keys = (answer: Answer): string[] => (answer.json.kvs as { key: string }[]).map((kv) => kv.key.slice(base.length));

    const all = expectOk(t, await get(base, '?prefix=true'), 'list');
    t.same(keys(all), ['a', 'b', 'c', 'd', 'e'], 'key order, prefix only');
    t.equal(all.json.count, 5);
    t.equal(all.json.more, false);
    t.same(all.json.kvs[0], { key: `${base}a`, value: 'v-a2', createRevision: created.a, modRevision: updateA, version: 2, lease: 0 });

    const limited = expectOk(t, await get(base, '?prefix=true&limit=2'), 'limit');
    t.same(keys(limited), ['a', 'b']);
    t.equal(limited.json.count, 5, 'count ignores the limit');
    t.equal(limited.json.more, true);
    const exact = expectOk(t, await get(base, '?prefix=true&limit=5'), 'limit = count');
    t.equal(exact.json.more, false);

    const keysOnly = expectOk(t, await get(base, '?prefix=true&keysOnly=true'), 'keysOnly');
    t.same(keys(keysOnly), ['a', 'b', 'c', 'd', 'e']);
    t.ok((keysOnly.json.kvs as { value: string }[]).every((kv) => kv.value === ''), 'keysOnly: no values');
    t.equal(keysOnly.json.kvs[0].modRevision, updateA, 'keysOnly keeps the other fields');

    const countOnly = expectOk(t, await get(base, '?prefix=true&countOnly=true'), 'countOnly');
    t.equal(countOnly.json.count, 5);
    t.same(countOnly.json.kvs ?? [], [], 'countOnly: no kvs');
    t.equal(countOnly.json.more, false);

    const byCreate = expectOk(t, await get(base, '?prefix=true&sort=createRevision'), 'sort=createRevision');
    t.same(keys(byCreate), ['c', 'a', 'e', 'b', 'd']);
    const byCreateDesc = expectOk(t, await get(base, '?prefix=true&sort=createRevision&order=desc'), 'createRevision desc');
    t.same(keys(byCreateDesc), ['d', 'b', 'e', 'a', 'c']);
    const byMod = expectOk(t, await get(base, '?prefix=true&sort=modRevision&order=asc'), 'sort=modRevision');
    t.same(keys(byMod), ['c', 'e', 'b', 'd', 'a']);
    const byKeyDesc = expectOk(t, await get(base, '?prefix=true&sort=key&order=desc'), 'key desc');
    t.same(keys(byKeyDesc), ['e', 'd', 'c', 'b', 'a']);
    const descLimited = expectOk(t, await get(base, '?prefix=true&order=desc&limit=2'), 'desc with limit');
    t.same(keys(descLimited), ['e', 'd']);
    t.equal(descLimited.json.more, true);
    const modDescLimited = expectOk(t, await get(base, '?prefix=true&sort=modRevision&order=desc&limit=3'), 'modRevision desc limit');
    t.same(keys(modDescLimited), ['a', 'd', 'b']);
    t.equal(modDescLimited.json.count, 5);

    // The whole keyspace: both runs' keys, in key order, and count = the number of keys.
    const everything = expectOk(t, await call(address, 'GET', '/v1/kv?prefix=true'), 'GET /v1/kv?prefix=true');
    const allKeys = (everything.json.kvs as { key: string }[]).map((kv) => kv.key);
    t.ok(allKeys.includes(`${base}a`) && allKeys.includes(`${p}lisz`), 'lists keys of every prefix');
    t.equal(everything.json.count, allKeys.length);
    t.same(allKeys, [...allKeys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))), 'in key (byte) order');
    const everythingCount = expectOk(t, await call(address, 'GET', '/v1/kv?prefix=true&countOnly=true'), 'count everything');
    t.equal(everythingCount.json.count, allKeys.length);
  });

  void t.test(`via ${via}: reading the past with revision=N`, async (t) => {
    const key = `${p}past`;
    const r1 = expectOk(t, await put(key, { value: 'old' }), 'put old').json.revision as number;
    const r2 = expectOk(t, await put(key, { value: 'new' }), 'put new').json.revision as number;
    const r3 = expectOk(t, await del(key), 'delete').json.revision as number;
    const atR1 = expectOk(t, await get(key, `?revision=${r1}`), 'get at r1');
    t.same(atR1.json.kv, { key, value: 'old', createRevision: r1, modRevision: r1, version: 1, lease: 0 });
    t.ok(atR1.revision! >= r3, 'X-Keel-Revision is the store revision the answer was served at');
    t.same((await get(key, `?revision=${r2}`)).json.kv, { key, value: 'new', createRevision: r1, modRevision: r2, version: 2, lease: 0 });
    expectError(t, await get(key, `?revision=${r3}`), 'KEY_NOT_FOUND', 'deleted at r3');
    expectError(t, await get(key, `?revision=${r1 - 1}`), 'KEY_NOT_FOUND', 'not created yet before r1');
    expectError(t, await get(key), 'KEY_NOT_FOUND', 'deleted now');

    const base = `${p}pastlist/`;
    const s1 = expectOk(t, await put(`${base}x`, { value: '1' }), 'x').json.revision as number;
    const s2 = expectOk(t, await put(`${base}y`, { value: '2' }), 'y').json.revision as number;
    expectOk(t, await put(`${base}x`, { value: '3' }), 'x again');
    expectOk(t, await del(`${base}y`), 'delete y');
    const list1 = expectOk(t, await get(base, `?prefix=true&revision=${s1}`), 'list at s1');
    t.same(list1.json.kvs, [{ key: `${base}x`, value: '1', createRevision: s1, modRevision: s1, version: 1, lease: 0 }]);
    const list2 = expectOk(t, await get(base, `?prefix=true&revision=${s2}&keysOnly=true&order=desc`), 'list at s2');
    t.same(list2.json.kvs.map((kv: { key: string }) => kv.key), [`${base}y`, `${base}x`]);
    t.equal(list2.json.count, 2);
    const listNow = expectOk(t, await get(base, '?prefix=true'), 'list now');
    t.same(listNow.json.kvs.map((kv: { value: string }) => kv.value), ['3']);
  });

  void t.test(`via ${via}: consistency=serializable and linearizable`, async (t) => {
    const key = `${p}consistency`;
    // Written through the LEADER, read through this node: linearizable must see it at once.
    const written = expectOk(t, await call(cluster.node(leader).client, 'PUT', `/v1/kv/${keyPath(key)}`, { body: { value: 'x' } }), 'put via leader');
    const r = written.json.revision as number;
    const linear = expectOk(t, await get(key, '?consistency=linearizable'), 'linearizable read');
    t.equal(linear.json.kv.modRevision, r, 'a linearizable read sees every acknowledged write');
    t.ok(linear.revision! >= r);
    // Serializable is local and may lag, but answers with the revision it reflects and catches up.
    const deadline = performance.now() + 30_000;
    let serial = await get(key, '?consistency=serializable');
    while (serial.status !== 200 && performance.now() < deadline) serial = await get(key, '?consistency=serializable');
    expectOk(t, serial, 'serializable read');
    t.equal(serial.json.kv.value, 'x');
    t.ok(serial.revision! >= r);
    const serialList = expectOk(t, await get(`${p}consistency`, '?prefix=true&consistency=serializable'), 'serializable list');
    t.equal(serialList.json.count, 1);
  });

  void t.test(`via ${via}: prevKv on put and delete`, async (t) => {
    const key = `${p}prev`;
    const created = expectOk(t, await put(key, { value: 'a', prevKv: true }), 'create with prevKv');
    const r1 = created.json.revision as number;
    t.same(created.json, { revision: r1 }, 'no prevKv when the key did not exist');
    const replaced = expectOk(t, await put(key, { value: 'b', prevKv: true }), 'replace with prevKv');
    const r2 = replaced.json.revision as number;
    t.same(replaced.json, { revision: r2, prevKv: { key, value: 'a', createRevision: r1, modRevision: r1, version: 1, lease: 0 } });
    const plain = expectOk(t, await put(key, { value: 'c', prevKv: false }), 'put without prevKv');
    t.notOk('prevKv' in plain.json);
    const r3 = plain.json.revision as number;
    const removed = expectOk(t, await del(key, '?prevKv=true'), 'delete with prevKv');
    t.same(removed.json, {
      revision: r3 + 1,
      deleted: 1,
      prevKvs: [{ key, value: 'c', createRevision: r1, modRevision: r3, version: 3, lease: 0 }],
    });
  });

  void t.test(`via ${via}: ifModRevision and ifVersion, 412 with the current kv`, async (t) => {
    const key = `${p}cas`;
    const absentFirst = expectError(t, await put(key, { value: 'x', ifModRevision: 5 }), 'PRECONDITION_FAILED', 'ifModRevision on a missing key');
    t.notOk('kv' in absentFirst, 'no kv when the key does not exist');
    const create = expectOk(t, await put(key, { value: 'v1', ifModRevision: 0 }), 'ifModRevision 0 creates');
    const r1 = create.json.revision as number;
    const current1 = { key, value: 'v1', createRevision: r1, modRevision: r1, version: 1, lease: 0 };
    const exists = expectError(t, await put(key, { value: 'v2', ifModRevision: 0 }), 'PRECONDITION_FAILED', 'ifModRevision 0 on an existing key');
    t.same(exists.kv, current1, 'the current kv is in the body');
    t.equal(await currentRevision(address), r1, 'a failed precondition takes no revision');
    const wrongMod = expectError(t, await put(key, { value: 'v2', ifModRevision: r1 + 100 }), 'PRECONDITION_FAILED', 'wrong ifModRevision');
    t.same(wrongMod.kv, current1);
    const rightMod = expectOk(t, await put(key, { value: 'v2', ifModRevision: r1 }), 'right ifModRevision');
    const r2 = rightMod.json.revision as number;
    t.equal(r2, r1 + 1);
    const current2 = { key, value: 'v2', createRevision: r1, modRevision: r2, version: 2, lease: 0 };
    const wrongVersion = expectError(t, await put(key, { value: 'v3', ifVersion: 1 }), 'PRECONDITION_FAILED', 'wrong ifVersion');
    t.same(wrongVersion.kv, current2);
    const both = expectError(t, await put(key, { value: 'v3', ifVersion: 2, ifModRevision: r1 }), 'PRECONDITION_FAILED', 'right ifVersion, wrong ifModRevision');
    t.same(both.kv, current2);
    const rightVersion = expectOk(t, await put(key, { value: 'v3', ifVersion: 2, ifModRevision: r2, prevKv: true }), 'right ifVersion');
    t.same(rightVersion.json.prevKv, current2);
    const r3 = rightVersion.json.revision as number;
    t.same((await get(key)).json.kv, { key, value: 'v3', createRevision: r1, modRevision: r3, version: 3, lease: 0 });

    const wrongDelete = expectError(t, await del(key, `?ifModRevision=${r2}`), 'PRECONDITION_FAILED', 'delete with a wrong ifModRevision');
    t.equal((wrongDelete.kv as { modRevision: number }).modRevision, r3);
    t.equal(await currentRevision(address), r3, 'nothing applied');
    const rightDelete = expectOk(t, await del(key, `?ifModRevision=${r3}`), 'delete with the right ifModRevision');
    t.same(rightDelete.json, { revision: r3 + 1, deleted: 1 });
    const versionZero = expectOk(t, await put(key, { value: 'v4', ifVersion: 0 }), 'ifVersion 0 on a missing key');
    t.equal(versionZero.json.revision, r3 + 2);
  });

  void t.test(`via ${via}: delete a prefix`, async (t) => {
    const base = `${p}gone/`;
    for (const name of ['1', '2', '3']) expectOk(t, await put(`${base}${name}`, { value: name }), `put ${name}`);
    expectOk(t, await put(`${p}gone-sibling`, { value: 'stays' }), 'sibling outside the prefix');
    const before = await currentRevision(address);
    const removed = expectOk(t, await del(base, '?prefix=true&prevKv=true'), 'delete prefix');
    t.equal(removed.json.revision, before + 1, 'one revision for the whole prefix');
    t.equal(removed.json.deleted, 3);
    t.same(removed.json.prevKvs.map((kv: { key: string; value: string }) => [kv.key, kv.value]), [
      [`${base}1`, '1'],
      [`${base}2`, '2'],
      [`${base}3`, '3'],
    ]);
    t.equal((await get(base, '?prefix=true')).json.count, 0);
    expectOk(t, await get(`${p}gone-sibling`), 'the sibling survived');
    const again = expectOk(t, await del(base, '?prefix=true'), 'delete an empty prefix');
    t.same(again.json, { revision: before + 1, deleted: 0 });
  });

  void t.test(`via ${via}: txn compares on every target, every op kind, one revision, results in order`, async (t) => {
    const base = `${p}txn/`;
    const ra = expectOk(t, await put(`${base}a`, { value: 'alpha' }), 'a').json.revision as number;
    const rb = expectOk(t, await put(`${base}b`, { value: 'beta' }), 'b').json.revision as number;
    expectOk(t, await put(`${base}d/1`, { value: 'd1' }), 'd/1');
    const rd2 = expectOk(t, await put(`${base}d/2`, { value: 'd2' }), 'd/2').json.revision as number;

    const success = expectOk(
      t,
      await txn({
        compare: [
          { key: `${base}a`, target: 'value', op: '==', value: 'alpha' },
          { key: `${base}a`, target: 'version', op: '==', value: 1 },
          { key: `${base}a`, target: 'createRevision', op: '<', value: rb },
          { key: `${base}b`, target: 'modRevision', op: '>', value: ra },
          { key: `${base}b`, target: 'lease', op: '==', value: 0 },
          { key: `${base}b`, target: 'value', op: '!=', value: 'gamma' },
          { key: `${base}missing`, target: 'version', op: '==', value: 0 },
        ],
        success: [
          { put: { key: `${base}c`, value: 'gamma' } },
          { get: { key: `${base}c` } },
          { delete: { key: `${base}b` } },
          { delete: { key: `${base}d/`, prefix: true } },
          { put: { key: `${base}a`, value: 'alpha2', lease: 0 } },
          { get: { key: base, prefix: true } },
          { get: { key: base, prefix: true, limit: 1 } },
        ],
        failure: [{ put: { key: `${base}failed`, value: 'x' } }],
      }),
      'txn success branch',
    );
    const r = success.json.revision as number;
    t.equal(r, rd2 + 1, 'the whole txn is one revision');
    t.equal(success.revision, r);
    t.equal(success.json.succeeded, true);
    const results = success.json.results;
    t.equal(results.length, 7, 'one result per op');
    t.same(results[0], { put: { revision: r } });
    t.same(results[1].get.kvs, [{ key: `${base}c`, value: 'gamma', createRevision: r, modRevision: r, version: 1, lease: 0 }], 'a get sees the puts before it');
    t.same(results[2], { delete: { deleted: 1 } });
    t.same(results[3], { delete: { deleted: 2 } });
    t.same(results[4], { put: { revision: r } });
    t.same(results[5].get.kvs.map((kv: { key: string; value: string }) => [kv.key, kv.value]), [
      [`${base}a`, 'alpha2'],
      [`${base}c`, 'gamma'],
    ]);
    t.equal(results[5].get.count, 2);
    t.equal(results[5].get.more, false);
    t.equal(results[6].get.kvs.length, 1);
    t.equal(results[6].get.more, true);
    t.equal(await currentRevision(address), r, 'the txn took exactly one revision');
    t.same((await get(`${base}a`)).json.kv, { key: `${base}a`, value: 'alpha2', createRevision: ra, modRevision: r, version: 2, lease: 0 });
    expectError(t, await get(`${base}b`), 'KEY_NOT_FOUND', 'b deleted by the txn');
    expectError(t, await get(`${base}failed`), 'KEY_NOT_FOUND', 'the failure branch did not run');

    // Each compare target and op failing alone sends the txn to its failure branch.
    const failing = [
      { key: `${base}a`, target: 'value', op: '==', value: 'alpha' },
      { key: `${base}a`, target: 'value', op: '<', value: 'alpha' },
      { key: `${base}a`, target: 'version', op: '>', value: 2 },
      { key: `${base}a`, target: 'version', op: '!=', value: 2 },
      { key: `${base}a`, target: 'createRevision', op: '==', value: r },
      { key: `${base}a`, target: 'modRevision', op: '<', value: r },
      { key: `${base}a`, target: 'lease', op: '>', value: 0 },
      { key: `${base}missing`, target: 'value', op: '!=', value: 'anything' },
    ];
    for (const compare of failing) {
      const answer = expectOk(
        t,
        await txn({ compare: [compare], success: [{ put: { key: `${base}wrong`, value: 'x' } }], failure: [{ put: { key: `${base}f`, value: `${compare.target}${compare.op}` } }, { get: { key: `${base}f` } }] }),
        `failing compare ${compare.target} ${compare.op}`,
      );
      t.equal(answer.json.succeeded, false, `${compare.target} ${compare.op} ${compare.value} fails`);
      t.equal(answer.json.results.length, 2);
      t.equal(answer.json.results[1].get.kvs[0].value, `${compare.target}${compare.op}`, 'the failure ops ran in order');
      t.same(answer.json.results[0], { put: { revision: answer.json.revision } });
    }
    expectError(t, await get(`${base}wrong`), 'KEY_NOT_FOUND', 'no success op ran');

    const before = await currentRevision(address);
    const readOnly = expectOk(t, await txn({ compare: [], success: [{ get: { key: `${base}a` } }], failure: [] }), 'read-only txn');
    t.equal(readOnly.json.succeeded, true, 'no compares: success');
    t.equal(readOnly.json.revision, before, 'a read-only txn takes no revision');
    t.equal(readOnly.json.results[0].get.kvs[0].value, 'alpha2');
    const empty = expectOk(t, await txn({}), 'empty txn');
    t.same(empty.json, { succeeded: true, revision: before, results: [] });
    t.equal(await currentRevision(address), before);
  });

  void t.test(`via ${via}: percent-encoded keys`, async (t) => {
    const keys = [
      `${p}enc/with space`,
      `${p}enc/deep/nested/slashes/`,
      `${p}enc/ünïcødé/日本語/😀`,
      `${p}enc/reserved ?#%&+=;,`,
      `${p}enc/plus+sign`,
    ];
    for (const key of keys) {
      const written = expectOk(t, await put(key, { value: `value of ${key}` }), `put ${JSON.stringify(key)}`);
      const read = expectOk(t, await get(key), `get ${JSON.stringify(key)}`);
      t.same(read.json.kv, { key, value: `value of ${key}`, createRevision: written.json.revision, modRevision: written.json.revision, version: 1, lease: 0 });
    }
    const listed = expectOk(t, await get(`${p}enc/`, '?prefix=true'), 'list');
    t.same(
      (listed.json.kvs as { key: string }[]).map((kv) => kv.key),
      [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y))),
      'keys come back exactly as written',
    );
    // An encoded slash addresses the same key as a plain one; '+' in a path is a plus, not a space.
    const viaEncodedSlash = expectOk(t, await call(address, 'GET', `/v1/kv/${encodeURIComponent(`${p}enc/with space`)}`), 'encoded slash');
    t.equal(viaEncodedSlash.json.kv.key, `${p}enc/with space`);
    expectError(t, await call(address, 'GET', `/v1/kv/${keyPath(p)}enc/with+space`), 'KEY_NOT_FOUND', "'+' is not a space");
    const deleted = expectOk(t, await del(`${p}enc/with space`), 'delete an encoded key');
    t.equal(deleted.json.deleted, 1);
  });

  void t.test(`via ${via}: a key of exactly 4096 bytes and a value of exactly 1 MiB are accepted`, async (t) => {
    const asciiKey = `${p}${'k'.repeat(4096 - p.length)}`;
    const bigValue = 'v'.repeat(1024 * 1024);
    const written = expectOk(t, await put(asciiKey, { value: bigValue }), '4096-byte key, 1 MiB value');
    const read = expectOk(t, await get(asciiKey), 'read it back');
    t.equal(read.json.kv.key, asciiKey);
    t.equal(read.json.kv.value.length, bigValue.length);
    t.equal(read.json.kv.modRevision, written.json.revision);
    // 4-byte characters: 4096 bytes of key travel as 12288 percent-encoded characters.
    const emoji = Math.floor((4096 - p.length) / 4);
    const wideKey = `${p}${'😀'.repeat(emoji)}${'x'.repeat(4096 - p.length - 4 * emoji)}`;
    t.equal(Buffer.byteLength(wideKey), 4096, 'the test key is 4096 bytes');
    const wide = expectOk(t, await put(wideKey, { value: 'é'.repeat(512 * 1024) }), 'percent-encoded 4096-byte key, 1 MiB UTF-8 value');
    const wideRead = expectOk(t, await get(wideKey), 'read it back');
    t.equal(wideRead.json.kv.key, wideKey);
    t.equal(Buffer.byteLength(wideRead.json.kv.value), 1024 * 1024);
    t.equal(wideRead.json.kv.modRevision, wide.json.revision);
    expectOk(t, await del(asciiKey), 'delete the big ones');
    expectOk(t, await del(wideKey), 'delete the big ones');
  });

  void t.test(`via ${via}: a write retried with the same X-Keel-Request-Id is applied once`, async (t) => {
    const key = `${p}retry`;
    const id = `retry-${via}-${process.pid}`;
    const first = expectOk(t, await put(key, { value: 'once' }, { 'X-Keel-Request-Id': id }), 'first attempt');
    const r = first.json.revision as number;
    const retry = expectOk(t, await put(key, { value: 'once' }, { 'X-Keel-Request-Id': id }), 'retry, same node');
    t.same(retry.json, first.json, 'the retry is answered with the original result');
    t.equal(retry.revision, r, 'and the original revision');
    const elsewhere = targets.find((x) => x.address !== address)!.address;
    const retryElsewhere = await call(elsewhere, 'PUT', `/v1/kv/${keyPath(key)}`, { body: { value: 'once' }, headers: { 'X-Keel-Request-Id': id } });
    expectOk(t, retryElsewhere, 'retry through another node');
    t.same(retryElsewhere.json, first.json);
    t.equal(await currentRevision(address), r, 'the revision was not bumped again');
    t.same((await get(key)).json.kv, { key, value: 'once', createRevision: r, modRevision: r, version: 1, lease: 0 }, 'version 1: applied once');

    const txnId = `retry-txn-${via}-${process.pid}`;
    const body = { compare: [{ key, target: 'version', op: '==', value: 1 }], success: [{ put: { key, value: 'twice?' } }], failure: [] };
    const txn1 = expectOk(t, await txn(body, { 'X-Keel-Request-Id': txnId }), 'txn');
    const txn2 = expectOk(t, await txn(body, { 'X-Keel-Request-Id': txnId }), 'txn retried');
    t.same(txn2.json, txn1.json, 'the retried txn answers the original result');
    t.equal(txn1.json.succeeded, true);
    t.equal((await get(key)).json.kv.version, 2, 'the txn ran once');
    const otherId = expectOk(t, await put(key, { value: 'new id' }, { 'X-Keel-Request-Id': `${id}-2` }), 'a new id is a new write');
    t.equal(otherId.json.revision, txn1.json.revision + 1);
  });
}

void t.test('compact, then reads and watches below the compact revision get 410 COMPACTED', async (t) => {
  const [viaLeader, viaFollower] = targets.map((x) => x.address) as [string, string];
  const key = 'compact/k';
  const r1 = expectOk(t, await call(viaLeader, 'PUT', `/v1/kv/${key}`, { body: { value: 'v1' } }), 'v1').json.revision as number;
  const r2 = expectOk(t, await call(viaFollower, 'PUT', `/v1/kv/${key}`, { body: { value: 'v2' } }), 'v2').json.revision as number;
  const r3 = expectOk(t, await call(viaLeader, 'PUT', `/v1/kv/${key}`, { body: { value: 'v3' } }), 'v3').json.revision as number;
  const compacted = expectOk(t, await call(viaFollower, 'POST', '/v1/compact', { body: { revision: r2 } }), 'compact through a follower');
  t.equal(compacted.json.compactRevision, r2);
  for (const { via, address } of targets) {
    const below = expectError(t, await call(address, 'GET', `/v1/kv/${key}?revision=${r1}`), 'COMPACTED', `${via}: get below`);
    t.equal(below.compactRevision, r2, `${via}: body has compactRevision`);
    const listBelow = expectError(t, await call(address, 'GET', `/v1/kv/compact/?prefix=true&revision=${r1}`), 'COMPACTED', `${via}: list below`);
    t.equal(listBelow.compactRevision, r2);
    const at = expectOk(t, await call(address, 'GET', `/v1/kv/${key}?revision=${r2}`), `${via}: get at the compact revision`);
    t.equal(at.json.kv.value, 'v2', 'the version at the compact revision survives');
    const now = expectOk(t, await call(address, 'GET', `/v1/kv/${key}`), `${via}: get now`);
    t.same(now.json.kv, { key, value: 'v3', createRevision: r1, modRevision: r3, version: 3, lease: 0 }, 'createRevision and version survive compaction');
    const watchBelow = await call(address, 'GET', `/v1/watch/${key}?fromRevision=${r1}`, { timeoutMs: 30_000 });
    const watchError = expectError(t, watchBelow, 'COMPACTED', `${via}: watch below`);
    t.equal(watchError.compactRevision, r2);
    const watchAt = openStream(address, `/v1/watch/${key}?fromRevision=${r2}`);
    t.teardown(() => watchAt.close());
    const first = await watchAt.next();
    t.same([first.type, first.revision, first.kv.value], ['put', r2, 'v2'], `${via}: a watch from the compact revision replays it`);
    watchAt.close();
  }
  const again = expectError(t, await call(viaLeader, 'POST', '/v1/compact', { body: { revision: r2 } }), 'COMPACTED', 'compact the same revision again');
  t.equal(again.compactRevision, r2);
  expectError(t, await call(viaLeader, 'POST', '/v1/compact', { body: { revision: r3 + 1000 } }), 'INVALID_ARGUMENT', 'compact a future revision');
});
