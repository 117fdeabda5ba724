// NDJSON framing for streamed answers (watch): bytes in, one parsed JSON value per line out. UTF-8 sequences split
// across chunks are reassembled by a StringDecoder; a line may not grow past `lineBytesMax` (every buffer has a
// bound), which a valid watch line never does: a value is at most 1 MiB, a line carries at most two.
import { StringDecoder } from 'node:string_decoder';
import { KeelError } from '../util/errors.js';

export const lineBytesMaxDefault = 16 * 1024 * 1024;

/** Splits a byte stream at '\n' and parses each non-empty line as JSON. A last line without '\n' is dropped. */
export async function* ndjsonLines(chunks: AsyncIterable<Uint8Array>, lineBytesMax = lineBytesMaxDefault): AsyncGenerator<unknown> {
  const decoder = new StringDecoder('utf8');
  let pending = '';
  for await (const chunk of chunks) {
    pending += decoder.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    let start = 0;
    for (let newline = pending.indexOf('\n'); newline >= 0; newline = pending.indexOf('\n', start)) {
      const line = pending.slice(start, newline).trim();
      start = newline + 1;
      if (line !== '') yield parseLine(line);
    }
    pending = pending.slice(start);
    if (pending.length > lineBytesMax) throw new KeelError('TOO_LARGE', `a stream line is over ${lineBytesMax} bytes`);
  }
  // A line cut off by the end of the stream is incomplete: the caller resumes from what it did receive.
}

function parseLine(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch (err) {
    throw new KeelError('INTERNAL', `malformed stream line: ${line.slice(0, 120)}`, {}, { cause: err });
  }
}
