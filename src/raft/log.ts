// The Raft log as the core sees it: the persisted part (LogStorage) followed by the unstable tail.
// Invariants: applied <= committed <= lastIndex(); committed never decreases.
import { assert } from '../util/assert.js';
import { UnstableLog } from './log-unstable.js';
import { LogCompactedError, LogUnavailableError, type LogStorage } from './storage.js';
import { entryBytes, type Entry, type Index, type Snapshot, type Term } from './types.js';

export class RaftLog {
  readonly storage: LogStorage;
  readonly unstable: UnstableLog;
  committed: Index;
  /** Highest index handed out for applying (in a Ready); becomes `applied` on advance. */
  applying: Index;
  applied: Index;

  constructor(storage: LogStorage, applied: Index) {
    this.storage = storage;
    this.unstable = new UnstableLog(storage.lastIndex() + 1);
    const firstIndex = storage.firstIndex();
    this.committed = firstIndex - 1;
    this.applied = firstIndex - 1;
    this.applying = firstIndex - 1;
    if (applied > this.applied) this.appliedTo(applied);
  }

  firstIndex(): Index {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): Index {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  lastTerm(): Term {
    return this.mustTerm(this.lastIndex());
  }

  /** The term at `index`, or null if it is compacted away or beyond the end. */
  term(index: Index): Term | null {
    const dummyIndex = this.firstIndex() - 1;
    if (index < dummyIndex || index > this.lastIndex()) return null;
    const unstableTerm = this.unstable.maybeTerm(index);
    if (unstableTerm !== null) return unstableTerm;
    try {
      return this.storage.term(index);
    } catch (err) {
      if (err instanceof LogCompactedError || err instanceof LogUnavailableError) return null;
      throw err;
    }
  }

  mustTerm(index: Index): Term {
    const term = this.term(index);
    assert(term !== null, `term of index ${index} unavailable (first ${this.firstIndex()}, last ${this.lastIndex()})`);
    return term;
  }

  matchTerm(index: Index, term: Term): boolean {
    return this.term(index) === term;
  }

  /** Raft §5.4.1: is a log ending at (lastIndex, lastTerm) at least as up-to-date as ours? */
  isUpToDate(lastIndex: Index, lastTerm: Term): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /**
   * Appends the leader's entries after (prevLogIndex, prevLogTerm) if they match; returns the new last index
   * covered by them, or null on mismatch. Conflicting suffixes are truncated; committed entries never are.
   */
  maybeAppend(prevLogIndex: Index, prevLogTerm: Term, commit: Index, entries: readonly Entry[]): Index | null {
    if (!this.matchTerm(prevLogIndex, prevLogTerm)) return null;
    const lastNewIndex = prevLogIndex + entries.length;
    const conflict = this.findConflict(entries);
    if (conflict !== 0) {
      assert(conflict > this.committed, `entry ${conflict} conflicts with committed ${this.committed}`);
      this.append(entries.slice(conflict - (prevLogIndex + 1)));
    }
    this.commitTo(Math.min(commit, lastNewIndex));
    return lastNewIndex;
  }

  /** The index of the first entry that is new or conflicts with ours (0 if all are present). */
  private findConflict(entries: readonly Entry[]): Index {
    for (const entry of entries) {
      if (!this.matchTerm(entry.index, entry.term)) return entry.index;
    }
    return 0;
  }

  append(entries: readonly Entry[]): Index {
    const first = entries[0];
    if (first === undefined) return this.lastIndex();
    assert(first.index - 1 >= this.committed, `append at ${first.index} would overwrite committed ${this.committed}`);
    this.unstable.truncateAndAppend(entries);
    return this.lastIndex();
  }

  commitTo(index: Index): void {
    if (index <= this.committed) return;
    assert(index <= this.lastIndex(), `commit ${index} beyond last index ${this.lastIndex()}`);
    this.committed = index;
  }

  /**
   * Commits `index` if it holds an entry of `term` (a leader commits only entries of its own term by counting
   * replicas, Raft §5.4.2). Returns whether the commit index moved.
   */
  maybeCommit(index: Index, term: Term): boolean {
    if (index > this.committed && this.term(index) === term) {
      this.commitTo(index);
      return true;
    }
    return false;
  }

  appliedTo(index: Index): void {
    if (index === 0) return;
    assert(index >= this.applied, `applied ${index} went backwards from ${this.applied}`);
    this.applied = index;
    if (this.applying < index) this.applying = index;
    if (this.committed < index) this.committed = index;
  }

  hasNextCommittedEntries(): boolean {
    return this.committed > this.applying && this.applying + 1 >= this.firstIndex();
  }

  nextCommittedEntries(maxBytes: number): Entry[] {
    if (!this.hasNextCommittedEntries()) return [];
    return this.slice(this.applying + 1, this.committed + 1, maxBytes);
  }

  /** Entries in [lo, hi) up to maxBytes (at least one). Throws LogCompactedError if lo is compacted. */
  slice(lo: Index, hi: Index, maxBytes: number): Entry[] {
    if (lo >= hi) return [];
    if (lo < this.firstIndex()) throw new LogCompactedError(`index ${lo} compacted`);
    assert(hi <= this.lastIndex() + 1, `slice [${lo},${hi}) beyond last ${this.lastIndex()}`);
    const out: Entry[] = [];
    const unstableOffset = this.unstable.offset;
    if (lo < unstableOffset) {
      const stored = this.storage.entries(lo, Math.min(hi, unstableOffset), maxBytes);
      out.push(...stored);
      if (stored.length < Math.min(hi, unstableOffset) - lo) return out;
    }
    if (hi > unstableOffset) {
      let bytes = out.reduce((sum, entry) => sum + entryBytes(entry), 0);
      for (const entry of this.unstable.slice(Math.max(lo, unstableOffset), hi)) {
        bytes += entryBytes(entry);
        if (out.length > 0 && bytes > maxBytes) break;
        out.push(entry);
      }
    }
    return out;
  }

  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  restore(snapshot: Snapshot): void {
    this.committed = snapshot.metadata.index;
    this.unstable.restore(snapshot);
  }
}
