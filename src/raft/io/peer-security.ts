// What the peer transport needs for security, kept out of its framing and queueing logic: how to listen and dial
// (plain TCP, or TLS with the cluster CA and optionally mutual certificates, whose common name may be pinned) and
// the cluster-secret challenge-response (the proofs themselves are in util/peer-auth.ts).
import net from 'node:net';
import tls from 'node:tls';
import { challengeBytes, PeerAuth } from '../../util/peer-auth.js';
import type { NodeId } from '../types.js';

export { PeerAuth };

export interface PeerTlsOptions {
  readonly cert: Buffer | string;
  readonly key: Buffer | string;
  /** The CA that signed every node's peer certificate: dialers verify the listener with it (and vice versa). */
  readonly ca: Buffer | string;
  /** The listener demands and verifies a client certificate; dialers present theirs. */
  readonly mutual: boolean;
  /**
   * With `mutual`: the listener also refuses a certificate whose subject common name is not this one, so a
   * certificate the same CA issued for something else (a client of the HTTP API) cannot speak Raft.
   */
  readonly allowedCn?: string | null;
}

export class PeerSecurity {
  constructor(
    private readonly id: NodeId,
    private readonly tlsOptions: PeerTlsOptions | null,
    readonly auth: PeerAuth | null,
  ) {}

  /** A new outbound socket, and the event after which it can carry frames. */
  dial(host: string, port: number): { socket: net.Socket; readyEvent: 'connect' | 'secureConnect' } {
    const options = this.tlsOptions;
    if (options === null) return { socket: net.connect({ host, port, noDelay: true }), readyEvent: 'connect' };
    const socket = tls.connect({
      host,
      port,
      ca: options.ca,
      // The certificate is what the listener checks under mutual TLS; without it, presenting one is harmless.
      cert: options.cert,
      key: options.key,
      // The listener's certificate must name the host we dialed (an IP SAN for addresses); SNI takes names only.
      ...(net.isIP(host) === 0 ? { servername: host } : {}),
    });
    socket.setNoDelay(true);
    return { socket, readyEvent: 'secureConnect' };
  }

  /** The listener: `onConnection` gets sockets ready for frames; a failed TLS handshake goes to `onRefused`. */
  createServer(onConnection: (socket: net.Socket) => void, onRefused: (why: string, remote: string) => void, handshakeTimeoutMs = 5_000): net.Server {
    const options = this.tlsOptions;
    if (options === null) return net.createServer({ noDelay: true }, onConnection);
    const allowedCn = options.mutual ? (options.allowedCn ?? null) : null;
    const server = tls.createServer(
      {
        cert: options.cert,
        key: options.key,
        ca: options.ca,
        requestCert: options.mutual,
        rejectUnauthorized: options.mutual,
        handshakeTimeout: handshakeTimeoutMs,
        noDelay: true,
      },
      (socket) => {
        const cn = allowedCn === null ? null : commonNameOf(socket);
        if (cn === null || cn === allowedCn) {
          onConnection(socket);
          return;
        }
        onRefused(`TLS: the certificate's common name ${JSON.stringify(cn)} is not the allowed ${JSON.stringify(allowedCn)}`, remoteOf(socket));
        socket.destroy();
      },
    );
    server.on('tlsClientError', (err: Error, socket: tls.TLSSocket) => {
      onRefused(`TLS: ${err.message}`, remoteOf(socket));
    });
    return server;
  }

  /** The dialer's proof for a listener's challenge frame, or null if the frame is not a challenge. */
  answerChallenge(peer: NodeId, frame: Uint8Array): Uint8Array | null {
    if (this.auth === null || frame.byteLength !== challengeBytes) return null;
    return this.auth.handshakeProof(this.id, peer, frame);
  }

  /** Whether `proof` answers our `challenge` for a connection from `peer`; a failure is counted. */
  checkProof(peer: NodeId, challenge: Uint8Array, proof: Uint8Array): boolean {
    if (this.auth === null) return true;
    if (this.auth.verifyHandshake(peer, this.id, challenge, proof)) return true;
    this.auth.rejections.raft++;
    return false;
  }
}

function remoteOf(socket: net.Socket): string {
  return `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
}

/** The subject common name of the peer's (verified) certificate; '' when it has none. */
function commonNameOf(socket: tls.TLSSocket): string {
  const cn = socket.getPeerCertificate().subject?.CN as string | string[] | undefined;
  // A subject with several CN attributes lists them all: none of them alone is the certificate's name.
  return typeof cn === 'string' ? cn : '';
}
