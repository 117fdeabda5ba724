// The one place that renders error bodies: {"error": {"code", "message", ...documented extra fields}}.
// Fastify's own errors (validation, body parsing, body size) are mapped to catalog codes so bad input always
// gets a 4xx with a stable code, never a 5xx.
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import type { Duplex } from 'node:stream';
import { errorCatalog, KeelError, type ErrorCode } from '../util/errors.js';
import type { Logger } from '../util/logger.js';

export interface ErrorBody {
  error: { code: ErrorCode; message: string; [extra: string]: unknown };
}

export function errorBody(err: KeelError): ErrorBody {
  const { applied: _applied, ...details } = err.details;
  return { error: { ...details, code: err.code, message: err.message } };
}

export function sendError(reply: FastifyReply, err: KeelError): FastifyReply {
  return reply.code(err.status).type('application/json; charset=utf-8').send(errorBody(err));
}

/** Maps anything thrown by a route to a KeelError. */
export function toKeelError(err: unknown): KeelError {
  if (err instanceof KeelError) return err;
  const fastifyError = err as Partial<FastifyError> & { validation?: unknown };
  if (fastifyError.validation !== undefined) {
    return new KeelError('INVALID_ARGUMENT', fastifyError.message ?? 'invalid request');
  }
  switch (fastifyError.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new KeelError('TOO_LARGE', 'request body is over its limit');
    case 'FST_ERR_MAX_PARAM_LENGTH':
      // The only path parameters are keys, and the router's limit is above any key's percent-encoded length.
      return new KeelError('TOO_LARGE', 'the key in the path is over its limit');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new KeelError('INVALID_ARGUMENT', fastifyError.message ?? 'invalid body');
    default:
      break;
  }
  const status = fastifyError.statusCode;
  if (status !== undefined && status >= 400 && status < 500) {
    // Body parse errors (malformed JSON) and other client faults fastify detects.
    if (status === 413) return new KeelError('TOO_LARGE', fastifyError.message ?? 'too large');
    if (status === 404) return new KeelError('NOT_FOUND', fastifyError.message ?? 'not found');
    return new KeelError('INVALID_ARGUMENT', fastifyError.message ?? 'invalid request');
  }
  return new KeelError('INTERNAL', 'internal error', {}, { cause: err });
}

export function installErrorHandler(app: FastifyInstance, logger: Logger): void {
  app.setErrorHandler((err, request, reply) => {
    const keelError = toKeelError(err);
    if (keelError.code === 'INTERNAL') {
      logger.error({ err, url: request.url, method: request.method }, 'request failed unexpectedly');
    }
    return sendError(reply, keelError);
  });
  app.setNotFoundHandler((request, reply) =>
    sendError(reply, new KeelError('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`)),
  );
}

/**
 * Fastify's `frameworkErrors`: faults it finds while routing, before any hook or the error handler runs (a path
 * whose percent-encoding is malformed or not UTF-8, a path parameter over the router's limit).
 */
export function renderFrameworkError(err: FastifyError, _request: unknown, reply: FastifyReply): void {
  void sendError(reply, toKeelError(err));
}

const statusText: Record<number, string> = { 400: 'Bad Request', 413: 'Payload Too Large' };

/**
 * Fastify's `clientErrorHandler`: node:http could not parse a request head (malformed, or over its 16 KiB limit,
 * which only a key far over its 4096 bytes reaches), so there is no request to answer through fastify. The
 * answer is written on the socket with the same error body as everything else.
 */
export function renderClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const keelError =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? new KeelError('TOO_LARGE', 'the request line and headers are over their limit')
      : new KeelError('INVALID_ARGUMENT', `malformed or incomplete HTTP request (${err.code ?? 'parse error'})`);
  if (socket.writable) {
    const body = JSON.stringify(errorBody(keelError));
    socket.write(
      `HTTP/1.1 ${keelError.status} ${statusText[keelError.status] ?? 'Error'}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(err);
}

export function isDocumentedCode(code: string): code is ErrorCode {
  return code in errorCatalog;
}
