// Peer authentication with the cluster secret. Two doors lead into a node from its peers, and both demand proof
// that the caller knows the secret, without the secret ever crossing the wire:
//
// - The Raft peer port (challenge-response). On accept the listener sends a fresh random 32-byte challenge; the
//   dialer answers, right after its handshake frame, with HMAC-SHA256(secret, ["keel-raft/1", cluster, from, to,
//   challenge]). Nothing from the connection reaches the core before that proof checks out, and a fresh
//   challenge per connection means a recorded proof is worthless on any other connection.
// - The internal HTTP routes (/internal/*, e.g. the follower -> leader propose). There is no round trip to spare,
//   so the proof is a header: `x-keel-peer-auth: v1 <from> <timestampMs> <nonce> <bodySha256> <mac>`, where mac =
//   HMAC-SHA256(secret, ["keel-internal/1", cluster, from, method, url, timestampMs, nonce, bodySha256]). The
//   receiver accepts timestamps within `skewMs` of its own clock and remembers every nonce it accepted for twice
//   that long, so a captured request cannot be replayed; the body digest binds the proof to these exact bytes.
//
// A wrong or missing proof is counted (see rejections) and the caller is turned away. TLS is what keeps the
// traffic itself private and untampered on the wire; the secret is what keeps strangers from speaking at all.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const peerAuthHeader = 'x-keel-peer-auth';
export const challengeBytes = 32;
export const proofBytes = 32;

export interface PeerAuthOptions {
  /** Largest accepted difference between the sender's and the receiver's wall clocks. */
  readonly skewMs?: number;
  /** Bound on remembered nonces; when every slot is still live, new requests are refused (never unbounded). */
  readonly noncesMax?: number;
}

export type InternalVerdict = { readonly ok: true; readonly from: string; readonly bodySha256: string } | { readonly ok: false; readonly why: string };

export class PeerAuth {
  /** Connections and internal requests refused for a missing or wrong proof, since start. */
  readonly rejections = { raft: 0, internal: 0 };
  private readonly secret: Buffer;
  private readonly skewMs: number;
  private readonly noncesMax: number;
  /** nonce -> forget-after (receiver's clock); insertion order is arrival order, so expiry is from the front. */
  private readonly nonces = new Map<string, number>();

  constructor(secret: string, private readonly cluster: string, options: PeerAuthOptions = {}) {
    if (secret.length === 0) throw new Error('peer secret must not be empty');
    this.secret = Buffer.from(secret, 'utf8');
    this.skewMs = options.skewMs ?? 30_000;
    this.noncesMax = options.noncesMax ?? 200_000;
  }

  newChallenge(): Buffer {
    return randomBytes(challengeBytes);
  }

  handshakeProof(from: string, to: string, challenge: Uint8Array): Buffer {
    return this.mac(['keel-raft/1', this.cluster, from, to, Buffer.from(challenge).toString('hex')]);
  }

  verifyHandshake(from: string, to: string, challenge: Uint8Array, proof: Uint8Array): boolean {
    return proof.byteLength === proofBytes && timingSafeEqual(this.handshakeProof(from, to, challenge), proof);
  }

  /** The header value a peer sends with an internal request whose body is `body`. */
  internalHeader(from: string, method: string, url: string, body: Uint8Array | null, nowMs: number): string {
    const nonce = randomBytes(16).toString('hex');
    const bodySha256 = sha256Hex(body);
    const mac = this.internalMac(from, method, url, String(nowMs), nonce, bodySha256);
    return `v1 ${from} ${nowMs} ${nonce} ${bodySha256} ${mac.toString('hex')}`;
  }

  /**
   * Checks an internal request's header (method and url as received). On success the nonce is spent; the caller
   * must still check that the body it read hashes to `bodySha256`.
   */
  verifyInternal(header: string | undefined, method: string, url: string, nowMs: number): InternalVerdict {
    if (header === undefined) return { ok: false, why: `missing ${peerAuthHeader} header` };
    const parts = header.split(' ');
    const [version, from, timestamp, nonce, bodySha256, mac] = parts;
    if (parts.length !== 6 || version !== 'v1' || from === undefined || timestamp === undefined || nonce === undefined ||
        bodySha256 === undefined || mac === undefined || !/^\d{1,16}$/.test(timestamp) || !/^[0-9a-f]{32}$/.test(nonce) ||
        !/^[0-9a-f]{64}$/.test(bodySha256) || !/^[0-9a-f]{64}$/.test(mac)) {
      return { ok: false, why: `malformed ${peerAuthHeader} header` };
    }
    const expected = this.internalMac(from, method, url, timestamp, nonce, bodySha256);
    if (!timingSafeEqual(expected, Buffer.from(mac, 'hex'))) return { ok: false, why: 'wrong peer proof' };
    if (Math.abs(nowMs - Number(timestamp)) > this.skewMs) return { ok: false, why: 'peer proof outside the clock skew window' };
    this.forgetExpired(nowMs);
    if (this.nonces.has(nonce)) return { ok: false, why: 'replayed peer proof' };
    if (this.nonces.size >= this.noncesMax) return { ok: false, why: 'too many recent peer requests' };
    // A timestamp is accepted until timestamp + skew <= arrival + 2 * skew: remember the nonce that long.
    this.nonces.set(nonce, nowMs + 2 * this.skewMs);
    return { ok: true, from, bodySha256 };
  }

  private forgetExpired(nowMs: number): void {
    for (const [nonce, forgetAtMs] of this.nonces) {
      if (forgetAtMs > nowMs) break;
      this.nonces.delete(nonce);
    }
  }

  private internalMac(from: string, method: string, url: string, timestamp: string, nonce: string, bodySha256: string): Buffer {
    return this.mac(['keel-internal/1', this.cluster, from, method.toUpperCase(), url, timestamp, nonce, bodySha256]);
  }

  /** Fields are JSON-encoded as one array, so no choice of values can make two different field lists collide. */
  private mac(fields: readonly string[]): Buffer {
    return createHmac('sha256', this.secret).update(JSON.stringify(fields)).digest();
  }
}

export function sha256Hex(body: Uint8Array | null): string {
  return createHash('sha256').update(body ?? new Uint8Array(0)).digest('hex');
}
