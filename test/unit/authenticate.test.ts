/** Authentication from a verified certificate's identities and/or a bearer token. */
import { describe, expect, it } from "vitest";
import { authenticate, Directory, MAX_TOKEN_CHARS, tokenDigestHex } from "../../src/auth/authenticate.js";
import { parsePrincipalsFile } from "../../src/auth/principals-file.js";

const PAY_TOKEN = "pay_4Jq9xW2mZr7Lk1Vb8Tn3Yc6Hd0Fs5Ga";
const OPS_TOKEN = "ops_Qw3Er5Ty7Ui9Op1As3Df5Gh7Jk9Lz2Xc";
const OLD_TOKEN = "old_Mn8Bv6Cx4Za2Sd0Fg8Hj6Kl4Qw2Er0Ty";

const directory = new Directory(
  parsePrincipalsFile(
    JSON.stringify({
      principals: [
        {
          name: "payments-api",
          roles: ["minter"],
          scopes: ["treasury:*"],
          certificate_identities: ["URI:spiffe://mint.example/payments-api", "DNS:payments.internal"],
          token_sha256: [tokenDigestHex(PAY_TOKEN), tokenDigestHex(OLD_TOKEN)],
        },
        { name: "ops", roles: ["reconciler"], scopes: ["*"], certificate_identities: ["DNS:ops.internal"], token_sha256: [tokenDigestHex(OPS_TOKEN)] },
      ],
    }),
    "test",
  ),
);

function who(creds: Parameters<typeof authenticate>[1]): string {
  const r = authenticate(directory, creds);
  return r.ok ? r.principal.name : r.reason;
}

describe("authenticate", () => {
  it("nothing presented: NO_CREDENTIALS", () => {
    const r = authenticate(directory, {});
    expect(r).toMatchObject({ ok: false, code: "UNAUTHENTICATED", reason: "NO_CREDENTIALS" });
  });

  it("a bearer token names its principal; every token of a principal works", () => {
    expect(who({ authorization: `Bearer ${PAY_TOKEN}` })).toBe("payments-api");
    expect(who({ authorization: `Bearer ${OLD_TOKEN}` })).toBe("payments-api");
    expect(who({ authorization: `bearer ${OPS_TOKEN}` })).toBe("ops");
  });

  it.each([
    ["an unknown token", `Bearer ${PAY_TOKEN}x`, "INVALID_TOKEN"],
    ["a token one character short", `Bearer ${PAY_TOKEN.slice(0, -1)}`, "INVALID_TOKEN"],
    ["the digest instead of the token", `Bearer ${tokenDigestHex(PAY_TOKEN)}`, "INVALID_TOKEN"],
    ["another scheme", `Basic ${PAY_TOKEN}`, "MALFORMED_AUTHORIZATION"],
    ["no token", "Bearer ", "MALFORMED_AUTHORIZATION"],
    ["two spaces", `Bearer  ${PAY_TOKEN}`, "MALFORMED_AUTHORIZATION"],
    ["a bare token", PAY_TOKEN, "MALFORMED_AUTHORIZATION"],
    ["a token with a space", `Bearer ${PAY_TOKEN} x`, "MALFORMED_AUTHORIZATION"],
    ["an empty value", "", "MALFORMED_AUTHORIZATION"],
    ["a token one character over the limit", `Bearer ${"a".repeat(MAX_TOKEN_CHARS + 1)}`, "MALFORMED_AUTHORIZATION"],
    ["an overlong value", `Bearer ${"a".repeat(4 * MAX_TOKEN_CHARS)}`, "MALFORMED_AUTHORIZATION"],
  ])("refuses %s", (_what, authorization, reason) => {
    expect(who({ authorization })).toBe(reason);
  });

  it("the 1024-character limit is the token's, not the metadata value's: tokens of 1018 to 1024 characters work", () => {
    expect(MAX_TOKEN_CHARS).toBe(1024);
    for (const length of [1017, 1018, 1020, 1024]) {
      const token = "t".repeat(length);
      const own = new Directory(
        parsePrincipalsFile(JSON.stringify({ principals: [{ name: "long", roles: ["reader"], token_sha256: [tokenDigestHex(token)] }] }), "t"),
      );
      const r = authenticate(own, { authorization: `Bearer ${token}` });
      expect(r.ok ? r.principal.name : r.reason, `a ${length}-character token`).toBe("long");
    }
  });

  it("messages never contain the token or its digest", () => {
    for (const authorization of [`Bearer ${PAY_TOKEN}x`, `Basic ${PAY_TOKEN}`, `Bearer ${"a".repeat(2000)}`]) {
      const r = authenticate(directory, { authorization });
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.message).not.toContain(PAY_TOKEN);
        expect(r.message).not.toContain("aaaa");
        expect(r.message).not.toContain(tokenDigestHex(PAY_TOKEN));
      }
    }
  });

  it("a verified certificate names its principal by any SAN entry", () => {
    expect(who({ verifiedCertificateSans: "URI:spiffe://mint.example/payments-api" })).toBe("payments-api");
    expect(who({ verifiedCertificateSans: "DNS:other.internal, DNS:payments.internal" })).toBe("payments-api");
    expect(who({ verifiedCertificateSans: "DNS:ops.internal" })).toBe("ops");
  });

  it.each([
    ["a name nobody has", "DNS:stranger.internal"],
    ["a near miss", "DNS:payments.internal.evil"],
    ["a URI prefix", "URI:spiffe://mint.example/payments-api/x"],
    ["the wrong SAN type", "URI:payments.internal"],
    ["a quoted entry", 'URI:"spiffe://mint.example/payments-api"'],
    ["identities of two principals", "DNS:payments.internal, DNS:ops.internal"],
    ["no SAN at all", ""],
  ])("refuses a verified certificate with %s: UNKNOWN_CERTIFICATE", (_what, sans) => {
    expect(who({ verifiedCertificateSans: sans })).toBe("UNKNOWN_CERTIFICATE");
  });

  it("certificate and token of the same principal: that principal", () => {
    expect(who({ verifiedCertificateSans: "DNS:payments.internal", authorization: `Bearer ${PAY_TOKEN}` })).toBe("payments-api");
  });

  it("certificate and token of different principals: CONFLICTING_CREDENTIALS", () => {
    expect(who({ verifiedCertificateSans: "DNS:payments.internal", authorization: `Bearer ${OPS_TOKEN}` })).toBe("CONFLICTING_CREDENTIALS");
  });

  it("a bad token is refused even beside a good certificate", () => {
    expect(who({ verifiedCertificateSans: "DNS:payments.internal", authorization: "Bearer nope" })).toBe("INVALID_TOKEN");
  });

  it("a valid token beside a certificate that names nobody: the token's principal", () => {
    expect(who({ verifiedCertificateSans: "DNS:stranger.internal", authorization: `Bearer ${OPS_TOKEN}` })).toBe("ops");
  });

  it("an empty directory authenticates nobody", () => {
    const empty = new Directory(parsePrincipalsFile("principals: []", "t"));
    expect(authenticate(empty, { authorization: `Bearer ${PAY_TOKEN}` })).toMatchObject({ ok: false, reason: "INVALID_TOKEN" });
    expect(empty.principalCount).toBe(0);
    expect(directory.principalCount).toBe(2);
  });

  it("SHA-256 hex is what the file stores", () => {
    expect(tokenDigestHex("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });
});
