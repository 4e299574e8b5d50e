/**
 * Reserve, redemption and freeze through the real server and the generated
 * client, on memory and on PostgreSQL: set a reserve, mint to the cap, the
 * refusal's rich error (headroom in metadata), redeem (replay,
 * INSUFFICIENT_FUNDS), freeze (GetBalance shows it; every money path refused
 * ACCOUNT_FROZEN, nothing changed), unfreeze; bad input gets INVALID_ARGUMENT;
 * MINT_RESERVE_REQUIRED refuses mints until a reserve is set.
 */
import { status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Blockchain, type GetBalanceResponse, type GetRedemptionResponse, type GetSupplyResponse, type ListRedemptionsResponse, type RedeemUsdcResponse, type SetReserveResponse } from "../../gen/usdc/mint/v1/mint.js";
import { createTestDatabase, type TestDatabase } from "../support/pg-test-database.js";
import { expectError, startTestServer, type TestServer } from "../support/test-server.js";
import { rpc } from "./helpers.js";

function suite(name: string, env: () => Record<string, string>): void {
  describe(`reserve, redemption, freeze over gRPC (${name})`, () => {
    let srv: TestServer;
    let r: ReturnType<typeof rpc>;
    const supply = async () => (await srv.call<object, GetSupplyResponse>("getSupply", {})).supply;
    const balance = (accountId: string) => srv.call<object, GetBalanceResponse>("getBalance", { accountId });
    const redeem = (accountId: string, amount: string, idempotencyKey: string) =>
      srv.call<object, RedeemUsdcResponse>("redeemUsdc", { accountId, amount, blockchain: Blockchain.BLOCKCHAIN_BASE, idempotencyKey });

    beforeAll(async () => {
      srv = await startTestServer(env());
      r = rpc(srv.call);
    });
    afterAll(async () => {
      await srv?.stop();
    });

    it("before a reserve, supply is not capped (reserve and headroom empty)", async () => {
      expect(await supply()).toEqual({ supply: "0", reserve: "", headroom: "", attestationRef: "", pendingApproval: "0" });
    });

    it("set a reserve, mint to the cap, one micro more is RESERVE_EXCEEDED with the headroom in metadata and changes nothing", async () => {
      const set = await srv.call<object, SetReserveResponse>("setReserve", { amount: "100", attestationRef: "auditor://2026-11/report-7" });
      expect(set.supply).toEqual({ supply: "0", reserve: "100", headroom: "100", attestationRef: "auditor://2026-11/report-7", pendingApproval: "0" });
      await r.mint("alice", "99.999999", "m1");
      const e = await expectError(r.mint("bob", "0.000002", "m2"));
      expect(e).toMatchObject({ code: status.FAILED_PRECONDITION, reason: "RESERVE_EXCEEDED", metadata: { headroom_micros: "1", supply_micros: "99999999", reserve_micros: "100000000", requested_micros: "2" } });
      expect(await r.balance("bob")).toBe("0");
      await r.mint("bob", "0.000001", "m3");
      expect(await supply()).toMatchObject({ supply: "100", headroom: "0" });
    });

    it("lowering the reserve below supply is RESERVE_EXCEEDED; bad reserve input is INVALID_ARGUMENT", async () => {
      expect(await expectError(srv.call("setReserve", { amount: "99", attestationRef: "x" }))).toMatchObject({ code: status.FAILED_PRECONDITION, reason: "RESERVE_EXCEEDED" });
      expect(await expectError(srv.call("setReserve", { amount: "-1", attestationRef: "x" }))).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "INVALID_AMOUNT" });
      expect(await expectError(srv.call("setReserve", { amount: "200", attestationRef: "" }))).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "INVALID_ATTESTATION_REF" });
      expect(await supply()).toMatchObject({ reserve: "100", attestationRef: "auditor://2026-11/report-7" });
      await srv.call("setReserve", { amount: "1000", attestationRef: "auditor://2026-12/report-8" });
    });

    it("redeem debits, lowers supply, replays for the same key, and is readable and listed", async () => {
      const first = await redeem("alice", "9.5", "r1");
      expect(first).toMatchObject({ replayed: false, redemption: { accountId: "alice", amount: "9.5", blockchain: Blockchain.BLOCKCHAIN_BASE, idempotencyKey: "r1", actor: "local" } });
      expect(first.redemption?.redemptionId).toMatch(/^rdm_[0-9A-Z]{26}$/);
      const again = await redeem("alice", "9.5", "r1");
      expect(again).toEqual({ ...first, replayed: true });
      expect(await r.balance("alice")).toBe("90.499999");
      expect(await supply()).toMatchObject({ supply: "90.5" });
      const got = await srv.call<object, GetRedemptionResponse>("getRedemption", { redemptionId: first.redemption?.redemptionId });
      expect(got.redemption).toEqual(first.redemption);
      const list = await srv.call<object, ListRedemptionsResponse>("listRedemptions", { accountId: "alice", pageSize: 0, pageToken: "" });
      expect(list.redemptions.map((x) => x.redemptionId)).toEqual([first.redemption?.redemptionId]);
      // The error shows the caller's own key (README: "responses and errors show the caller's own key"), not the store's scoped form.
      expect(await expectError(redeem("alice", "9.6", "r1"))).toMatchObject({
        code: status.ALREADY_EXISTS,
        reason: "IDEMPOTENCY_KEY_REUSED",
        metadata: { differing_fields: "amount", idempotency_key: "r1" },
      });
      expect(await expectError(srv.call("getRedemption", { redemptionId: "rdm_UNKNOWN" }))).toMatchObject({ code: status.NOT_FOUND, reason: "REDEMPTION_NOT_FOUND" });
      expect(await expectError(srv.call("getRedemption", { redemptionId: "nope" }))).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "INVALID_REDEMPTION_ID" });
    });

    it("redeeming more than the balance is INSUFFICIENT_FUNDS and changes nothing; bad input is INVALID_ARGUMENT", async () => {
      expect(await expectError(redeem("bob", "5", "r2"))).toMatchObject({ code: status.FAILED_PRECONDITION, reason: "INSUFFICIENT_FUNDS", metadata: { account_id: "bob" } });
      expect(await expectError(redeem("bob", "0", "r3"))).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "INVALID_AMOUNT" });
      expect(await expectError(srv.call("redeemUsdc", { accountId: "bob", amount: "1", blockchain: 0, idempotencyKey: "r4" }))).toMatchObject({ reason: "INVALID_BLOCKCHAIN" });
      expect(await expectError(redeem("bob", "1", ""))).toMatchObject({ reason: "INVALID_IDEMPOTENCY_KEY" });
      expect(await r.balance("bob")).toBe("0.000001");
      expect(await supply()).toMatchObject({ supply: "90.5" });
    });

    it("a frozen account: GetBalance shows it, every money path is ACCOUNT_FROZEN and changes nothing; unfreeze restores", async () => {
      const frozen = await srv.call<object, { frozen: boolean }>("freezeAccount", { accountId: "alice", reason: "court order 7" });
      expect(frozen).toEqual({ accountId: "alice", balance: "90.499999", frozen: true });
      expect(await balance("alice")).toEqual({ accountId: "alice", balance: "90.499999", pendingBalance: "0", frozen: true, freezeReason: "court order 7" });
      // One call at a time: a call made before the previous one is awaited could be refused while nothing listens to it (an unhandled rejection).
      for (const call of [() => r.mint("alice", "1", "f1"), () => r.transfer("alice", "bob", "1", "f2"), () => r.transfer("bob", "alice", "0.000001", "f3"), () => redeem("alice", "1", "f4")]) {
        expect(await expectError(call())).toMatchObject({ code: status.FAILED_PRECONDITION, reason: "ACCOUNT_FROZEN", metadata: { account_id: "alice" } });
      }
      expect(await balance("alice")).toMatchObject({ balance: "90.499999" });
      expect(await r.balance("bob")).toBe("0.000001");
      expect(await supply()).toMatchObject({ supply: "90.5" });
      expect(await srv.call("unfreezeAccount", { accountId: "alice", reason: "order lifted" })).toEqual({ accountId: "alice", balance: "90.499999", frozen: false });
      await r.transfer("alice", "bob", "1", "f2");
      expect(await balance("alice")).toEqual({ accountId: "alice", balance: "89.499999", pendingBalance: "0", frozen: false, freezeReason: "" });
      expect(await expectError(srv.call("freezeAccount", { accountId: "", reason: "x" }))).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "INVALID_ACCOUNT_ID" });
      expect(await expectError(srv.call("freezeAccount", { accountId: "bob", reason: "a\u0001b" }))).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "INVALID_REASON" });
      expect((await balance("bob")).frozen).toBe(false);
    });
  });
}

let db: TestDatabase | undefined;
suite("memory", () => ({}));
describe("on PostgreSQL", () => {
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db?.drop();
  });
  suite("postgres", () => ({ MINT_STORE: (db as TestDatabase).url }));
});

describe("MINT_RESERVE_REQUIRED=true", () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer({ MINT_RESERVE_REQUIRED: "true" });
  });
  afterAll(async () => {
    await srv?.stop();
  });

  it("refuses mints RESERVE_NOT_SET (nothing changed) until a reserve is set", async () => {
    const r = rpc(srv.call);
    expect(await expectError(r.mint("carol", "1", "k1"))).toMatchObject({ code: status.FAILED_PRECONDITION, reason: "RESERVE_NOT_SET" });
    expect(await r.balance("carol")).toBe("0");
    await srv.call("setReserve", { amount: "5", attestationRef: "a" });
    expect((await r.mint("carol", "1", "k1")).replayed).toBe(false);
  });
});

describe("page tokens of ListRedemptions and ListMints", () => {
  let srv: TestServer;
  beforeAll(async () => {
    srv = await startTestServer();
  });
  afterAll(async () => {
    await srv?.stop();
  });

  it("each RPC's token pages only that RPC: the other one refuses it INVALID_PAGE_TOKEN", async () => {
    const r = rpc(srv.call);
    for (const k of ["m1", "m2", "m3"]) await r.mint("pt", "10", k);
    for (const k of ["r1", "r2", "r3"]) {
      await srv.call("redeemUsdc", { accountId: "pt", amount: "1", blockchain: Blockchain.BLOCKCHAIN_BASE, idempotencyKey: k });
    }
    const reds = await srv.call<object, ListRedemptionsResponse>("listRedemptions", { accountId: "pt", pageSize: 1, pageToken: "" });
    expect(reds.nextPageToken).not.toBe("");
    const mints = await r.list("pt", 1);
    expect(mints.nextPageToken).not.toBe("");
    // Each token pages its own RPC...
    expect((await srv.call<object, ListRedemptionsResponse>("listRedemptions", { accountId: "pt", pageSize: 1, pageToken: reds.nextPageToken })).redemptions).toHaveLength(1);
    expect((await r.list("pt", 1, mints.nextPageToken)).mints).toHaveLength(1);
    // ...and the other RPC refuses it (it was not issued for that listing), also over all accounts.
    expect(await expectError(r.list("pt", 1, reds.nextPageToken))).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "INVALID_PAGE_TOKEN", badRequest: { fieldViolations: [{ field: "page_token" }] } });
    expect(await expectError(srv.call("listRedemptions", { accountId: "pt", pageSize: 1, pageToken: mints.nextPageToken }))).toMatchObject({ code: status.INVALID_ARGUMENT, reason: "INVALID_PAGE_TOKEN" });
    const allReds = await srv.call<object, ListRedemptionsResponse>("listRedemptions", { accountId: "", pageSize: 1, pageToken: "" });
    expect(await expectError(r.list("", 1, allReds.nextPageToken))).toMatchObject({ reason: "INVALID_PAGE_TOKEN" });
  });
});
