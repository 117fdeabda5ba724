// CurrentOverlay: the current versions that one layer of the apply path changed (an entry's ApplyContext, or
// the ApplyBatch of the apply() call: see apply-batch.ts), by user key, and the merge of the reads of the layer
// below with those changes.
//
// Ranges need the changed keys in byte order. A call's batch may hold many keys (one Ready can carry thousands of
// entries), and scanning all of them for every range read would make a call quadratic. So past a few dozen keys
// the overlay keeps a sorted index, built at the first range read, plus the keys added since (`fresh`, unsorted),
// which are merged in once they outnumber the square root of the index: a range read costs O(log n + √n + the
// keys it returns), an insert O(√n) amortized. Keys are never removed (a delete overlays null), so the index
// never holds a stale key.
import type { KV } from './commands.js';
import type { Bytes, KeyRange } from './keys.js';
import { compareBytes, inRange, utf8 } from './keys.js';

export interface Overlaid {
  readonly bytes: Bytes;
  /** null = deleted in this layer. */
  readonly kv: KV | null;
}

interface Keyed {
  readonly key: string;
  readonly bytes: Bytes;
}

/** Up to this many keys a range read just scans them all. */
const scanKeysMax = 32;

function byBytes(a: { readonly bytes: Bytes }, b: { readonly bytes: Bytes }): number {
  return compareBytes(a.bytes, b.bytes);
}

/** The first position in `sorted` whose key is >= `start`. */
function lowerBound(sorted: readonly Keyed[], start: Bytes): number {
  let [lo, hi] = [0, sorted.length];
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareBytes(sorted[mid]!.bytes, start) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function merge(a: readonly Keyed[], b: readonly Keyed[]): Keyed[] {
  const out: Keyed[] = [];
  let [i, j] = [0, 0];
  while (i < a.length && j < b.length) out.push(byBytes(a[i]!, b[j]!) <= 0 ? a[i++]! : b[j++]!);
  while (i < a.length) out.push(a[i++]!);
  while (j < b.length) out.push(b[j++]!);
  return out;
}

export class CurrentOverlay {
  private readonly byKey = new Map<string, Overlaid>();
  /** Every key in byte order, once a range read needed it (null before). */
  private sorted: Keyed[] | null = null;
  /** Keys added after `sorted` was last built or merged, in no order. */
  private fresh: Keyed[] = [];

  get size(): number {
    return this.byKey.size;
  }

  lookup(key: string): Overlaid | undefined {
    return this.byKey.get(key);
  }

  /** Every changed key with its version (null: deleted), in the order the keys were first changed. */
  entries(): IterableIterator<[string, Overlaid]> {
    return this.byKey.entries();
  }

  set(key: string, bytes: Bytes, kv: KV | null): void {
    if (this.sorted !== null && !this.byKey.has(key)) this.fresh.push({ key, bytes });
    this.byKey.set(key, { bytes, kv });
  }

  /** Takes over every change of `upper`, a layer on top of this one (so its changes are newer). */
  absorb(upper: CurrentOverlay): void {
    for (const [key, { bytes, kv }] of upper.byKey) this.set(key, bytes, kv);
  }

  /** `below` (the live keys of `range` under this layer, in key order) with this layer's changes, in key order. */
  overRange(below: KV[], range: KeyRange): KV[] {
    const changed = this.keysIn(range);
    if (changed.length === 0) return below;
    const merged = new Map<string, { bytes: Bytes; kv: KV }>();
    for (const kv of below) merged.set(kv.key, { bytes: utf8(kv.key), kv });
    for (const { key, bytes } of changed) {
      const kv = this.byKey.get(key)!.kv;
      if (kv === null) merged.delete(key);
      else merged.set(key, { bytes, kv });
    }
    return [...merged.values()].sort(byBytes).map((entry) => entry.kv);
  }

  /** Applies this layer's changes to `keys`, the keys attached to `lease` under it (user key -> bytes). */
  overLease(keys: Map<string, Bytes>, lease: number): void {
    for (const [key, { bytes, kv }] of this.byKey) {
      if (kv !== null && kv.lease === lease) keys.set(key, bytes);
      else keys.delete(key);
    }
  }

  /** The changed keys in `range`, in no particular order. */
  private keysIn(range: KeyRange): Keyed[] {
    const out: Keyed[] = [];
    if (this.byKey.size <= scanKeysMax) {
      for (const [key, { bytes }] of this.byKey) if (inRange(range, bytes)) out.push({ key, bytes });
      return out;
    }
    const sorted = this.index();
    for (let i = lowerBound(sorted, range.start); i < sorted.length; i++) {
      const keyed = sorted[i]!;
      if (range.end !== null && compareBytes(keyed.bytes, range.end) >= 0) break;
      out.push(keyed);
    }
    for (const keyed of this.fresh) if (inRange(range, keyed.bytes)) out.push(keyed);
    return out;
  }

  private index(): Keyed[] {
    if (this.sorted === null) {
      this.sorted = [...this.byKey].map(([key, { bytes }]) => ({ key, bytes })).sort(byBytes);
      this.fresh = [];
    } else if (this.fresh.length * this.fresh.length > this.sorted.length) {
      this.sorted = merge(this.sorted, this.fresh.sort(byBytes));
      this.fresh = [];
    }
    return this.sorted;
  }
}
