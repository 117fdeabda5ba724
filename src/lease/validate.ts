// Shared checks for the bodies of the lease layer's commands. They run before a command is proposed and again
// when it is applied (an entry must not be applied half-understood), so they are pure and deterministic.
import { KeelError } from '../util/errors.js';

export function invalid(message: string): KeelError {
  return new KeelError('INVALID_ARGUMENT', message);
}

/** The body as an object that has no field outside `allowed`. */
export function fields(body: unknown, allowed: readonly string[], what: string): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid(`${what}: body must be an object`);
  const obj = body as Record<string, unknown>;
  for (const name of Object.keys(obj)) if (!allowed.includes(name)) throw invalid(`${what}: unknown field "${name}"`);
  return obj;
}
