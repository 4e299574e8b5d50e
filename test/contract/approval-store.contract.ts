/**
 * The contract of `ApprovalStore`, run against every adapter:
 * a pending mint credits nothing until the required distinct approvers (never
 * the requester) have approved, and then exactly once however many approvals
 * race; rejection and expiry free the key; every refusal changes nothing.
 * Allowances (charges and refunds) have their own contract:
 * allowances.contract.ts.
 */
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { JournalEntry } from "../../src/domain/journal.js";
import type { MintRecord, NewMint, StoredResult } from "../../src/domain/model.js";
import type { KeyedCall } from "../../src/domain/ports.js";
import type { Result } from "../../src/domain/result.js";
import { mintRequest, newKey, newMintId, NO_DEADLINE, type MakeStores, type StoresUnderTest } from "./stores-under-test.js";

const TTL_MS = 3_600_000;
const WAIT = { deadlineMs: NO_DEADLINE };
const journal = (actor: string, action: string): JournalEntry => ({ actor, action, idempotencyKey: null, request: {}, accounts: [] });

export function approvalStoreContract(name: string, make: MakeStores): void {
  describe(`ApprovalStore contract: ${name}`, () => {
    let s: StoresUnderTest;
    beforeEach(async () => {
      s = await make();
    });
    afterEach(async () => {
      await s.close();
    });

    function call(key: string, accountId: string, amountMicros: bigint, opts: { requester: string; pending?: number; charge?: boolean }): KeyedCall {
      const createWallMs = s.clock.wallMs();
      let cmd: NewMint = { mintId: newMintId(), accountId, amountMicros, blockchain: "ETHEREUM", idempotencyKey: key, createWallMs, requester: opts.requester, chargeAllowance: opts.charge === true };
      if (opts.pending !== undefined) cmd = { ...cmd, pending: { required: opts.pending, expireWallMs: createWallMs + TTL_MS } };
      return { scope: "mint", key, request: mintRequest(accountId, amountMicros), effect: { kind: "mint", cmd } };
    }

    function minted(r: Result<{ stored: StoredResult; replayed: boolean }>): MintRecord {
      if (!r.ok) throw new Error(`expected success, got ${r.error.code}`);
      if (r.value.stored.scope !== "mint") throw new Error("expected a mint");
      return r.value.stored.mint;
    }

    async function pending(account: string, amountMicros: bigint, requester = "alice", required = 2, key = newKey()): Promise<MintRecord> {
      return minted(await s.store.applyOnce(call(key, account, amountMicros, { requester, pending: required }), WAIT));
    }

    const approve = (m: MintRecord, who: string, wallMs = s.clock.wallMs()) => s.store.approveMint(m.mintId, who, wallMs, journal(who, "ApproveMint"), WAIT);
    const reject = (m: MintRecord, who: string, reason = "no") => s.store.rejectMint(m.mintId, reason, who, s.clock.wallMs(), journal(who, "RejectMint"), WAIT);

    /** Everything a refusal must leave alone. */
    async function snapshot(m: MintRecord, principal = "alice"): Promise<unknown> {
      return { mint: await s.store.getMint(m.mintId), balance: await s.store.getBalance(m.accountId), allowance: await s.store.getAllowance(principal) };
    }

    it("a pending mint credits nothing; the requester cannot approve; a second approval by one approver counts once; the last one completes it", async () => {
      const m = await pending("acct-p", 500n);
      expect(m.status).toBe("PENDING_APPROVAL");
      expect(m.requester).toBe("alice");
      expect(await s.store.getBalance("acct-p")).toBe(0n);

      const before = await snapshot(m);
      const self = await approve(m, "alice");
      expect(self).toEqual({ ok: false, error: { code: "APPROVER_IS_REQUESTER", mintId: m.mintId, principal: "alice" } });
      expect(await snapshot(m)).toEqual(before);

      const first = await approve(m, "bob");
      expect(first.ok && first.value.status).toBe("PENDING_APPROVAL");
      const again = await approve(m, "bob");
      expect(again.ok && again.value.approval?.approvals.map((a) => a.approver)).toEqual(["bob"]);
      expect(await s.store.getBalance("acct-p")).toBe(0n);

      const last = await approve(m, "carol");
      expect(last.ok && last.value.status).toBe("COMPLETED");
      expect(last.ok && last.value.approval?.approvals.map((a) => a.approver)).toEqual(["bob", "carol"]);
      expect(await s.store.getBalance("acct-p")).toBe(500n);
      expect((await s.store.getMint(m.mintId))?.status).toBe("COMPLETED");

      // A retry by an approver already counted is answered with the mint; a new one is refused.
      const retry = await approve(m, "carol");
      expect(retry.ok && retry.value.status).toBe("COMPLETED");
      const late = await approve(m, "dave");
      expect(late).toEqual({ ok: false, error: { code: "MINT_NOT_PENDING", mintId: m.mintId, reason: "MINT_COMPLETED" } });
      expect(await s.store.getBalance("acct-p")).toBe(500n);
    });

    it("a rejected mint cannot be approved or reconciled, its key is free again, and the refusals change nothing", async () => {
      const key = newKey();
      const m = await pending("acct-r", 900n, "alice", 2, key);
      expect((await s.store.reverseMint(m.mintId, "x", s.clock.wallMs(), WAIT))).toEqual({ ok: false, error: { code: "MINT_PENDING_APPROVAL", mintId: m.mintId } });
      const rejected = await reject(m, "bob", "too large");
      expect(rejected.ok && rejected.value.status).toBe("REJECTED");
      expect(rejected.ok && rejected.value.approval?.rejectReason).toBe("too large");
      const before = await snapshot(m);
      expect(await approve(m, "carol")).toEqual({ ok: false, error: { code: "MINT_NOT_PENDING", mintId: m.mintId, reason: "MINT_REJECTED" } });
      expect(await reject(m, "carol")).toEqual({ ok: false, error: { code: "MINT_NOT_PENDING", mintId: m.mintId, reason: "MINT_REJECTED" } });
      expect(await snapshot(m)).toEqual(before);
      expect(await s.store.getBalance("acct-r")).toBe(0n);
      // The same request may be submitted again: a new pending mint, not a replay.
      const again = await s.store.applyOnce(call(key, "acct-r", 900n, { requester: "alice", pending: 2 }), WAIT);
      expect(again.ok && again.value.replayed).toBe(false);
      expect(minted(again).mintId).not.toBe(m.mintId);
    });

    it("an expired mint cannot be approved; the sweeper rejects it as expired; unknown mints are MINT_NOT_FOUND", async () => {
      const m = await pending("acct-e", 700n);
      const expiry = (m.approval?.expireWallMs ?? 0) as number;
      expect(await s.store.expiredPending(expiry - 1, 10)).toEqual([]);
      const before = await snapshot(m);
      expect(await approve(m, "bob", expiry)).toEqual({ ok: false, error: { code: "MINT_NOT_PENDING", mintId: m.mintId, reason: "MINT_EXPIRED" } });
      expect(await snapshot(m)).toEqual(before);
      expect(await s.store.expiredPending(expiry, 10)).toEqual([m.mintId]);
      const swept = await s.store.rejectMint(m.mintId, "expired", "sweeper", expiry, journal("sweeper", "ExpireMint"), WAIT);
      expect(swept.ok && swept.value.status).toBe("REJECTED");
      expect(await approve(m, "bob", expiry)).toEqual({ ok: false, error: { code: "MINT_NOT_PENDING", mintId: m.mintId, reason: "MINT_EXPIRED" } });
      expect(await s.store.expiredPending(expiry, 10)).toEqual([]);
      expect(await s.store.approveMint("mint_NOPE", "bob", 0, journal("bob", "ApproveMint"), WAIT)).toEqual({ ok: false, error: { code: "MINT_NOT_FOUND", mintId: "mint_NOPE" } });
    });

    it("racing approvals complete a mint exactly once (fc.scheduler)", async () => {
      await fc.assert(
        fc.asyncProperty(fc.scheduler(), fc.integer({ min: 2, max: 5 }), fc.integer({ min: 1, max: 3 }), async (sched, approvers, required) => {
          const account = `acct-${newKey()}`;
          const m = await pending(account, 1_000n, "alice", required);
          // Each approver twice (a retry), and the requester once.
          const names = [...Array.from({ length: approvers }, (_, i) => `approver-${i}`), ...Array.from({ length: approvers }, (_, i) => `approver-${i}`), "alice"];
          const results = await Promise.all([...names.map((who) => sched.schedule(Promise.resolve()).then(() => approve(m, who))), sched.waitAll().then(() => null)]);
          const answers = results.filter((r) => r !== null);
          // Refusals: the requester, and approvers arriving after the mint completed.
          for (const r of answers) {
            if (!r.ok) expect(["APPROVER_IS_REQUESTER", "MINT_NOT_PENDING"]).toContain(r.error.code);
          }
          const final = await s.store.getMint(m.mintId);
          const distinct = Math.min(approvers, required);
          expect(final?.approval?.approvals.length).toBe(approvers >= required ? required : approvers);
          expect(final?.status).toBe(approvers >= required ? "COMPLETED" : "PENDING_APPROVAL");
          expect(await s.store.getBalance(account)).toBe(approvers >= required ? 1_000n : 0n);
          expect(new Set(final?.approval?.approvals.map((a) => a.approver)).size).toBe(distinct);
        }),
        { numRuns: 10 },
      );
    });

    it("ListMints filters by status", async () => {
      const p = await pending("acct-l", 50n);
      minted(await s.store.applyOnce(call(newKey(), "acct-l", 5n, { requester: "alice" }), WAIT));
      const listed = await s.store.listMints({ accountId: null, afterSeq: 0, limit: 100, status: "PENDING_APPROVAL" });
      expect(listed.map((m) => m.mintId)).toEqual([p.mintId]);
      const byAccount = await s.store.listMints({ accountId: "acct-l", afterSeq: 0, limit: 100, status: "COMPLETED" });
      expect(byAccount.map((m) => m.amountMicros)).toEqual([5n]);
    });
  });
}
