/** The auth file: every field's negative space, one line naming the bad entry, YAML and JSON. */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { AuthFileError, loadPrincipalsFile, MAX_AUTH_FILE_BYTES, parsePrincipalsFile } from "../../src/auth/principals-file.js";
import { tokenDigestHex } from "../../src/auth/authenticate.js";

const DIGEST = tokenDigestHex("token-of-payments-api-0123456789abcdef");
const GOOD_YAML = `
principals:
  - name: payments-api
    roles: [minter, reader]
    scopes: ["treasury:*"]
    certificate_identities: ["URI:spiffe://mint.example/payments-api", "DNS:payments.internal"]
    token_sha256: ["${DIGEST}"]
  - name: ops
    roles: [reconciler]
    scopes: ["*"]
    token_sha256: ["${"b".repeat(64)}"]
`;

function fails(text: string): string {
  try {
    parsePrincipalsFile(text, "auth.yaml");
  } catch (err) {
    expect(err).toBeInstanceOf(AuthFileError);
    const message = (err as Error).message;
    expect(message).not.toContain("\n");
    return message;
  }
  throw new Error("expected the file to be refused");
}

function withEntry(entry: Record<string, unknown>): string {
  return JSON.stringify({ principals: [{ name: "ok", roles: ["reader"], token_sha256: ["a".repeat(64)] }, entry] });
}

describe("principals file", () => {
  it("reads YAML", () => {
    const f = parsePrincipalsFile(GOOD_YAML, "auth.yaml");
    expect(f.entries.map((e) => e.principal.name)).toEqual(["payments-api", "ops"]);
    const p = f.entries[0]!;
    expect([...p.principal.roles]).toEqual(["minter", "reader"]);
    expect(p.principal.scopes).toEqual(["treasury:*"]);
    expect(p.certificateIdentities).toEqual(["URI:spiffe://mint.example/payments-api", "DNS:payments.internal"]);
    expect(p.tokenDigests.map((d) => d.toString("hex"))).toEqual([DIGEST]);
  });

  it("reads JSON (and the file from disk)", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "auth-file-"));
    const file = path.join(dir, "auth.json");
    writeFileSync(file, JSON.stringify({ principals: [{ name: "reader-1", roles: ["reader"], scopes: ["alice"], token_sha256: [DIGEST] }] }));
    expect(loadPrincipalsFile(file).entries[0]!.principal.name).toBe("reader-1");
  });

  it("an empty list is valid (nobody may call)", () => {
    expect(parsePrincipalsFile("principals: []", "f").entries).toEqual([]);
  });

  it("refuses a missing file, naming it", () => {
    expect(() => loadPrincipalsFile(path.join(tmpdir(), "auth.missing"))).toThrow(/auth\.missing: cannot read: ENOENT/);
  });

  it("refuses a file above the size cap", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "auth-file-"));
    const file = path.join(dir, "big.yaml");
    writeFileSync(file, "#".repeat(MAX_AUTH_FILE_BYTES + 1));
    expect(() => loadPrincipalsFile(file)).toThrow(/larger than/);
  });

  it.each<[string, string, RegExp]>([
    ["not YAML", "principals: [", /auth\.yaml: not valid YAML or JSON/],
    ["no principals key", "users: []", /expected a top-level "principals" list/],
    ["principals not a list", "principals: {a: 1}", /expected a top-level "principals" list/],
    ["an extra top-level key", "principals: []\nextra: 1", /unknown top-level key "extra"/],
    ["a duplicate key", "principals: []\nprincipals: []", /not valid YAML or JSON/],
    ["an entry that is not a mapping", "principals: [3]", /principals\[0\]: expected a mapping/],
  ])("refuses %s", (_what, text, re) => {
    expect(fails(text)).toMatch(re);
  });

  it.each<[string, Record<string, unknown>, RegExp]>([
    ["an unknown key", { name: "x", roles: ["reader"], token_sha256: ["a".repeat(64)], role: "minter" }, /principals\[1\] \("x"\): unknown key "role"/],
    ["no name", { roles: ["reader"], token_sha256: ["c".repeat(64)] }, /principals\[1\]: name must match/],
    ["a bad name", { name: "a b", roles: ["reader"], token_sha256: ["c".repeat(64)] }, /principals\[1\] \("a b"\): name must match/],
    ["a duplicate name", { name: "ok", roles: ["reader"], token_sha256: ["c".repeat(64)] }, /"ok" is defined twice/],
    ["the internal settlement-worker", { name: "settlement-worker", roles: ["reader"], token_sha256: ["c".repeat(64)] }, /reserved for the service itself/],
    ["the internal sweeper", { name: "sweeper", roles: ["reader"], token_sha256: ["c".repeat(64)] }, /reserved/],
    ["the name local", { name: "local", roles: ["reader"], token_sha256: ["c".repeat(64)] }, /reserved/],
    ["no roles", { name: "x", token_sha256: ["c".repeat(64)] }, /\("x"\): roles is required/],
    ["empty roles", { name: "x", roles: [], token_sha256: ["c".repeat(64)] }, /roles must name at least one role/],
    ["roles not a list", { name: "x", roles: "minter", token_sha256: ["c".repeat(64)] }, /roles must be a list of strings/],
    ["an unknown role", { name: "x", roles: ["reader", "mintr"], token_sha256: ["c".repeat(64)] }, /roles\[1\] "mintr" is not a role \(minter, transferer/],
    ["an internal principal as a role", { name: "x", roles: ["sweeper"], token_sha256: ["c".repeat(64)] }, /roles\[0\] "sweeper" is not a role/],
    ["a role twice", { name: "x", roles: ["reader", "reader"], token_sha256: ["c".repeat(64)] }, /roles\[1\] "reader" is listed twice/],
    ["a non-string role", { name: "x", roles: [1], token_sha256: ["c".repeat(64)] }, /roles\[0\] must be a string/],
    ["a bad scope", { name: "x", roles: ["reader"], scopes: ["treasury*x"], token_sha256: ["c".repeat(64)] }, /scopes\[0\] "treasury\*x" is not an account id/],
    ["no credentials", { name: "x", roles: ["reader"] }, /needs certificate_identities or token_sha256/],
    ["a bad identity", { name: "x", roles: ["reader"], certificate_identities: ["spiffe://x"] }, /certificate_identities\[0\] "spiffe:\/\/x" must be URI:<uri> or DNS:<host name>/],
    ["an identity with a comma", { name: "x", roles: ["reader"], certificate_identities: ["URI:a:b,c"] }, /must be URI:<uri>/],
    ["an identity twice", { name: "x", roles: ["reader"], certificate_identities: ["DNS:a.b", "DNS:a.b"] }, /certificate_identities\[1\] "DNS:a\.b" is already "x"'s/],
    ["a token digest of another principal", { name: "x", roles: ["reader"], token_sha256: ["a".repeat(64)] }, /token_sha256\[0\] is already "ok"'s/],
    ["too many tokens", { name: "x", roles: ["reader"], token_sha256: Array.from({ length: 17 }, (_, i) => i.toString(16).padStart(64, "0")) }, /at most 16/],
  ])("refuses %s, naming the entry", (_what, entry, re) => {
    expect(fails(withEntry(entry))).toMatch(re);
  });

  it("refuses a token in place of its digest without echoing it", () => {
    const secret = "s3cr3t-t0ken-that-must-not-be-logged";
    const message = fails(withEntry({ name: "x", roles: ["reader"], token_sha256: [secret] }));
    expect(message).toMatch(/token_sha256\[0\] must be 64 lowercase hex digits/);
    expect(message).not.toContain(secret);
  });

  it("refuses uppercase hex (one spelling per digest, so duplicates are caught)", () => {
    expect(fails(withEntry({ name: "x", roles: ["reader"], token_sha256: ["A".repeat(64)] }))).toMatch(/lowercase hex/);
  });

  it("bounds alias expansion (a billion-laughs file is refused, not expanded)", () => {
    const lines = ["a: &a [x,x,x,x,x,x,x,x,x]"];
    for (let i = 0; i < 8; i++) {
      const name = String.fromCharCode(98 + i);
      const prev = String.fromCharCode(97 + i);
      lines.push(`${name}: &${name} [${Array(9).fill(`*${prev}`).join(",")}]`);
    }
    lines.push("principals: []");
    expect(fails(lines.join("\n"))).toMatch(/not valid YAML or JSON: Excessive alias count/);
  });
});
