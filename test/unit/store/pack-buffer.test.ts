// A snapshot-sized pack must not leave msgpackr's shared output buffer grown: otherwise every record encoded
// afterwards is a view pinning the big buffer (see src/util/msgpack-buffer.ts).
import t from 'tap';
import { encodeKvRecord, packDetached, unpack } from '../../../src/store/codec.js';

void t.test('a large pack is detached and later records do not pin its buffer', async (t) => {
  const pairs = Array.from({ length: 20_000 }, (_, i) => new Uint8Array(200).fill(i % 251));
  const big = packDetached({ v: 1, pairs });
  t.ok(big.byteLength > 4_000_000, `the value packed to ${big.byteLength} bytes`);
  t.equal(big.buffer.byteLength, big.byteLength, 'the large result owns exactly its bytes');
  const decoded = unpack(big) as { pairs: Uint8Array[] };
  t.equal(decoded.pairs.length, pairs.length, 'it decodes back');
  t.same(decoded.pairs[123], pairs[123], 'with the same bytes');
  const small = encodeKvRecord({ key: 'k', value: 'v', createRevision: 1, modRevision: 2, version: 1, lease: 0 });
  t.ok(small.buffer.byteLength <= 1 << 20, `a record encoded afterwards lives in a small buffer (${small.buffer.byteLength} bytes)`);
});
