import { Metadata, status as Code } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { ErrorInfo, RetryInfo } from "../../gen/google/rpc/error_details.js";
import { Status } from "../../gen/google/rpc/status.js";
import { addRequestIdToErrorInfo, isValidRequestId, newRequestId, requestIdOf, REQUEST_ID_KEY } from "../../src/transport/grpc/request-id.js";
import { failureToStatus, STATUS_DETAILS_KEY } from "../../src/transport/grpc/status.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function withIds(...ids: string[]): Metadata {
  const m = new Metadata();
  for (const id of ids) m.add(REQUEST_ID_KEY, id);
  return m;
}

describe("requestIdOf", () => {
  it.each(["abc", "0f8fad5b-d9cb-469f-a165-70867728950e", "01KB8Z5V2Q7X", "trace:span/1+2=3_4.5", "x".repeat(128)])("keeps the caller's %j", (id) => {
    expect(requestIdOf(withIds(id))).toBe(id);
  });

  it.each([
    ["empty", ""],
    ["too long", "x".repeat(129)],
    ["with a space", "a b"],
    ["with quotes", 'a"b'],
    ["with braces", "{x}"],
  ])("replaces one %s with a fresh UUID", (_what, id) => {
    expect(isValidRequestId(id)).toBe(false);
    expect(requestIdOf(withIds(id))).toMatch(UUID);
  });

  it("refuses control characters and non-ASCII (grpc-js refuses to carry them; the check does not rely on it)", () => {
    for (const id of ["a\nb", "a\u0000b", "ä", "a\tb"]) expect(isValidRequestId(id)).toBe(false);
  });

  it("generates a UUID when there is none and replaces several values", () => {
    const a = requestIdOf(new Metadata());
    expect(a).toMatch(UUID);
    expect(requestIdOf(new Metadata())).not.toBe(a);
    expect(requestIdOf(withIds("a", "b"))).toMatch(UUID);
  });
});

describe("newRequestId", () => {
  it("makes valid version-4 UUIDs (version nibble 4, variant 8-b), each different, that a caller may send back as its own id", () => {
    const ids = Array.from({ length: 20_000 }, () => newRequestId());
    for (const id of ids) expect(id).toMatch(UUID);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.every(isValidRequestId)).toBe(true);
    expect(requestIdOf(withIds(ids[0] as string))).toBe(ids[0]);
  });

  it("keeps one random part per process and counts in the last 12 hex digits", () => {
    const a = newRequestId();
    const b = newRequestId();
    expect(b.slice(0, 24)).toBe(a.slice(0, 24));
    expect(parseInt(b.slice(24), 16) - parseInt(a.slice(24), 16)).toBe(1);
  });
});

describe("the id on an error", () => {
  it("goes into its ErrorInfo metadata, the other details untouched", () => {
    const err = failureToStatus({ code: "IDEMPOTENCY_KEY_IN_USE", key: "k1", retryAfterMs: 50 });
    addRequestIdToErrorInfo(err, "r-2");
    expect(err.code).toBe(Code.ABORTED);
    const status = Status.decode(err.metadata.get(STATUS_DETAILS_KEY)[0] as Buffer);
    expect(status.code).toBe(Code.ABORTED);
    expect(status.message).toBe(err.details);
    const [info, retry] = status.details;
    expect(ErrorInfo.decode(info!.value)).toEqual({
      reason: "IDEMPOTENCY_KEY_IN_USE",
      domain: "mint.usdc.example",
      metadata: { idempotency_key: "k1", request_id: "r-2" },
    });
    expect(retry!.typeUrl).toBe("type.googleapis.com/google.rpc.RetryInfo");
    expect(RetryInfo.decode(retry!.value).retryDelay).toEqual({ seconds: 0, nanos: 50_000_000 });
  });
});
