// One watch as its consumer sees it: an async iterator of messages in revision order, every matching revision
// exactly once, each revision's events together. The consumer pulls (`for await`), so a consumer that writes to
// a socket and waits for 'drain' between messages applies backpressure simply by pulling slower. A consumer that
// must act inside the publish itself (the watch route writes a put's event before the put's answer goes out)
// registers a listener instead and takes messages with takeNow(); it pulls slower the same way.
//
// The watcher holds at most `bufferMax` undelivered events (a single revision with more is let in whole when
// the buffer is empty, or the watcher could never pass it). Catch-up from history only reads what fits; live
// events that do not fit end the watcher with UNAVAILABLE instead of being dropped or buffered without bound:
// its consumer gets the messages already buffered, then the error, whose `resumeRevision` is where to reconnect
// (fromRevision) to miss nothing. cancel() ends it at once and frees the buffer.
import { assert } from '../util/assert.js';
import { KeelError } from '../util/errors.js';
import type { StoreEvent } from './commands.js';
import type { KeyRange } from './keys.js';

export type WatchMessage =
  | { readonly type: 'events'; readonly revision: number; readonly events: readonly StoreEvent[] }
  /** History from the requested revision is gone; nothing follows. */
  | { readonly type: 'compacted'; readonly compactRevision: number };

type Phase = 'catchingUp' | 'live' | 'ended';

export class Watcher implements AsyncIterableIterator<WatchMessage> {
  private phase: Phase = 'catchingUp';
  private readonly queue: WatchMessage[] = [];
  private queuedEvents = 0;
  /** Every matching revision <= lastRevision is in the queue or was delivered; later ones are not. */
  private lastRevisionValue: number;
  private endError: Error | null = null;
  private pull: { resolve: (r: IteratorResult<WatchMessage>) => void; reject: (e: unknown) => void } | null = null;
  private spaceWaiter: (() => void) | null = null;
  /** The synchronous consumer (listen()): called whenever a message is queued or the watcher ends. */
  private listener: (() => void) | null = null;

  constructor(
    readonly id: number,
    readonly range: KeyRange,
    readonly withPrevKv: boolean,
    /** Events start after this revision (the `created` revision of the API). */
    readonly startRevision: number,
    private readonly bufferMax: number,
    private readonly onEnd: (watcher: Watcher) => void,
  ) {
    this.lastRevisionValue = startRevision;
  }

  get isEnded(): boolean {
    return this.phase === 'ended';
  }

  get isLive(): boolean {
    return this.phase === 'live';
  }

  get lastRevision(): number {
    return this.lastRevisionValue;
  }

  /**
   * A revision r such that every matching event up to r has been handed to the consumer; for the API's
   * progress messages when the watcher is idle. `publishedRevision` is the hub's latest published revision.
   */
  progressRevision(publishedRevision: number): number {
    const first = this.queue[0];
    if (first !== undefined) return first.type === 'events' ? first.revision - 1 : this.lastRevisionValue;
    return this.phase === 'live' ? Math.max(publishedRevision, this.lastRevisionValue) : this.lastRevisionValue;
  }

  /** Stops the watch now; buffered messages are discarded and the iterator ends. */
  cancel(): void {
    this.end(null, true);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<WatchMessage>> {
    assert(this.pull === null && this.listener === null, 'a watcher has one consumer pulling at a time');
    const message = this.takeNow();
    if (message !== null) return Promise.resolve({ done: false, value: message });
    if (this.phase === 'ended') return this.finish();
    return new Promise((resolve, reject) => {
      this.pull = { resolve, reject };
    });
  }

  /**
   * The synchronous way to consume (instead of the iterator): `listener` is called, synchronously, each time a
   * message is queued and when the watcher ends; the consumer then calls takeNow() until it returns null, and
   * takeEndError() once isEnded. null unregisters.
   */
  listen(listener: (() => void) | null): void {
    assert(this.pull === null, 'a watcher has one consumer');
    this.listener = listener;
  }

  /** The next buffered message, or null if there is none now. */
  takeNow(): WatchMessage | null {
    const message = this.queue.shift();
    if (message === undefined) return null;
    if (message.type === 'events') this.queuedEvents -= message.events.length;
    this.wakeCatchUp();
    return message;
  }

  /** Why an ended watcher ended (null: a plain end, or already taken), once every buffered message is taken. */
  takeEndError(): Error | null {
    assert(this.phase === 'ended' && this.queue.length === 0, 'the end error comes after the last message');
    const err = this.endError;
    this.endError = null;
    return err;
  }

  async return(): Promise<IteratorResult<WatchMessage>> {
    this.cancel();
    return { done: true, value: undefined };
  }

  // ---- the hub's side

  /** Catch-up: appends history (the caller only reads what fits, see freeEvents) and moves lastRevision. */
  appendHistory(messages: readonly WatchMessage[], scannedThrough: number): void {
    for (const message of messages) this.push(message);
    this.lastRevisionValue = Math.max(this.lastRevisionValue, scannedThrough);
  }

  /** Room left in the buffer, at least 1 so that one (possibly oversized) revision can always get through. */
  get freeEvents(): number {
    return Math.max(1, this.bufferMax - this.queuedEvents);
  }

  /** Resolves when there is room for more history, or the watcher ended. */
  async waitForSpace(): Promise<void> {
    if (this.phase === 'ended' || this.queuedEvents < this.bufferMax) return;
    await new Promise<void>((resolve) => {
      this.spaceWaiter = resolve;
    });
  }

  goLive(): void {
    assert(this.phase === 'catchingUp', 'only a catching-up watcher goes live');
    this.phase = 'live';
  }

  /**
   * Live: a published revision's matching events; revisions already covered by catch-up are skipped. With
   * `notify` false the listener is not called now: the hub calls notify() at the end of its publish batch.
   */
  offer(revision: number, events: readonly StoreEvent[], notify = true): void {
    if (this.phase !== 'live' || revision <= this.lastRevisionValue) return;
    if (this.queuedEvents > 0 && this.queuedEvents + events.length > this.bufferMax) {
      const err = new KeelError('UNAVAILABLE', `watch consumer is more than ${this.bufferMax} events behind`, {
        reason: 'slowConsumer',
        resumeRevision: this.lastRevisionValue + 1,
      });
      this.end(err, false);
      return;
    }
    this.push({ type: 'events', revision, events }, notify);
    this.lastRevisionValue = revision;
  }

  /** Calls the listener if messages wait (after offers made with notify false). */
  notify(): void {
    if (this.queue.length > 0) this.listener?.();
  }

  /** Ends the watcher after a compacted notice. */
  compacted(compactRevision: number): void {
    this.push({ type: 'compacted', compactRevision });
    this.end(null, false);
  }

  /** Ends the watcher: the consumer gets what is buffered (unless `discard`), then `err` (or the end). */
  end(err: Error | null, discard: boolean): void {
    if (this.phase === 'ended') return;
    this.phase = 'ended';
    this.endError = err;
    if (discard) {
      this.queue.length = 0;
      this.queuedEvents = 0;
    }
    this.wakeCatchUp();
    this.onEnd(this);
    const pull = this.pull;
    if (pull !== null && this.queue.length === 0) {
      this.pull = null;
      this.finish().then(pull.resolve, pull.reject);
    }
    this.listener?.();
  }

  private push(message: WatchMessage, notify = true): void {
    const pull = this.pull;
    if (pull !== null) {
      assert(this.queue.length === 0, 'a consumer waits only on an empty queue');
      this.pull = null;
      pull.resolve({ done: false, value: message });
      return;
    }
    this.queue.push(message);
    if (message.type === 'events') this.queuedEvents += message.events.length;
    if (notify) this.listener?.();
  }

  private finish(): Promise<IteratorResult<WatchMessage>> {
    const err = this.takeEndError();
    return err === null ? Promise.resolve({ done: true, value: undefined }) : Promise.reject(err);
  }

  private wakeCatchUp(): void {
    const waiter = this.spaceWaiter;
    this.spaceWaiter = null;
    waiter?.();
  }
}
