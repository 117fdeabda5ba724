// CurrentCache: the current version (the k/ record, decoded) of recently written keys, so that the apply path's
// read of a key's current version (every put reads it: version, create revision, lease, prevKv) usually costs
// no LevelDB lookup. That lookup and its decoding were 13% of the write path's main-thread time in process
// (bench/group-commit.ts). etcd keeps every key's index in memory; this keeps the recently written ones, bounded.
//
// Coherence: the cache only ever holds what the database holds. Only two things change k/ records: apply
// batches, whose keys the store puts here once the batch has landed (kv-store.ts write()), and a snapshot
// restore, which clears it. A miss reads the database (which then holds every landed batch: apply() waits for
// the previous one) and may fill the entry. Deleted keys are remembered as null.
//
// Bounded by an estimate of the bytes held (keys and values as one byte per character, plus a fixed overhead per
// entry); the keys first cached longest ago go first. A new version of a cached key replaces it in place: moving
// it to the young end (a delete and an insert of the Map) cost more than the lookup it saves, at 10,000 keys. A
// version bigger than an eighth of the bound is not kept (nor any older one of its key), so one big value cannot
// empty the cache.
import { assert } from '../util/assert.js';
import type { KV } from './commands.js';

const entryOverheadBytes = 96;

export const currentCacheBytesDefault = 8 * 1024 * 1024;

function sizeOf(key: string, kv: KV | null): number {
  return key.length + (kv === null ? 0 : kv.value.length) + entryOverheadBytes;
}

export class CurrentCache {
  /** In the order the keys were first cached. */
  private readonly entries = new Map<string, KV | null>();
  private bytes = 0;

  constructor(private readonly bytesMax: number) {
    assert(Number.isSafeInteger(bytesMax) && bytesMax >= 0, 'the current-version cache bound must be a non-negative integer');
  }

  get size(): number {
    return this.entries.size;
  }

  /** The cached current version of `key` (null: the key does not exist), or undefined when not cached. */
  get(key: string): KV | null | undefined {
    return this.entries.get(key);
  }

  /** Records `kv` (null: deleted) as the current version of `key`, as the database now holds it. */
  set(key: string, kv: KV | null): void {
    const size = sizeOf(key, kv);
    const old = this.entries.get(key);
    if (size > this.bytesMax / 8) {
      if (old === undefined) return;
      this.entries.delete(key);
      this.bytes -= sizeOf(key, old);
      return;
    }
    this.entries.set(key, kv);
    this.bytes += size - (old === undefined ? 0 : sizeOf(key, old));
    if (this.bytes <= this.bytesMax) return;
    for (const [oldest, version] of this.entries) {
      this.entries.delete(oldest);
      this.bytes -= sizeOf(oldest, version);
      if (this.bytes <= this.bytesMax) break;
    }
  }

  /** Forgets everything (the database was replaced). */
  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }
}
