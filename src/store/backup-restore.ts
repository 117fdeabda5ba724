// Restoring a backup (backup.ts) into a new store directory, for a NEW cluster (`keel snapshot restore`):
// the restored store holds the backup's state, with three changes so that it is a fresh start and not a copy:
//   - appliedIndex 0: the new cluster's Raft log starts at its own bootstrap entry (index 1), and the store
//     applies from there; the old cluster's log indexes mean nothing here.
//   - revision = backup revision + bumpRevision: revisions never go backwards for a client or a watcher that
//     knew the old cluster (with a bump larger than the writes the old cluster took after the backup, no
//     revision it handed out is ever handed out again for different data).
//   - compactRevision = that revision: the old history is compacted (physically, through the store's own
//     compaction, run by openDb because compactPending is set), so a read or a watch from an older revision
//     answers 410 COMPACTED instead of a history the new cluster cannot vouch for.
// Leases are kept: their records are ordinary keys, and a node loads them at start with now + ttl (late, never
// early), as etcd does on restore.
//
// The directory must not exist or be empty. The import is bracketed by the `restoring` marker, like a Raft
// snapshot install (snapshot.ts): a crash in the middle leaves a store that open() wipes, never a mix.
import { ClassicLevel } from 'classic-level';
import { mkdir, readdir } from 'node:fs/promises';
import type { Logger } from '../util/logger.js';
import { silentLogger } from '../util/logger.js';
import { KeelError } from '../util/errors.js';
import type { BatchOp } from './apply-context.js';
import type { BackupHeader } from './backup.js';
import { readBackup } from './backup.js';
import { compactionBatchOpsDefault } from './compaction.js';
import type { Bytes } from './keys.js';
import { be8, compareBytes, metaKey } from './keys.js';
import { openDb } from './open.js';

const importBatchBytesMax = 4 * 1024 * 1024;

export interface RestoredStore {
  readonly header: BackupHeader;
  /** The revision (and compactRevision) the restored store starts at. */
  readonly revision: number;
  readonly keyCount: number;
}

/** True when `dir` does not exist or has no entries. */
export async function isEmptyDir(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).length === 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw err;
  }
}

/**
 * Imports the backup `open()` streams into the store directory `dir`. `open` is called twice: once to verify the
 * whole stream (checksum), once to import it, so nothing is written from a damaged file.
 */
export async function restoreBackup(
  open: () => AsyncIterable<Uint8Array>,
  dir: string,
  options: { bumpRevision: number; logger?: Logger },
): Promise<RestoredStore> {
  if (!Number.isSafeInteger(options.bumpRevision) || options.bumpRevision < 1) {
    throw new KeelError('INVALID_ARGUMENT', 'bumpRevision must be an integer >= 1');
  }
  if (!(await isEmptyDir(dir))) throw new KeelError('INVALID_ARGUMENT', `${dir} is not empty: restore only builds new stores`);
  const { header } = await readBackup(open());
  const revision = header.revision + options.bumpRevision;
  await mkdir(dir, { recursive: true });
  const db = new ClassicLevel<Bytes, Bytes>(dir, { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  try {
    await importPairs(db, open(), revision);
  } finally {
    await db.close();
  }
  // openDb finds compactPending and runs the compaction that drops the old history.
  const logger = options.logger ?? silentLogger;
  const { db: opened, state } = await openDb(dir, { logger, compactionBatchOpsMax: compactionBatchOpsDefault });
  await opened.close();
  return { header, revision: state.revision, keyCount: state.keyCount };
}

async function importPairs(db: ClassicLevel<Bytes, Bytes>, source: AsyncIterable<Uint8Array>, revision: number): Promise<void> {
  const marker = metaKey('restoring');
  await db.put(marker, be8(1), { sync: true });
  // Metadata the restore sets itself; the backup's values are dropped.
  const replaced = (['appliedIndex', 'revision', 'compactRevision', 'compactPending', 'restoring'] as const).map((name) => metaKey(name));
  let ops: BatchOp[] = [];
  let bytes = 0;
  await readBackup(source, {
    pairs: async (pairs) => {
      for (let i = 0; i < pairs.length; i += 2) {
        const key = pairs[i]!;
        if (replaced.some((m) => compareBytes(m, key) === 0)) continue;
        const value = pairs[i + 1]!;
        ops.push({ type: 'put', key, value });
        bytes += key.byteLength + value.byteLength;
      }
      if (bytes < importBatchBytesMax) return;
      await db.batch(ops);
      ops = [];
      bytes = 0;
    },
  });
  ops.push(
    { type: 'put', key: metaKey('appliedIndex'), value: be8(0) },
    { type: 'put', key: metaKey('revision'), value: be8(revision) },
    { type: 'put', key: metaKey('compactRevision'), value: be8(revision) },
    { type: 'put', key: metaKey('compactPending'), value: be8(revision) },
    { type: 'del', key: marker },
  );
  await db.batch(ops, { sync: true });
}
