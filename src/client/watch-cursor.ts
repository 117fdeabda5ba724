// The resume logic of a client watch, pure: it reads the lines of one stream after another and decides which
// events to deliver and where the next stream must start so that every revision is delivered exactly once.
//
// The server writes all events of one revision together, but a connection can still die half-way through a
// revision (the node is killed while the chunk is in flight). So the cursor tracks two things:
//   completeRevision  every event up to here was delivered (a later revision or a progress line proved it);
//   partialRevision   the newest revision with delivered events, which may still have undelivered ones.
// A new stream starts at partialRevision when there is one (skipping the events of it already delivered, known by
// identity), else at completeRevision + 1. Worked example, a txn at revision 8 with events a and b:
//   stream 1: ... 7:x, 8:a, <node dies>          -> complete 7, partial 8 {a}  -> resume at 8
//   stream 2: 8:a (dropped, seen), 8:b, 9:c      -> 8:b and 9:c delivered; complete 8, partial 9 {c}
import { KeelError } from '../util/errors.js';
import type { WatchEvent, WatchLine } from './types.js';
import { keelErrorOf } from './wire-error.js';

/** What the cursor made of one line. */
export type CursorStep =
  | { readonly kind: 'deliver'; readonly event: WatchEvent }
  /** A duplicate event (delivered before a reconnect), or a line with nothing to do. */
  | { readonly kind: 'skip' }
  /** The first `created` line: the watch now starts after `revision`. */
  | { readonly kind: 'started'; readonly revision: number }
  /** A progress line: the stream is alive and every event up to its revision was delivered. */
  | { readonly kind: 'progress' }
  /** The server ended the stream with UNAVAILABLE (node stopping, slow consumer, restore): resume elsewhere. */
  | { readonly kind: 'reconnect'; readonly error: KeelError };

const skip: CursorStep = { kind: 'skip' };
const progress: CursorStep = { kind: 'progress' };

function identity(event: WatchEvent): string {
  return `${event.type}\u0000${event.kv.key}\u0000${event.kv.modRevision}\u0000${event.kv.version}`;
}

export class WatchCursor {
  /** Every event with a revision <= this was delivered. -1 until the watch has a starting point. */
  private completeRevision: number;
  private partialRevision: number | null = null;
  /** Identities of the events of partialRevision already delivered. */
  private partialSeen = new Set<string>();

  /** `fromRevision` absent: the watch starts after the revision current when the first stream is created. */
  constructor(fromRevision?: number) {
    this.completeRevision = fromRevision === undefined || fromRevision <= 0 ? -1 : fromRevision - 1;
  }

  /** Whether the watch has its starting revision (given, or learned from the first stream). */
  get isStarted(): boolean {
    return this.completeRevision >= 0;
  }

  /** The newest revision whose events (some or all) were delivered, or the start revision before any event. */
  get lastRevision(): number {
    return this.partialRevision ?? Math.max(this.completeRevision, 0);
  }

  /** The `fromRevision` of the next stream; undefined before the watch started (the server then picks "now"). */
  resumeRevision(): number | undefined {
    if (!this.isStarted) return undefined;
    return this.partialRevision ?? this.completeRevision + 1;
  }

  /**
   * The stream's start as announced by its response (X-Keel-Revision): a watch opened without fromRevision
   * starts after it. Used only until the watch has a start, so a later stream never moves it. Returns whether
   * this call started the watch.
   */
  start(revision: number): boolean {
    if (this.isStarted) return false;
    this.completeRevision = revision;
    return true;
  }

  accept(line: WatchLine): CursorStep {
    switch (line.type) {
      case 'created':
        return this.start(line.revision) ? { kind: 'started', revision: line.revision } : skip;
      case 'progress':
        this.markComplete(line.revision);
        return progress;
      case 'put':
      case 'delete':
        return this.acceptEvent(line);
      case 'compacted':
        throw new KeelError('COMPACTED', `watch start revision ${this.resumeRevision() ?? 'now'} was compacted`, {
          compactRevision: line.compactRevision,
        });
      case 'error':
        return this.acceptError(line.error);
      default: {
        const unknown: never = line;
        throw new KeelError('INTERNAL', `unknown watch line: ${JSON.stringify(unknown)}`);
      }
    }
  }

  /** A progress line or a later revision proves every event up to `revision` was delivered. */
  private markComplete(revision: number): void {
    if (this.partialRevision !== null && revision >= this.partialRevision) {
      this.partialRevision = null;
      this.partialSeen = new Set();
    }
    if (this.partialRevision === null && revision > this.completeRevision) this.completeRevision = revision;
  }

  private acceptEvent(event: WatchEvent): CursorStep {
    const revision = event.revision;
    if (!this.isStarted) throw new KeelError('INTERNAL', 'watch event before the stream said where it starts');
    if (revision <= this.completeRevision) return skip;
    // A stream is in revision order and skips no matching revision: an event of a later revision proves every
    // earlier one complete. (So partialRevision, when set, is always completeRevision + 1 or more, and an event
    // below it is at or below completeRevision: a duplicate, skipped above.)
    if (revision > (this.partialRevision ?? this.completeRevision + 1)) this.markComplete(revision - 1);
    if (this.partialRevision === null) this.partialRevision = revision;
    const id = identity(event);
    if (this.partialSeen.has(id)) return skip;
    this.partialSeen.add(id);
    return { kind: 'deliver', event };
  }

  /**
   * Only UNAVAILABLE asks for another stream; where to resume, the cursor knows (more precisely than a slow-consumer
   * line's `resumeRevision`). Any other code ends the watch with that code: another stream would get the same
   * answer. A code this client does not know is INTERNAL, with the server's code in `serverCode`.
   */
  private acceptError(error: WatchLineError): CursorStep {
    const failure = keelErrorOf(error) ?? new KeelError('INTERNAL', `watch stream failed: ${error.code}: ${error.message}`, { serverCode: error.code });
    if (failure.code === 'UNAVAILABLE') return { kind: 'reconnect', error: failure };
    throw failure;
  }
}

type WatchLineError = Extract<WatchLine, { type: 'error' }>['error'];
