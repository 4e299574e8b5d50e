import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BLOCKCHAINS } from "../../src/domain/model.js";
import type { Result } from "../../src/domain/result.js";
import * as v from "../../src/domain/validate.js";

function expectInvalid<T>(r: Result<T>, reason: string, field: string): void {
  expect(r.ok).toBe(false);
  if (r.ok) return;
  expect(r.error).toMatchObject({ code: "INVALID_ARGUMENT", reason, field });
  if (r.error.code === "INVALID_ARGUMENT") expect(r.error.message).toContain(field);
}

const ACCOUNT_ID = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;

describe("accountId", () => {
  it.each(["a", "Z", "0", "acct-alice", "user@example.com", "org:team.1_x-y", "A".repeat(128), "9._:@-"])("accepts %j", (id) => {
    expect(v.accountId(id)).toEqual({ ok: true, value: id });
  });

  it.each([
    ["empty", ""],
    ["129 characters", "A".repeat(129)],
    ["leading dot", ".a"],
    ["leading dash", "-a"],
    ["leading underscore", "_a"],
    ["leading at", "@a"],
    ["space", "a b"],
    ["leading space", " a"],
    ["trailing newline", "a\n"],
    ["slash", "a/b"],
    ["non-ASCII letter", "caf\u00e9"],
    ["full-width letter", "\uff41"],
    ["emoji", "a\u{1f600}"],
    ["NUL", "a\u0000"],
    ["plus", "a+b"],
  ])("refuses %s", (_name, id) => {
    expectInvalid(v.accountId(id), "INVALID_ACCOUNT_ID", "account_id");
  });

  it("says the field is required when empty", () => {
    const r = v.accountId("");
    expect(!r.ok && r.error.code === "INVALID_ARGUMENT" && r.error.message).toMatch(/required/);
  });

  it("names the field it is given", () => {
    expectInvalid(v.accountId("", "from_account_id"), "INVALID_ACCOUNT_ID", "from_account_id");
    expectInvalid(v.accountId("!", "to_account_id"), "INVALID_ACCOUNT_ID", "to_account_id");
  });

  it("agrees with API.md's pattern on random strings", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 140 }), fc.stringMatching(/^[A-Za-z0-9._:@ -]{0,130}$/)), (s) => {
        expect(v.accountId(s).ok).toBe(ACCOUNT_ID.test(s));
      }),
      { numRuns: 500 },
    );
  });
});

describe("idempotencyKey", () => {
  it.each(["k", " ", "~", "key with spaces", "!\"#$%&'()*+,-./", "x".repeat(255)])("accepts %j", (key) => {
    expect(v.idempotencyKey(key)).toEqual({ ok: true, value: key });
  });

  it.each([
    ["empty", ""],
    ["256 characters", "x".repeat(256)],
    ["newline", "a\nb"],
    ["tab", "a\tb"],
    ["DEL", "a\u007f"],
    ["NUL", "\u0000"],
    ["non-ASCII", "cl\u00e9"],
    ["emoji", "\u{1f511}"],
  ])("refuses %s", (_name, key) => {
    expectInvalid(v.idempotencyKey(key), "INVALID_IDEMPOTENCY_KEY", "idempotency_key");
  });

  it("agrees with '1 to 255 printable ASCII characters' on random strings", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: "binary-ascii", maxLength: 260 })), (s) => {
        const printable = s.length >= 1 && s.length <= 255 && [...s].every((c) => c >= " " && c <= "~");
        expect(v.idempotencyKey(s).ok).toBe(printable);
      }),
      { numRuns: 500 },
    );
  });
});

describe("blockchain", () => {
  it.each([...BLOCKCHAINS])("accepts %s", (name) => {
    expect(v.blockchain(name)).toEqual({ ok: true, value: name });
  });

  it("knows the nine chains of API.md", () => {
    expect([...BLOCKCHAINS].sort()).toEqual(
      ["ARBITRUM", "AVALANCHE", "BASE", "ETHEREUM", "NOBLE", "OPTIMISM", "POLYGON", "SOLANA", "STELLAR"],
    );
  });

  it.each(["", "UNSPECIFIED", "BLOCKCHAIN_UNSPECIFIED", "BLOCKCHAIN_ETHEREUM", "ethereum", "BITCOIN", " ETHEREUM", "0"])("refuses %j", (name) => {
    expectInvalid(v.blockchain(name), "INVALID_BLOCKCHAIN", "blockchain");
  });

  it("does not accept Object.prototype names", () => {
    for (const name of ["constructor", "toString", "__proto__", "hasOwnProperty"]) expect(v.blockchain(name).ok).toBe(false);
  });
});

describe("mintId", () => {
  it.each(["mint_0123456789ABCDEFGHJKMNPQRS", "mint_x", "mint_" + "x".repeat(59)])("accepts %j", (id) => {
    expect(v.mintId(id).ok).toBe(true);
  });

  // Without the `mint_` prefix an id cannot be a mint's: INVALID_ARGUMENT, not NOT_FOUND (API.md's error table).
  it.each(["", "mint_" + "x".repeat(60), "mint-1", "mint 1", "../etc", "mint_\u00e9", "1;DROP", "m", "xyz", "x".repeat(64), "mint_", "MINT_0123456789ABCDEFGHJKMNPQRS", "xfr_0123456789ABCDEFGHJKMNPQRS", "rdm_0123456789ABCDEFGHJKMNPQRS"])("refuses %j", (id) => {
    expectInvalid(v.mintId(id), "INVALID_MINT_ID", "mint_id");
  });
});

describe("reason", () => {
  it("accepts empty, ordinary text, non-ASCII, and exactly REASON_MAX_CHARS characters", () => {
    for (const r of ["", "chain reorg", "r\u00e9org \u{1f4a5}", "x".repeat(v.REASON_MAX_CHARS)]) {
      expect(v.reason(r)).toEqual({ ok: true, value: r });
    }
  });

  it("refuses one character more than REASON_MAX_CHARS", () => {
    expectInvalid(v.reason("x".repeat(v.REASON_MAX_CHARS + 1)), "INVALID_REASON", "reason");
  });

  // API.md: "no control characters": tab and line breaks included.
  it.each(["\u0000", "a\u0007b", "\u001b[31mred", "\u007f", "\u0008", "a\tb", "line\nbreak", "cr\r", "\u001f"])("refuses control characters (%j)", (r) => {
    expectInvalid(v.reason(r), "INVALID_REASON", "reason");
  });
});
