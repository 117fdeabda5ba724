// Assertions shared by the API acceptance tests: a success carries X-Keel-Revision; an error is the documented
// {"error": {"code", "message"}} body with the status its code maps to.
import type { Test } from 'tap';
import type { Answer } from '../helpers/http.js';
import { errorCatalog, type ErrorCode } from '../../src/util/errors.js';

export type Asserts = Pick<Test, 'equal' | 'ok'>;

/** A 2xx answer that reads or writes the store: status and X-Keel-Revision (a positive integer). */
export function expectOk(t: Asserts, answer: Answer, what: string, status = 200): Answer {
  t.equal(answer.status, status, `${what}: status ${status}${answer.status === status ? '' : ` (${answer.text.slice(0, 300)})`}`);
  t.ok(answer.revision !== null && Number.isSafeInteger(answer.revision) && answer.revision >= 0, `${what}: X-Keel-Revision present`);
  return answer;
}

/** An error answer: the status of `code`, a JSON body {"error": {"code", "message", ...}}. */
export function expectError(t: Asserts, answer: Answer, code: ErrorCode, what: string): Record<string, unknown> {
  const status = errorCatalog[code].status;
  t.equal(answer.status, status, `${what}: status ${status}${answer.status === status ? '' : ` (${answer.text.slice(0, 300)})`}`);
  const contentType = String(answer.headers['content-type'] ?? '');
  t.ok(contentType.startsWith('application/json'), `${what}: JSON content type (${contentType})`);
  const error = answer.json?.error;
  t.equal(error?.code, code, `${what}: code ${code}`);
  t.ok(typeof error?.message === 'string' && error.message.length > 0, `${what}: has a message`);
  return (error ?? {}) as Record<string, unknown>;
}

export const kvFields = ['createRevision', 'key', 'lease', 'modRevision', 'value', 'version'];
