import { createHmac } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodePageToken, encodePageToken } from "../../src/domain/page-token.js";

const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** A token in the same layout as ours but signed with another key: what another service (or a forger) would issue. */
function foreignToken(afterSeq: number, accountId: string, key = "some.other.service"): string {
  const body = `1:${afterSeq}:${accountId}`;
  const tag = createHmac("sha256", key).update(body).digest().subarray(0, 12);
  return Buffer.concat([tag, Buffer.from(body, "utf8")]).toString("base64url");
}

describe("page tokens", () => {
  it("round-trip the position for the account filter they were issued for", () => {
    expect(decodePageToken(encodePageToken(5, "acct-a"), "acct-a")).toBe(5);
    expect(decodePageToken(encodePageToken(0, ""), "")).toBe(0);
    expect(decodePageToken(encodePageToken(999_999_999_999_999, "a:b@c"), "a:b@c")).toBe(999_999_999_999_999);
  });

  it("are opaque url-safe strings", () => {
    expect(encodePageToken(42, "acct-a")).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(encodePageToken(42, "acct-a")).not.toContain("acct-a");
  });

  it("are refused for another account filter (other account, all accounts, a prefix)", () => {
    const t = encodePageToken(7, "acct-a");
    expect(decodePageToken(t, "acct-b")).toBeNull();
    expect(decodePageToken(t, "")).toBeNull();
    expect(decodePageToken(t, "acct-")).toBeNull();
    expect(decodePageToken(t, "acct-aa")).toBeNull();
    expect(decodePageToken(encodePageToken(7, ""), "acct-a")).toBeNull();
  });

  it("are refused when signed by anyone else", () => {
    expect(decodePageToken(foreignToken(7, "acct-a"), "acct-a")).toBeNull();
    expect(decodePageToken(foreignToken(0, ""), "")).toBeNull();
  });

  it.each([
    ["empty", ""],
    ["garbage", "hello"],
    ["standard base64 characters", "ab+/cd=="],
    ["padding", encodePageToken(1, "a") + "="],
    ["spaces", " " + encodePageToken(1, "a")],
    ["very long", "A".repeat(100_000)],
    ["only a tag's worth of bytes", "A".repeat(16)],
    ["unicode", "\u00e9\u00e9\u00e9"],
  ])("refuse %s", (_name, token) => {
    expect(decodePageToken(token, "a")).toBeNull();
    expect(decodePageToken(token, "")).toBeNull();
  });

  it("refuse every single-character change (tampering with tag, seq or account)", () => {
    for (const [seq, account] of [
      [5, "acct"],
      [12, "acct-a"],
      [123, "ab"],
      [1, ""],
    ] as const) {
      const t = encodePageToken(seq, account);
      for (let i = 0; i < t.length; i++) {
        for (const c of BASE64URL) {
          if (c === t[i]) continue;
          const tampered = t.slice(0, i) + c + t.slice(i + 1);
          expect(decodePageToken(tampered, account), `position ${i} -> ${c} of ${t}`).toBeNull();
        }
      }
    }
  });

  it("refuse tokens with characters appended or removed", () => {
    // Whatever the token's length modulo 4, an appended character must not be ignored.
    for (const account of ["", "a", "ab", "abc", "abcd", "acct-alice"]) {
      const t = encodePageToken(3, account);
      for (const c of ["A", "Q", "g", "w", "AA", "AAA", "AAAA"]) expect(decodePageToken(t + c, account), `${t}+${c}`).toBeNull();
      expect(decodePageToken(t.slice(0, -1), account)).toBeNull();
      expect(decodePageToken(t.slice(1), account)).toBeNull();
    }
  });

  it("never throw and accept only what we issued (random strings)", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.stringMatching(/^[A-Za-z0-9_-]{0,80}$/)), fc.constantFrom("", "acct-a"), (token, account) => {
        expect(decodePageToken(token, account)).toBeNull();
      }),
      { numRuns: 500 },
    );
  });

  it("round-trip any seq and account (property)", () => {
    fc.assert(
      fc.property(fc.nat({ max: Number.MAX_SAFE_INTEGER }), fc.stringMatching(/^([A-Za-z0-9][A-Za-z0-9._:@-]{0,127})?$/), (seq, account) => {
        fc.pre(String(seq).length <= 15);
        expect(decodePageToken(encodePageToken(seq, account), account)).toBe(seq);
      }),
      { numRuns: 300 },
    );
  });
});
