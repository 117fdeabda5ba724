// Goal: CurrentOverlay merges a lower layer's range reads with its changes exactly like a plain scan of every
// changed key would, below and above the size where it switches to a sorted index (plus unsorted fresh keys).
// Method: random puts and deletes over a small alphabet of keys (so keys repeat, share prefixes and contain 0x00),
// interleaved with range reads over random bounds, compared with a naive model after every step.
import t from 'tap';
import type { KV } from '../../../src/store/index.js';
import type { KeyRange } from '../../../src/store/keys.js';
import { compareBytes, inRange, prefixEnd, utf8 } from '../../../src/store/keys.js';
import { CurrentOverlay } from '../../../src/store/overlay.js';
import { SeededPrng } from '../../../src/util/prng.js';

function kv(key: string, value: string): KV {
  return { key, value, createRevision: 1, modRevision: 1, version: 1, lease: 0 };
}

function randomKey(prng: SeededPrng): string {
  const alphabet = ['a', 'b', 'ab', '\u0000', 'é', 'z'];
  let key = '';
  for (let i = prng.int(1, 4); i > 0; i--) key += alphabet[prng.int(0, alphabet.length - 1)]!;
  return key;
}

function randomRange(prng: SeededPrng): KeyRange {
  const start = utf8(prng.next() < 0.2 ? '' : randomKey(prng));
  if (prng.next() < 0.5) return { start, end: prefixEnd(start) };
  const end = prng.next() < 0.2 ? null : utf8(randomKey(prng));
  return { start, end };
}

for (const seed of [1, 2, 3]) {
  void t.test(`seed ${seed}: range merges equal a naive scan, with and without the index`, async (t) => {
    const prng = new SeededPrng(seed);
    const overlay = new CurrentOverlay();
    const model = new Map<string, { bytes: Uint8Array; value: KV | null }>();
    // The layer below: a fixed set of live keys.
    const below = ['a', 'ab', 'b', 'z', 'zz', 'é'].map((k) => kv(k, 'below'));
    let mismatches = 0;
    for (let step = 0; step < 1500; step++) {
      if (prng.next() < 0.6) {
        const key = randomKey(prng);
        const value = prng.next() < 0.3 ? null : kv(key, `v${step}`);
        overlay.set(key, utf8(key), value);
        model.set(key, { bytes: utf8(key), value });
        continue;
      }
      const range = randomRange(prng);
      const live = new Map(below.filter((x) => inRange(range, utf8(x.key))).map((x) => [x.key, x] as const));
      for (const [key, { bytes, value }] of model) {
        if (!inRange(range, bytes)) continue;
        if (value === null) live.delete(key);
        else live.set(key, value);
      }
      const expected = [...live.values()].sort((x, y) => compareBytes(utf8(x.key), utf8(y.key)));
      const inBelow = below.filter((x) => inRange(range, utf8(x.key)));
      if (JSON.stringify(overlay.overRange(inBelow, range)) !== JSON.stringify(expected)) mismatches += 1;
    }
    t.ok(overlay.size > 200, `the overlay grew past the index threshold (${overlay.size} keys)`);
    t.equal(mismatches, 0, 'no range read differs from the naive merge');
  });
}
