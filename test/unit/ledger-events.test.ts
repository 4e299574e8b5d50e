/**
 * Cursors (opaque, epoch-carrying, refused when malformed) and what a stream
 * sends: filters by kind and account, and the caller's scopes.
 */
import { describe, expect, it } from "vitest";
import type { Principal } from "../../src/domain/authorization.js";
import { comparePositions, decodeCursor, encodeCursor, eventPasses, type LedgerEvent } from "../../src/domain/ledger-events.js";

const b64 = (s: string): string => Buffer.from(s, "utf8").toString("base64url");

describe("cursors", () => {
  it("round-trip a position and its epoch", () => {
    const c = encodeCursor("5d6c-epoch", { a: 9_007_199_254_740_993n, b: 7n });
    expect(decodeCursor(c)).toEqual({ ok: true, epoch: "5d6c-epoch", position: { a: 9_007_199_254_740_993n, b: 7n } });
  });

  it.each([
    ["empty", ""],
    ["not base64url", "a+b/c="],
    ["too long", "A".repeat(201)],
    ["another version", b64("2|e|1|0")],
    ["missing a part", b64("1|e|1")],
    ["an extra part", b64("1|e|1|0|9")],
    ["a bad epoch", b64("1|e p|1|0")],
    ["a negative number", b64("1|e|-1|0")],
    ["a leading zero", b64("1|e|01|0")],
    ["past 2^63", b64("1|e|9223372036854775808|0")],
    ["not a number", b64("1|e|x|0")],
  ])("refuse %s", (_what, cursor) => {
    expect(decodeCursor(cursor)).toEqual({ ok: false });
  });

  it("order positions by (a, b)", () => {
    expect(comparePositions({ a: 1n, b: 9n }, { a: 2n, b: 0n })).toBe(-1);
    expect(comparePositions({ a: 2n, b: 1n }, { a: 2n, b: 0n })).toBe(1);
    expect(comparePositions({ a: 2n, b: 1n }, { a: 2n, b: 1n })).toBe(0);
  });
});

describe("what a stream sends", () => {
  const ev = (kind: LedgerEvent["kind"], accounts: string[]): LedgerEvent => ({ kind, accounts, timeMs: 0, data: {}, position: { a: 1n, b: 0n }, id: "e" });
  const reader = (scopes: string[]): Principal => ({ name: "r", roles: new Set(["reader" as const]), scopes });

  it("filters by kind and by account", () => {
    const f = { accounts: new Set(["alice"]), kinds: new Set(["TRANSFER" as const]), principal: null };
    expect(eventPasses(ev("TRANSFER", ["bob", "alice"]), f)).toBe(true);
    expect(eventPasses(ev("TRANSFER", ["bob", "carol"]), f)).toBe(false);
    expect(eventPasses(ev("MINT_CREATED", ["alice"]), f)).toBe(false);
  });

  it("shows a scoped reader its accounts' events only, and events of no account only with *", () => {
    const scoped = { accounts: null, kinds: null, principal: reader(["treasury:*"]) };
    expect(eventPasses(ev("MINT_COMPLETED", ["treasury:ops"]), scoped)).toBe(true);
    expect(eventPasses(ev("TRANSFER", ["bob", "treasury:ops"]), scoped)).toBe(true);
    expect(eventPasses(ev("MINT_COMPLETED", ["bob"]), scoped)).toBe(false);
    expect(eventPasses(ev("RESERVE_SET", []), scoped)).toBe(false);
    expect(eventPasses(ev("RESERVE_SET", []), { accounts: null, kinds: null, principal: reader(["*"]) })).toBe(true);
  });
});
