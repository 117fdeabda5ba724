// Goal: checkWatches accepts complete streams (prefix and single-key watchers, reconnects with fromRevision =
// last + 1, progress messages, an explicit compaction) and flags each anomaly it claims: a gap (also one hidden
// behind a progress message or a reconnect that skips), a duplicate event, a revision out of order, a txn or a
// lease revoke split over two messages, events that differ from the reference, a phantom revision; and
// checkRevokesAtomic flags a lease's keys deleted over several revisions (S17).
// Method: a hand-made reference of 6 revisions (one txn of two keys, one lease revoke of two keys) and streams.
import t from 'tap';
import type { WatchMessageRecord } from '../../chaos/history.js';
import { checkRevokesAtomic, checkWatches } from '../../chaos/checkers/index.js';
import { properties } from './helpers.js';

type Ev = NonNullable<WatchMessageRecord['events']>[number];
const put = (key: string, value: string, modRevision: number): Ev => ({ type: 'put', key, value, modRevision });
const gone = (key: string, modRevision: number): Ev => ({ type: 'delete', key, modRevision });
const msg = (watcher: number, revision: number, events: Ev[], kind: WatchMessageRecord['kind'] = 'events'): WatchMessageRecord => ({
  watcher,
  node: 'n1',
  timeMs: revision,
  kind,
  revision,
  ...(kind === 'events' ? { events } : {}),
});
const at = (watcher: number, kind: WatchMessageRecord['kind'], revision: number): WatchMessageRecord => msg(watcher, revision, [], kind);

const history: Ev[][] = [
  [put('a', 'x1', 1)],
  [put('b', 'y1', 2)],
  [put('a', 'x2', 3), put('b', 'y2', 3)], // a txn
  [put('lease/1', 'p', 4), put('lease/2', 'q', 4)],
  [gone('lease/1', 5), gone('lease/2', 5)], // a lease revoke: one revision
  [put('a', 'x3', 6)],
];
const reference = history.map((events, i) => msg(0, i + 1, events));
const full = (w: number): WatchMessageRecord[] => history.map((events, i) => msg(w, i + 1, events));

void t.test('accepts complete streams with reconnects, progress and compaction', async (t) => {
  const all = full(1);
  const reconnecting = [at(2, 'reconnect', 1), ...full(2).slice(0, 2), at(2, 'error', 2), at(2, 'reconnect', 3), ...full(2).slice(2)];
  const onlyA = [at(3, 'reconnect', 1), msg(3, 1, [put('a', 'x1', 1)]), at(3, 'progress', 2), msg(3, 3, [put('a', 'x2', 3)]), msg(3, 6, [put('a', 'x3', 6)])];
  const compacted = [at(4, 'reconnect', 1), at(4, 'compacted', 4), at(4, 'reconnect', 4), ...full(4).slice(3)];
  const r = checkWatches([...all, ...reconnecting, ...onlyA, ...compacted], reference, { 3: { key: 'a', prefix: false } });
  t.same(r.anomalies, []);
  t.equal(r.checkedOps, 6 + 6 + 3 + 3);
});

void t.test('flags a gap, also behind a progress message or a skipping reconnect', async (t) => {
  const missing = full(1).filter((m) => m.revision !== 3);
  t.same(properties(checkWatches(missing, reference)), ['gap']);
  const progress = [msg(1, 1, history[0]!), at(1, 'progress', 3), ...full(1).slice(3)];
  t.same(properties(checkWatches(progress, reference)), ['gap']);
  const skip = [...full(1).slice(0, 2), at(1, 'error', 2), at(1, 'reconnect', 5), ...full(1).slice(4)];
  t.same(properties(checkWatches(skip, reference)), ['gap']);
  // a prefix watcher only needs its prefix
  const lease = [at(2, 'reconnect', 1), msg(2, 4, history[3]!), msg(2, 5, history[4]!)];
  t.same(checkWatches(lease, reference, { 2: { key: 'lease/', prefix: true } }).anomalies, []);
  t.same(properties(checkWatches([at(2, 'reconnect', 1), msg(2, 5, history[4]!)], reference, { 2: { key: 'lease/', prefix: true } })), ['gap']);
});

void t.test('flags duplicates and out-of-order revisions', async (t) => {
  const dup = [...full(1).slice(0, 3), msg(1, 3, history[2]!), ...full(1).slice(3)];
  t.same(properties(checkWatches(dup, reference)), ['duplicate-event']);
  const back = [...full(1).slice(0, 3), msg(1, 2, history[1]!), ...full(1).slice(3)];
  t.same(properties(checkWatches(back, reference)), ['out-of-order']);
});

void t.test('flags a txn or a lease revoke split over two messages (S13, S17)', async (t) => {
  const txnSplit = [...full(1).slice(0, 2), msg(1, 3, [history[2]![0]!]), msg(1, 3, [history[2]![1]!]), ...full(1).slice(3)];
  t.ok(properties(checkWatches(txnSplit, reference)).every((p) => p === 'split-message'));
  t.ok(checkWatches(txnSplit, reference).anomalies.length > 0);
  const revokeSplit = [...full(1).slice(0, 4), msg(1, 5, [history[4]![0]!]), msg(1, 6, [history[4]![1]!])];
  t.ok(properties(checkWatches(revokeSplit, reference)).includes('split-message'));
  // and in the reference itself
  const badRef = [...reference.slice(0, 4), msg(0, 5, [history[4]![0]!]), msg(0, 5, [history[4]![1]!]), reference[5]!];
  t.same(properties(checkWatches([], badRef)), ['split-message']);
});

void t.test('flags wrong events and phantom revisions', async (t) => {
  const wrong = full(1).map((m) => (m.revision === 6 ? msg(1, 6, [put('a', 'other', 6)]) : m));
  t.same(properties(checkWatches(wrong, reference)), ['event-mismatch']);
  const phantom = [...full(1), msg(1, 9, [put('a', 'x9', 9)])];
  t.same(properties(checkWatches(phantom, reference)), ['phantom-event']);
});

void t.test('a lease revoke deletes all its keys in one revision (S17)', async (t) => {
  const groups = [['lease/1', 'lease/2']];
  t.same(checkRevokesAtomic(reference, groups).anomalies, []);
  const oneByOne = [...reference.slice(0, 4), msg(0, 5, [gone('lease/1', 5)]), msg(0, 6, [gone('lease/2', 6)])];
  t.same(properties(checkRevokesAtomic(oneByOne, groups)), ['revoke-split']);
});
