// Goal: test temp dirs go away whether the test passed or failed (the machine's rule), and a failed test still
// shows what its nodes logged. Method: removeTestDir (test/helpers/cluster.ts) on real dirs, with a recorder
// standing in for the tap test whose outcome it reads.
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { removeTestDir } from '../../helpers/cluster.js';

function outcome(passing: boolean): { passing: () => boolean; teardown: () => void; comment: (...args: unknown[]) => void; comments: string[] } {
  const comments: string[] = [];
  return { passing: () => passing, teardown: () => undefined, comment: (...args) => comments.push(args.join(' ')), comments };
}

function dirWithLog(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'keel-rmtest-'));
  writeFileSync(path.join(dir, 'n1.log'), Array.from({ length: 100 }, (_, i) => `line ${i}`).join('\n'));
  return dir;
}

void t.test('a passing test: the dir goes, nothing printed', async (t) => {
  const dir = dirWithLog();
  const test = outcome(true);
  removeTestDir(test, dir);
  t.notOk(existsSync(dir));
  t.same(test.comments, []);
});

void t.test('a failing test: the log tails are printed, then the dir goes (kept only on request)', async (t) => {
  const dir = dirWithLog();
  const test = outcome(false);
  removeTestDir(test, dir, 'extra output');
  t.notOk(existsSync(dir), 'removed even though the test failed');
  t.equal(test.comments[0], 'extra output');
  t.match(test.comments[1], /^n1\.log, last 40 lines:\nline 60\n/);
  t.match(test.comments[1], /line 99$/);

  const kept = dirWithLog();
  process.env['KEEL_KEEP_TEST_DIRS'] = '1';
  t.teardown(() => {
    delete process.env['KEEL_KEEP_TEST_DIRS'];
    removeTestDir(outcome(true), kept);
  });
  const keeping = outcome(false);
  removeTestDir(keeping, kept);
  t.ok(existsSync(kept), 'KEEL_KEEP_TEST_DIRS=1 keeps a failed test dir');
  t.match(keeping.comments.at(-1), /^kept .*KEEL_KEEP_TEST_DIRS=1/);
});
