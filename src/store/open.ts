// Opening the store's database: create it, or check its format and finish what a crash interrupted.
//   - `restoring` set: a snapshot import was cut short; the content is a mix of two states, so it is wiped and
//     the store starts empty (appliedIndex 0): Raft then installs a snapshot or replays its log.
//   - `compactPending` set: a compaction's physical deletion was cut short; it is run again (idempotent).
import { ClassicLevel } from 'classic-level';
import { assert } from '../util/assert.js';
import type { Logger } from '../util/logger.js';
import { runCompaction } from './compaction.js';
import type { Bytes } from './keys.js';
import { be8, formatVersion, metaKey } from './keys.js';
import type { StoreDb } from './mvcc.js';
import { ReadView } from './mvcc.js';

/** The metadata the store keeps in memory too (a copy of m/<name>, as of the last written batch). */
export interface StoreState {
  readonly appliedIndex: number;
  readonly revision: number;
  readonly compactRevision: number;
  readonly keyCount: number;
  readonly dedupeSeq: number;
}

/** Reads the in-memory copy of the metadata from the database. */
export function readState(view: ReadView): StoreState {
  return {
    appliedIndex: view.meta('appliedIndex'),
    revision: view.meta('revision'),
    compactRevision: view.meta('compactRevision'),
    keyCount: view.meta('keyCount'),
    dedupeSeq: view.meta('dedupeSeq'),
  };
}

async function isEmpty(db: StoreDb): Promise<boolean> {
  for await (const _ of db.keys({ limit: 1 })) return false;
  return true;
}

async function recover(db: StoreDb, opts: { logger: Logger; compactionBatchOpsMax: number }): Promise<void> {
  const view = new ReadView(db, null);
  if (view.hasMeta('restoring')) {
    opts.logger.warn({}, 'found an interrupted snapshot restore; discarding the partial state');
    await db.clear();
  }
  if (await isEmpty(db)) {
    await db.put(metaKey('format'), be8(formatVersion), { sync: true });
  }
  const format = view.meta('format');
  assert(format === formatVersion, `store format ${format} is not the supported format ${formatVersion}`);
  if (view.hasMeta('compactPending')) {
    const revision = view.meta('compactPending');
    opts.logger.info({ revision }, 'finishing an interrupted compaction');
    await runCompaction(db, revision, { batchOpsMax: opts.compactionBatchOpsMax, sync: true, logger: opts.logger });
  }
}

export async function openDb(
  dir: string,
  opts: { logger: Logger; compactionBatchOpsMax: number },
): Promise<{ db: StoreDb; state: StoreState }> {
  const db = new ClassicLevel<Bytes, Bytes>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  try {
    await recover(db, opts);
    const state = readState(new ReadView(db, null));
    assert(state.compactRevision <= state.revision, 'compactRevision is above the revision');
    return { db, state };
  } catch (err) {
    await db.close();
    throw err;
  }
}
