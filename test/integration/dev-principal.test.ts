/**
 * The x-mint-dev-principal header (tests and demos without an auth file): a
 * valid name renames the caller; a reserved name (the service's own actors,
 * `local`) or an invalid one is refused UNAUTHENTICATED (INVALID_DEV_PRINCIPAL)
 * before the call runs, so no one can act as the sweeper (whose rejections
 * skip the expiry check) or sign the journal as it.
 */
import { status as Code } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Blockchain, MintStatus, type GetMintResponse, type MintUsdcResponse } from "../../gen/usdc/mint/v1/mint.js";
import { expectError, startTestServer, type TestServer } from "../support/test-server.js";

const as = (principal: string) => ({ metadata: { "x-mint-dev-principal": principal } });

describe("x-mint-dev-principal", () => {
  let s: TestServer;
  let pendingId = "";
  /** Every refusal's message: one fixed text, which never echoes the value sent. */
  const messages = new Set<string>();
  beforeAll(async () => {
    s = await startTestServer({ MINT_APPROVAL_THRESHOLD: "1000", MINT_DEV_PRINCIPAL_HEADER: "true" });
    const r = await s.call<object, MintUsdcResponse>("mintUsdc", { accountId: "acct", amount: "1500", blockchain: Blockchain.BLOCKCHAIN_BASE, idempotencyKey: "k" }, as("minter-a"));
    pendingId = r.mint?.mintId ?? "";
    expect(r.mint?.status).toBe(MintStatus.MINT_STATUS_PENDING_APPROVAL);
    expect(r.mint?.requester).toBe("minter-a");
  });
  afterAll(async () => {
    await s.stop();
  });

  it.each(["sweeper", "settlement-worker", "local", "", "-dash-first", "has space", "a".repeat(129), "bob,carol"])(
    "refuses %j UNAUTHENTICATED (INVALID_DEV_PRINCIPAL) and the call does nothing",
    async (name) => {
      const e = await expectError(s.call("rejectMint", { mintId: pendingId, reason: "by header" }, as(name)));
      expect([e.code, e.reason, e.metadata]).toEqual([Code.UNAUTHENTICATED, "INVALID_DEV_PRINCIPAL", { rpc: "RejectMint" }]);
      messages.add(e.message);
      const m = await s.call<object, GetMintResponse>("getMint", { mintId: pendingId });
      expect(m.mint?.status).toBe(MintStatus.MINT_STATUS_PENDING_APPROVAL);
    },
  );

  it("every refusal has the same message (the value sent is never echoed)", () => {
    expect(messages.size).toBe(1);
    expect([...messages][0]).not.toContain("has space");
  });

  it("a valid name is the caller; no header is `local`", async () => {
    const other = await s.call<object, MintUsdcResponse>("mintUsdc", { accountId: "acct", amount: "1200", blockchain: Blockchain.BLOCKCHAIN_BASE, idempotencyKey: "k2" });
    expect(other.mint?.requester).toBe("local");
    const r = await s.call<object, GetMintResponse>("rejectMint", { mintId: pendingId, reason: "no wire" }, as("bob@ops:x.y_z"));
    expect([r.mint?.status, r.mint?.rejectedBy]).toEqual([MintStatus.MINT_STATUS_REJECTED, "bob@ops:x.y_z"]);
  });
});
