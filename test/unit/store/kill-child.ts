// Child process of the kill test in crash-safety.test.ts (not a test itself): opens the store in argv[2] and,
// from its appliedIndex on (as Raft replays after a restart), applies the log of `killLog()` in calls of
// `killCallSize` entries, printing the appliedIndex after each call, until the parent kills it with SIGKILL.
import { KvStore } from '../../../src/store/index.js';
import { killCallSize, killLog } from './helpers.js';

const store = await KvStore.open(process.argv[2]!);
const log = killLog();
for (let at = store.appliedIndex(); at < log.length; at += killCallSize) {
  await store.apply(log.slice(at, at + killCallSize));
  process.stdout.write(`${store.appliedIndex()}\n`);
}
await store.close();
