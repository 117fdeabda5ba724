// Goal: the cluster-secret proofs (util/peer-auth.ts) accept exactly what a peer with the same secret produced
// for the same cluster, sender, receiver and challenge (peer port), or method, path, body and fresh nonce
// (internal HTTP routes), and refuse everything else: another secret or cluster, swapped fields, a replay, a stale
// timestamp, a malformed header; and the nonce memory stays bounded.
// Method: direct calls with hand-picked inputs and clocks.
import t from 'tap';
import { PeerAuth, sha256Hex } from '../../../src/util/peer-auth.js';

const secret = 'correct-horse-battery-staple-42';

void t.test('handshake proof: same secret, cluster and fields verify; any difference does not', async (t) => {
  const a = new PeerAuth(secret, 'prod');
  const b = new PeerAuth(secret, 'prod');
  const challenge = a.newChallenge();
  t.equal(challenge.byteLength, 32, 'challenges are 32 random bytes');
  t.not(a.newChallenge().toString('hex'), challenge.toString('hex'), 'each challenge is fresh');
  const proof = b.handshakeProof('n2', 'n1', challenge);
  t.ok(a.verifyHandshake('n2', 'n1', challenge, proof), 'the proof verifies');
  t.notOk(a.verifyHandshake('n3', 'n1', challenge, proof), 'another sender');
  t.notOk(a.verifyHandshake('n2', 'n3', challenge, proof), 'another receiver');
  t.notOk(a.verifyHandshake('n2', 'n1', a.newChallenge(), proof), 'another challenge (no replay across connections)');
  t.notOk(new PeerAuth('another-secret-entirely-123', 'prod').verifyHandshake('n2', 'n1', challenge, proof), 'another secret');
  t.notOk(new PeerAuth(secret, 'staging').verifyHandshake('n2', 'n1', challenge, proof), 'another cluster');
  t.notOk(a.verifyHandshake('n2', 'n1', challenge, proof.subarray(0, 31)), 'a truncated proof');
  t.notOk(a.verifyHandshake('n2', 'n1', challenge, Buffer.alloc(32)), 'zeros');
  t.notOk(proof.toString('hex').includes(Buffer.from(secret).toString('hex')), 'the secret is not in the proof');
});

void t.test('internal header: verifies once, for its method, path and body, within the skew window', async (t) => {
  const now = 1_700_000_000_000;
  const sender = new PeerAuth(secret, 'prod');
  const body = Buffer.from('command bytes');
  const header = sender.internalHeader('n2', 'POST', '/internal/v1/propose', body, now);
  t.notOk(header.includes(secret), 'the header does not carry the secret');
  const receiver = new PeerAuth(secret, 'prod');
  const verdict = receiver.verifyInternal(header, 'POST', '/internal/v1/propose', now + 1_000);
  t.same(verdict, { ok: true, from: 'n2', bodySha256: sha256Hex(body) }, 'a fresh header verifies and names the body digest');
  t.match(receiver.verifyInternal(header, 'POST', '/internal/v1/propose', now + 2_000), { ok: false, why: /replayed/ }, 'a replay is refused');

  const fresh = (): PeerAuth => new PeerAuth(secret, 'prod');
  t.match(fresh().verifyInternal(header, 'PUT', '/internal/v1/propose', now), { ok: false, why: /wrong/ }, 'another method');
  t.match(fresh().verifyInternal(header, 'POST', '/internal/v1/other', now), { ok: false, why: /wrong/ }, 'another path');
  t.match(fresh().verifyInternal(header, 'POST', '/internal/v1/propose', now + 31_000), { ok: false, why: /skew/ }, 'too late');
  t.match(fresh().verifyInternal(header, 'POST', '/internal/v1/propose', now - 31_000), { ok: false, why: /skew/ }, 'from the future');
  t.match(new PeerAuth(secret, 'staging').verifyInternal(header, 'POST', '/internal/v1/propose', now), { ok: false, why: /wrong/ }, 'another cluster');
  t.match(new PeerAuth('another-secret-entirely-123', 'prod').verifyInternal(header, 'POST', '/internal/v1/propose', now), { ok: false, why: /wrong/ }, 'another secret');
  const parts = header.split(' ');
  const swapped = [...parts];
  swapped[1] = 'n3';
  t.match(fresh().verifyInternal(swapped.join(' '), 'POST', '/internal/v1/propose', now), { ok: false, why: /wrong/ }, 'a changed sender');
  const otherBody = [...parts];
  otherBody[4] = sha256Hex(Buffer.from('other'));
  t.match(fresh().verifyInternal(otherBody.join(' '), 'POST', '/internal/v1/propose', now), { ok: false, why: /wrong/ }, 'a changed body digest');
  for (const bad of [undefined, '', 'v1', 'v2 n2 1 2 3 4', `${header} extra`, header.replace(/ [0-9a-f]{64}$/, ' zz')]) {
    t.equal(fresh().verifyInternal(bad, 'POST', '/internal/v1/propose', now).ok, false, `malformed: ${JSON.stringify(bad)?.slice(0, 40)}`);
  }
});

void t.test('remembered nonces are bounded and forgotten after twice the skew window', async (t) => {
  const sender = new PeerAuth(secret, 'prod');
  const receiver = new PeerAuth(secret, 'prod', { skewMs: 1_000, noncesMax: 3 });
  const at = (ms: number): boolean => receiver.verifyInternal(sender.internalHeader('n2', 'GET', '/internal/x', null, ms), 'GET', '/internal/x', ms).ok;
  t.ok(at(10_000) && at(10_001) && at(10_002), 'three fit');
  const full = receiver.verifyInternal(sender.internalHeader('n2', 'GET', '/internal/x', null, 10_003), 'GET', '/internal/x', 10_003);
  t.match(full, { ok: false, why: /too many/ }, 'a fourth within the window is refused, not remembered without bound');
  t.ok(at(12_001), 'after 2 x skew the old nonces are forgotten and room is made');
});
