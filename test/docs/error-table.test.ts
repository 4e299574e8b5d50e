/**
 * The API reference's error table (docs/API.md, "Errors") against the error
 * table in code (`failureToStatus` in src/transport/grpc/status.ts), both ways:
 * every status code + ErrorInfo reason the code can answer is a row of the
 * docs, and every row of the docs is one the code answers. The failures fed
 * to the code are typed as records keyed by every failure code and every
 * sub-reason, so a new one does not typecheck until a sample is added here —
 * and then this test asks for its row in the docs.
 */
import { status as Code } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { ErrorInfo } from "../../gen/google/rpc/error_details.js";
import { Status } from "../../gen/google/rpc/status.js";
import type { UnauthenticatedReason } from "../../src/auth/authenticate.js";
import type { Failure, FailureCode, InvalidReason } from "../../src/domain/errors.js";
import { failureToStatus, STATUS_DETAILS_KEY, type EdgeFailure } from "../../src/transport/grpc/status.js";
import { docPages, readPage } from "../support/doc-snippets.js";

type NotPendingReason = Extract<Failure, { code: "MINT_NOT_PENDING" }>["reason"];

const INVALID: Record<InvalidReason, true> = {
  INVALID_AMOUNT: true,
  AMOUNT_TOO_LARGE: true,
  INVALID_ACCOUNT_ID: true,
  SAME_ACCOUNT: true,
  INVALID_IDEMPOTENCY_KEY: true,
  INVALID_BLOCKCHAIN: true,
  INVALID_MINT_ID: true,
  INVALID_REASON: true,
  INVALID_PAGE_SIZE: true,
  INVALID_PAGE_TOKEN: true,
  INVALID_STATUS: true,
  INVALID_PRINCIPAL: true,
  INVALID_TIME_RANGE: true,
  INVALID_SEQ_RANGE: true,
  INVALID_ATTESTATION_REF: true,
  INVALID_REDEMPTION_ID: true,
  EMPTY_BATCH: true,
  TOO_MANY_ITEMS: true,
  DUPLICATE_IDEMPOTENCY_KEY: true,
};
const UNAUTHENTICATED: Record<UnauthenticatedReason, true> = {
  NO_CREDENTIALS: true,
  MALFORMED_AUTHORIZATION: true,
  INVALID_TOKEN: true,
  UNKNOWN_CERTIFICATE: true,
  CONFLICTING_CREDENTIALS: true,
  INVALID_DEV_PRINCIPAL: true,
};
const NOT_PENDING: Record<NotPendingReason, true> = { MINT_COMPLETED: true, MINT_REVERSED: true, MINT_REJECTED: true, MINT_EXPIRED: true };

const keys = <K extends string>(r: Record<K, true>): K[] => Object.keys(r) as K[];
const mintId = "mint_0000000000AAAAAAAAAAAAAAAA";

/** One or more failures of every code the edge maps (the record's keys are checked by the compiler). */
const SAMPLES: Record<FailureCode | EdgeFailure["code"], (Failure | EdgeFailure)[]> = {
  INVALID_ARGUMENT: keys(INVALID).map((reason) => ({ code: "INVALID_ARGUMENT", reason, field: "amount", message: "m" })),
  RATE_LIMITED: [{ code: "RATE_LIMITED", accountId: "a", retryAfterMs: 1, limit: 1, windowMs: 1 }],
  IDEMPOTENCY_KEY_REUSED: [{ code: "IDEMPOTENCY_KEY_REUSED", key: "k", fields: ["amount"] }],
  IDEMPOTENCY_KEY_IN_USE: [{ code: "IDEMPOTENCY_KEY_IN_USE", key: "k", retryAfterMs: 50 }],
  IDEMPOTENCY_STORE_FULL: [{ code: "IDEMPOTENCY_STORE_FULL", maxKeys: 1, retryAfterMs: 1 }],
  INSUFFICIENT_FUNDS: [{ code: "INSUFFICIENT_FUNDS", accountId: "a" }],
  MINT_ALREADY_REVERSED: [{ code: "MINT_ALREADY_REVERSED", mintId }],
  MINT_NOT_FOUND: [{ code: "MINT_NOT_FOUND", mintId }],
  MINT_SETTLEMENT_IN_FLIGHT: [{ code: "MINT_SETTLEMENT_IN_FLIGHT", mintId }],
  MINT_SETTLED: [{ code: "MINT_SETTLED", mintId }],
  SETTLEMENT_NOT_CONFIGURED: [{ code: "SETTLEMENT_NOT_CONFIGURED", blockchain: "ETHEREUM" }],
  CHAIN_UNAVAILABLE: [{ code: "CHAIN_UNAVAILABLE", blockchain: "ETHEREUM", message: "m" }],
  MINT_NOT_PENDING: keys(NOT_PENDING).map((reason) => ({ code: "MINT_NOT_PENDING", mintId, reason })),
  MINT_PENDING_APPROVAL: [{ code: "MINT_PENDING_APPROVAL", mintId }],
  APPROVER_IS_REQUESTER: [{ code: "APPROVER_IS_REQUESTER", mintId, principal: "p" }],
  ALLOWANCE_EXCEEDED: [{ code: "ALLOWANCE_EXCEEDED", principal: "p", remainingMicros: 1n, amountMicros: 2n }],
  ALLOWANCE_CHANGED: [{ code: "ALLOWANCE_CHANGED", principal: "p", remainingMicros: 1n, expectedMicros: 2n }],
  SELF_ALLOWANCE: [{ code: "SELF_ALLOWANCE", principal: "p" }],
  DEADLINE_EXCEEDED: [{ code: "DEADLINE_EXCEEDED", message: "m" }],
  ACCOUNT_BUSY: [{ code: "ACCOUNT_BUSY", accountId: "a", maxWaiters: 1, retryAfterMs: 50 }],
  PERMISSION_DENIED: [
    { code: "PERMISSION_DENIED", rpc: "MintUsdc", principal: "p", missingRole: "minter" },
    { code: "PERMISSION_DENIED", rpc: "MintUsdc", principal: "p", missingScope: "a" },
    { code: "PERMISSION_DENIED", rpc: "GetMint", principal: "p", idNamed: "mint" },
  ],
  UNAVAILABLE: [{ code: "UNAVAILABLE", message: "m" }],
  STORE_BUSY: [{ code: "STORE_BUSY", retryAfterMs: 100, message: "m" }],
  ATOMIC_BATCH_REFUSED: [{ code: "ATOMIC_BATCH_REFUSED", refusedItem: 3 }],
  MESSAGE_TOO_LARGE: [{ code: "MESSAGE_TOO_LARGE", rpc: "MintUsdc", maxBytes: 4096, bytes: 5000 }],
  CANCELLED: [{ code: "CANCELLED", message: "m" }],
  RESERVE_EXCEEDED: [{ code: "RESERVE_EXCEEDED", headroomMicros: 0n, supplyMicros: 1n, reserveMicros: 1n, requestedMicros: 1n }],
  RESERVE_NOT_SET: [{ code: "RESERVE_NOT_SET" }],
  ACCOUNT_FROZEN: [{ code: "ACCOUNT_FROZEN", accountId: "a" }],
  REDEMPTION_NOT_FOUND: [{ code: "REDEMPTION_NOT_FOUND", redemptionId: "rdm_0000000000AAAAAAAAAAAAAAAA" }],
  SHUTTING_DOWN: [{ code: "SHUTTING_DOWN" }],
  OVERLOADED: [{ code: "OVERLOADED", maxCallsInFlight: 1, retryAfterMs: 100 }],
  STORE_UNAVAILABLE: [{ code: "STORE_UNAVAILABLE" }],
  INTERNAL: [{ code: "INTERNAL" }],
  UNAUTHENTICATED: keys(UNAUTHENTICATED).map((reason) => ({ code: "UNAUTHENTICATED", rpc: "MintUsdc", reason, message: "m" })),
};

/** "CODE REASON" for every answer the code's table gives. */
function codeTable(): Set<string> {
  const out = new Set<string>();
  for (const f of Object.values(SAMPLES).flat()) {
    const e = failureToStatus(f);
    const status = Status.decode(e.metadata.get(STATUS_DETAILS_KEY)[0] as Buffer);
    const info = status.details.find((d) => d.typeUrl === "type.googleapis.com/google.rpc.ErrorInfo");
    expect(info, JSON.stringify(f, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v))).toBeDefined();
    out.add(`${Code[e.code]} ${ErrorInfo.decode((info as { value: Uint8Array }).value).reason}`);
  }
  return out;
}

/** The rows of a page's error table: [code, reasons] (a row without a reason is grpc-js's own answer). */
function docRows(markdown: string): { code: string; reasons: string[] }[] {
  const lines = markdown.split("\n");
  const start = lines.findIndex((l) => /^\| situation \| code \|/.test(l));
  const rows: { code: string; reasons: string[] }[] = [];
  for (const l of lines.slice(start + 2)) {
    if (!l.startsWith("|")) break;
    const cells = l.split(" | ");
    rows.push({ code: (cells[1] as string).trim(), reasons: [...(cells[2] as string).matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((m) => m[1] as string) });
  }
  return rows;
}

describe("the API reference's error table is the code's", () => {
  const rows = docRows(readPage("docs/API.md"));
  const docs = new Set(rows.flatMap((r) => r.reasons.map((reason) => `${r.code} ${reason}`)));

  it("every answer of the code's table is a row of docs/API.md", () => {
    expect(rows.length).toBeGreaterThan(30);
    expect([...codeTable()].filter((k) => !docs.has(k))).toEqual([]);
  });

  it("every row of docs/API.md is an answer of the code (but grpc-js's own, without details)", () => {
    const code = codeTable();
    expect([...docs].filter((k) => !code.has(k))).toEqual([]);
    expect(rows.filter((r) => r.reasons.length === 0)).toEqual([{ code: "RESOURCE_EXHAUSTED", reasons: [] }]);
    for (const r of rows) expect(Object.keys(Code), `code ${r.code}`).toContain(r.code);
  });

  it("is the only error table of the README and docs/", () => {
    const withTable = docPages().filter((p) => /^\|[^\n]*\| code \|[^\n]*reason/im.test(readPage(p)));
    expect(withTable).toEqual(["docs/API.md"]);
  });
});
