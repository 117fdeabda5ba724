// A bounded window of in-flight AppendEntries per follower (flow control). Each slot records the last index
// a message carried; acks free every slot up to the acknowledged index.
export class Inflights {
  private readonly buffer: number[] = [];
  readonly capacity: number;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  isFull(): boolean {
    return this.buffer.length >= this.capacity;
  }

  count(): number {
    return this.buffer.length;
  }

  add(lastIndex: number): void {
    this.buffer.push(lastIndex);
  }

  freeLE(index: number): void {
    let n = 0;
    while (n < this.buffer.length && this.buffer[n]! <= index) n++;
    if (n > 0) this.buffer.splice(0, n);
  }

  /** Frees the oldest slot (its append is presumed lost), so one more append may go out. */
  freeFirst(): void {
    this.buffer.shift();
  }

  reset(): void {
    this.buffer.length = 0;
  }
}
