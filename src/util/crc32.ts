// CRC-32 (IEEE 802.3, the polynomial zlib, gzip and PNG use) for record and frame checksums. Node has a native
// zlib.crc32 since 20.15 / 22.2; `engines` allows any Node 20, so older runtimes fall back to a table-driven
// version that gives identical values (the unit test checks both against known vectors).
import * as zlib from 'node:zlib';

type Crc32Function = (data: Uint8Array, initial: number) => number;

// A namespace import, because a named import of a missing export fails at link time on older Node 20 releases.
const nativeCrc32: Crc32Function | undefined = typeof zlib.crc32 === 'function' ? zlib.crc32 : undefined;

let table: Uint32Array | null = null;

function crcTable(): Uint32Array {
  if (table !== null) return table;
  const built = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    built[n] = c >>> 0;
  }
  table = built;
  return built;
}

/** The portable implementation; exported so the test can check it against the native one. */
export function crc32Portable(data: Uint8Array, initial = 0): number {
  const t = crcTable();
  let crc = (initial ^ 0xffffffff) >>> 0;
  for (let i = 0; i < data.length; i++) {
    crc = t[(crc ^ data[i]!) & 0xff]! ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** CRC-32 of `data`; pass a previous result as `initial` to continue a checksum over several pieces. */
export function crc32(data: Uint8Array, initial = 0): number {
  return nativeCrc32 === undefined ? crc32Portable(data, initial) : nativeCrc32(data, initial) >>> 0;
}
