// Pure selection strategies for service discovery: plain round-robin, smooth weighted round-robin, and a
// consistent-hash ring with virtual nodes. No I/O, no clock, no randomness: the same instances in give the same
// picks out, which is what the unit tests check (distribution, proportions, stability under membership change).

export interface Balancer<T> {
  /** The next item; `key` matters only to key-affine strategies (the hash ring). Undefined when empty. */
  pick(key?: string): T | undefined;
}

export class RoundRobin<T> implements Balancer<T> {
  private next = 0;

  constructor(private readonly items: readonly T[]) {}

  pick(): T | undefined {
    if (this.items.length === 0) return undefined;
    const item = this.items[this.next % this.items.length];
    this.next = (this.next + 1) % this.items.length;
    return item;
  }
}

/**
 * Smooth weighted round-robin (as in nginx): each pick adds every item's weight to its running score, takes the
 * highest score and subtracts the total from it. Over any window of `total` picks each item is chosen exactly
 * `weight` times, and heavy items are spread out instead of being picked in bursts. Weights <= 0 are never picked.
 */
export class WeightedRoundRobin<T> implements Balancer<T> {
  private readonly entries: { readonly item: T; readonly weight: number; score: number }[];
  private readonly total: number;

  constructor(items: readonly T[], weightOf: (item: T) => number) {
    this.entries = items.map((item) => ({ item, weight: weightOf(item), score: 0 })).filter((e) => Number.isFinite(e.weight) && e.weight > 0);
    this.total = this.entries.reduce((sum, e) => sum + e.weight, 0);
  }

  pick(): T | undefined {
    let best: (typeof this.entries)[number] | undefined;
    for (const entry of this.entries) {
      entry.score += entry.weight;
      if (best === undefined || entry.score > best.score) best = entry;
    }
    if (best === undefined) return undefined;
    best.score -= this.total;
    return best.item;
  }
}

/** 32-bit FNV-1a over the UTF-16 code units, finished with murmur3's avalanche so nearby strings spread out. */
export function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export interface HashRingOptions<T> {
  /** Points on the ring per unit of weight (default 160): more points, more even load. */
  readonly virtualNodes?: number;
  /** Weight of an item (default 1); an item gets round(virtualNodes * weight) points, items of weight <= 0 none. */
  readonly weightOf?: (item: T) => number;
}

/**
 * Consistent hashing: every item owns the arcs of the ring that end at its points; a key goes to the owner of the
 * first point at or after hash(key). Adding an item moves only the keys it takes over; removing one moves only
 * its own keys. Points depend on the item's id only, so every client builds the same ring from the same set.
 */
export class HashRing<T> implements Balancer<T> {
  private readonly points: Uint32Array;
  private readonly owners: T[];

  constructor(items: readonly T[], idOf: (item: T) => string, options: HashRingOptions<T> = {}) {
    const virtualNodes = options.virtualNodes ?? 160;
    const ring: { point: number; owner: T; id: string }[] = [];
    for (const item of items) {
      const weight = options.weightOf?.(item) ?? 1;
      const count = Number.isFinite(weight) && weight > 0 ? Math.max(1, Math.round(virtualNodes * weight)) : 0;
      const id = idOf(item);
      for (let i = 0; i < count; i++) ring.push({ point: hash32(`${id}#${i}`), owner: item, id });
    }
    // Ties (two ids hashing to one point) are broken by id, so the ring does not depend on the input order.
    ring.sort((a, b) => a.point - b.point || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    this.points = Uint32Array.from(ring, (r) => r.point);
    this.owners = ring.map((r) => r.owner);
  }

  get size(): number {
    return this.points.length;
  }

  pick(key = ''): T | undefined {
    if (this.points.length === 0) return undefined;
    const h = hash32(key);
    let low = 0;
    let high = this.points.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.points[middle]! < h) low = middle + 1;
      else high = middle;
    }
    return this.owners[low === this.points.length ? 0 : low];
  }
}
