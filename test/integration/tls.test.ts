/**
 * TLS and mutual TLS of the gRPC port, with real handshakes: the server asks
 * for a client certificate without requiring one, a call sees the peer
 * certificate only when it verified, and SIGHUP-style reloads swap the server
 * certificate for new connections while old ones keep working.
 *
 * The server here is grpc-js with the service's credentials and one method
 * that answers with what the call sees of its peer (`verifiedPeerSans`), so
 * each TLS property is asserted on its own; test/integration/auth.test.ts
 * covers the whole service.
 */
import { copyFileSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { http2SessionOf, ReloadableCertificates, reloadableServerCredentials, TlsFileError, verifiedPeerSans } from "../../src/auth/tls.js";
import { makeTestCerts, type KeyPair, type TestCerts } from "../support/test-certs.js";

const json = {
  serialize: (v: unknown) => Buffer.from(JSON.stringify(v)),
  deserialize: (b: Buffer) => JSON.parse(b.toString()) as unknown,
};
const WHOAMI: grpc.ServiceDefinition = {
  whoami: {
    path: "/test.Peer/WhoAmI",
    requestStream: false,
    responseStream: false,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  },
};
const PeerClient = grpc.makeGenericClientConstructor(WHOAMI, "Peer");

interface WhoAmI {
  /** The verified client certificate's SANs, or null. */
  sans: string | null;
}

/** A private subchannel pool: each client makes its own connection (and handshake); the name checked is the certificate's DNS SAN. */
const CLIENT_OPTIONS = { "grpc.use_local_subchannel_pool": 1, "grpc.ssl_target_name_override": "localhost" };

let certs: TestCerts;
let live: { cert: string; key: string; ca: string };
let provider: ReloadableCertificates;
let server: grpc.Server;
let address: string;
/** Resolves the held call of the in-flight test. */
let release: (() => void) | undefined;
let held: (() => void) | undefined;
/** Whether the last call's http2 session was found (the per-connection cache works). */
let sessionFound = false;

beforeAll(async () => {
  certs = makeTestCerts();
  // The server reads copies, so a test can "rotate" by copying new files over them.
  live = { cert: `${certs.dir}/live.crt`, key: `${certs.dir}/live.key`, ca: `${certs.dir}/live-client-ca.crt` };
  copyFileSync(certs.server.certFile, live.cert);
  copyFileSync(certs.server.keyFile, live.key);
  copyFileSync(certs.clientCa.certFile, live.ca);
  provider = new ReloadableCertificates({ certFile: live.cert, keyFile: live.key, clientCaFile: live.ca });
  server = new grpc.Server();
  server.addService(WHOAMI, {
    whoami: (call: grpc.ServerUnaryCall<{ hold?: boolean }, WhoAmI>, cb: grpc.sendUnaryData<WhoAmI>) => {
      sessionFound = http2SessionOf(call) !== undefined;
      const answer = (): void => cb(null, { sans: verifiedPeerSans(call) ?? null });
      if (call.request.hold === true) {
        release = answer;
        held?.();
      } else {
        answer();
      }
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", reloadableServerCredentials(provider), (err, p) => (err ? reject(err) : resolve(p))),
  );
  address = `127.0.0.1:${port}`;
});

afterAll(() => {
  server?.forceShutdown();
  certs?.remove();
});

function client(creds: grpc.ChannelCredentials): grpc.Client {
  return new PeerClient(address, creds, CLIENT_OPTIONS);
}

function tls(identity?: KeyPair): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(certs.serverCa.cert, identity?.key ?? null, identity?.cert ?? null);
}

/** Calls WhoAmI; resolves with the answer and the CN of the server certificate this connection got. */
function whoami(c: grpc.Client, request: { hold?: boolean } = {}): Promise<WhoAmI & { serverCn: string | undefined }> {
  return new Promise((resolve, reject) => {
    const call = (c as unknown as Record<string, (r: unknown, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r: WhoAmI) => void) => grpc.ClientUnaryCall>)
      .whoami!.call(c, request, { deadline: Date.now() + 5000 }, (err, res) => {
        if (err) reject(err);
        else resolve({ ...res, serverCn: call.getAuthContext()?.sslPeerCertificate?.subject?.CN as string | undefined });
      });
  });
}

describe("TLS on the gRPC port", () => {
  it("refuses plaintext", async () => {
    const c = client(grpc.credentials.createInsecure());
    await expect(whoami(c)).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    c.close();
  });

  it("completes the handshake without a client certificate; the call sees no peer identity", async () => {
    const c = client(tls());
    expect(await whoami(c)).toEqual({ sans: null, serverCn: "mint-server-1" });
    c.close();
  });

  it("gives the call the SANs of a certificate the client CA verified", async () => {
    const c = client(tls(certs.client("payments-api", "URI:spiffe://mint.test/payments-api,DNS:payments.internal")));
    expect((await whoami(c)).sans).toBe("URI:spiffe://mint.test/payments-api, DNS:payments.internal");
    c.close();
  });

  it("reads the certificate once per connection: grpc-js's call still leads to its http2 session", async () => {
    const c = client(tls(certs.client("cached", "DNS:cached.internal")));
    sessionFound = false;
    expect((await whoami(c)).sans).toBe("DNS:cached.internal");
    expect(sessionFound).toBe(true);
    // Twice on one connection: the second answer comes from the cache and is the same.
    expect((await whoami(c)).sans).toBe("DNS:cached.internal");
    c.close();
  });

  it("a certificate whose name is unknown still verifies: naming it is authentication's job", async () => {
    const c = client(tls(certs.client("stranger", "URI:spiffe://mint.test/stranger")));
    expect((await whoami(c)).sans).toBe("URI:spiffe://mint.test/stranger");
    c.close();
  });

  it.each([
    ["an expired", () => certs.client("expired", "URI:spiffe://mint.test/payments-api", { expired: true })],
    ["an unknown CA's", () => certs.client("rogue", "URI:spiffe://mint.test/payments-api", { ca: certs.rogueCa })],
  ])("%s certificate is as good as none: the handshake completes, the call sees no identity", async (_what, make) => {
    const c = client(tls(make()));
    expect((await whoami(c)).sans).toBeNull();
    c.close();
  });

  it("reload: new connections get the new certificate, old connections and calls in flight keep working", async () => {
    const before = client(tls());
    expect((await whoami(before)).serverCn).toBe("mint-server-1");
    // A call in flight across the reload.
    const heldNow = new Promise<void>((r) => (held = r));
    const inFlight = whoami(before, { hold: true });
    await heldNow;

    copyFileSync(certs.server2.certFile, live.cert);
    copyFileSync(certs.server2.keyFile, live.key);
    provider.reload();

    const after = client(tls());
    expect((await whoami(after)).serverCn).toBe("mint-server-2");
    release?.();
    expect((await inFlight).serverCn).toBe("mint-server-1");
    // The old connection is still the old handshake, and still serves calls.
    expect((await whoami(before)).serverCn).toBe("mint-server-1");
    before.close();
    after.close();
  });

  it("a reload with files that do not fit together is refused and the old certificate stays", async () => {
    copyFileSync(certs.server.certFile, live.cert); // key is still server2's: a mismatch
    expect(() => provider.reload()).toThrow(TlsFileError);
    expect(() => provider.reload()).toThrow(/MINT_TLS_CERT\/MINT_TLS_KEY .* do not make a TLS identity/);
    const c = client(tls());
    expect((await whoami(c)).serverCn).toBe("mint-server-2");
    c.close();
    copyFileSync(certs.server.keyFile, live.key);
    provider.reload();
    const d = client(tls());
    expect((await whoami(d)).serverCn).toBe("mint-server-1");
    d.close();
  });

  it("files that cannot be read or parsed are one line naming the variable", () => {
    expect(() => new ReloadableCertificates({ certFile: "/nonexistent.crt", keyFile: live.key, clientCaFile: "" })).toThrow(
      /^MINT_TLS_CERT=\/nonexistent\.crt: cannot read: ENOENT$/,
    );
    expect(() => new ReloadableCertificates({ certFile: live.cert, keyFile: live.key, clientCaFile: live.key })).toThrow(/MINT_TLS_CLIENT_CA=.* holds no PEM certificate|MINT_TLS_CLIENT_CA=.* is not a PEM CA/);
  });
});

describe("TLS without a client CA", () => {
  it("does not ask for a client certificate: one presented is not seen", async () => {
    const p = new ReloadableCertificates({ certFile: certs.server.certFile, keyFile: certs.server.keyFile, clientCaFile: "" });
    const s = new grpc.Server();
    s.addService(WHOAMI, { whoami: (call: grpc.ServerUnaryCall<unknown, WhoAmI>, cb: grpc.sendUnaryData<WhoAmI>) => cb(null, { sans: verifiedPeerSans(call) ?? null }) });
    const port = await new Promise<number>((resolve, reject) => s.bindAsync("127.0.0.1:0", reloadableServerCredentials(p), (e, n) => (e ? reject(e) : resolve(n))));
    const c = new PeerClient(`127.0.0.1:${port}`, tls(certs.client("p2", "DNS:p2.internal")), CLIENT_OPTIONS);
    expect(await whoami(c)).toEqual({ sans: null, serverCn: "mint-server-1" });
    c.close();
    s.forceShutdown();
  });
});
