import { describe, expect, it } from "vitest";
import { classifyPgError } from "../../src/adapters/postgres/pg-errors.js";

function pgError(code: string): Error {
  return Object.assign(new Error(`sqlstate ${code}`), { code });
}

describe("classifyPgError", () => {
  it.each(["08000", "08003", "08006", "08001", "08004", "08007", "57P01", "ECONNRESET"])("treats %s as a lost connection", (code) => {
    expect(classifyPgError(pgError(code))).toBe("connection");
  });

  // 08P01 is the server telling us our bytes were malformed: a bug, which
  // must surface as INTERNAL, not as a retryable outage.
  it.each(["08P01", "0A000", "22003", "42601"])("treats %s as a bug (other)", (code) => {
    expect(classifyPgError(pgError(code))).toBe("other");
  });

  it("keeps the retryable and timeout kinds", () => {
    expect(classifyPgError(pgError("40001"))).toBe("retryable");
    expect(classifyPgError(pgError("55P03"))).toBe("lock-timeout");
    expect(classifyPgError(pgError("57014"))).toBe("statement-timeout");
  });
});
