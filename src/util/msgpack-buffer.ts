// msgpackr writes every pack() into one module-wide output buffer and returns views into it. A large value (a
// snapshot) grows that buffer to 2-4x its size, and it is kept for every later pack: each small record encoded
// afterwards is a view that keeps the whole grown buffer alive. After a 50 MB snapshot that pinned 100-200 MB
// for the life of the process (most of the leader's RSS after a long write load).
import type { Packr } from 'msgpackr';

const keepBytesMax = 1 << 20;
const freshBytes = 8192;

/**
 * Call once the bytes of `packed` (the result of packr.pack) were copied out or are owned by the caller: if the
 * pack grew msgpackr's shared buffer past 1 MiB, later packs start in a fresh small one and the big one is freed
 * with the last view of it.
 */
export function dropGrownPackBuffer(packr: Packr, packed: Uint8Array): void {
  if (packed.buffer.byteLength > keepBytesMax) packr.useBuffer(Buffer.allocUnsafeSlow(freshBytes));
}
