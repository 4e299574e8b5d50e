// The SDK's pure parts: money helpers, UUIDv7, address expansion and the retry rules, rule by rule.
import { describe, expect, it } from "vitest";
import * as grpc from "@grpc/grpc-js";
import fc from "fast-check";
import { formatMicros, MICROS_PER_USDC as SERVER_MICROS_PER_USDC } from "../../src/domain/money.js";
import { createMintClient } from "../../packages/client/src/client.js";
import { expandTargets, isLoopbackTarget } from "../../packages/client/src/endpoints.js";
import { MintServiceError, type MintServiceErrorInit } from "../../packages/client/src/errors.js";
import { fromMicros, MICROS_PER_USDC, toMicros } from "../../packages/client/src/money.js";
import { backoffMs, DEFAULT_RETRY_POLICY, retryDecision, type CallSafety } from "../../packages/client/src/retry.js";
import { blockchainToWire } from "../../packages/client/src/types.js";
import { uuidv7 } from "../../packages/client/src/uuidv7.js";

describe("money helpers", () => {
  it.each([
    ["0", 0n],
    ["7", 7_000_000n],
    ["100.5", 100_500_000n],
    ["0.000001", 1n],
    ["1000000000000", 1_000_000_000_000_000_000n],
    ["123456789012345678.123456", 123456789012345678123456n],
  ])("%s <-> %s micros", (text, micros) => {
    expect(toMicros(text)).toBe(micros);
    expect(fromMicros(micros)).toBe(text);
  });

  it.each(["", "-1", "+1", "1e3", "01", "1.", ".5", "1.0000001", " 1", "1,5", "NaN", "0x10"])("toMicros refuses %j", (text) => {
    expect(() => toMicros(text)).toThrow(RangeError);
  });

  it("fromMicros gives the canonical form", () => {
    expect(fromMicros(toMicros("7.000000"))).toBe("7");
    expect(fromMicros(toMicros("0.10"))).toBe("0.1");
  });

  // The client package carries its own formatter (it ships without the
  // server's domain code): it must write every amount exactly as the server does.
  it("fromMicros and toMicros agree with the server's formatter on any amount", () => {
    expect(MICROS_PER_USDC).toBe(SERVER_MICROS_PER_USDC);
    fc.assert(
      fc.property(fc.bigInt({ min: -(10n ** 40n), max: 10n ** 40n }), (micros) => {
        expect(fromMicros(micros)).toBe(formatMicros(micros));
        if (micros >= 0n) expect(toMicros(fromMicros(micros))).toBe(micros);
      }),
      { numRuns: 2000 },
    );
  });
});

describe("uuidv7", () => {
  it("has version 7, the RFC variant and the time in its first 48 bits", () => {
    const ms = 1_764_000_000_123;
    const id = uuidv7(ms);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(parseInt(id.replace(/-/g, "").slice(0, 12), 16)).toBe(ms);
  });
  it("differs on every call", () => {
    const ids = new Set(Array.from({ length: 1000 }, () => uuidv7()));
    expect(ids.size).toBe(1000);
  });
});

describe("expandTargets", () => {
  it("splits ipv4:/ipv6: lists into one target per address", () => {
    expect(expandTargets("ipv4:10.0.0.1:1,10.0.0.2:2")).toEqual(["ipv4:10.0.0.1:1", "ipv4:10.0.0.2:2"]);
    expect(expandTargets("ipv6:[::1]:1,[::1]:2")).toEqual(["ipv6:[::1]:1", "ipv6:[::1]:2"]);
    expect(expandTargets(["a:1", "b:2"])).toEqual(["a:1", "b:2"]);
    expect(expandTargets("a:1, b:2")).toEqual(["a:1", "b:2"]);
    expect(expandTargets("dns:mint.internal:50051")).toEqual(["dns:mint.internal:50051"]);
  });
  it("refuses an empty list", () => {
    expect(() => expandTargets("")).toThrow(/no address/);
    expect(() => expandTargets([])).toThrow(/no address/);
  });
});

describe("a token never travels in plaintext to another host unless asked", () => {
  it.each([
    ["127.0.0.1:50051", true],
    ["ipv4:127.0.0.2:1", true],
    ["localhost:50051", true],
    ["dns:localhost:50051", true],
    ["dns:///localhost:50051", true],
    ["ipv6:[::1]:50051", true],
    ["[::1]:50051", true],
    ["10.0.0.1:50051", false],
    ["mint.internal:50051", false],
    ["dns:mint.internal:50051", false],
    ["ipv6:[2001:db8::1]:1", false],
    ["127.0.0.1.evil.example:1", false],
  ])("isLoopbackTarget(%j) = %s", (target, loopback) => {
    expect(isLoopbackTarget(target)).toBe(loopback);
  });

  it("createMintClient refuses token + plaintext + a remote address; TLS credentials or allowPlaintextToken accept it", () => {
    expect(() => createMintClient({ addresses: ["127.0.0.1:1", "10.0.0.1:1"], token: "t" })).toThrow(/plaintext to 10\.0\.0\.1:1/);
    for (const c of [
      createMintClient({ addresses: "10.0.0.1:1", token: "t", allowPlaintextToken: true }),
      createMintClient({ addresses: "10.0.0.1:1", token: "t", credentials: grpc.credentials.createSsl() }),
      createMintClient({ addresses: "10.0.0.1:1" }),
      createMintClient({ addresses: "127.0.0.1:1", token: "t" }),
    ]) c.close();
  });
});

describe("blockchainToWire", () => {
  it("accepts the short name, any case, and the proto name; anything else is UNSPECIFIED (the server refuses it)", () => {
    expect(blockchainToWire("ETHEREUM")).toBe(1);
    expect(blockchainToWire("base")).toBe(3);
    expect(blockchainToWire("BLOCKCHAIN_NOBLE")).toBe(9);
    expect(blockchainToWire("DOGE")).toBe(0);
    expect(blockchainToWire("UNRECOGNIZED")).toBe(0);
  });
});

function err(init: Partial<MintServiceErrorInit> & Pick<MintServiceErrorInit, "code">): MintServiceError {
  return new MintServiceError({ message: "m", ...init });
}

describe("retryDecision", () => {
  const all: CallSafety[] = ["keyed", "read", "unkeyed"];

  it.each(["INVALID_ARGUMENT", "FAILED_PRECONDITION", "ALREADY_EXISTS", "PERMISSION_DENIED", "UNAUTHENTICATED", "NOT_FOUND"] as const)(
    "never retries %s, even with RetryInfo",
    (code) => {
      for (const s of all) expect(retryDecision(err({ code, hasErrorInfo: true, retryAfterMs: 10 }), s)).toEqual({ retry: false });
    },
  );

  it("RetryInfo: retried on every call kind after exactly its delay", () => {
    for (const s of all) {
      expect(retryDecision(err({ code: "RESOURCE_EXHAUSTED", reason: "RATE_LIMITED", hasErrorInfo: true, retryAfterMs: 437 }), s)).toEqual({ retry: true, exactDelayMs: 437 });
    }
  });

  it("RESOURCE_EXHAUSTED without RetryInfo (message too large) is not retried", () => {
    expect(retryDecision(err({ code: "RESOURCE_EXHAUSTED" }), "keyed")).toEqual({ retry: false });
  });

  it("ABORTED: only IDEMPOTENCY_KEY_IN_USE", () => {
    expect(retryDecision(err({ code: "ABORTED", reason: "IDEMPOTENCY_KEY_IN_USE", hasErrorInfo: true }), "keyed")).toEqual({ retry: true });
    expect(retryDecision(err({ code: "ABORTED", reason: "OTHER", hasErrorInfo: true }), "keyed")).toEqual({ retry: false });
  });

  it("UNAVAILABLE with ErrorInfo on every call; without it (a cut connection) only on keyed calls and reads", () => {
    for (const s of all) expect(retryDecision(err({ code: "UNAVAILABLE", reason: "SHUTTING_DOWN", hasErrorInfo: true }), s).retry).toBe(true);
    expect(retryDecision(err({ code: "UNAVAILABLE" }), "keyed").retry).toBe(true);
    expect(retryDecision(err({ code: "UNAVAILABLE" }), "read").retry).toBe(true);
    expect(retryDecision(err({ code: "UNAVAILABLE" }), "unkeyed").retry).toBe(false);
  });

  it("DEADLINE_EXCEEDED only on keyed calls and reads", () => {
    expect(retryDecision(err({ code: "DEADLINE_EXCEEDED" }), "keyed").retry).toBe(true);
    expect(retryDecision(err({ code: "DEADLINE_EXCEEDED" }), "unkeyed").retry).toBe(false);
  });

  it("INTERNAL: a GOAWAY's RST_STREAM (no details) on keyed calls; a server bug never", () => {
    expect(retryDecision(err({ code: "INTERNAL", message: "Received RST_STREAM with code 2" }), "keyed").retry).toBe(true);
    expect(retryDecision(err({ code: "INTERNAL", message: "Received RST_STREAM with code 2" }), "unkeyed").retry).toBe(false);
    expect(retryDecision(err({ code: "INTERNAL", message: "RST_STREAM", reason: "INTERNAL", hasErrorInfo: true }), "keyed").retry).toBe(false);
    expect(retryDecision(err({ code: "INTERNAL", message: "internal error" }), "keyed").retry).toBe(false);
  });

  it("nothing sent (no serving address): always retried", () => {
    expect(retryDecision(err({ code: "UNAVAILABLE", sent: false }), "unkeyed").retry).toBe(true);
  });

  it("backoff: full jitter under an exponential ceiling capped at maxBackoffMs", () => {
    const p = DEFAULT_RETRY_POLICY;
    expect(backoffMs(1, p, () => 0.999999)).toBe(p.initialBackoffMs - 1);
    expect(backoffMs(3, p, () => 0.5)).toBe(Math.floor(0.5 * p.initialBackoffMs * 4));
    expect(backoffMs(30, p, () => 0.999999)).toBe(p.maxBackoffMs - 1);
    expect(backoffMs(5, p, () => 0)).toBe(0);
  });
});

describe("MintServiceError", () => {
  it("splits differing_fields and reads request_id from ErrorInfo metadata", () => {
    const e = err({ code: "ALREADY_EXISTS", metadata: { differing_fields: "account_id,amount", request_id: "req-1" } });
    expect(e.differingFields).toEqual(["account_id", "amount"]);
    expect(e.requestId).toBe("req-1");
    expect(e.grpcCode).toBe(6);
    expect(err({ code: "INTERNAL" }).differingFields).toEqual([]);
    expect(err({ code: "INTERNAL" }).requestId).toBeUndefined();
  });
});
