/**
 * Authentication: turns what a call presents — the identity of a verified
 * client certificate, a bearer token — into a principal, or UNAUTHENTICATED.
 * Pure functions over one loaded principals file (a `Directory`); the SIGHUP
 * reload swaps the directory, so a call in flight keeps the principal it was
 * given and the next call sees the new file.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { Principal } from "../domain/authorization.js";
import type { PrincipalsFile } from "./principals-file.js";

/** Longest bearer token accepted; a longer one is refused before hashing (bounds the work). */
export const MAX_TOKEN_CHARS = 1024;
/** `Bearer ` before the token: the longest `authorization` value looked at is the longest token plus this. */
const SCHEME_CHARS = "Bearer ".length;
/** RFC 6750 b64token after `Bearer ` (case-insensitive scheme, one space). */
const BEARER = /^Bearer ([A-Za-z0-9._~+/-]+=*)$/i;

export type UnauthenticatedReason =
  /** Neither a verified client certificate nor a bearer token. */
  | "NO_CREDENTIALS"
  /** `authorization` metadata that is not `Bearer <token>`. */
  | "MALFORMED_AUTHORIZATION"
  /** A bearer token no principal holds. */
  | "INVALID_TOKEN"
  /** A verified certificate whose identities name no principal (or more than one). */
  | "UNKNOWN_CERTIFICATE"
  /** A certificate and a token that name different principals. */
  | "CONFLICTING_CREDENTIALS"
  /** An `x-mint-dev-principal` header (tests and demos only) naming a reserved principal or no valid name. */
  | "INVALID_DEV_PRINCIPAL";

export type AuthnResult =
  | { readonly ok: true; readonly principal: Principal }
  | { readonly ok: false; readonly code: "UNAUTHENTICATED"; readonly reason: UnauthenticatedReason; readonly message: string };

/** What a call presents. Both absent means an anonymous caller. */
export interface Credentials {
  /**
   * `subjectaltname` of the client certificate, as Node prints it
   * (`DNS:a, URI:spiffe://b`), only when TLS verified the certificate against
   * the client CA; undefined for no certificate or an unverified one.
   */
  readonly verifiedCertificateSans?: string | undefined;
  /** The `authorization` metadata value, if any. */
  readonly authorization?: string | undefined;
}

/** One principals file, indexed for authentication. */
export class Directory {
  private readonly byIdentity = new Map<string, Principal>();
  private readonly digests: Buffer[] = [];
  private readonly digestOwners: Principal[] = [];

  constructor(file: PrincipalsFile) {
    this.principalCount = file.entries.length;
    for (const e of file.entries) {
      for (const id of e.certificateIdentities) this.byIdentity.set(id, e.principal);
      for (const d of e.tokenDigests) {
        this.digests.push(d);
        this.digestOwners.push(e.principal);
      }
    }
  }

  /** How many principals the file defines (for the start and reload log lines). */
  readonly principalCount: number;

  /**
   * The principal whose token digest equals SHA-256(token). Every stored
   * digest is compared with `timingSafeEqual` and the scan never stops early,
   * so the time taken says nothing about which digest, or how much of one,
   * matched. The scan is linear: the file holds at most MAX_PRINCIPALS × 16
   * digests, and a few hundred 32-byte comparisons cost less than the hash.
   */
  byToken(token: string): Principal | undefined {
    const digest = createHash("sha256").update(token, "utf8").digest();
    let found: Principal | undefined;
    for (let i = 0; i < this.digests.length; i++) {
      if (timingSafeEqual(digest, this.digests[i] as Buffer)) found = this.digestOwners[i];
    }
    return found;
  }

  /** The one principal the certificate's SAN entries name; undefined for none or several. */
  byCertificate(sans: string): Principal | undefined {
    let found: Principal | undefined;
    for (const san of splitSans(sans)) {
      const p = this.byIdentity.get(san);
      if (p === undefined) continue;
      if (found !== undefined && found !== p) return undefined;
      found = p;
    }
    return found;
  }
}

/**
 * Node prints subjectAltName as `DNS:a, URI:b`; entries holding a comma or a
 * quote are printed JSON-quoted (`URI:"a,b"`). The auth file cannot name such
 * identities (IDENTITY refuses commas), so quoted entries are skipped rather
 * than parsed.
 */
function splitSans(sans: string): string[] {
  return sans.split(", ").filter((s) => !s.includes('"'));
}

const NO_CREDENTIALS: AuthnResult = Object.freeze({
  ok: false,
  code: "UNAUTHENTICATED",
  reason: "NO_CREDENTIALS",
  message: "no verified client certificate and no bearer token; present a certificate signed by the client CA or `authorization: Bearer <token>`",
});

function refuse(reason: UnauthenticatedReason, message: string): AuthnResult {
  return { ok: false, code: "UNAUTHENTICATED", reason, message };
}

/**
 * Decides who is calling. A token, when present, must be valid (a caller
 * sending a wrong token has a bug worth hearing about even if its certificate
 * is good); a certificate and a token must not name different principals.
 * Messages never contain the token or its digest.
 */
export function authenticate(directory: Directory, creds: Credentials): AuthnResult {
  let byToken: Principal | undefined;
  if (creds.authorization !== undefined) {
    // Checked before the pattern, so no regular expression runs over an unbounded value; with
    // the scheme's one space a value of this length holds a token of at most MAX_TOKEN_CHARS.
    if (creds.authorization.length > MAX_TOKEN_CHARS + SCHEME_CHARS) {
      return refuse("MALFORMED_AUTHORIZATION", `bearer token longer than ${MAX_TOKEN_CHARS} characters`);
    }
    const m = BEARER.exec(creds.authorization);
    if (m === null) return refuse("MALFORMED_AUTHORIZATION", "authorization metadata must be `Bearer <token>`");
    byToken = directory.byToken(m[1] as string);
    if (byToken === undefined) return refuse("INVALID_TOKEN", "the bearer token is not valid (unknown, revoked or mistyped)");
  }
  let byCert: Principal | undefined;
  if (creds.verifiedCertificateSans !== undefined) {
    byCert = directory.byCertificate(creds.verifiedCertificateSans);
    // With a valid token, a certificate that names nobody is no refusal: the token
    // identifies the caller and the certificate only secured the channel.
    if (byCert === undefined && byToken === undefined) {
      return refuse("UNKNOWN_CERTIFICATE", "the client certificate is valid but its identities (SAN URI or DNS) name no principal");
    }
  }
  if (byToken !== undefined && byCert !== undefined && byToken !== byCert) {
    return refuse("CONFLICTING_CREDENTIALS", "the client certificate and the bearer token belong to different principals");
  }
  const principal = byToken ?? byCert;
  return principal === undefined ? NO_CREDENTIALS : { ok: true, principal };
}

/** SHA-256 hex of a token: what the auth file stores. */
export function tokenDigestHex(token: string): string {
  return createHash("sha256").update(token, "utf8").digest("hex");
}
