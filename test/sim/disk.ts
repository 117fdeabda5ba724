// The simulated disk of one node: the Raft log storage and the state machine share one ordered write stream,
// like a single LevelDB with its write-ahead log. Every write lands in the live image at once (what the process
// reads back); a synced write also makes every earlier write durable. A crash keeps the durable image plus a
// random prefix of the writes not yet synced (the WAL's surviving prefix), and nothing else.
import { MemoryLogStorage } from '../../src/raft/index.js';
import type { ConfState, Entry, HardState, Snapshot } from '../../src/raft/index.js';
import type { Prng } from '../../src/util/prng.js';
import { emptySmState, type SmState } from './state-machine.js';

export type DiskWrite =
  /** One Ready's batch: snapshot, entries and hard state together (atomic). */
  | { readonly kind: 'ready'; readonly snapshot: Snapshot | null; readonly entries: readonly Entry[]; readonly hardState: HardState | null }
  /**
   * The driver's own snapshot and log compaction (one batch). `data` null: recorded without data, as the driver's
   * periodic snapshot is (the state machine's writes before it in this stream stand for it).
   */
  | { readonly kind: 'snapshot'; readonly index: number; readonly conf: ConfState; readonly data: Uint8Array | null; readonly compactTo: number }
  /** The state machine after applying one entry or restoring a snapshot (effects and appliedIndex together). */
  | { readonly kind: 'sm'; readonly state: SmState };

export interface WriteEffects {
  /** The live log's last index before the write. */
  readonly lastIndexBefore: number;
  /** Entries (index, term) removed by this write: a log conflict resolved by truncation. */
  readonly removed: readonly (readonly [number, number])[];
}

export class SimDisk {
  /** What the running process sees. */
  live: MemoryLogStorage;
  private durable: MemoryLogStorage;
  private durableSm: SmState = emptySmState;
  private pending: DiskWrite[] = [];
  writes = 0;
  syncs = 0;

  constructor() {
    this.live = new MemoryLogStorage();
    this.durable = new MemoryLogStorage();
  }

  /** Applies a write to the live image; with `sync` it and every earlier write become durable. */
  write(write: DiskWrite, sync: boolean): WriteEffects {
    const lastIndexBefore = this.live.lastIndex();
    const removed = write.kind === 'ready' && write.snapshot === null ? overwritten(this.live, write.entries) : [];
    apply(this.live, write);
    this.pending.push(write);
    this.writes++;
    if (sync) this.sync();
    return { lastIndexBefore, removed };
  }

  sync(): void {
    for (const write of this.pending) this.applyDurable(write);
    this.pending = [];
    this.syncs++;
  }

  /** Power loss: keeps the durable image plus a random prefix of unsynced writes. Returns what survived. */
  crash(prng: Prng): { storage: MemoryLogStorage; sm: SmState; lostWrites: number } {
    const kept = this.pending.length === 0 ? 0 : prng.int(0, this.pending.length);
    for (const write of this.pending.slice(0, kept)) this.applyDurable(write);
    const lostWrites = this.pending.length - kept;
    this.pending = [];
    this.live = this.durable.clone();
    return { storage: this.live, sm: this.durableSm, lostWrites };
  }

  private applyDurable(write: DiskWrite): void {
    if (write.kind === 'sm') this.durableSm = write.state;
    else apply(this.durable, write);
  }
}

function apply(storage: MemoryLogStorage, write: DiskWrite): void {
  switch (write.kind) {
    case 'ready':
      if (write.snapshot !== null) storage.applySnapshot(write.snapshot);
      storage.append(write.entries);
      if (write.hardState !== null) storage.setHardState(write.hardState);
      return;
    case 'snapshot':
      if (write.data === null) storage.recordSnapshot(write.index, write.conf);
      else storage.createSnapshot(write.index, write.conf, write.data);
      if (write.compactTo >= storage.firstIndex()) storage.compact(write.compactTo);
      return;
    case 'sm':
      return;
  }
}

/** The stored entries an append removes or replaces by entries of another term (it truncates from its first index). */
function overwritten(storage: MemoryLogStorage, entries: readonly Entry[]): [number, number][] {
  const first = entries[0];
  if (first === undefined) return [];
  const removed: [number, number][] = [];
  for (let i = Math.max(first.index, storage.firstIndex()); i <= storage.lastIndex(); i++) {
    const term = storage.term(i);
    if (entries[i - first.index]?.term !== term) removed.push([i, term]);
  }
  return removed;
}
