// Real TLS between issued SVIDs (node:tls, OpenSSL): mutual authentication
// against the trust bundle plus the peer's SPIFFE ID, as a mesh proxy does it.
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import t, { type Test } from 'tap';
import { SpiffeCa } from '../src/identity/ca.js';
import type { X509Svid } from '../src/identity/types.js';

// OpenSSL's words for a chain that ends in a root the verifier does not hold (the peer may send its root along).
const UNTRUSTED = /unable to get local issuer certificate|self-signed certificate in certificate chain|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE/;

const SERVER_ID = 'spiffe://example.org/ns/shop/sa/api';
const CLIENT_ID = 'spiffe://example.org/ns/shop/sa/web';

async function newCa(t: Test, trustDomain: string, now?: () => Date): Promise<SpiffeCa> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-tls-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return SpiffeCa.loadOrCreate({ trustDomain, dir, now });
}

interface Side {
  svid: X509Svid;
  /** The roots this side trusts. */
  roots: string[];
  /** The SPIFFE ID it requires of its peer. */
  expectPeer: string;
}

interface Outcome {
  ok: boolean;
  /** The peer URI SAN each side saw, when the handshake got that far. */
  serverSaw?: string;
  clientSaw?: string;
  /** Every error each side saw, joined (a refusal can surface as several). */
  serverError?: string;
  clientError?: string;
}

const uriOf = (cert: tls.PeerCertificate | undefined) => cert?.subjectaltname;

/** One connection: the server requires a client certificate; each side checks chain and peer ID. */
async function handshake(t: Test, server: Side, client: Side): Promise<Outcome> {
  const out: Outcome = { ok: false };
  const srv = tls.createServer({
    key: server.svid.keyPem,
    cert: server.svid.certChainPem.join(''),
    ca: server.roots,
    requestCert: true,
    // Checked below instead: Node's own refusal drops the connection without saying why.
    rejectUnauthorized: false,
  });
  srv.on('secureConnection', (sock) => {
    if (!sock.authorized) {
      out.serverError = String(sock.authorizationError);
      sock.destroy();
      return;
    }
    out.serverSaw = uriOf(sock.getPeerCertificate());
    if (out.serverSaw !== `URI:${server.expectPeer}`) {
      out.serverError = `peer is ${out.serverSaw}, not ${server.expectPeer}`;
      sock.destroy();
      return;
    }
    sock.end(`hello ${server.expectPeer}`);
  });
  srv.on('tlsClientError', (err) => (out.serverError = [out.serverError, err.message].filter(Boolean).join('; ')));
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  t.teardown(() => srv.close());
  const { port } = srv.address() as AddressInfo;
  const reply = await new Promise<string>((resolve) => {
    const sock = tls.connect({
      host: '127.0.0.1',
      port,
      key: client.svid.keyPem,
      cert: client.svid.certChainPem.join(''),
      ca: client.roots,
      rejectUnauthorized: true,
      // SPIFFE authenticates by URI SAN, not hostname.
      checkServerIdentity: (_host, cert) => {
        out.clientSaw = uriOf(cert);
        return out.clientSaw === `URI:${client.expectPeer}` ? undefined : new Error(`server is ${out.clientSaw}, not ${client.expectPeer}`);
      },
    });
    let data = '';
    sock.setEncoding('utf8');
    sock.on('data', (d) => (data += d));
    sock.on('error', (err) => (out.clientError = [out.clientError, err.message].filter(Boolean).join('; ')));
    sock.on('close', () => resolve(data));
  });
  out.ok = reply === `hello ${server.expectPeer}`;
  return out;
}

const side = (svid: X509Svid, ca: SpiffeCa, expectPeer: string): Side => ({ svid, roots: ca.bundle().x509AuthoritiesPem, expectPeer });

t.test('two SVIDs of one trust domain complete a mutual TLS handshake', async (t) => {
  for (const keyType of ['ec-p256', 'rsa-2048'] as const) {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-tls-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const ca = await SpiffeCa.loadOrCreate({ trustDomain: 'example.org', dir, keyType });
    const out = await handshake(
      t,
      side(await ca.issueX509Svid(SERVER_ID), ca, CLIENT_ID),
      side(await ca.issueX509Svid(CLIENT_ID), ca, SERVER_ID),
    );
    t.ok(out.ok, `${keyType}: data flows (${out.serverError ?? out.clientError ?? 'no error'})`);
    t.equal(out.serverSaw, `URI:${CLIENT_ID}`, 'the server authenticated the client SPIFFE ID');
    t.equal(out.clientSaw, `URI:${SERVER_ID}`, 'the client authenticated the server SPIFFE ID');
  }
});

t.test('the wrong peer ID is refused even with a valid chain', async (t) => {
  const ca = await newCa(t, 'example.org');
  const other = 'spiffe://example.org/ns/shop/sa/intruder';
  const out = await handshake(t, side(await ca.issueX509Svid(SERVER_ID), ca, CLIENT_ID), side(await ca.issueX509Svid(other), ca, SERVER_ID));
  t.notOk(out.ok);
  t.match(out.serverError, /not spiffe:\/\/example.org\/ns\/shop\/sa\/web/);
});

t.test('an SVID of another trust domain is refused', async (t) => {
  const ca = await newCa(t, 'example.org');
  const foreign = await newCa(t, 'evil.org');
  const fromEvil = await foreign.issueX509Svid('spiffe://evil.org/ns/shop/sa/web');
  const asClient = await handshake(t, side(await ca.issueX509Svid(SERVER_ID), ca, CLIENT_ID), side(fromEvil, ca, SERVER_ID));
  t.notOk(asClient.ok, 'a client from evil.org gets nothing');
  t.match(asClient.serverError, UNTRUSTED);
    const asServer = await handshake(t, side(await foreign.issueX509Svid('spiffe://evil.org/ns/shop/sa/api'), foreign, CLIENT_ID), side(await ca.issueX509Svid(CLIENT_ID), ca, SERVER_ID));
  t.notOk(asServer.ok, 'a server from evil.org is not trusted');
  t.match(asServer.clientError, UNTRUSTED);
});

t.test('an SVID from another CA of the same trust domain is refused', async (t) => {
  const ca = await newCa(t, 'example.org');
  const rogue = await newCa(t, 'example.org');
  const out = await handshake(t, side(await ca.issueX509Svid(SERVER_ID), ca, CLIENT_ID), side(await rogue.issueX509Svid(CLIENT_ID), ca, SERVER_ID));
  t.notOk(out.ok, 'same URI, different root: refused');
  t.match(out.serverError, UNTRUSTED);
  const out2 = await handshake(t, side(await rogue.issueX509Svid(SERVER_ID), rogue, CLIENT_ID), side(await ca.issueX509Svid(CLIENT_ID), ca, SERVER_ID));
  t.notOk(out2.ok);
  t.match(out2.clientError, UNTRUSTED);
});

t.test('an expired SVID is refused', async (t) => {
  // A CA whose clock runs two hours behind issues SVIDs that expired an hour and 59 minutes ago.
  const past = () => new Date(Date.now() - 2 * 3600_000);
  const ca = await newCa(t, 'example.org', past);
  const expired = await ca.issueX509Svid(CLIENT_ID, 60);
  t.ok(expired.notAfter.getTime() < Date.now(), 'the SVID is expired');
  const live = await ca.issueX509Svid(SERVER_ID, 3 * 3600);
  t.ok(live.notAfter.getTime() > Date.now(), 'its peer is valid');
  const asClient = await handshake(t, side(live, ca, CLIENT_ID), side(expired, ca, SERVER_ID));
  t.notOk(asClient.ok, 'an expired client certificate gets nothing');
  t.match(asClient.serverError, /CERT_HAS_EXPIRED/);
  const asServer = await handshake(t, side(await ca.issueX509Svid(SERVER_ID, 60), ca, CLIENT_ID), side(live, ca, SERVER_ID));
  t.notOk(asServer.ok);
  t.match(asServer.clientError, /certificate has expired/);
  // The control: same CA, same roots, a live pair works.
  const fine = await handshake(t, side(live, ca, CLIENT_ID), side(await ca.issueX509Svid(CLIENT_ID, 3 * 3600), ca, SERVER_ID));
  t.ok(fine.ok, `with live SVIDs the same CA works (${fine.serverError ?? fine.clientError ?? ''})`);
});
