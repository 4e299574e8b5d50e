/**
 * Every failed-call log line carries the same two fields: `code`, the name of
 * the gRPC status code the caller got, and `reason`, the ErrorInfo reason of
 * the answer's details, whichever link answered and whichever failure it was
 * (a refusal, a domain failure, a shed call, a store outage, a bug).
 */
import { Writable } from "node:stream";
import { status as Code } from "@grpc/grpc-js";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { Failure } from "../../src/domain/errors.js";
import { UnavailableError } from "../../src/domain/errors.js";
import { Call, compose, type Answer } from "../../src/transport/grpc/chain.js";
import { errors, logging } from "../../src/transport/grpc/links.js";
import type { EdgeFailure } from "../../src/transport/grpc/status.js";
import { decodeError } from "../support/test-server.js";

function recorder(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString("utf8").split("\n")) if (l !== "") lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: pino({ level: "info" }, stream), lines };
}

const raw = { getDeadline: () => Infinity, once: () => undefined, metadata: undefined } as unknown as ConstructorParameters<typeof Call>[1];

/** Runs one call through logging + errors whose handler answers `outcome` (or throws it); returns the line and the answer's status. */
async function failedLine(outcome: Failure | EdgeFailure | Error): Promise<{ line: Record<string, unknown>; code: string; reason: string }> {
  const { logger, lines } = recorder();
  const run = compose([logging(logger), errors(logger)], () =>
    outcome instanceof Error ? Promise.reject(outcome) : Promise.resolve<Answer>({ ok: false, error: outcome }),
  );
  const call = new Call("GetMint", raw, Infinity);
  const answer = await run(call);
  if (answer.ok) throw new Error("expected a failure");
  const e = decodeError(call.statusOf(answer.error));
  await new Promise((r) => setImmediate(r));
  expect(lines).toHaveLength(1);
  return { line: lines[0] as Record<string, unknown>, code: Code[e.code], reason: e.reason };
}

describe("failed-call log lines", () => {
  it.each<[string, Failure | EdgeFailure | Error, string, string]>([
    ["a missing role", { code: "PERMISSION_DENIED", rpc: "GetMint", principal: "p", missingRole: "reader" }, "PERMISSION_DENIED", "MISSING_ROLE"],
    ["an account out of scope", { code: "PERMISSION_DENIED", rpc: "GetBalance", principal: "p", missingScope: "bob" }, "PERMISSION_DENIED", "ACCOUNT_NOT_IN_SCOPE"],
    ["no credentials", { code: "UNAUTHENTICATED", rpc: "GetMint", reason: "NO_CREDENTIALS", message: "m" }, "UNAUTHENTICATED", "NO_CREDENTIALS"],
    ["a bad argument", { code: "INVALID_ARGUMENT", reason: "INVALID_AMOUNT", field: "amount", message: "m" }, "INVALID_ARGUMENT", "INVALID_AMOUNT"],
    ["an unknown mint", { code: "MINT_NOT_FOUND", mintId: "mint_x" }, "NOT_FOUND", "MINT_NOT_FOUND"],
    ["a mint no longer pending", { code: "MINT_NOT_PENDING", mintId: "mint_x", reason: "MINT_EXPIRED" }, "FAILED_PRECONDITION", "MINT_EXPIRED"],
    ["the rate limit", { code: "RATE_LIMITED", accountId: "a", retryAfterMs: 5, limit: 1, windowMs: 1000 }, "RESOURCE_EXHAUSTED", "RATE_LIMITED"],
    ["a shed call", { code: "OVERLOADED", maxCallsInFlight: 1, retryAfterMs: 5 }, "UNAVAILABLE", "OVERLOADED"],
    ["a deadline", { code: "DEADLINE_EXCEEDED", message: "m" }, "DEADLINE_EXCEEDED", "DEADLINE_EXCEEDED"],
    ["a store outage (thrown)", new UnavailableError("pg down"), "UNAVAILABLE", "STORE_UNAVAILABLE"],
    ["a bug (thrown)", new Error("boom"), "INTERNAL", "INTERNAL"],
  ])("%s: code is the gRPC code's name and reason the ErrorInfo reason", async (_what, outcome, code, reason) => {
    const got = await failedLine(outcome);
    expect([got.code, got.reason]).toEqual([code, reason]);
    expect(got.line).toMatchObject({ rpc: "GetMint", code, reason });
  });
});
