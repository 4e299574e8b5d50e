/**
 * The minter-allowance contract of `ApprovalStore`, run against every store
 * with its settlement outbox attached (as the service wires it):
 *
 * - a mint takes from its minter's allowance in its own atomic step, never
 *   beyond it, however many race;
 * - a manager's Set is the final word: a rejection, an expiry, a
 *   ReconcileMint or a failed settlement gives a charge back only when the
 *   charge came after the last Set; a charge from before a Set stays spent,
 *   and the rejection's or reversal's own journal record says so
 *   (`allowance_not_refunded`);
 * - SetMinterAllowance with an expected value is a compare-and-set;
 * - after every path that frees a mint's key, a same-key mint applies afresh
 *   and never replays the mint as COMPLETED once it is reversed.
 */
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { JournalEntry } from "../../src/domain/journal.js";
import type { MintRecord, NewMint, StoredResult } from "../../src/domain/model.js";
import type { KeyedCall } from "../../src/domain/ports.js";
import type { Result } from "../../src/domain/result.js";
import type { SettlementTx } from "../../src/domain/settlement/ports.js";
import { covered } from "./coverage.js";
import { mintRequest, newKey, newMintId, NO_DEADLINE, type MakeSettlementStores, type SettlementStoresUnderTest } from "./stores-under-test.js";

const TTL_MS = 3_600_000;
const WAIT = { deadlineMs: NO_DEADLINE };
const MINTER = "minter-1";
const journal = (actor: string, action: string): JournalEntry => ({ actor, action, idempotencyKey: null, request: {}, accounts: [] });
let nonce = 0;
const signedTx = (): SettlementTx => ({ hash: `0x${(++nonce).toString(16).padStart(64, "a")}`, raw: "0x02", nonce, maxFeePerGas: 2n, maxPriorityFeePerGas: 1n, signedWallMs: 1_700_000_000_000 });

export function allowancesContract(name: string, make: MakeSettlementStores): void {
  describe(`allowances contract: ${name}`, () => {
    let s: SettlementStoresUnderTest;
    beforeEach(async () => {
      s = await make();
    });
    afterEach(async () => {
      await s.close();
    });

    function call(key: string, accountId: string, amountMicros: bigint, opts: { requester?: string; pending?: boolean; settle?: boolean; charge?: boolean } = {}): KeyedCall {
      const createWallMs = s.clock.wallMs();
      let cmd: NewMint = {
        mintId: newMintId(),
        accountId,
        amountMicros,
        blockchain: "ETHEREUM",
        idempotencyKey: key,
        createWallMs,
        requester: opts.requester ?? MINTER,
        chargeAllowance: opts.charge ?? true,
      };
      if (opts.pending === true) cmd = { ...cmd, pending: { required: 2, expireWallMs: createWallMs + TTL_MS } };
      if (opts.settle === true) cmd = { ...cmd, settle: true };
      return { scope: "mint", key, request: mintRequest(accountId, amountMicros), effect: { kind: "mint", cmd } };
    }

    function minted(r: Result<{ stored: StoredResult; replayed: boolean }>): MintRecord {
      if (!r.ok) throw new Error(`expected success, got ${r.error.code}`);
      if (r.value.stored.scope !== "mint") throw new Error("expected a mint");
      return r.value.stored.mint;
    }

    const mint = async (key: string, account: string, amountMicros: bigint, opts: Parameters<typeof call>[3] = {}): Promise<MintRecord> => minted(await s.store.applyOnce(call(key, account, amountMicros, opts), WAIT));
    const setTo = async (amountMicros: bigint, principal = MINTER): Promise<void> => {
      const r = await s.store.setAllowance(principal, amountMicros, journal("rm", "SetMinterAllowance"), s.clock.wallMs());
      expect(r).toEqual({ ok: true, value: undefined });
    };
    const allowance = (principal = MINTER): Promise<bigint> => s.store.getAllowance(principal);
    /** The result of the only journal record of `action` about `mintId`. */
    async function recordOf(action: string, mintId: string): Promise<Record<string, unknown>> {
      const records = (await s.journaled(action)).filter((r) => r.result.mint_id === mintId);
      expect(records).toHaveLength(1);
      return records[0]?.result ?? {};
    }

    /** A same-key mint after the key was freed: applied afresh (a new mint), never a replay of the old one. */
    async function expectFreshAfter(old: MintRecord, opts: Parameters<typeof call>[3] = {}): Promise<void> {
      await setTo((await allowance()) + old.amountMicros);
      const again = await s.store.applyOnce(call(old.idempotencyKey, old.accountId, old.amountMicros, opts), WAIT);
      expect(again.ok && again.value.replayed).toBe(false);
      expect(minted(again).mintId).not.toBe(old.mintId);
    }

    it("a mint takes from its minter's allowance; beyond it ALLOWANCE_EXCEEDED changes nothing and leaves the key free", async () => {
      await setTo(10n);
      expect(await allowance("nobody")).toBe(0n);
      const seven = await mint(newKey(), "acct-a", 7n);
      expect(seven.allowanceCharged).toBe(true);
      expect(await allowance()).toBe(3n);
      const key = newKey();
      const over = await s.store.applyOnce(call(key, "acct-a", 4n), WAIT);
      expect(over).toEqual({ ok: false, error: { code: "ALLOWANCE_EXCEEDED", principal: MINTER, remainingMicros: 3n, amountMicros: 4n } });
      expect([await allowance(), await s.store.getBalance("acct-a")]).toEqual([3n, 7n]);
      expect((await mint(key, "acct-a", 3n)).amountMicros).toBe(3n);
      expect(await allowance()).toBe(0n);
      // A principal never set has nothing to take from.
      expect((await s.store.applyOnce(call(newKey(), "acct-a", 1n, { requester: "never-set" }), WAIT)).ok).toBe(false);
      covered("allowance-charge", name);
    });

    it("racing mints of one minter never take more than its allowance (fc.scheduler)", async () => {
      await fc.assert(
        fc.asyncProperty(fc.scheduler(), fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 2, maxLength: 8 }), fc.integer({ min: 0, max: 20 }), async (sched, amounts, start) => {
          const minter = `minter-${newKey()}`;
          await setTo(BigInt(start), minter);
          const calls = amounts.map((a, i) => sched.schedule(Promise.resolve()).then(() => s.store.applyOnce(call(newKey(), `acct-${minter}-${i % 3}`, BigInt(a), { requester: minter }), WAIT)));
          await sched.waitAll();
          let taken = 0n;
          for (const r of await Promise.all(calls)) {
            if (r.ok) taken += minted(r).amountMicros;
            else expect(r.error.code).toBe("ALLOWANCE_EXCEEDED");
          }
          expect(taken).toBeLessThanOrEqual(BigInt(start));
          expect(await allowance(minter)).toBe(BigInt(start) - taken);
          let credited = 0n;
          for (let i = 0; i < 3; i++) credited += await s.store.getBalance(`acct-${minter}-${i}`);
          expect(credited).toBe(taken);
        }),
        { numRuns: 10 },
      );
      covered("allowance-charge", name);
    });

    it("rejection: a charge from before a Set stays spent (journaled); one from after the last Set comes back; the key mints afresh", async () => {
      await setTo(5_000n);
      const early = await mint(newKey(), "acct-r", 5_000n, { pending: true });
      expect(await allowance()).toBe(0n);
      await setTo(0n); // the manager revokes
      expect((await s.store.rejectMint(early.mintId, "no", "bob", s.clock.wallMs(), journal("bob", "RejectMint"), WAIT)).ok).toBe(true);
      expect(await allowance()).toBe(0n);
      expect(await recordOf("RejectMint", early.mintId)).toMatchObject({ status: "REJECTED", allowance_not_refunded: "5000" });
      covered("refund-reject-before-set", name);

      await setTo(3_000n);
      const late = await mint(newKey(), "acct-r", 1_000n, { pending: true });
      expect(await allowance()).toBe(2_000n);
      expect((await s.store.rejectMint(late.mintId, "no", "bob", s.clock.wallMs(), journal("bob", "RejectMint"), WAIT)).ok).toBe(true);
      expect(await allowance()).toBe(3_000n);
      expect(await recordOf("RejectMint", late.mintId)).not.toHaveProperty("allowance_not_refunded");
      covered("refund-reject-after-set", name);

      await expectFreshAfter(early, { pending: true });
      covered("replay-after-reject", name);
    });

    it("expiry: a charge from before a Set stays spent (journaled); one from after the last Set comes back; the key mints afresh", async () => {
      await setTo(700n);
      const early = await mint(newKey(), "acct-e", 700n, { pending: true });
      await setTo(50n);
      const expireAt = early.approval?.expireWallMs as number;
      expect(await s.store.expiredPending(expireAt, 10)).toEqual([early.mintId]);
      expect((await s.store.rejectMint(early.mintId, "expired", "sweeper", expireAt, journal("sweeper", "ExpireMint"), WAIT)).ok).toBe(true);
      expect(await allowance()).toBe(50n);
      expect(await recordOf("ExpireMint", early.mintId)).toMatchObject({ status: "REJECTED", allowance_not_refunded: "700" });
      covered("refund-expiry-before-set", name);

      const late = await mint(newKey(), "acct-e", 20n, { pending: true });
      expect(await allowance()).toBe(30n);
      const lateExpiry = late.approval?.expireWallMs as number;
      expect((await s.store.rejectMint(late.mintId, "expired", "sweeper", lateExpiry, journal("sweeper", "ExpireMint"), WAIT)).ok).toBe(true);
      expect(await allowance()).toBe(50n);
      expect(await recordOf("ExpireMint", late.mintId)).not.toHaveProperty("allowance_not_refunded");
      covered("refund-expiry-after-set", name);

      await expectFreshAfter(early, { pending: true });
      covered("replay-after-expiry", name);
    });

    it("ReconcileMint: a charge from before a Set stays spent (journaled); one from after the last Set comes back; the key mints afresh", async () => {
      await setTo(5_000n);
      const early = await mint(newKey(), "acct-c", 2_000n);
      expect(await allowance()).toBe(3_000n);
      await setTo(10n);
      const reversed = await s.store.reverseMint(early.mintId, "reorg", s.clock.wallMs(), WAIT, journal("ops", "ReconcileMint"));
      expect(reversed.ok && reversed.value.status).toBe("REVERSED");
      expect(await allowance()).toBe(10n);
      expect(await recordOf("ReconcileMint", early.mintId)).toMatchObject({ status: "REVERSED", allowance_not_refunded: "2000" });
      covered("refund-reconcile-before-set", name);

      const late = await mint(newKey(), "acct-c", 4n);
      expect(await allowance()).toBe(6n);
      expect((await s.store.reverseMint(late.mintId, "reorg", s.clock.wallMs(), WAIT, journal("ops", "ReconcileMint"))).ok).toBe(true);
      expect(await allowance()).toBe(10n);
      expect(await recordOf("ReconcileMint", late.mintId)).not.toHaveProperty("allowance_not_refunded");
      covered("refund-reconcile-after-set", name);

      await expectFreshAfter(early);
      covered("replay-after-reconcile", name);
    });

    it("a pending mint approved after a Set keeps its charge's generation: reversed later, it gives nothing back", async () => {
      await setTo(900n);
      const m = await mint(newKey(), "acct-g", 900n, { pending: true });
      await setTo(100n);
      expect((await s.store.approveMint(m.mintId, "bob", s.clock.wallMs(), journal("bob", "ApproveMint"), WAIT)).ok).toBe(true);
      const done = await s.store.approveMint(m.mintId, "carol", s.clock.wallMs(), journal("carol", "ApproveMint"), WAIT);
      expect(done.ok && done.value.status).toBe("COMPLETED");
      expect((await s.store.reverseMint(m.mintId, "reorg", s.clock.wallMs(), WAIT, journal("ops", "ReconcileMint"))).ok).toBe(true);
      expect(await allowance()).toBe(100n);
    });

    it("a failed settlement refunds a charge made after the last Set, as a rejection or ReconcileMint does", async () => {
      await setTo(100n);
      const m = await mint(newKey(), "acct-f", 60n, { settle: true });
      expect(await allowance()).toBe(40n);
      expect((await s.outbox.recordSigned(m.mintId, signedTx(), 1)).ok).toBe(true);
      await s.outbox.markFailed(m.mintId, null, "dropped", 1_700_000_001_000);
      expect((await s.store.getMint(m.mintId))?.status).toBe("REVERSED");
      expect(await allowance()).toBe(100n);
      expect(await recordOf("FailMintSettlement", m.mintId)).not.toHaveProperty("allowance_not_refunded");
      covered("refund-settlement-failure-after-set", name);
    });

    it("a failed settlement reverses the pending credit once; a charge from before a Set stays spent (journaled), one from after comes back; the key mints afresh", async () => {
      await setTo(5_000n);
      const early = await mint(newKey(), "acct-s", 3_000n, { settle: true });
      expect([await s.store.getPendingBalance?.("acct-s"), (await s.store.getSupply()).supplyMicros, await allowance()]).toEqual([3_000n, 3_000n, 2_000n]);
      await setTo(100n);
      expect((await s.outbox.recordSigned(early.mintId, signedTx(), 1)).ok).toBe(true);
      for (let i = 0; i < 2; i++) await s.outbox.markFailed(early.mintId, null, "reverted on-chain", 1_700_000_000_500 + i);
      expect((await s.store.getMint(early.mintId))?.status).toBe("REVERSED");
      expect([await s.store.getPendingBalance?.("acct-s"), await s.store.getBalance("acct-s"), (await s.store.getSupply()).supplyMicros]).toEqual([0n, 0n, 0n]);
      expect(await s.entries(early.mintId)).toEqual(["mint 3000", "reversal -3000"]);
      covered("settlement-failure-reversal", name);
      expect(await allowance()).toBe(100n);
      expect(await recordOf("FailMintSettlement", early.mintId)).toMatchObject({ status: "REVERSED", allowance_not_refunded: "3000" });
      covered("refund-settlement-failure-before-set", name);

      const late = await mint(newKey(), "acct-s", 60n, { settle: true });
      expect(await allowance()).toBe(40n);
      expect((await s.outbox.recordSigned(late.mintId, signedTx(), 2)).ok).toBe(true);
      await s.outbox.markFailed(late.mintId, null, "dropped", 1_700_000_001_000);
      expect(await allowance()).toBe(100n);
      expect(await recordOf("FailMintSettlement", late.mintId)).not.toHaveProperty("allowance_not_refunded");
      covered("refund-settlement-failure-after-set", name);

      await expectFreshAfter(early, { settle: true });
      covered("replay-after-settlement-failure", name);
    });

    it("a same-key mint racing a failed settlement never replays COMPLETED for a mint already reversed", async () => {
      await setTo(1_000_000n);
      // The same-key call starts 0..11 promise turns after the failure begins.
      for (let turns = 0; turns < 12; turns++) {
        const m = await mint(newKey(), "acct-x", 10n, { settle: true });
        expect((await s.outbox.recordSigned(m.mintId, signedTx(), 10 + turns)).ok).toBe(true);
        const failing = s.outbox.markFailed(m.mintId, null, "reverted", 1_700_000_002_000);
        for (let i = 0; i < turns; i++) await Promise.resolve();
        // The mint's status is read just before the same-key call starts. The read is finished first: on
        // PostgreSQL a read merely issued first may run after the call's own look-up (another pooled connection).
        const before = (await s.store.getMint(m.mintId))?.status;
        const r = await s.store.applyOnce(call(m.idempotencyKey, m.accountId, m.amountMicros, { settle: true }), WAIT);
        await failing;
        const answered = minted(r);
        if (before === "REVERSED") expect({ turns, replayed: r.ok && r.value.replayed, mintId: answered.mintId === m.mintId }).toEqual({ turns, replayed: false, mintId: false });
        // Whatever the order, the reversed mint's key never keeps answering with it.
        const later = await s.store.applyOnce(call(m.idempotencyKey, m.accountId, m.amountMicros, { settle: true }), WAIT);
        expect(minted(later).mintId === m.mintId).toBe(false);
      }
      covered("replay-after-settlement-failure", name);
    });

    it("random Sets, mints, rejections and reversals match the model: a refund applies only within its charge's generation", async () => {
      type Op = { kind: "set"; v: number } | { kind: "mint"; v: number; pending: boolean } | { kind: "undo"; pick: number };
      const op: fc.Arbitrary<Op> = fc.oneof(
        fc.record({ kind: fc.constant("set" as const), v: fc.integer({ min: 0, max: 30 }) }),
        fc.record({ kind: fc.constant("mint" as const), v: fc.integer({ min: 1, max: 10 }), pending: fc.boolean() }),
        fc.record({ kind: fc.constant("undo" as const), pick: fc.nat() }),
      );
      await fc.assert(
        fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 12 }), async (ops) => {
          const minter = `model-${newKey()}`;
          const model = { left: 0n, generation: 0 };
          const open: { mint: MintRecord; generation: number }[] = [];
          for (const o of ops) {
            if (o.kind === "set") {
              await setTo(BigInt(o.v), minter);
              model.left = BigInt(o.v);
              model.generation++;
            } else if (o.kind === "mint") {
              const r = await s.store.applyOnce(call(newKey(), `acct-${minter}`, BigInt(o.v), { requester: minter, pending: o.pending }), WAIT);
              if (BigInt(o.v) > model.left) {
                expect(r.ok ? "ok" : r.error.code).toBe("ALLOWANCE_EXCEEDED");
              } else {
                open.push({ mint: minted(r), generation: model.generation });
                model.left -= BigInt(o.v);
              }
            } else if (open.length > 0) {
              const [undo] = open.splice(o.pick % open.length, 1);
              if (undo === undefined) continue;
              const r =
                undo.mint.status === "PENDING_APPROVAL"
                  ? await s.store.rejectMint(undo.mint.mintId, "no", "bob", s.clock.wallMs(), journal("bob", "RejectMint"), WAIT)
                  : await s.store.reverseMint(undo.mint.mintId, "reorg", s.clock.wallMs(), WAIT, journal("ops", "ReconcileMint"));
              expect(r.ok).toBe(true);
              if (undo.generation === model.generation) model.left += undo.mint.amountMicros;
            }
            expect(await allowance(minter)).toBe(model.left);
          }
        }),
        { numRuns: 15 },
      );
    });

    it("SetMinterAllowance with an expected value is a compare-and-set: ALLOWANCE_CHANGED with the value now, nothing changed", async () => {
      const cas = (amountMicros: bigint, expectedMicros: bigint, principal = MINTER) => s.store.setAllowance(principal, amountMicros, journal("rm", "SetMinterAllowance"), s.clock.wallMs(), expectedMicros);
      // Never set: what is left is 0.
      expect(await cas(5n, 1n, "fresh")).toEqual({ ok: false, error: { code: "ALLOWANCE_CHANGED", principal: "fresh", remainingMicros: 0n, expectedMicros: 1n } });
      expect(await cas(5n, 0n, "fresh")).toEqual({ ok: true, value: undefined });
      expect(await allowance("fresh")).toBe(5n);

      await setTo(3_500n);
      await mint(newKey(), "acct-cas", 500n); // charged between the manager's read and write
      const journaledBefore = (await s.journaled("SetMinterAllowance")).length;
      expect(await cas(4_000n, 3_500n)).toEqual({ ok: false, error: { code: "ALLOWANCE_CHANGED", principal: MINTER, remainingMicros: 3_000n, expectedMicros: 3_500n } });
      expect(await allowance()).toBe(3_000n);
      expect((await s.journaled("SetMinterAllowance")).length).toBe(journaledBefore);
      expect(await cas(4_000n, 3_000n)).toEqual({ ok: true, value: undefined });
      expect(await allowance()).toBe(4_000n);

      // Racing managers with the same expectation: exactly one wins.
      const racing = await Promise.all([cas(1n, 4_000n), cas(2n, 4_000n), cas(3n, 4_000n)]);
      expect(racing.filter((r) => r.ok)).toHaveLength(1);
      for (const r of racing) if (!r.ok) expect(r.error).toMatchObject({ code: "ALLOWANCE_CHANGED", expectedMicros: 4_000n });
      expect([1n, 2n, 3n]).toContain(await allowance());
      covered("allowance-cas", name);
    });
  });
}
