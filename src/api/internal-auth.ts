// The internal routes (/internal/*: what followers call on the leader) are for peers only. With a cluster secret
// configured, every request to them must carry the peer proof header (util/peer-auth.ts): it is checked in
// onRequest, before the body is even read, and the body's SHA-256 is checked against the one the proof covers
// before any handler runs. A stranger gets 401 UNAUTHENTICATED and nothing it sent reaches the log.
import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { KeelError } from '../util/errors.js';
import type { Logger } from '../util/logger.js';
import { peerAuthHeader, sha256Hex, type PeerAuth } from '../util/peer-auth.js';

export const internalPrefix = '/internal/';

export function installInternalAuth(app: FastifyInstance, auth: PeerAuth, logger: Logger): void {
  const claimed = new WeakMap<FastifyRequest, string>();
  const received = new WeakMap<FastifyRequest, string>();
  const isInternal = (request: FastifyRequest): boolean => request.url.startsWith(internalPrefix);
  const reject = (request: FastifyRequest, why: string): never => {
    auth.rejections.internal++;
    logger.warn({ url: request.url, remote: request.ip, why }, 'refused an internal request without a valid peer proof');
    throw new KeelError(why === 'too many recent peer requests' ? 'UNAVAILABLE' : 'UNAUTHENTICATED', `internal route: ${why}`);
  };

  app.addHook('onRequest', async (request) => {
    if (!isInternal(request)) return;
    const header = request.headers[peerAuthHeader];
    const verdict = auth.verifyInternal(typeof header === 'string' ? header : undefined, request.method, request.url, Date.now());
    if (!verdict.ok) reject(request, verdict.why);
    else claimed.set(request, verdict.bodySha256);
  });

  // Hash the body bytes exactly as received, whatever their content type, on their way to the parser.
  app.addHook('preParsing', async (request, _reply, payload) => {
    if (!claimed.has(request)) return payload;
    const hash = createHash('sha256');
    const tap = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        hash.update(chunk);
        done(null, chunk);
      },
      flush(done) {
        received.set(request, hash.digest('hex'));
        done();
      },
    });
    payload.on('error', (err) => tap.destroy(err));
    return payload.pipe(tap);
  });

  app.addHook('preHandler', async (request) => {
    const expected = claimed.get(request);
    if (expected === undefined) return;
    if ((received.get(request) ?? sha256Hex(null)) !== expected) reject(request, 'the body does not match the peer proof');
  });
}
