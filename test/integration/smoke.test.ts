import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Blockchain, type MintUsdcResponse, type GetBalanceResponse } from "../../gen/usdc/mint/v1/mint.js";
import { expectError, startTestServer, type TestServer } from "../support/test-server.js";

describe("smoke", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer();
  });
  afterAll(async () => {
    await s.stop();
  });
  it("mints and reads the balance", async () => {
    const r = await s.call<object, MintUsdcResponse>("mintUsdc", { accountId: "alice", amount: "100.50", blockchain: Blockchain.BLOCKCHAIN_ETHEREUM, idempotencyKey: "k1" });
    expect(r.mint?.amount).toBe("100.5");
    expect(r.replayed).toBe(false);
    const b = await s.call<object, GetBalanceResponse>("getBalance", { accountId: "alice" });
    expect(b.balance).toBe("100.5");
    const e = await expectError(s.call("mintUsdc", { accountId: "alice", amount: "1.0000001", blockchain: 1, idempotencyKey: "k2" }));
    expect(e.reason).toBe("INVALID_AMOUNT");
    expect(e.badRequest?.fieldViolations[0]?.field).toBe("amount");
  });
});
