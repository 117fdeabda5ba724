// Assertions guard invariants. A failed assertion is a bug: it throws an AssertionError that nothing catches,
// so the node stops instead of serving state it can no longer vouch for.
export class AssertionError extends Error {
  override readonly name = 'AssertionError';
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}

/** Asserts a value is a safe non-negative integer (terms, indexes, revisions enter through this). */
export function assertIndex(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new AssertionError(`${what} must be a non-negative safe integer, got ${String(value)}`);
  }
}

/** For exhaustive switches over discriminated unions. */
export function unreachable(value: never, what: string): never {
  throw new AssertionError(`unexpected ${what}: ${JSON.stringify(value)}`);
}
