// Goal: the resume rule of `keel watch` (WatchCursor in bin/watch-command.ts) prints every event exactly once
// across reconnections, including the case the real-cluster test rarely hits: a connection that breaks in the
// middle of one revision's events (a big txn), and a new node that replays that revision.
// Method: scripted streams fed to the pure cursor; the events it lets through are compared with the history.
import t from 'tap';
import { WatchCursor } from '../../bin/watch-command.js';

/** Feeds events (revision, name) to the cursor and returns the names it lets through. */
function feed(cursor: WatchCursor, events: readonly [number, string][]): string[] {
  return events.filter(([revision]) => cursor.event(revision)).map(([, name]) => name);
}

void t.test('a watch without --from-revision starts after its created revision', async (t) => {
  const cursor = new WatchCursor(undefined);
  t.equal(cursor.resume(), undefined, 'no fromRevision before the server said where the watch starts');
  t.equal(cursor.created(10), true);
  t.equal(cursor.resume(), 11);
  t.equal(cursor.created(12), false, 'a later created line does not move the start');
  t.equal(cursor.resume(), 11);
});

void t.test('a break between revisions resumes at the last printed one and drops its replay', async (t) => {
  const cursor = new WatchCursor(5);
  t.equal(cursor.resume(), 5);
  t.same(feed(cursor, [[5, 'a'], [6, 'b']]), ['a', 'b']);
  t.equal(cursor.resume(), 6);
  t.same(feed(cursor, [[6, 'b'], [7, 'c']]), ['c'], 'revision 6 replayed by the new node is not printed twice');
});

void t.test('a break inside a revision prints the rest of it, once', async (t) => {
  const cursor = new WatchCursor(undefined);
  cursor.created(7);
  t.same(feed(cursor, [[8, 'x'], [9, 'txn-1'], [9, 'txn-2']]), ['x', 'txn-1', 'txn-2']);
  t.equal(cursor.resume(), 9);
  t.same(feed(cursor, [[9, 'txn-1'], [9, 'txn-2'], [9, 'txn-3'], [10, 'y']]), ['txn-3', 'y']);
  t.equal(cursor.resume(), 10);
  t.same(feed(cursor, [[10, 'y'], [11, 'z']]), ['z']);
});

void t.test('progress lines move the resume point past idle revisions', async (t) => {
  const cursor = new WatchCursor(3);
  t.same(feed(cursor, [[3, 'a']]), ['a']);
  cursor.progress(20);
  t.equal(cursor.resume(), 21, 'resume after the progress revision: nothing up to it was missed');
  cursor.progress(15);
  t.equal(cursor.resume(), 21, 'a lagging node reporting older progress does not move it back');
  t.same(feed(cursor, [[21, 'b']]), ['b']);
});

void t.test('reconnecting twice before the replay is over still skips only what was printed', async (t) => {
  const cursor = new WatchCursor(1);
  t.same(feed(cursor, [[1, 'p'], [1, 'q']]), ['p', 'q']);
  t.equal(cursor.resume(), 1);
  t.same(feed(cursor, [[1, 'p']]), [], 'the second node dies after replaying one of the two');
  t.equal(cursor.resume(), 1);
  t.same(feed(cursor, [[1, 'p'], [1, 'q'], [2, 'r']]), ['r']);
});
