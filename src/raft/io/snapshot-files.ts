// SnapshotFiles: the data of the Raft log's latest snapshot, one file per snapshot, kept out of memory.
//
// A snapshot's data is a serialized copy of the whole store (tens of MB). LevelLogStorage used to keep it in its
// in-memory mirror for the life of the process and to write it as one LevelDB value (through LevelDB's write-ahead
// log and memtable); it is needed only to send a snapshot to a lagging follower and at startup. Now each snapshot
// is one file `<index>-<term>.snap` in the log's `snap` directory, holding the codec's snapshot record (metadata
// and data, with its CRC-32), and LevelLogStorage keeps only the metadata. Reading one back checks the checksum and
// that the metadata in the file is the metadata asked for, so stale or foreign bytes are never served.
//
// A file is written to a temporary name, fsynced, renamed into place and the directory fsynced, all BEFORE the
// LevelDB batch that refers to it; older files are deleted only after that batch landed. A crash in between leaves
// a stray file, which removeExcept() deletes at the next open.
import { readFileSync } from 'node:fs';
import { mkdir, open, readdir, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { CodecError, decodeSnapshot, decodeSnapshotMetadata, encodeSnapshot, encodeSnapshotMetadata } from '../codec.js';
import type { Snapshot, SnapshotMetadata } from '../types.js';

const suffix = '.snap';
const tempSuffix = '.tmp';

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.byteLength === b.byteLength && a.every((x, i) => x === b[i]);

export class SnapshotFiles {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  /** The file name for the snapshot described by `metadata`. */
  static nameOf(metadata: SnapshotMetadata): string {
    return `${metadata.index}-${metadata.term}${suffix}`;
  }

  pathOf(metadata: SnapshotMetadata): string {
    return path.join(this.dir, SnapshotFiles.nameOf(metadata));
  }

  /** Writes `snapshot` durably under its name (replacing a file of the same name atomically). */
  async write(snapshot: Snapshot): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const target = this.pathOf(snapshot.metadata);
    const temp = target + tempSuffix;
    const handle = await open(temp, 'w');
    try {
      await handle.writeFile(encodeSnapshot(snapshot));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, target);
    await this.syncDir();
  }

  /**
   * Reads the snapshot described by `metadata`, synchronously (the core asks for it synchronously). Throws
   * CodecError if the file is missing, damaged or holds another snapshot.
   */
  read(metadata: SnapshotMetadata): Snapshot {
    const file = this.pathOf(metadata);
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(file);
    } catch (err) {
      throw new CodecError(`snapshot file ${file} cannot be read: ${(err as Error).message}`, { cause: err });
    }
    let snapshot: Snapshot;
    try {
      snapshot = decodeSnapshot(bytes);
    } catch (err) {
      if (!(err instanceof CodecError)) throw err;
      throw new CodecError(`snapshot file ${file}: ${err.message}`, { cause: err });
    }
    const recorded = encodeSnapshotMetadata(metadata);
    // msgpackr keeps the last buffer it decoded until the next decode: decoding this small record lets the file's
    // bytes go now (they would otherwise stay resident until the node decodes its next message or entry).
    decodeSnapshotMetadata(recorded);
    if (!sameBytes(encodeSnapshotMetadata(snapshot.metadata), recorded)) {
      throw new CodecError(`snapshot file ${file} holds the snapshot at ${snapshot.metadata.index}/${snapshot.metadata.term}, not the one recorded`);
    }
    return snapshot;
  }

  /** Deletes every file in the directory except `keep` (a file name, or null to keep none). */
  async removeExcept(keep: string | null): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    let removed = false;
    for (const name of names) {
      if (name === keep) continue;
      await unlink(path.join(this.dir, name));
      removed = true;
    }
    if (removed) await this.syncDir();
  }

  /** Makes the directory's entries (a rename, a deletion) durable. */
  private async syncDir(): Promise<void> {
    const handle = await open(this.dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  }
}
