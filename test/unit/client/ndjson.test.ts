// Goal: the client's NDJSON framing yields one parsed value per complete line whatever the chunking: lines split
// across chunks, several lines per chunk, UTF-8 characters split between chunks, blank lines; a cut-off last
// line is dropped (the watch resumes from what it got); a runaway line is refused with TOO_LARGE.
// Method: feed byte chunks cut at every offset of a fixed text and compare with the expected values.
import t from 'tap';
import { ndjsonLines } from '../../../src/client/ndjson.js';

async function parse(chunks: readonly Uint8Array[], max?: number): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const value of ndjsonLines((async function* () { yield* chunks; })(), max)) out.push(value);
  return out;
}

void t.test('every split point of a text gives the same lines', async (t) => {
  const values = [{ type: 'put', kv: { key: 'ключ/😀', value: 'v' } }, { type: 'progress', revision: 7 }];
  const bytes = Buffer.from(`${values.map((v) => JSON.stringify(v)).join('\n')}\n\n`, 'utf8');
  for (let at = 0; at <= bytes.length; at++) {
    const got = await parse([bytes.subarray(0, at), bytes.subarray(at)]);
    if (JSON.stringify(got) !== JSON.stringify(values)) {
      t.fail(`split at ${at}: ${JSON.stringify(got)}`);
      return;
    }
  }
  t.pass('all split points agree');
  t.same(await parse(Array.from(bytes, (b) => Uint8Array.of(b))), values, 'one byte per chunk');
});

void t.test('a cut-off last line is dropped; a runaway line is refused', async (t) => {
  t.same(await parse([Buffer.from('{"a":1}\n{"b":')]), [{ a: 1 }]);
  await t.rejects(parse([Buffer.from('x'.repeat(100))], 10), { code: 'TOO_LARGE' });
  await t.rejects(parse([Buffer.from('not json\n')]), { code: 'INTERNAL' });
});
