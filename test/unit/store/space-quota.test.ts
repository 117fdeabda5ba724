// Goal: SpaceQuota raises NOSPACE when the measured directory is over the quota and clears it once it is back
// under; while raised, guard() refuses exactly the commands that add data (put, txn with a put, lease grant,
// lock acquire, ...) with NO_SPACE and lets deletes, compaction, txns without puts and the allowed extensions
// through; without the alarm it lets everything through. The config section parses with defaults and refuses
// bad values with a ConfigError naming the field.
// Method: a real temp directory grown and shrunk with files, measured by directorySize; real encoded commands.
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { parseClusterConfig } from '../../../src/config.js';
import { encodeCommand, SpaceQuota, type Command } from '../../../src/store/index.js';
import { isKeelError } from '../../../src/util/errors.js';
import { directorySize } from '../../../src/util/fs.js';
import { silentLogger } from '../../../src/util/logger.js';
import { tempDir } from './helpers.js';

const bytes = (cmd: Command): Uint8Array => encodeCommand({ requestId: 'r', cmd });

void t.test('alarm follows the measured size; guard refuses only what adds data', async (t) => {
  const dir = tempDir(t);
  const quota = new SpaceQuota({ quotaBytes: 10_000, checkIntervalMs: 1000, measure: () => directorySize(dir), allowedExtensions: ['lease.revoke'], logger: silentLogger });
  t.teardown(() => quota.close());
  const put: Command = { kind: 'put', key: 'a', value: 'b', lease: 0, prevKv: false };
  const commands: [string, Command, boolean][] = [
    ['put', put, false],
    ['txn with a put', { kind: 'txn', compare: [], success: [], failure: [{ put: { key: 'a', value: 'b' } }] }, false],
    ['lease grant', { kind: 'ext', name: 'lease.grant', body: { ttl: 5 } }, false],
    ['delete', { kind: 'deleteRange', key: 'a', prefix: true, prevKv: false }, true],
    ['compact', { kind: 'compact', revision: 3 }, true],
    ['txn of gets and deletes', { kind: 'txn', compare: [], success: [{ get: { key: 'a' } }, { delete: { key: 'b' } }], failure: [] }, true],
    ['allowed extension', { kind: 'ext', name: 'lease.revoke', body: { id: 1 } }, true],
  ];
  await quota.start();
  t.same(quota.alarms(), []);
  for (const [, cmd] of commands) quota.guard(bytes(cmd));
  t.pass('no alarm: every command passes');

  writeFileSync(path.join(dir, 'fill'), Buffer.alloc(20_000));
  t.equal(await quota.check(), 20_000);
  t.same(quota.alarms(), ['NOSPACE']);
  for (const [name, cmd, allowed] of commands) {
    let error: unknown = null;
    try {
      quota.guard(bytes(cmd));
    } catch (err) {
      error = err;
    }
    if (allowed) t.equal(error, null, `${name} passes under the alarm`);
    else t.ok(isKeelError(error, 'NO_SPACE') && error.status === 507, `${name} refused with 507 NO_SPACE`);
  }
  rmSync(path.join(dir, 'fill'));
  await quota.check();
  t.same(quota.alarms(), [], 'cleared once back under the quota');
  quota.guard(bytes(put));
});

void t.test('config: defaults and validation', async (t) => {
  const nodes = [{ id: 'n1', peer: '127.0.0.1:1', client: '127.0.0.1:2', dataDir: 'd' }];
  const plain = parseClusterConfig({ nodes }, null);
  t.equal(plain.space.quotaBytes, 2 * 1024 ** 3);
  t.equal(plain.space.autoCompaction.retainRevisions, 0);
  const set = parseClusterConfig({ nodes, limits: { quotaBytes: 1000 }, autoCompaction: { retainRevisions: 5, intervalMs: 500 } }, null);
  t.equal(set.space.quotaBytes, 1000);
  t.same(set.space.autoCompaction, { retainRevisions: 5, intervalMs: 500 });
  t.throws(() => parseClusterConfig({ nodes, limits: { quotaBytes: 0 } }, null), /limits\.quotaBytes/);
  t.throws(() => parseClusterConfig({ nodes, limits: { quota: 1 } }, null), /unknown field "limits\.quota"/);
  t.throws(() => parseClusterConfig({ nodes, autoCompaction: { retainRevisions: -1 } }, null), /autoCompaction\.retainRevisions/);
});
