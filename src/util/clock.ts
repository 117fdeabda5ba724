// Time behind an interface: monotonic readings for every timeout and deadline, wall readings only for display.
export interface Clock {
  /** Monotonic milliseconds; never goes backwards, unaffected by wall-clock jumps. */
  nowMs(): number;
  /** Wall-clock milliseconds since the epoch, for display only. */
  wallMs(): number;
}

export const systemClock: Clock = {
  nowMs: () => performance.now(),
  wallMs: () => Date.now(),
};
