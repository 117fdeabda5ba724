// The one catalog of expected error conditions. Codes come from the API contract (shared/API.md) and never
// change; callers branch on `code`, never on message text. Each code maps to exactly one HTTP status.
export const errorCatalog = {
  INVALID_ARGUMENT: { status: 400, summary: 'malformed JSON, wrong types, bad key, bad TTL, unknown field values' },
  UNAUTHENTICATED: { status: 401, summary: 'auth is enabled and the token is missing or unknown' },
  PERMISSION_DENIED: { status: 403, summary: 'the token is not allowed to do this' },
  KEY_NOT_FOUND: { status: 404, summary: 'the key does not exist' },
  LEASE_NOT_FOUND: { status: 404, summary: 'the lease does not exist (expired or revoked)' },
  NOT_FOUND: { status: 404, summary: 'service, instance, lock holder, member or route not found' },
  WAIT_TIMEOUT: { status: 408, summary: 'a blocking wait reached its waitMs' },
  CONFLICT: { status: 409, summary: 'conflicting membership change or lock state' },
  COMPACTED: { status: 410, summary: 'the requested revision was compacted' },
  PRECONDITION_FAILED: { status: 412, summary: 'a compare-and-swap condition failed' },
  FENCE_REJECTED: { status: 412, summary: 'a fenced write carried a token that is not the current holder' },
  TOO_LARGE: { status: 413, summary: 'body, key or value over its limit' },
  NO_SPACE: { status: 507, summary: 'the store is over its quota (limits.quotaBytes): only reads, deletes and compaction are served' },
  UNAVAILABLE: { status: 503, summary: 'no leader, no quorum, queue full or shutting down; the write was NOT applied' },
  TIMEOUT: { status: 504, summary: 'the proposal timed out after it was appended; the write MAY have been applied' },
  INTERNAL: { status: 500, summary: 'an unexpected server fault (a bug): never caused by the request itself' },
} as const;

export type ErrorCode = keyof typeof errorCatalog;

export class KeelError extends Error {
  override readonly name = 'KeelError';
  readonly code: ErrorCode;
  readonly status: number;
  /** Documented extra fields rendered next to code and message (e.g. `compactRevision`, `kv`). */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.status = errorCatalog[code].status;
    this.details = details;
  }
}

export function isKeelError(err: unknown, code?: ErrorCode): err is KeelError {
  return err instanceof KeelError && (code === undefined || err.code === code);
}

/** A proposal that definitely was not applied (no leader, queue full, dropped, shutting down). */
export function notApplied(message: string, details: Record<string, unknown> = {}): KeelError {
  return new KeelError('UNAVAILABLE', message, { ...details, applied: false });
}

/** A proposal that was appended but whose outcome is unknown (it may still commit). */
export function mayHaveApplied(message: string, details: Record<string, unknown> = {}): KeelError {
  return new KeelError('TIMEOUT', message, { ...details, applied: 'unknown' });
}
