// Goal: the leader's ReadIndex queue (src/raft/read-index.ts) releases exactly the reads a heartbeat round
// confirms, in arrival order, and opens a round only for reads not yet covered by one, whatever the order of
// reads, rounds, acks and leadership loss.
// Method: seeded random sequences of those operations against a reference that scans every read each time (the
// queue keeps a count of covered reads instead), plus fixed cases.
import t from 'tap';
import { ReadOnlyQueue } from '../../../src/raft/read-index.js';
import { SeededPrng } from '../../../src/util/prng.js';

/** The reference: every question answered by a scan of all pending reads. */
class ScanQueue {
  readonly reads: { context: string; round: string }[] = [];
  private counter = 0;

  add(context: string): void {
    this.reads.push({ context, round: '' });
  }

  openRound(term: number): string | null {
    const unsent = this.reads.filter((r) => r.round === '');
    if (unsent.length === 0) return null;
    const round = `${term}.${++this.counter}`;
    for (const r of unsent) r.round = round;
    return round;
  }

  lastRound(): string {
    return [...this.reads].reverse().find((r) => r.round !== '')?.round ?? '';
  }

  release(round: string): string[] {
    let last = -1;
    this.reads.forEach((r, i) => {
      if (r.round === round) last = i;
    });
    return this.reads.splice(0, last + 1).map((r) => r.context);
  }
}

const voters = ['n1', 'n2', 'n3'];

void t.test('random reads, rounds, acks and drains match a queue that scans every read', async (t) => {
  let mismatches = 0;
  let released = 0;
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    const random = new SeededPrng(seed);
    const queue = new ReadOnlyQueue();
    const reference = new ScanQueue();
    const rounds: string[] = [];
    let next = 0;
    const check = (what: string, ok: boolean): void => {
      if (!ok) {
        mismatches++;
        t.fail(`seed ${seed}: ${what}`);
      }
    };
    for (let step = 0; step < 3000; step++) {
      const op = random.int(0, 99);
      if (op < 45) {
        const context = `r${next++}`;
        queue.add({ context, index: next, from: voters[random.int(0, 2)]! });
        reference.add(context);
      } else if (op < 65) {
        const round = queue.openRound(1, 'n1');
        check('openRound', round === reference.openRound(1));
        if (round !== null) rounds.push(round);
      } else if (op < 97) {
        if (rounds.length === 0) continue;
        // An ack of any round opened so far, stale ones included; the second voter's ack makes a quorum.
        const round = rounds[random.int(0, rounds.length - 1)]!;
        const acks = queue.recordAck(round, voters[random.int(1, 2)]!, (id) => voters.includes(id));
        if (acks < 2) continue;
        const got = queue.release(round).map((r) => r.context);
        released += got.length;
        check(`release ${round}`, JSON.stringify(got) === JSON.stringify(reference.release(round)));
      } else {
        const got = queue.drain().map((r) => r.context);
        check('drain', JSON.stringify(got) === JSON.stringify(reference.reads.splice(0).map((r) => r.context)));
        rounds.length = 0;
      }
      check('size', queue.size() === reference.reads.length);
      check('hasUnsentReads', queue.hasUnsentReads() === reference.reads.some((r) => r.round === ''));
      check('lastRound', queue.lastRound() === reference.lastRound());
      if (mismatches > 5) return;
    }
  }
  t.equal(mismatches, 0);
  t.ok(released > 1000, `reads were released (${released})`);
});

void t.test('a round covers the reads recorded before it; its quorum releases them and every earlier round', async (t) => {
  const queue = new ReadOnlyQueue();
  t.equal(queue.openRound(1, 'n1'), null, 'no reads, no round');
  queue.add({ context: 'a', index: 5, from: 'n1' });
  queue.add({ context: 'b', index: 5, from: 'n2' });
  const first = queue.openRound(1, 'n1')!;
  queue.add({ context: 'c', index: 6, from: 'n1' });
  t.ok(queue.hasUnsentReads(), 'c waits for a round');
  t.equal(queue.lastRound(), first);
  const second = queue.openRound(1, 'n1')!;
  t.not(second, first);
  t.notOk(queue.hasUnsentReads());
  t.equal(queue.recordAck(first, 'n2', (id) => voters.includes(id)), 2);
  t.same(queue.release(first).map((r) => [r.context, r.index, r.from]), [['a', 5, 'n1'], ['b', 5, 'n2']]);
  t.equal(queue.lastRound(), second);
  t.same(queue.release(first), [], 'a released round releases nothing more');
  t.equal(queue.recordAck(first, 'n3', (id) => voters.includes(id)), 0, 'its acks are forgotten');
  queue.add({ context: 'd', index: 7, from: 'n3' });
  t.same(queue.release(second).map((r) => r.context), ['c'], 'd is in no round yet');
  t.equal(queue.lastRound(), '');
  t.same(queue.drain().map((r) => r.context), ['d']);
  t.equal(queue.size(), 0);
  t.notOk(queue.hasUnsentReads());
});
