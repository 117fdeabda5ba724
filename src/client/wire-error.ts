// The one translation of the contract's error object (`{"code", "message", ...details}`, shared/API.md) into a
// KeelError on the client side: for the body of a non-2xx answer (client.ts) and for a watch stream's `error`
// line (watch-cursor.ts). The server's code is kept as it is, so callers can branch on it.
import { KeelError, errorCatalog, type ErrorCode } from '../util/errors.js';

/** Whether `code` is one of the catalog's codes (own keys only: `toString` is not a code). */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(errorCatalog, code);
}

/**
 * The KeelError an error object stands for, with its extra fields as details; null when it carries no code of the
 * catalog (a newer server's code, or not an error object at all): the caller decides what that means.
 */
export function keelErrorOf(error: unknown): KeelError | null {
  if (typeof error !== 'object' || error === null) return null;
  const { code, message, ...details } = error as Record<string, unknown>;
  if (!isErrorCode(code)) return null;
  return new KeelError(code, typeof message === 'string' ? message : code, details);
}
