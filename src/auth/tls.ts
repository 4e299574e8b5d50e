/**
 * TLS for the gRPC port, with certificates that can be replaced while the
 * server runs.
 *
 * grpc-js's `createSsl(…, checkClientCertificate)` either does not ask for a
 * client certificate or requires one (Node's `rejectUnauthorized` defaults to
 * true), and a probe without a certificate could not even check health. The
 * certificate-provider credentials (`experimental.createCertificateProviderServerCredentials`)
 * set `requestCert: true, rejectUnauthorized: false` when given a CA provider
 * and `false` for "require": the handshake asks for a certificate and
 * completes without one (or with one that does not verify). grpc-js then
 * hands a call the peer certificate only when the socket is `authorized`
 * (server-call `getAuthContext`), so an unverified certificate is exactly as
 * good as none; the auth link refuses both for everything but health.
 *
 * Rotation: a provider pushes new PEMs to the credentials, which call
 * `setSecureContext` on the listening http2 server. New handshakes get the new
 * certificate; established connections and calls in flight are untouched. A
 * reload whose files do not form a valid context (missing file, key not
 * matching the certificate) is refused and the previous certificates stay in
 * force: pushing them would make grpc-js drop every new connection.
 */
import { readFileSync } from "node:fs";
import { createSecureContext } from "node:tls";
import * as grpc from "@grpc/grpc-js";
import type { AuthContext } from "@grpc/grpc-js/build/src/auth-context.js";
import type { CaCertificateUpdateListener, CertificateProvider, IdentityCertificateUpdateListener } from "@grpc/grpc-js/build/src/certificate-provider.js";

export interface TlsFiles {
  /** PEM certificate chain of the server. */
  readonly certFile: string;
  readonly keyFile: string;
  /** PEM CA(s) of client certificates; empty: no client certificate is asked for. */
  readonly clientCaFile: string;
}

interface Pems {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer | undefined;
}

export class TlsFileError extends Error {
  override readonly name = "TlsFileError";
}

/** Reads the files and proves they make a TLS context (the key matches the certificate, the PEMs parse). */
function readPems(files: TlsFiles): Pems {
  const read = (variable: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new TlsFileError(`${variable}=${path}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  };
  const cert = read("MINT_TLS_CERT", files.certFile);
  const key = read("MINT_TLS_KEY", files.keyFile);
  const ca = files.clientCaFile === "" ? undefined : read("MINT_TLS_CLIENT_CA", files.clientCaFile);
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    throw new TlsFileError(`MINT_TLS_CERT/MINT_TLS_KEY (${files.certFile}, ${files.keyFile}) do not make a TLS identity: ${firstLine(err)}`);
  }
  if (ca !== undefined) {
    try {
      createSecureContext({ ca });
    } catch (err) {
      throw new TlsFileError(`MINT_TLS_CLIENT_CA=${files.clientCaFile} is not a PEM CA certificate: ${firstLine(err)}`);
    }
    if (!ca.toString("latin1").includes("-----BEGIN CERTIFICATE-----")) {
      throw new TlsFileError(`MINT_TLS_CLIENT_CA=${files.clientCaFile} holds no PEM certificate`);
    }
  }
  return { cert, key, ca };
}

function firstLine(err: unknown): string {
  return ((err as Error).message ?? String(err)).split("\n")[0] ?? "";
}

/**
 * Serves the current PEMs to grpc-js and pushes new ones on `reload()`. One
 * object is both the identity and the CA provider, so a reload updates both
 * together.
 */
export class ReloadableCertificates implements CertificateProvider {
  private pems: Pems;
  private readonly caListeners = new Set<CaCertificateUpdateListener>();
  private readonly identityListeners = new Set<IdentityCertificateUpdateListener>();

  /** Throws TlsFileError (one line naming the variable) when the files are unusable. */
  constructor(private readonly files: TlsFiles) {
    this.pems = readPems(files);
  }

  get mutual(): boolean {
    return this.files.clientCaFile !== "";
  }

  /** The certificate chain and key in force (the metrics listener serves HTTPS with them too). */
  identity(): { readonly cert: Buffer; readonly key: Buffer } {
    return { cert: this.pems.cert, key: this.pems.key };
  }

  /** Calls `listener` with each identity a reload brings (and once, on the next tick, with the current one). */
  onIdentityChange(listener: (identity: { readonly cert: Buffer; readonly key: Buffer }) => void): void {
    this.addIdentityCertificateListener((update) => {
      if (update !== null) listener({ cert: update.certificate, key: update.privateKey });
    });
  }

  /**
   * Re-reads the files. On success new handshakes use them; on failure the
   * previous certificates stay in force and the error (one line) is thrown.
   */
  reload(): void {
    const pems = readPems(this.files);
    this.pems = pems;
    for (const l of this.identityListeners) l({ certificate: pems.cert, privateKey: pems.key });
    if (pems.ca !== undefined) for (const l of this.caListeners) l({ caCertificate: pems.ca });
  }

  // grpc-js reads the server's initial context before it registers for
  // updates, and registers its watcher only after adding these listeners: the
  // first update must come on the next tick (as its own FileWatcher provider
  // does) or it would be lost and every connection dropped.
  addCaCertificateListener(listener: CaCertificateUpdateListener): void {
    this.caListeners.add(listener);
    const ca = this.pems.ca;
    if (ca !== undefined) process.nextTick(() => this.caListeners.has(listener) && listener({ caCertificate: ca }));
  }

  removeCaCertificateListener(listener: CaCertificateUpdateListener): void {
    this.caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: IdentityCertificateUpdateListener): void {
    this.identityListeners.add(listener);
    const { cert, key } = this.pems;
    process.nextTick(() => this.identityListeners.has(listener) && listener({ certificate: cert, privateKey: key }));
  }

  removeIdentityCertificateListener(listener: IdentityCertificateUpdateListener): void {
    this.identityListeners.delete(listener);
  }
}

/**
 * Server credentials over reloadable certificates. With a client CA the
 * handshake asks for a client certificate but does not require one.
 */
export function reloadableServerCredentials(certs: ReloadableCertificates): grpc.ServerCredentials {
  // grpc-js names this function's parameters (caCertificateProvider, identityCertificateProvider)
  // but passes them on as (identity, ca): the identity provider goes first. Verified in
  // build/src/server-credentials.js of 1.14 and by test/integration/tls.test.ts.
  return grpc.experimental.createCertificateProviderServerCredentials(certs, certs.mutual ? certs : null, false);
}

/**
 * What each HTTP/2 connection's client certificate says: its SANs when TLS
 * verified it, null when there is none (or it did not verify, or plaintext).
 * Node builds the peer certificate object anew on every `getPeerCertificate()`
 * (about 40 µs, as much as a whole uncontended mint), and a connection's
 * certificate cannot change: Node's http2 disables TLS renegotiation on every
 * session's socket (as RFC 9113 §9.2.1 requires). So it is read once per
 * connection and kept in a WeakMap that dies with the session.
 */
const sansBySession = new WeakMap<object, string | null>();

/**
 * The http2 session a grpc-js server call runs on. grpc-js does not expose it:
 * this follows its private fields (handler call -> interceptor chain ->
 * base call -> stream -> session) and returns undefined when they are not
 * there, in which case every call pays for `getAuthContext()` instead
 * (slower, never wrong). test/integration/tls.test.ts fails if a grpc-js
 * upgrade moves them.
 */
export function http2SessionOf(call: object): object | undefined {
  let c = (call as { call?: unknown }).call as { nextCall?: unknown; stream?: { session?: unknown } } | undefined;
  for (let hops = 0; c !== undefined && c !== null && hops < 16; hops++) {
    const session = c.stream?.session;
    if (typeof session === "object" && session !== null) return session;
    c = c.nextCall as typeof c;
  }
  return undefined;
}

/** The SAN string of the call's client certificate, only if TLS verified it against the client CA. */
export function verifiedPeerSans(call: { getAuthContext(): AuthContext | null }): string | undefined {
  const session = http2SessionOf(call);
  if (session !== undefined) {
    const known = sansBySession.get(session);
    if (known !== undefined) return known ?? undefined;
  }
  // getAuthContext returns {} for plaintext and for a socket that is not `authorized`
  // (no certificate, an expired one, one from another CA).
  const cert = call.getAuthContext()?.sslPeerCertificate;
  const sans = cert === undefined ? null : (cert.subjectaltname ?? "");
  if (session !== undefined) sansBySession.set(session, sans);
  return sans ?? undefined;
}
