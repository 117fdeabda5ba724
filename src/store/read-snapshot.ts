// One LevelDB snapshot shared by the reads between two apply batches. A read needs its metadata (revision,
// compactRevision) and its data from the same moment, so each read used to take a snapshot of its own (and read
// the two metadata keys through it): three point reads and a snapshot per GET. The database only changes when
// the store writes (an apply batch, a compaction, a restore), and the store calls invalidate() after each write
// has landed; so a snapshot taken after the last invalidate() holds every write that completed before the read
// began, which is all a read after ReadIndex needs (the driver moves appliedIndex only once apply() returned).
// The metadata is read once per snapshot (ReadView memoizes it). A snapshot is closed once it is invalidated and
// the last read holding it released it, so a long watch catch-up or range keeps its view to the end.
import type { DbSnapshot, StoreDb } from './mvcc.js';
import { ReadView } from './mvcc.js';

export interface HeldSnapshot {
  readonly snapshot: DbSnapshot;
  readonly view: ReadView;
}

interface Shared extends HeldSnapshot {
  refs: number;
  stale: boolean;
}

export class SharedReadSnapshot {
  private current: Shared | null = null;

  constructor(private readonly db: StoreDb) {}

  /** The shared snapshot (taken now if none is valid); every acquire() needs its release(). */
  acquire(): HeldSnapshot {
    let shared = this.current;
    if (shared === null) {
      const snapshot = this.db.snapshot();
      shared = { snapshot, view: new ReadView(this.db, snapshot), refs: 0, stale: false };
      this.current = shared;
    }
    shared.refs++;
    return shared;
  }

  async release(held: HeldSnapshot): Promise<void> {
    const shared = held as Shared;
    shared.refs--;
    if (shared.refs === 0 && shared.stale) await shared.snapshot.close();
  }

  /** The database changed (or is about to): the next acquire() takes a new snapshot. */
  async invalidate(): Promise<void> {
    const shared = this.current;
    if (shared === null) return;
    this.current = null;
    shared.stale = true;
    if (shared.refs === 0) await shared.snapshot.close();
  }
}
