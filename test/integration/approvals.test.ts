/**
 * Mint approvals and minter allowances through the generated client, on memory
 * and on PostgreSQL: a large mint waits for two approvers other than its
 * requester, replays show it as it is now, rejection frees its key,
 * ReconcileMint refuses it while pending, and minter allowances cap mints.
 * Principals come from the x-mint-dev-principal header (the stop-gap until
 * authentication lands).
 * The second half: approvals against the reserve and frozen accounts.
 */
import { status as Code } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Blockchain,
  MintStatus,
  type ApproveMintResponse,
  type GetBalanceResponse,
  type GetMinterAllowanceResponse,
  type GetMintResponse,
  type GetSupplyResponse,
  type ListMintsResponse,
  type Mint,
  type MintUsdcResponse,
  type RejectMintResponse,
} from "../../gen/usdc/mint/v1/mint.js";
import { startPgTestServer } from "../support/pg-test-server.js";
import { expectError, startTestServer, type TestServer } from "../support/test-server.js";

const ENV = {
  MINT_APPROVAL_THRESHOLD: "1000",
  MINT_APPROVALS_REQUIRED: "2",
  MINT_ALLOWANCES: "true",
  MINT_DEV_PRINCIPAL_HEADER: "true",
};

const as = (principal: string) => ({ metadata: { "x-mint-dev-principal": principal } });

function suite(name: string, start: () => Promise<TestServer>): void {
  describe(`approvals and allowances over gRPC: ${name}`, () => {
    let s: TestServer;
    beforeAll(async () => {
      s = await start();
      await s.call("setMinterAllowance", { principal: "minter-a", amount: "5000" }, as("reserve"));
    });
    afterAll(async () => {
      await s.stop();
    });

    const mint = (key: string, amount: string, account = "acct-big", who = "minter-a") =>
      s.call<object, MintUsdcResponse>("mintUsdc", { accountId: account, amount, blockchain: Blockchain.BLOCKCHAIN_BASE, idempotencyKey: key }, as(who));
    const approve = (mintId: string, who: string) => s.call<object, ApproveMintResponse>("approveMint", { mintId }, as(who));
    const balance = async (account: string) => (await s.call<object, GetBalanceResponse>("getBalance", { accountId: account })).balance;

    it("a large mint is pending until two approvers other than the requester approve; replays show it as it is now", async () => {
      const first = await mint("big-1", "1500");
      const m = first.mint as Mint;
      expect(m.status).toBe(MintStatus.MINT_STATUS_PENDING_APPROVAL);
      expect(m.requester).toBe("minter-a");
      expect(await balance("acct-big")).toBe("0");

      const self = await expectError(approve(m.mintId, "minter-a"));
      expect(self.code).toBe(Code.PERMISSION_DENIED);
      expect(self.reason).toBe("APPROVER_IS_REQUESTER");

      expect((await approve(m.mintId, "bob")).mint?.status).toBe(MintStatus.MINT_STATUS_PENDING_APPROVAL);
      expect((await approve(m.mintId, "bob")).mint?.approvals.map((a) => a.approver)).toEqual(["bob"]);
      const replay = await mint("big-1", "1500");
      expect(replay.replayed).toBe(true);
      expect(replay.mint?.approvals.map((a) => a.approver)).toEqual(["bob"]);

      const done = await approve(m.mintId, "carol");
      expect(done.mint?.status).toBe(MintStatus.MINT_STATUS_COMPLETED);
      expect(await balance("acct-big")).toBe("1500");
      const replayDone = await mint("big-1", "1500");
      expect(replayDone.replayed && replayDone.mint?.status).toBe(MintStatus.MINT_STATUS_COMPLETED);

      const late = await expectError(approve(m.mintId, "dave"));
      expect([late.code, late.reason]).toEqual([Code.FAILED_PRECONDITION, "MINT_COMPLETED"]);
      expect(await balance("acct-big")).toBe("1500");
    });

    it("ReconcileMint of a pending mint is refused; a rejected mint cannot be approved and its key is free", async () => {
      const m = (await mint("big-2", "2000", "acct-rej")).mint as Mint;
      const rec = await expectError(s.call("reconcileMint", { mintId: m.mintId, reason: "x" }, as("ops")));
      expect([rec.code, rec.reason]).toEqual([Code.FAILED_PRECONDITION, "MINT_PENDING_APPROVAL"]);
      const rejected = await s.call<object, RejectMintResponse>("rejectMint", { mintId: m.mintId, reason: "not expected" }, as("bob"));
      expect(rejected.mint?.status).toBe(MintStatus.MINT_STATUS_REJECTED);
      expect(rejected.mint?.rejectReason).toBe("not expected");
      expect(rejected.mint?.rejectedBy).toBe("bob");
      const refused = await expectError(approve(m.mintId, "carol"));
      expect([refused.code, refused.reason]).toEqual([Code.FAILED_PRECONDITION, "MINT_REJECTED"]);
      const again = await mint("big-2", "2000", "acct-rej");
      expect(again.replayed).toBe(false);
      expect(again.mint?.mintId).not.toBe(m.mintId);
      expect(await balance("acct-rej")).toBe("0");
      const pending = await s.call<object, ListMintsResponse>("listMints", { accountId: "acct-rej", pageSize: 0, pageToken: "", status: MintStatus.MINT_STATUS_PENDING_APPROVAL });
      expect(pending.mints.map((x) => x.mintId)).toEqual([again.mint?.mintId]);
    });

    it("a mint beyond the minter's allowance is ALLOWANCE_EXCEEDED with what is left, and changes nothing", async () => {
      await s.call("setMinterAllowance", { principal: "minter-b", amount: "10" }, as("reserve"));
      await mint("small-1", "7", "acct-allow", "minter-b");
      const e = await expectError(mint("small-2", "4", "acct-allow", "minter-b"));
      expect([e.code, e.reason]).toEqual([Code.FAILED_PRECONDITION, "ALLOWANCE_EXCEEDED"]);
      expect(e.metadata).toEqual({ principal: "minter-b", remaining: "3", amount: "4" });
      expect(await balance("acct-allow")).toBe("7");
      const left = await s.call<object, GetMinterAllowanceResponse>("getMinterAllowance", { principal: "minter-b" });
      expect(left.allowance).toBe("3");
      const bad = await expectError(s.call("setMinterAllowance", { principal: "", amount: "1" }));
      expect([bad.code, bad.reason]).toEqual([Code.INVALID_ARGUMENT, "INVALID_ACCOUNT_ID"]);
      const badAmount = await expectError(s.call("setMinterAllowance", { principal: "minter-b", amount: "-1" }));
      expect(badAmount.reason).toBe("INVALID_AMOUNT");
      expect((await s.call<object, GetMinterAllowanceResponse>("getMinterAllowance", { principal: "minter-b" })).allowance).toBe("3");
    });

    it("bad ids and filters are INVALID_ARGUMENT; unknown mints NOT_FOUND", async () => {
      expect((await expectError(approve("", "bob"))).reason).toBe("INVALID_MINT_ID");
      expect((await expectError(approve("mint_00000000000000000000000000", "bob"))).reason).toBe("MINT_NOT_FOUND");
      expect((await expectError(s.call("listMints", { accountId: "", pageSize: 0, pageToken: "", status: 99 }))).reason).toBe("INVALID_STATUS");
    });
  });
}

suite("memory", () => startTestServer(ENV));
suite("postgres", () => startPgTestServer(ENV, ""));

/**
 * Approvals meet the reserve and freezes: a pending mint is not in supply
 * (GetSupply reports it as pending approval); the approval that completes it
 * raises supply, so it passes the reserve check and the frozen check in its own
 * atomic step, or is refused and records nothing (the mint stays pending with
 * the approvals it had).
 */
function reserveSuite(name: string, start: () => Promise<TestServer>): void {
  describe(`approvals meet the reserve and freezes: ${name}`, () => {
    let s: TestServer;
    beforeAll(async () => {
      s = await start();
      await s.call("setMinterAllowance", { principal: "minter-a", amount: "100000" }, as("reserve"));
    });
    afterAll(async () => {
      await s.stop();
    });

    const mint = (key: string, amount: string, account: string) =>
      s.call<object, MintUsdcResponse>("mintUsdc", { accountId: account, amount, blockchain: Blockchain.BLOCKCHAIN_BASE, idempotencyKey: key }, as("minter-a"));
    const approve = (mintId: string, who: string) => s.call<object, ApproveMintResponse>("approveMint", { mintId }, as(who));
    const balance = async (account: string) => (await s.call<object, GetBalanceResponse>("getBalance", { accountId: account })).balance;
    const supply = async () => {
      const x = (await s.call<object, GetSupplyResponse>("getSupply", {})).supply;
      return { supply: x?.supply, reserve: x?.reserve, headroom: x?.headroom, pendingApproval: x?.pendingApproval };
    };
    const getMint = async (mintId: string) => (await s.call<object, GetMintResponse>("getMint", { mintId })).mint as Mint;
    const setReserve = (amount: string) => s.call("setReserve", { amount, attestationRef: `att-${amount}` }, as("reserve"));

    it("a pending mint is reported as pending approval, not supply; the completing approval past the reserve is RESERVE_EXCEEDED and changes nothing", async () => {
      await mint("r-small", "100", "acct-r");
      expect(await supply()).toEqual({ supply: "100", reserve: "", headroom: "", pendingApproval: "0" });
      await setReserve("1500");
      const m = (await mint("r-big", "1500", "acct-r")).mint as Mint;
      expect(m.status).toBe(MintStatus.MINT_STATUS_PENDING_APPROVAL);
      expect(await supply()).toEqual({ supply: "100", reserve: "1500", headroom: "1400", pendingApproval: "1500" });

      expect((await approve(m.mintId, "bob")).mint?.status).toBe(MintStatus.MINT_STATUS_PENDING_APPROVAL);
      const refused = await expectError(approve(m.mintId, "carol"));
      expect([refused.code, refused.reason]).toEqual([Code.FAILED_PRECONDITION, "RESERVE_EXCEEDED"]);
      expect(refused.metadata?.headroom_micros).toBe("1400000000");
      const after = await getMint(m.mintId);
      expect(after.status).toBe(MintStatus.MINT_STATUS_PENDING_APPROVAL);
      expect(after.approvals.map((a) => a.approver)).toEqual(["bob"]);
      expect(await balance("acct-r")).toBe("100");
      expect(await supply()).toEqual({ supply: "100", reserve: "1500", headroom: "1400", pendingApproval: "1500" });

      await setReserve("2000");
      const done = await approve(m.mintId, "carol");
      expect(done.mint?.status).toBe(MintStatus.MINT_STATUS_COMPLETED);
      expect(done.mint?.approvals.map((a) => a.approver)).toEqual(["bob", "carol"]);
      expect(await balance("acct-r")).toBe("1600");
      expect(await supply()).toEqual({ supply: "1600", reserve: "2000", headroom: "400", pendingApproval: "0" });
    });

    it("a frozen account refuses a new large mint and the approval that would complete a pending one; unfrozen, the approval completes it", async () => {
      await setReserve("100000");
      const m = (await mint("f-big", "1200", "acct-f")).mint as Mint;
      await s.call("freezeAccount", { accountId: "acct-f", reason: "court order" }, as("compliance"));
      const newMint = await expectError(mint("f-big-2", "1300", "acct-f"));
      expect([newMint.code, newMint.reason]).toEqual([Code.FAILED_PRECONDITION, "ACCOUNT_FROZEN"]);
      expect((await approve(m.mintId, "bob")).mint?.status).toBe(MintStatus.MINT_STATUS_PENDING_APPROVAL);
      const refused = await expectError(approve(m.mintId, "carol"));
      expect([refused.code, refused.reason]).toEqual([Code.FAILED_PRECONDITION, "ACCOUNT_FROZEN"]);
      expect((await getMint(m.mintId)).approvals.map((a) => a.approver)).toEqual(["bob"]);
      expect(await balance("acct-f")).toBe("0");
      expect((await supply()).pendingApproval).toBe("1200");

      await s.call("unfreezeAccount", { accountId: "acct-f", reason: "lifted" }, as("compliance"));
      expect((await approve(m.mintId, "carol")).mint?.status).toBe(MintStatus.MINT_STATUS_COMPLETED);
      expect(await balance("acct-f")).toBe("1200");
      expect(await supply()).toEqual({ supply: "2800", reserve: "100000", headroom: "97200", pendingApproval: "0" });
    });
  });
}

reserveSuite("memory", () => startTestServer(ENV));
reserveSuite("postgres", () => startPgTestServer(ENV, ""));

describe("without MINT_DEV_PRINCIPAL_HEADER the header names no one", () => {
  it("every call is `local`: the requester header is ignored and so is the approver's", async () => {
    const s = await startTestServer({ MINT_APPROVAL_THRESHOLD: "1000" });
    try {
      const r = await s.call<object, MintUsdcResponse>("mintUsdc", { accountId: "x", amount: "1000", blockchain: Blockchain.BLOCKCHAIN_BASE, idempotencyKey: "k" }, as("mallory"));
      expect(r.mint?.requester).toBe("local");
      const e = await expectError(s.call("approveMint", { mintId: r.mint?.mintId }, as("bob")));
      expect([e.code, e.reason]).toEqual([Code.PERMISSION_DENIED, "APPROVER_IS_REQUESTER"]);
    } finally {
      await s.stop();
    }
  });
});
