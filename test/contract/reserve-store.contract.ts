/**
 * The reserve, redemption and freeze part of the `ExactlyOnceStore`
 * contract, run against every adapter. Supply never passes a set reserve
 * (mints racing to the last micro-USDC of headroom end exactly at it);
 * supply always equals the ledger's sum; a freeze is atomic against calls in
 * flight on the account; every refusal changes nothing and leaves the key
 * free. Interleavings come from `fc.scheduler` (which call starts when); on
 * PostgreSQL the calls also really run concurrently on the pool.
 */
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { JournalEntry } from "../../src/domain/journal.js";
import { redeemRequest, type StoredResult } from "../../src/domain/model.js";
import type { KeyedCall } from "../../src/domain/ports.js";
import type { Result } from "../../src/domain/result.js";
import { mintRequest, newKey, newMintId, newTransferId, NO_DEADLINE, transferRequest, type MakeStores, type StoresUnderTest } from "./stores-under-test.js";
import { covered } from "./coverage.js";

type Applied = Result<{ stored: StoredResult; replayed: boolean }>;

const WAIT = { deadlineMs: NO_DEADLINE };
const JOURNAL: JournalEntry = { actor: "test", action: "Test", idempotencyKey: null, request: {}, accounts: [] };

let redemptionCounter = 0;

export function reserveStoreContract(name: string, make: MakeStores): void {
  describe(`ExactlyOnceStore contract (reserve, redemption, freeze): ${name}`, () => {
    let s: StoresUnderTest;
    beforeEach(async () => {
      s = await make();
    });
    afterEach(async () => {
      await s.close();
    });

    function mintCall(key: string, accountId: string, amountMicros: bigint, reserveRequired = false): KeyedCall {
      return {
        scope: "mint",
        key,
        request: mintRequest(accountId, amountMicros),
        effect: {
          kind: "mint",
          reserveRequired,
          cmd: { mintId: newMintId(), accountId, amountMicros, blockchain: "ETHEREUM", idempotencyKey: key, createWallMs: s.clock.wallMs() },
        },
      };
    }

    function transferCall(key: string, from: string, to: string, amountMicros: bigint): KeyedCall {
      return {
        scope: "transfer",
        key,
        request: transferRequest(from, to, amountMicros),
        effect: {
          kind: "transfer",
          cmd: { transferId: newTransferId(), fromAccountId: from, toAccountId: to, amountMicros, idempotencyKey: key, createWallMs: s.clock.wallMs() },
        },
      };
    }

    function redeemCall(key: string, accountId: string, amountMicros: bigint): KeyedCall {
      return {
        scope: "redeem",
        key,
        request: redeemRequest(accountId, amountMicros, "ETHEREUM"),
        effect: {
          kind: "redeem",
          cmd: {
            redemptionId: `rdm_${String(++redemptionCounter).padStart(26, "0")}`,
            accountId,
            amountMicros,
            blockchain: "ETHEREUM",
            idempotencyKey: key,
            actor: "test",
            createWallMs: s.clock.wallMs(),
          },
          journal: JOURNAL,
        },
      };
    }

    async function mint(accountId: string, amountMicros: bigint): Promise<void> {
      const r = await s.store.applyOnce(mintCall(newKey(), accountId, amountMicros), WAIT);
      if (!r.ok) throw new Error(`setup mint failed: ${r.error.code}`);
    }

    async function supply(): Promise<bigint> {
      return (await s.store.getSupply()).supplyMicros;
    }

    /** Everything a refusal must leave as it was. */
    async function snapshot(accounts: string[]): Promise<unknown> {
      return { supply: await s.store.getSupply(), accounts: await Promise.all(accounts.map((a) => s.store.getAccount(a))) };
    }

    it("before any reserve, supply is not capped and GetSupply says so", async () => {
      expect(await s.store.getSupply()).toEqual({ supplyMicros: 0n, reserveMicros: null, attestationRef: "", headroomMicros: null, pendingApprovalMicros: 0n });
      await mint("alice", 10n ** 20n);
      expect(await s.store.getSupply()).toMatchObject({ supplyMicros: 10n ** 20n, reserveMicros: null, headroomMicros: null });
    });

    it("with the reserve required and none set, a mint is RESERVE_NOT_SET, changes nothing and leaves the key free", async () => {
      const key = newKey();
      const before = await snapshot(["alice"]);
      expect(await s.store.applyOnce(mintCall(key, "alice", 5n, true), WAIT)).toMatchObject({ ok: false, error: { code: "RESERVE_NOT_SET" } });
      expect(await snapshot(["alice"])).toEqual(before);
      expect(await s.store.setReserve(5n, "audit-1", JOURNAL, WAIT)).toMatchObject({ ok: true });
      expect(await s.store.applyOnce(mintCall(key, "alice", 5n, true), WAIT)).toMatchObject({ ok: true, value: { replayed: false } });
      expect(await s.store.getSupply()).toEqual({ supplyMicros: 5n, reserveMicros: 5n, attestationRef: "audit-1", headroomMicros: 0n, pendingApprovalMicros: 0n });
    });

    it("a mint to exactly the reserve passes; one micro-USDC more is RESERVE_EXCEEDED with the headroom, changes nothing, key free", async () => {
      expect(await s.store.setReserve(1_000_000n, "audit-1", JOURNAL, WAIT)).toMatchObject({ ok: true, value: { headroomMicros: 1_000_000n } });
      await mint("alice", 999_999n);
      const key = newKey();
      const before = await snapshot(["alice", "bob"]);
      expect(await s.store.applyOnce(mintCall(key, "bob", 2n), WAIT)).toEqual({
        ok: false,
        error: { code: "RESERVE_EXCEEDED", headroomMicros: 1n, supplyMicros: 999_999n, reserveMicros: 1_000_000n, requestedMicros: 2n },
      });
      expect(await snapshot(["alice", "bob"])).toEqual(before);
      await mint("bob", 1n);
      expect(await s.store.getSupply()).toMatchObject({ supplyMicros: 1_000_000n, headroomMicros: 0n });
      // The refused key is free: once the reserve allows it, the same key mints.
      expect(await s.store.setReserve(1_000_002n, "audit-2", JOURNAL, WAIT)).toMatchObject({ ok: true });
      expect(await s.store.applyOnce(mintCall(key, "bob", 2n), WAIT)).toMatchObject({ ok: true, value: { replayed: false } });
      expect(await s.store.getBalance("bob")).toBe(3n);
      covered("reserve-cap", name);
    });

    it("lowering the reserve below supply is RESERVE_EXCEEDED and changes nothing; to exactly supply is allowed", async () => {
      await s.store.setReserve(100n, "a", JOURNAL, WAIT);
      await mint("alice", 60n);
      expect(await s.store.setReserve(59n, "b", JOURNAL, WAIT)).toMatchObject({ ok: false, error: { code: "RESERVE_EXCEEDED", supplyMicros: 60n, reserveMicros: 100n } });
      expect(await s.store.getSupply()).toEqual({ supplyMicros: 60n, reserveMicros: 100n, attestationRef: "a", headroomMicros: 40n, pendingApprovalMicros: 0n });
      expect(await s.store.setReserve(60n, "c", JOURNAL, WAIT)).toMatchObject({ ok: true, value: { headroomMicros: 0n } });
    });

    it("mints racing to the last micro-USDC of headroom end exactly at the reserve, never above", async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.scheduler(),
          fc.integer({ min: 1, max: 6 }),
          fc.array(fc.bigInt({ min: 1n, max: 9n }), { minLength: 0, maxLength: 6 }),
          async (sched, headroom, bigger) => {
            const start = await supply();
            const reserve = start + BigInt(headroom);
            expect(await s.store.setReserve(reserve, "race", JOURNAL, WAIT)).toMatchObject({ ok: true });
            // `headroom` one-micro mints alone can fill it, whatever runs first.
            const amounts = [...bigger, ...Array.from({ length: headroom }, () => 1n)];
            const calls = amounts.map((amount, i) =>
              sched.schedule(Promise.resolve()).then(() => s.store.applyOnce(mintCall(newKey(), `race-${i % 3}`, amount), WAIT)),
            );
            await sched.waitAll();
            const results: Applied[] = await Promise.all(calls);
            let accepted = 0n;
            results.forEach((r, i) => {
              if (r.ok) accepted += amounts[i] as bigint;
              else {
                expect(r.error.code).toBe("RESERVE_EXCEEDED");
                if (r.error.code === "RESERVE_EXCEEDED") expect(r.error.headroomMicros).toBeLessThan(amounts[i] as bigint);
              }
            });
            expect(await s.store.getSupply()).toMatchObject({ supplyMicros: reserve, headroomMicros: 0n });
            expect(accepted).toBe(BigInt(headroom));
          },
        ),
        { numRuns: 10 },
      );
      covered("reserve-cap", name);
    });

    it("supply equals the ledger's sum after random mints, transfers, reversals and redemptions", async () => {
      const accounts = ["a", "b", "c"];
      const op = fc.oneof(
        fc.record({ kind: fc.constant("mint" as const), to: fc.constantFrom(...accounts), amount: fc.bigInt({ min: 1n, max: 50n }) }),
        fc.record({ kind: fc.constant("transfer" as const), from: fc.constantFrom(...accounts), to: fc.constantFrom(...accounts), amount: fc.bigInt({ min: 1n, max: 50n }) }),
        fc.record({ kind: fc.constant("redeem" as const), from: fc.constantFrom(...accounts), amount: fc.bigInt({ min: 1n, max: 50n }) }),
        fc.record({ kind: fc.constant("reverse" as const), pick: fc.nat() }),
      );
      const mintIds: string[] = [];
      await fc.assert(
        fc.asyncProperty(fc.scheduler(), fc.array(op, { maxLength: 12 }), async (sched, ops) => {
          const calls = ops.map((o) =>
            sched.schedule(Promise.resolve()).then(async () => {
              if (o.kind === "mint") {
                const r = await s.store.applyOnce(mintCall(newKey(), o.to, o.amount), WAIT);
                if (r.ok && r.value.stored.scope === "mint") mintIds.push(r.value.stored.mint.mintId);
              } else if (o.kind === "transfer") {
                if (o.from !== o.to) await s.store.applyOnce(transferCall(newKey(), o.from, o.to, o.amount), WAIT);
              } else if (o.kind === "redeem") {
                await s.store.applyOnce(redeemCall(newKey(), o.from, o.amount), WAIT);
              } else if (mintIds.length > 0) {
                await s.store.reverseMint(mintIds[o.pick % mintIds.length] as string, "test", s.clock.wallMs(), WAIT);
              }
            }),
          );
          await sched.waitAll();
          await Promise.all(calls);
          let sum = 0n;
          for (const a of accounts) {
            const b = await s.store.getBalance(a);
            expect(b).toBeGreaterThanOrEqual(0n);
            sum += b;
          }
          expect(await supply()).toBe(sum);
        }),
        { numRuns: 15 },
      );
      covered("supply-ledger", name);
    });

    it("a redemption debits the account, lowers supply, replays for the same key and is listed", async () => {
      await mint("alice", 10n);
      const key = newKey();
      const first = await s.store.applyOnce(redeemCall(key, "alice", 4n), WAIT);
      expect(first).toMatchObject({ ok: true, value: { replayed: false, stored: { scope: "redeem", redemption: { accountId: "alice", amountMicros: 4n } } } });
      const again = await s.store.applyOnce(redeemCall(key, "alice", 4n), WAIT);
      expect(again).toMatchObject({ ok: true, value: { replayed: true } });
      if (!first.ok || first.value.stored.scope !== "redeem" || !again.ok || again.value.stored.scope !== "redeem") throw new Error("unreachable");
      expect(again.value.stored.redemption).toEqual(first.value.stored.redemption);
      expect(await s.store.getBalance("alice")).toBe(6n);
      expect(await supply()).toBe(6n);
      const id = first.value.stored.redemption.redemptionId;
      expect(await s.store.getRedemption(id)).toEqual(first.value.stored.redemption);
      expect(await s.store.getRedemption("rdm_NOPE")).toBeNull();
      const listed = await s.store.listRedemptions({ accountId: "alice", afterSeq: 0, limit: 10 });
      expect(listed.map((l) => l.redemption.redemptionId)).toEqual([id]);
      expect(await s.store.listRedemptions({ accountId: "bob", afterSeq: 0, limit: 10 })).toEqual([]);
      expect(await s.store.listRedemptions({ accountId: null, afterSeq: listed[0]?.seq ?? 0, limit: 10 })).toEqual([]);
      covered("redemption", name);
    });

    it("the journal gets one record per applied redemption, reserve change and freeze, in the same step; a refused SetReserve appends none", async () => {
      await mint("alice", 10n);
      const actions = async (): Promise<string[]> => {
        // PostgreSQL seals after commit; the count of all records (sealed or not) is what the step wrote.
        await vi.waitFor(async () => expect(await s.store.audit.unsealedCount()).toBe(0));
        return (await s.store.audit.readSealed(0, 1000)).map((r) => r.action);
      };
      const before = (await actions()).length;
      expect(await s.store.applyOnce({ ...redeemCall(newKey(), "alice", 4n), journal: { ...JOURNAL, action: "RedeemUsdc" } }, WAIT)).toMatchObject({ ok: true });
      expect(await s.store.setReserve(6n, "att-1", { ...JOURNAL, action: "SetReserve" }, WAIT)).toMatchObject({ ok: true });
      expect(await s.store.setReserve(5n, "att-2", { ...JOURNAL, action: "SetReserve" }, WAIT)).toMatchObject({ ok: false, error: { code: "RESERVE_EXCEEDED" } });
      expect(await s.store.setFrozen("alice", true, "r", { ...JOURNAL, action: "FreezeAccount" }, WAIT)).toMatchObject({ ok: true });
      expect(await s.store.setFrozen("alice", false, "", { ...JOURNAL, action: "UnfreezeAccount" }, WAIT)).toMatchObject({ ok: true });
      expect((await actions()).slice(before)).toEqual(["RedeemUsdc", "SetReserve", "FreezeAccount", "UnfreezeAccount"]);
    });

    it("a redemption of more than the balance is INSUFFICIENT_FUNDS, changes nothing and leaves the key free", async () => {
      await mint("alice", 3n);
      const key = newKey();
      const before = await snapshot(["alice"]);
      expect(await s.store.applyOnce(redeemCall(key, "alice", 4n), WAIT)).toMatchObject({ ok: false, error: { code: "INSUFFICIENT_FUNDS", accountId: "alice" } });
      expect(await s.store.applyOnce(redeemCall(newKey(), "nobody", 1n), WAIT)).toMatchObject({ ok: false, error: { code: "INSUFFICIENT_FUNDS" } });
      expect(await snapshot(["alice"])).toEqual(before);
      await mint("alice", 1n);
      expect(await s.store.applyOnce(redeemCall(key, "alice", 4n), WAIT)).toMatchObject({ ok: true, value: { replayed: false } });
    });

    it("a frozen account neither receives nor sends (ACCOUNT_FROZEN, nothing changed, keys free); reads work; unfreeze restores", async () => {
      await mint("alice", 10n);
      await mint("bob", 10n);
      expect(await s.store.setFrozen("alice", true, "court order 7", JOURNAL, WAIT)).toEqual({
        ok: true,
        value: { accountId: "alice", balanceMicros: 10n, frozen: true, freezeReason: "court order 7" },
      });
      const keys = { mint: newKey(), out: newKey(), in: newKey(), redeem: newKey() };
      const before = await snapshot(["alice", "bob"]);
      const frozen = { ok: false, error: { code: "ACCOUNT_FROZEN", accountId: "alice" } };
      expect(await s.store.applyOnce(mintCall(keys.mint, "alice", 1n), WAIT)).toEqual(frozen);
      expect(await s.store.applyOnce(transferCall(keys.out, "alice", "bob", 1n), WAIT)).toEqual(frozen);
      expect(await s.store.applyOnce(transferCall(keys.in, "bob", "alice", 1n), WAIT)).toEqual(frozen);
      expect(await s.store.applyOnce(redeemCall(keys.redeem, "alice", 1n), WAIT)).toEqual(frozen);
      expect(await snapshot(["alice", "bob"])).toEqual(before);
      expect(await s.store.getBalance("alice")).toBe(10n);
      expect(await s.store.setFrozen("alice", false, "", JOURNAL, WAIT)).toMatchObject({ ok: true, value: { frozen: false, freezeReason: "" } });
      for (const call of [mintCall(keys.mint, "alice", 1n), transferCall(keys.out, "alice", "bob", 1n), transferCall(keys.in, "bob", "alice", 1n), redeemCall(keys.redeem, "alice", 1n)]) {
        expect(await s.store.applyOnce(call, WAIT)).toMatchObject({ ok: true, value: { replayed: false } });
      }
      expect(await s.store.getBalance("alice")).toBe(10n);
      covered("freeze", name);
    });

    it("an account never seen can be frozen before its first mint", async () => {
      expect(await s.store.getAccount("carol")).toEqual({ accountId: "carol", balanceMicros: 0n, frozen: false, freezeReason: "" });
      await s.store.setFrozen("carol", true, "sanctions list", JOURNAL, WAIT);
      expect(await s.store.applyOnce(mintCall(newKey(), "carol", 1n), WAIT)).toMatchObject({ ok: false, error: { code: "ACCOUNT_FROZEN" } });
      expect(await supply()).toBe(0n);
    });

    it("a freeze racing a transfer: the transfer finished before it or is refused, never half", async () => {
      await fc.assert(
        fc.asyncProperty(fc.scheduler(), fc.constantFrom("from", "to"), async (sched, side) => {
          const id = newKey();
          const from = `f-${id}`;
          const to = `t-${id}`;
          await mint(from, 5n);
          const target = side === "from" ? from : to;
          const transfer = sched.schedule(Promise.resolve()).then(() => s.store.applyOnce(transferCall(newKey(), from, to, 5n), WAIT));
          const freeze = sched.schedule(Promise.resolve()).then(() => s.store.setFrozen(target, true, "race", JOURNAL, WAIT));
          await sched.waitAll();
          const [t, f] = await Promise.all([transfer, freeze]);
          expect(f.ok).toBe(true);
          const balances = [await s.store.getBalance(from), await s.store.getBalance(to)];
          if (t.ok) expect(balances).toEqual([0n, 5n]);
          else {
            expect(t.error).toEqual({ code: "ACCOUNT_FROZEN", accountId: target });
            expect(balances).toEqual([5n, 0n]);
          }
          expect((await s.store.getAccount(target)).frozen).toBe(true);
        }),
        { numRuns: 12 },
      );
      covered("freeze", name);
    });
  });
}
