/**
 * The redemption contract, on every store (memory and PostgreSQL), with the
 * store's own outbox: a redemption on a settling
 * chain queues its burn with the debit; a FAILED burn re-credits the account
 * once (entry, supply, the redemption marked, one journal record with the
 * settlement worker as actor), however often it is marked failed; a CONFIRMED
 * burn moves no money. No chain here: the outbox's steps are driven directly.
 */
import { describe, expect, it } from "vitest";
import type { JournalEntry } from "../../src/domain/journal.js";
import { redeemRequest, type RedemptionRecord } from "../../src/domain/model.js";
import type { KeyedCall } from "../../src/domain/ports.js";
import type { Hex, SettlementTx } from "../../src/settlement/ports.js";
import { covered } from "./coverage.js";
import { mintNow, newKey, NO_DEADLINE, type SettlementStoresUnderTest, type StoresUnderTest } from "./stores-under-test.js";

const WAIT = { deadlineMs: NO_DEADLINE };
let n = 0;
const hash = (): Hex => `0x${(++n).toString(16).padStart(64, "0")}`;
const tx = (nonce: number): SettlementTx => ({ hash: hash(), raw: "0x02", nonce, maxFeePerGas: 2n, maxPriorityFeePerGas: 1n, signedWallMs: 1_700_000_000_000 });

function redeemCall(s: StoresUnderTest, accountId: string, amountMicros: bigint, settle: boolean, key = newKey()): KeyedCall {
  const request = redeemRequest(accountId, amountMicros, "ETHEREUM");
  const journal: JournalEntry = { actor: "redeemer", action: "RedeemUsdc", idempotencyKey: key, request, accounts: [accountId] };
  return {
    scope: "redeem",
    key,
    request,
    journal,
    effect: {
      kind: "redeem",
      cmd: { redemptionId: `rdm_${key}`, accountId, amountMicros, blockchain: "ETHEREUM", idempotencyKey: key, actor: "redeemer", createWallMs: s.clock.wallMs() },
      journal,
      ...(settle ? { settle } : {}),
    },
  };
}

async function redeemNow(s: StoresUnderTest, accountId: string, amountMicros: bigint, settle: boolean): Promise<RedemptionRecord> {
  const r = await s.store.applyOnce(redeemCall(s, accountId, amountMicros, settle), WAIT);
  if (!r.ok || r.value.stored.scope !== "redeem") throw new Error(`redeem failed: ${r.ok ? "not a redemption" : r.error.code}`);
  return r.value.stored.redemption;
}

export function redemptionContract(name: string, make: () => Promise<SettlementStoresUnderTest>): void {
  describe(`redemption contract (the burn's settlement effects): ${name}`, () => {
    const use = async (fn: (s: SettlementStoresUnderTest) => Promise<void>): Promise<void> => {
      const s = await make();
      try {
        await fn(s);
      } finally {
        await s.close();
      }
    };

    it("a settling redemption writes its burn (PENDING, id = redemption id) with the debit; one that does not settle writes none", () =>
      use(async (s) => {
        await mintNow(s, "alice", 10_000_000n);
        const r = await redeemNow(s, "alice", 4_000_000n, true);
        const burn = await s.outbox.get(r.redemptionId);
        expect([burn?.kind, burn?.state, burn?.amountMicros, burn?.blockchain]).toEqual(["burn", "PENDING", 4_000_000n, "ETHEREUM"]);
        expect(await s.ledger.getBalance("alice")).toBe(6_000_000n);
        const plain = await redeemNow(s, "alice", 1_000_000n, false);
        expect(await s.outbox.get(plain.redemptionId)).toBeNull();
        // Refused (short of funds): no debit and no burn.
        const refused = await s.store.applyOnce(redeemCall(s, "alice", 99_000_000n, true, "short"), WAIT);
        expect(refused.ok ? "ok" : refused.error.code).toBe("INSUFFICIENT_FUNDS");
        expect(await s.outbox.get("rdm_short")).toBeNull();
        expect(await s.ledger.getBalance("alice")).toBe(5_000_000n);
        expect((await s.ledger.getSupply()).supplyMicros).toBe(5_000_000n);
        covered("redemption", name);
      }));

    it("a FAILED burn re-credits the account once: entry, supply back up, the redemption marked, one journal record by the settlement worker", () =>
      use(async (s) => {
        await mintNow(s, "bob", 10_000_000n);
        const r = await redeemNow(s, "bob", 3_000_000n, true);
        expect((await s.ledger.getSupply()).supplyMicros).toBe(7_000_000n);
        expect((await s.outbox.recordSigned(r.redemptionId, tx(0), 1)).ok).toBe(true);
        for (let i = 0; i < 3; i++) await s.outbox.markFailed(r.redemptionId, null, "the burn transaction reverted on-chain", 1_700_000_000_500 + i);
        expect(await s.ledger.getBalance("bob")).toBe(10_000_000n);
        expect((await s.ledger.getSupply()).supplyMicros).toBe(10_000_000n);
        const marked = await s.ledger.getRedemption(r.redemptionId);
        expect([marked?.recreditWallMs, marked?.recreditReason]).toEqual([1_700_000_000_500, "settlement failed: the burn transaction reverted on-chain"]);
        expect(await s.entries(r.redemptionId)).toEqual(["redemption -3000000", "redemption_reversal 3000000"]);
        const records = await s.journaled("FailRedemptionSettlement");
        expect(records).toHaveLength(1);
        expect(records[0]?.actor).toBe("settlement-worker");
        expect(records[0]?.result).toEqual({ account_id: "bob", amount: "3000000", redemption_id: r.redemptionId, status: "RECREDITED" });
        expect(records[0]?.request).toMatchObject({ redemption_id: r.redemptionId, state: "FAILED" });
        // Final: a late confirmation changes nothing.
        await s.outbox.markConfirmed(r.redemptionId, { hash: hash(), blockNumber: 1n, confirmations: 1 }, 1_700_000_001_000);
        expect(await s.ledger.getBalance("bob")).toBe(10_000_000n);
        expect(await s.journaled("SettleRedemption")).toEqual([]);
        covered("burn-failed-recredit", name);
      }));

    it("a re-credit reaches a frozen account (it is the account's own money coming back)", () =>
      use(async (s) => {
        await mintNow(s, "carol", 5_000_000n);
        const r = await redeemNow(s, "carol", 5_000_000n, true);
        expect((await s.store.setFrozen("carol", true, "investigation", { actor: "compliance", action: "FreezeAccount", idempotencyKey: null, request: {}, accounts: ["carol"] }, WAIT)).ok).toBe(true);
        expect((await s.outbox.recordSigned(r.redemptionId, tx(0), 1)).ok).toBe(true);
        await s.outbox.markFailed(r.redemptionId, null, "dropped", 2);
        expect(await s.store.getAccount("carol")).toMatchObject({ balanceMicros: 5_000_000n, frozen: true });
      }));

    it("a CONFIRMED burn moves no money and is journaled once by the settlement worker", () =>
      use(async (s) => {
        await mintNow(s, "dave", 10_000_000n);
        const r = await redeemNow(s, "dave", 2_000_000n, true);
        expect((await s.outbox.recordSigned(r.redemptionId, tx(0), 1)).ok).toBe(true);
        const mined = { hash: hash(), blockNumber: 9n, confirmations: 1 };
        await s.outbox.markConfirmed(r.redemptionId, mined, 3);
        await s.outbox.markConfirmed(r.redemptionId, mined, 4);
        await s.outbox.markFailed(r.redemptionId, mined, "late", 5);
        expect(await s.ledger.getBalance("dave")).toBe(8_000_000n);
        expect((await s.ledger.getSupply()).supplyMicros).toBe(8_000_000n);
        expect((await s.ledger.getRedemption(r.redemptionId))?.recreditWallMs).toBeUndefined();
        expect(await s.entries(r.redemptionId)).toEqual(["redemption -2000000"]);
        const records = await s.journaled("SettleRedemption");
        expect(records.map((x) => [x.actor, x.request.redemption_id, x.request.tx_hash])).toEqual([["settlement-worker", r.redemptionId, mined.hash]]);
        expect(await s.journaled("FailRedemptionSettlement")).toEqual([]);
      }));
  });
}
