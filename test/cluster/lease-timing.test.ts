// Goal: lease timing is bounded both ways on a real cluster (API.md "Leases", RELIABILITY.md S15, S17, L6):
//   - a lease is never gone before `ttl` after the last keepalive was SENT (no linearizable read that ended before
//     then misses its key), and, with a healthy leader, is gone within ttl + one election timeout + slack after the
//     last keepalive was ACKNOWLEDGED;
//   - kill -9 of the leader in the middle of a lease's ttl neither expires it early (the new leader uses the
//     deadlines it holds) nor keeps it alive past ttl + election timeout + slack; a lease kept alive by a client
//     through the election survives it;
//   - its keys go in one revision.
// Method: real processes (tickMs 50 × electionTicks 10: election timeout ≤ 1000 ms randomized). Probes poll each
// lease's attached key with linearizable GETs every ~40 ms through followers and record [start, end, found]; the
// lower bound is checked against the send time of the last acknowledged keepalive, the upper bound against its ack.
// Measured margins are printed with t.comment().
import t, { type Test } from 'tap';
import { sleep, startCluster, type TestCluster } from '../helpers/cluster.js';
import { call, closeHttp, roles } from '../helpers/http.js';

const electionTimeoutMaxMs = 2 * 10 * 50;
const slackMs = 700;

interface Probe {
  readonly reads: { startMs: number; endMs: number; found: boolean }[];
  stop(): Promise<void>;
}

/**
 * Polls a key with linearizable GETs through `addresses` (round robin): a new read starts every 40 ms whatever the
 * earlier ones do (at most 25 in flight), so a read stuck on a dead leader does not blind the probe.
 */
function probe(addresses: readonly string[], key: string): Probe {
  const reads: Probe['reads'] = [];
  const inFlight = new Set<Promise<void>>();
  let i = 0;
  const read = async (address: string): Promise<void> => {
    const startMs = performance.now();
    try {
      const answer = await call(address, 'GET', `/v1/kv/${key}`, { timeoutMs: 3_000 });
      if (answer.status === 200 || answer.status === 404) reads.push({ startMs, endMs: performance.now(), found: answer.status === 200 });
    } catch {
      // An unreachable node (killed) is not a read: nothing recorded.
    }
  };
  const timer = setInterval(() => {
    if (inFlight.size >= 25) return;
    const pending = read(addresses[i++ % addresses.length]!);
    inFlight.add(pending);
    void pending.then(() => inFlight.delete(pending));
  }, 40);
  return {
    reads,
    stop: async () => {
      clearInterval(timer);
      await Promise.all(inFlight);
      reads.sort((a, b) => a.startMs - b.startMs);
    },
  };
}

interface Keepalive {
  readonly sentMs: number;
  readonly ackMs: number;
}

/** Keepalive through `addresses` (first that answers 200); retries on 503/504/unreachable until `deadlineMs`. */
async function keepalive(addresses: readonly string[], lease: number, deadlineMs = performance.now() + 5_000): Promise<Keepalive | null> {
  for (let i = 0; performance.now() < deadlineMs; i++) {
    const sentMs = performance.now();
    try {
      const answer = await call(addresses[i % addresses.length]!, 'POST', `/v1/leases/${lease}/keepalive`, { timeoutMs: 2_000 });
      if (answer.status === 200) return { sentMs, ackMs: performance.now() };
      if (answer.status === 404) return null;
    } catch {
      // unreachable: try the next node
    }
    await sleep(50);
  }
  return null;
}

/** Checks both bounds for a lease whose last acknowledged keepalive was `last`; returns the measured gone time. */
function checkBounds(t: Test, what: string, reads: Probe['reads'], last: Keepalive, ttlMs: number, upperMs: number): void {
  const earlyMiss = reads.find((r) => !r.found && r.endMs < last.sentMs + ttlMs);
  t.notOk(earlyMiss, `${what}: no read that ended before ttl after the last keepalive missed the key` + (earlyMiss ? ` (missed ${Math.round(earlyMiss.endMs - last.sentMs)} ms after it)` : ''));
  const firstMiss = reads.find((r) => !r.found && r.startMs > last.sentMs);
  t.ok(firstMiss, `${what}: the key went away`);
  if (firstMiss === undefined) return;
  const lastFound = [...reads].reverse().find((r) => r.found && r.startMs < firstMiss.startMs);
  const goneByMs = firstMiss.endMs - last.ackMs;
  t.ok(goneByMs <= ttlMs + upperMs, `${what}: gone ${Math.round(goneByMs)} ms after the last ack (bound ttl ${ttlMs} + ${upperMs})`);
  t.comment(
    `${what}: last seen ${Math.round((lastFound?.endMs ?? 0) - last.sentMs)} ms after the last keepalive was sent, ` +
      `missing ${Math.round(firstMiss.endMs - last.sentMs)} ms after (ttl ${ttlMs} ms)`,
  );
}

async function grantWithKey(address: string, ttl: number, key: string): Promise<{ lease: number; granted: Keepalive }> {
  const sentMs = performance.now();
  const answer = await call(address, 'POST', '/v1/leases', { body: { ttl } });
  if (answer.status !== 201) throw new Error(`grant: ${answer.status} ${answer.text}`);
  const granted = { sentMs, ackMs: performance.now() };
  const lease = answer.json.id as number;
  const put = await call(address, 'PUT', `/v1/kv/${key}`, { body: { value: 'v', lease } });
  if (put.status !== 200) throw new Error(`put: ${put.status} ${put.text}`);
  return { lease, granted };
}

function followerAddresses(cluster: TestCluster, followers: readonly string[]): string[] {
  return followers.map((id) => cluster.node(id).client);
}

t.teardown(closeHttp);

void t.test('never before ttl, gone within ttl + election timeout (healthy leader)', async (t) => {
  const cluster = await startCluster(t);
  const { followers } = await roles(cluster);
  const addresses = followerAddresses(cluster, followers);
  const cases = [1, 1, 2, 2, 3];
  await Promise.all(
    cases.map(async (ttl, i) => {
      const key = `timing/${i}`;
      const { lease, granted } = await grantWithKey(addresses[i % 2]!, ttl, key);
      const reads = probe(addresses, key);
      // A few keepalives at uneven intervals inside the ttl, then silence.
      let last = granted;
      for (const fraction of [0.3, 0.6, 0.4]) {
        await sleep(ttl * 1000 * fraction);
        const kept = await keepalive(addresses, lease);
        if (kept === null) throw new Error(`lease ${lease} vanished while kept alive`);
        last = kept;
      }
      await sleep(ttl * 1000 + electionTimeoutMaxMs + slackMs + 300);
      await reads.stop();
      checkBounds(t, `ttl ${ttl} s (#${i})`, reads.reads, last, ttl * 1000, 500 + slackMs);
    }),
  );
});

void t.test('kill -9 of the leader mid-ttl: no early expiry, no life past the bound', async (t) => {
  const cluster = await startCluster(t);
  const { leader, followers } = await roles(cluster);
  const addresses = followerAddresses(cluster, followers);
  const ttlMs = 3_000;
  // Idle lease: one keepalive, then silence; the leader dies 1.5 s into its ttl.
  const idle = await grantWithKey(addresses[0]!, 3, 'kill/idle');
  const idleReads = probe(addresses, 'kill/idle');
  const idleLast = await keepalive(addresses, idle.lease);
  if (idleLast === null) throw new Error('keepalive failed');
  // Kept lease: a client keeps it alive every second through any node, across the election.
  const kept = await grantWithKey(addresses[1]!, 3, 'kill/kept');
  const keptReads = probe(addresses, 'kill/kept');
  let keeping = true;
  const acks: Keepalive[] = [kept.granted];
  const keeper = (async () => {
    while (keeping) {
      await sleep(1_000);
      const ack = await keepalive(addresses, kept.lease, performance.now() + 1_500);
      if (ack !== null) acks.push(ack);
    }
  })();

  await sleep(idleLast.ackMs + 1_500 - performance.now());
  const killedAt = performance.now();
  await cluster.kill(leader, 'SIGKILL');
  const newLeader = await cluster.waitForLeader(10_000, followers);
  t.comment(`leader ${leader} killed ${Math.round(killedAt - idleLast.sentMs)} ms after the last keepalive; ${newLeader} leads ${Math.round(performance.now() - killedAt)} ms later`);

  await sleep(Math.max(0, idleLast.ackMs + ttlMs + electionTimeoutMaxMs + slackMs + 500 - performance.now()));
  keeping = false;
  await keeper;
  await idleReads.stop();
  await keptReads.stop();
  checkBounds(t, 'idle lease across the leader kill', idleReads.reads, idleLast, ttlMs, electionTimeoutMaxMs + slackMs);

  const gaps = acks.slice(1).map((ack, i) => ack.sentMs - acks[i]!.sentMs);
  const longestGapMs = Math.max(...gaps);
  t.ok(longestGapMs < ttlMs, `the keeper's keepalives were never ttl apart (longest gap ${Math.round(longestGapMs)} ms)`);
  const keptMisses = keptReads.reads.filter((r) => !r.found);
  t.equal(keptMisses.length, 0, `the lease kept alive through the election never lost its key (${keptReads.reads.length} reads)`);
  const read = await call(addresses[0]!, 'GET', `/v1/leases/${kept.lease}`);
  t.equal(read.status, 200, 'and it still exists');
});
