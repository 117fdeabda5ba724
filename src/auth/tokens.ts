// Bearer tokens: 32 random bytes from the OS (crypto.randomBytes), base64url, behind the prefix `keel_` so a
// leaked token is easy to spot in logs and by secret scanners. Only sha256(token) is stored (in the replicated
// store, under _keel/auth/tokens/<id>); the token itself is shown once, when it is created. Its public id (what
// `keel token revoke` takes) is the first 16 hex digits of the hash, so a node finds a token's record with one
// point read and then compares the whole hash in constant time.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

export const tokenPrefix = 'keel_';
export const tokenRandomBytes = 32;
/** keel_ + 43 base64url characters. */
const tokenPattern = /^keel_[A-Za-z0-9_-]{43}$/;
export const tokenIdPattern = /^[0-9a-f]{16}$/;

export function generateToken(): string {
  return `${tokenPrefix}${randomBytes(tokenRandomBytes).toString('base64url')}`;
}

export function isWellFormedToken(token: string): boolean {
  return tokenPattern.test(token);
}

/** sha256 of the token string, hex. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export function tokenIdOf(hash: string): string {
  return hash.slice(0, 16);
}

/** Constant-time comparison of two hex hashes. */
export function sameHash(a: string, b: string): boolean {
  const left = Buffer.from(a, 'hex');
  const right = Buffer.from(b, 'hex');
  return left.length === right.length && left.length > 0 && timingSafeEqual(left, right);
}
