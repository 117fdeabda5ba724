// Goal: `keel member list|add|promote|remove` and `keel leader transfer` against a real cluster print what the
// README's CLI section says (a table, or JSON with --json), exit 0 on success and 1 with the error code (409
// CONFLICT for a promote while the learner lags, 404 NOT_FOUND for an unknown member).
// Method: a real 3-node cluster (test/helpers/cluster.ts); every command is the built CLI run as a child process
// with --endpoints; a fourth node is started with --join between add and promote. Children killed by PID.
import t from 'tap';
import { sleep, startCluster } from '../helpers/cluster.js';
import { runKeel, type CliRun } from '../helpers/keel-cli.js';
import { setupWaitMs } from '../helpers/runtime.js';

const keel = (args: readonly string[]): Promise<CliRun> => runKeel(args, 30_000);

void t.test('keel member and keel leader commands', async (t) => {
  const cluster = await startCluster(t, { nodes: 3 });
  await cluster.waitForLeader(setupWaitMs);
  const endpoints = ['--endpoints', cluster.nodes.map((n) => n.client).join(',')];

  const list = await keel([...endpoints, 'member', 'list']);
  t.equal(list.code, 0, 'member list exits 0');
  t.match(list.stdout, /^leader: n\d\nID +ROLE +VOTER +PEER +CLIENT +MATCH +LAG +REACHABLE\n/, `a table:\n${list.stdout}`);
  const json = JSON.parse((await keel([...endpoints, '--json', 'member', 'list'])).stdout) as { members: { id: string; voter: boolean }[] };
  t.same(json.members.map((m) => m.id).sort(), ['n1', 'n2', 'n3'], '--json lists the three members');

  const n4 = await cluster.addNode('n4');
  const add = await keel([...endpoints, 'member', 'add', 'n4', n4.peer, n4.client]);
  t.equal(add.code, 0, `member add exits 0: ${add.stderr}`);
  t.match(add.stdout, /added n4 as a learner/);
  t.match(add.stdout, /n4 +learner +no /, 'n4 shows as a learner, not a voter');
  const early = await keel([...endpoints, 'member', 'promote', 'n4']);
  t.equal(early.code, 1, 'promote before n4 runs exits 1');
  t.match(early.stderr, /^keel: CONFLICT: member n4 is not caught up/, early.stderr);
  const unknown = await keel([...endpoints, '--json', 'member', 'remove', 'nobody']);
  t.equal(unknown.code, 1, 'removing an unknown member exits 1');
  t.equal((JSON.parse(unknown.stderr) as { error: { code: string } }).error.code, 'NOT_FOUND', '--json error body');

  cluster.start('n4');
  const startedAt = performance.now();
  let promote: CliRun | null = null;
  for (const deadline = performance.now() + 60_000; performance.now() < deadline; await sleep(300)) {
    promote = await keel([...endpoints, 'member', 'promote', 'n4']);
    if (promote.code === 0) break;
  }
  t.equal(promote?.code, 0, `promote exits 0 once n4 caught up: ${promote?.stderr}`);
  t.comment(`n4 promoted ${Math.round(performance.now() - startedAt)} ms after its start`);
  t.match(promote?.stdout, /promoted n4 to voter/);

  const transferAt = performance.now();
  const transfer = await keel([...endpoints, 'leader', 'transfer', 'n4']);
  t.equal(transfer.code, 0, `leader transfer exits 0: ${transfer.stderr}`);
  t.equal(transfer.stdout, 'leader is now n4\n');
  t.comment(`keel leader transfer took ${Math.round(performance.now() - transferAt)} ms`);
  t.equal(await cluster.waitForLeader(setupWaitMs), 'n4', 'n4 leads');

  const removeAt = performance.now();
  const remove = await keel([...endpoints, 'member', 'remove', 'n4']);
  t.equal(remove.code, 0, `removing the leader n4 exits 0: ${remove.stderr}`);
  t.comment(`keel member remove of the leader took ${Math.round(performance.now() - removeAt)} ms`);
  t.match(remove.stdout, /^removed n4\nleader: n[123]\n/, remove.stdout);
  const after = JSON.parse((await keel([...endpoints, '--json', 'member', 'list'])).stdout) as { members: { id: string }[] };
  t.same(after.members.map((m) => m.id).sort(), ['n1', 'n2', 'n3'], 'n4 is gone');
});
