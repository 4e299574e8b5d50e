/**
 * A secured service for tests: certificates made with openssl (test-certs.ts),
 * an auth file with one token principal per role plus certificate principals,
 * and clients with any mix of credentials, all over real TLS.
 */
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { MintServiceClient } from "../../gen/usdc/mint/v1/mint.js";
import { tokenDigestHex } from "../../src/auth/authenticate.js";
import { ROLES, type Role } from "../../src/domain/authorization.js";
import { makeTestCerts, type KeyPair, type TestCerts } from "./test-certs.js";

export interface PrincipalSpec {
  readonly name: string;
  readonly roles: readonly Role[];
  readonly scopes: readonly string[];
  readonly certificate_identities?: readonly string[];
  readonly token_sha256?: readonly string[];
}

export interface AuthFixture {
  readonly certs: TestCerts;
  readonly authFile: string;
  /** Env for the service: TLS, mutual TLS, the auth file. */
  readonly env: Record<string, string>;
  /** A token per role (principal `role-<role>`, scope `*`). */
  readonly roleTokens: Readonly<Record<Role, string>>;
  /** Token of `admin` (minter, transferer, reader, reconciler on `*`). */
  readonly adminToken: string;
  /** Certificate of `treasury-app` (minter, transferer, reader, reconciler on `treasury:*`). */
  readonly treasuryCert: KeyPair;
  /** Certificate of `admin` (URI:spiffe://mint.test/admin). */
  readonly adminCert: KeyPair;
  /** A client-CA certificate whose identity names nobody. */
  readonly strangerCert: KeyPair;
  readonly expiredCert: KeyPair;
  readonly rogueCert: KeyPair;
  /** Rewrites the auth file with `principals` (the reload test removes a token). */
  writeAuthFile(principals: readonly PrincipalSpec[]): void;
  readonly principals: readonly PrincipalSpec[];
  /** A MintService client over TLS with an optional client certificate and bearer token. */
  client(address: string, opts?: { cert?: KeyPair; token?: string }): MintServiceClient;
  remove(): void;
}

/** A token as an operator would make one: 256 random bits, base64url. */
export function newToken(): string {
  return randomBytes(32).toString("base64url");
}

/** Client options: a private subchannel pool (its own connection and handshake), names checked against `localhost`. */
export const TLS_CLIENT_OPTIONS: grpc.ChannelOptions = { "grpc.use_local_subchannel_pool": 1, "grpc.ssl_target_name_override": "localhost" };

export function tlsCredentials(certs: TestCerts, opts: { cert?: KeyPair; token?: string } = {}): grpc.ChannelCredentials {
  const channel = grpc.credentials.createSsl(certs.serverCa.cert, opts.cert?.key ?? null, opts.cert?.cert ?? null);
  if (opts.token === undefined) return channel;
  const token = opts.token;
  return grpc.credentials.combineChannelCredentials(
    channel,
    grpc.credentials.createFromMetadataGenerator((_params, cb) => {
      const md = new grpc.Metadata();
      md.set("authorization", `Bearer ${token}`);
      cb(null, md);
    }),
  );
}

export function makeAuthFixture(): AuthFixture {
  const certs = makeTestCerts();
  const roleTokens = Object.fromEntries(ROLES.map((r) => [r, newToken()])) as Record<Role, string>;
  const adminToken = newToken();
  const principals: PrincipalSpec[] = [
    ...ROLES.map((r) => ({ name: `role-${r}`, roles: [r], scopes: ["*"], token_sha256: [tokenDigestHex(roleTokens[r])] })),
    {
      name: "admin",
      roles: ["minter", "transferer", "reader", "reconciler"],
      scopes: ["*"],
      certificate_identities: ["URI:spiffe://mint.test/admin"],
      token_sha256: [tokenDigestHex(adminToken)],
    },
    { name: "treasury-app", roles: ["minter", "transferer", "reader", "reconciler"], scopes: ["treasury:*"], certificate_identities: ["DNS:treasury.internal"] },
  ];
  const authFile = path.join(certs.dir, "auth.json");
  const writeAuthFile = (list: readonly PrincipalSpec[]): void => writeFileSync(authFile, JSON.stringify({ principals: list }, null, 2));
  writeAuthFile(principals);
  return {
    certs,
    authFile,
    env: { MINT_TLS_CERT: certs.server.certFile, MINT_TLS_KEY: certs.server.keyFile, MINT_TLS_CLIENT_CA: certs.clientCa.certFile, MINT_AUTH_FILE: authFile },
    roleTokens,
    adminToken,
    treasuryCert: certs.client("treasury-app", "DNS:treasury.internal"),
    adminCert: certs.client("admin", "URI:spiffe://mint.test/admin"),
    strangerCert: certs.client("stranger", "URI:spiffe://mint.test/stranger"),
    expiredCert: certs.client("expired-admin", "URI:spiffe://mint.test/admin", { expired: true }),
    rogueCert: certs.client("rogue-admin", "URI:spiffe://mint.test/admin", { ca: certs.rogueCa }),
    writeAuthFile,
    principals,
    client: (address, opts = {}) => new MintServiceClient(address, tlsCredentials(certs, opts), TLS_CLIENT_OPTIONS),
    remove: () => certs.remove(),
  };
}
