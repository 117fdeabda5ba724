// Goal: golden protocol scenarios: short scripts (test/raft/scenarios/*.txt) whose complete transcript, every
// Ready of every node, must match a checked-in snapshot (<name>.out), so any change in protocol behaviour shows
// up as a reviewable diff.
// Method: each script runs through the interpreter in scenario.ts on the synchronous harness; the transcript is
// compared with <name>.out. KEEL_UPDATE_SNAPSHOTS=1 rewrites the snapshots (update them only when you can
// explain the diff); otherwise a missing snapshot fails the test.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { ScenarioRunner } from './scenario.js';

const dir = fileURLToPath(new URL('./scenarios/', import.meta.url));
const update = process.env['KEEL_UPDATE_SNAPSHOTS'] === '1';
const scripts = readdirSync(dir)
  .filter((name) => name.endsWith('.txt'))
  .sort();

t.ok(scripts.length >= 4, `found ${scripts.length} scenarios`);

for (const script of scripts) {
  const name = script.slice(0, -'.txt'.length);
  void t.test(name, async (t) => {
    const transcript = new ScenarioRunner().run(readFileSync(`${dir}${script}`, 'utf8'));
    const snapshotPath = `${dir}${name}.out`;
    if (update) {
      writeFileSync(snapshotPath, transcript);
      t.pass(`wrote ${name}.out`);
      return;
    }
    if (!existsSync(snapshotPath)) {
      t.fail(`missing snapshot ${name}.out: run with KEEL_UPDATE_SNAPSHOTS=1 and review it`);
      return;
    }
    t.equal(transcript, readFileSync(snapshotPath, 'utf8'), `${name}: transcript matches ${name}.out`);
  });
}
