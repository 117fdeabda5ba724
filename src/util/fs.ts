// Small filesystem helpers for status reporting.
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';

/** Total bytes of regular files below `dir` (0 if it does not exist). */
export async function directorySize(dir: string): Promise<number> {
  let total = 0;
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) total += await directorySize(full);
    else if (entry.isFile()) {
      try {
        total += (await stat(full)).size;
      } catch (err) {
        // LevelDB deletes files during compaction: a file gone between readdir and stat counts as 0.
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
  }
  return total;
}
