/**
 * The contract of `ExactlyOnceStore`, run against every adapter: the effect
 * and the key's result commit together or not at all; a replay returns the
 * stored result; a reversal frees the mint's key in the same atomic step; a
 * cancelled or timed-out wait applies nothing. Interleavings come from
 * `fc.scheduler`, which decides when each call starts relative to the others'
 * answers.
 */
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { CanonicalRequest, MintRecord, StoredResult } from "../../src/domain/model.js";
import { verifyChain, type AuditRecord } from "../../src/domain/audit.js";
import type { JournalEntry } from "../../src/domain/journal.js";
import type { KeyedCall } from "../../src/domain/ports.js";
import { fail, ok, type Result } from "../../src/domain/result.js";
import { mintRequest, newKey, newMintId, NO_DEADLINE, realSleep, transferRequest, newTransferId, type MakeStores, type StoresUnderTest } from "./stores-under-test.js";
import { covered } from "./coverage.js";

type Applied = Result<{ stored: StoredResult; replayed: boolean }>;

export function exactlyOnceStoreContract(name: string, make: MakeStores): void {
  describe(`ExactlyOnceStore contract: ${name}`, () => {
    let s: StoresUnderTest;
    beforeEach(async () => {
      s = await make();
    });
    afterEach(async () => {
      await s.close();
    });

    function mintCall(key: string, accountId: string, amountMicros: bigint, admit?: KeyedCall["admit"]): KeyedCall {
      const call: KeyedCall = {
        scope: "mint",
        key,
        request: mintRequest(accountId, amountMicros),
        effect: {
          kind: "mint",
          cmd: { mintId: newMintId(), accountId, amountMicros, blockchain: "ETHEREUM", idempotencyKey: key, createWallMs: s.clock.wallMs() },
        },
      };
      return admit === undefined ? call : { ...call, admit };
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

    function minted(r: Applied): { mint: MintRecord; replayed: boolean } {
      if (!r.ok) throw new Error(`expected success, got ${r.error.code}`);
      if (r.value.stored.scope !== "mint") throw new Error("expected a mint");
      return { mint: r.value.stored.mint, replayed: r.value.replayed };
    }

    /** An `admit` that holds the call inside the store until `open()` is called. */
    function gate(): { admit: () => Promise<Result<void>>; entered: Promise<void>; open: () => void } {
      let open: () => void = () => undefined;
      let entered: () => void = () => undefined;
      const enteredP = new Promise<void>((r) => (entered = r));
      const opened = new Promise<void>((r) => (open = r));
      return {
        admit: async () => {
          entered();
          await opened;
          return ok(undefined);
        },
        entered: enteredP,
        open,
      };
    }

    /** The journal once every committed record is sealed (PostgreSQL seals right after commit; memory at once). */
    async function journal(): Promise<AuditRecord[]> {
      const until = Date.now() + 5_000;
      while ((await s.store.audit.unsealedCount()) > 0) {
        if (Date.now() > until) throw new Error("journal records stayed unsealed for 5 s");
        await realSleep(2);
      }
      return s.store.audit.readSealed(0, 1000);
    }

    it("journals each applied effect once with the entry it was given, in the same step; replays and failures journal nothing (issue 10)", async () => {
      const entry: JournalEntry = { actor: "ops@example", action: "MintUsdc", idempotencyKey: "k-audit", request: mintRequest("alice", 7n), accounts: ["alice"] };
      const first = minted(await s.store.applyOnce({ ...mintCall("k-audit", "alice", 7n), journal: entry }, { deadlineMs: NO_DEADLINE }));
      minted(await s.store.applyOnce({ ...mintCall("k-audit", "alice", 7n), journal: entry }, { deadlineMs: NO_DEADLINE }));
      expect((await s.store.applyOnce(transferCall(newKey(), "alice", "bob", 100n), { deadlineMs: NO_DEADLINE })).ok).toBe(false);
      expect((await s.store.applyOnce(transferCall("k-t", "alice", "bob", 2n), { deadlineMs: NO_DEADLINE })).ok).toBe(true);
      const reversal: JournalEntry = { actor: "ops@example", action: "ReconcileMint", idempotencyKey: null, request: { mint_id: first.mint.mintId, reason: "reorg" }, accounts: [] };
      expect((await s.store.reverseMint(first.mint.mintId, "reorg", s.clock.wallMs(), { deadlineMs: NO_DEADLINE }, reversal)).ok).toBe(false);
      const records = await journal();
      expect(records.map((r) => [r.seq, r.actor, r.action, r.idempotencyKey, r.accounts])).toEqual([
        [1, "ops@example", "MintUsdc", "k-audit", ["alice"]],
        [2, "local", "Transfer", "k-t", ["alice", "bob"]],
      ]);
      expect(records[0]!.result).toEqual({ mint_id: first.mint.mintId, status: "COMPLETED" });
      expect(records[0]!.request).toEqual({ account_id: "alice", amount: "7", blockchain: "ETHEREUM" });
      const m = minted(await s.store.applyOnce(mintCall(newKey(), "carol", 9n), { deadlineMs: NO_DEADLINE }));
      await s.store.reverseMint(m.mint.mintId, "reorg", s.clock.wallMs(), { deadlineMs: NO_DEADLINE }, { ...reversal, request: { mint_id: m.mint.mintId, reason: "reorg" } });
      const after = await journal();
      expect(after.map((r) => r.action)).toEqual(["MintUsdc", "Transfer", "MintUsdc", "ReconcileMint"]);
      expect(after[3]!.accounts).toEqual(["carol"]);
      expect(after[3]!.result).toMatchObject({ account_id: "carol", amount: "9", status: "REVERSED" });
      expect(await verifyChain(s.store.audit, 0, 0)).toMatchObject({ whole: true, checked: 4, lastSeq: 4, unsealed: 0 });
    });

    it("applies the effect once; a replay returns the stored result and applies nothing", async () => {
      const key = newKey();
      const first = minted(await s.store.applyOnce(mintCall(key, "alice", 7n), { deadlineMs: NO_DEADLINE }));
      expect(first.replayed).toBe(false);
      const again = minted(await s.store.applyOnce(mintCall(key, "alice", 7n), { deadlineMs: NO_DEADLINE }));
      expect(again).toEqual({ mint: first.mint, replayed: true });
      expect(await s.store.getBalance("alice")).toBe(7n);
    });

    it("a replay never calls admit (the limiter)", async () => {
      const key = newKey();
      await s.store.applyOnce(mintCall(key, "alice", 7n), { deadlineMs: NO_DEADLINE });
      let admitted = 0;
      const again = await s.store.applyOnce(
        mintCall(key, "alice", 7n, async () => {
          admitted++;
          return ok(undefined);
        }),
        { deadlineMs: NO_DEADLINE },
      );
      expect(minted(again).replayed).toBe(true);
      expect(admitted).toBe(0);
    });

    it("a refusal from admit applies nothing and leaves the key free", async () => {
      const key = newKey();
      const refused = await s.store.applyOnce(
        mintCall(key, "alice", 7n, async () => fail({ code: "RATE_LIMITED", accountId: "alice", retryAfterMs: 5, limit: 1, windowMs: 10 })),
        { deadlineMs: NO_DEADLINE },
      );
      expect(refused).toMatchObject({ ok: false, error: { code: "RATE_LIMITED" } });
      expect(await s.store.getBalance("alice")).toBe(0n);
      expect(minted(await s.store.applyOnce(mintCall(key, "alice", 7n), { deadlineMs: NO_DEADLINE })).replayed).toBe(false);
    });

    it("a transfer that fails (INSUFFICIENT_FUNDS) applies nothing and leaves the key free", async () => {
      const key = newKey();
      const r = await s.store.applyOnce(transferCall(key, "alice", "bob", 5n), { deadlineMs: NO_DEADLINE });
      expect(r).toMatchObject({ ok: false, error: { code: "INSUFFICIENT_FUNDS" } });
      await s.store.applyOnce(mintCall(newKey(), "alice", 5n), { deadlineMs: NO_DEADLINE });
      const again = await s.store.applyOnce(transferCall(key, "alice", "bob", 5n), { deadlineMs: NO_DEADLINE });
      expect(again).toMatchObject({ ok: true, value: { replayed: false } });
      expect(await s.store.getBalance("bob")).toBe(5n);
    });

    it("same key, another request after completion: IDEMPOTENCY_KEY_REUSED naming the fields", async () => {
      const key = newKey();
      await s.store.applyOnce(mintCall(key, "alice", 7n), { deadlineMs: NO_DEADLINE });
      const r = await s.store.applyOnce(mintCall(key, "alice", 8n), { deadlineMs: NO_DEADLINE });
      expect(r).toMatchObject({ ok: false, error: { code: "IDEMPOTENCY_KEY_REUSED", fields: ["amount"] } });
    });

    it("same key, another request while the first is in flight: IDEMPOTENCY_KEY_REUSED, never IN_USE (issue 7 defect 5)", async () => {
      const key = newKey();
      const g = gate();
      const first = s.store.applyOnce(mintCall(key, "alice", 7n, g.admit), { deadlineMs: NO_DEADLINE });
      await g.entered;
      const other = s.store.applyOnce(mintCall(key, "alice", 8n), { deadlineMs: NO_DEADLINE });
      // Memory answers at once; PostgreSQL once the holder's transaction ends.
      await realSleep(20);
      g.open();
      expect(minted(await first).replayed).toBe(false);
      expect(await other).toMatchObject({ ok: false, error: { code: "IDEMPOTENCY_KEY_REUSED", fields: ["amount"] } });
      expect(await s.store.getBalance("alice")).toBe(7n);
    });

    it("a same-key duplicate waiting past its deadline is IDEMPOTENCY_KEY_IN_USE and applies nothing", async () => {
      const key = newKey();
      const g = gate();
      const first = s.store.applyOnce(mintCall(key, "alice", 7n, g.admit), { deadlineMs: NO_DEADLINE });
      await g.entered;
      const waiting = s.store.applyOnce(mintCall(key, "alice", 7n), { deadlineMs: s.clock.nowMs() + 200 });
      await realSleep(50);
      await s.clock.advance(200);
      const r = await waiting;
      g.open();
      await first;
      // IN_USE once it reached the key; a store still waiting for a connection
      // when the deadline passed says DEADLINE_EXCEEDED. Never a replay or an effect.
      expect(r.ok).toBe(false);
      if (!r.ok) expect(["IDEMPOTENCY_KEY_IN_USE", "DEADLINE_EXCEEDED"]).toContain(r.error.code);
      expect(await s.store.getBalance("alice")).toBe(7n);
    });

    it("a same-key duplicate whose signal aborts while it waits gives up CANCELLED, nothing applied", async () => {
      const key = newKey();
      const g = gate();
      const first = s.store.applyOnce(mintCall(key, "alice", 7n, g.admit), { deadlineMs: NO_DEADLINE });
      await g.entered;
      const controller = new AbortController();
      const waiting = s.store.applyOnce(mintCall(key, "alice", 7n), { deadlineMs: NO_DEADLINE, signal: controller.signal });
      await realSleep(20);
      controller.abort();
      // Memory gives up at once; PostgreSQL once the key's row lock is released, before writing.
      g.open();
      expect(await waiting).toMatchObject({ ok: false, error: { code: "CANCELLED" } });
      expect(minted(await first).replayed).toBe(false);
      expect(await s.store.getBalance("alice")).toBe(7n);
    });

    it("an already-aborted signal applies nothing", async () => {
      const controller = new AbortController();
      controller.abort();
      const r = await s.store.applyOnce(mintCall(newKey(), "alice", 7n), { deadlineMs: NO_DEADLINE, signal: controller.signal });
      expect(r).toMatchObject({ ok: false, error: { code: "CANCELLED" } });
      expect(await s.store.getBalance("alice")).toBe(0n);
    });

    it("a reversal frees the mint's key in the same step: a same-key retry then mints afresh (issue 7 defect 2)", async () => {
      const key = newKey();
      const first = minted(await s.store.applyOnce(mintCall(key, "alice", 7n), { deadlineMs: NO_DEADLINE }));
      const reversed = await s.store.reverseMint(first.mint.mintId, "reorg", s.clock.wallMs(), { deadlineMs: NO_DEADLINE });
      expect(reversed).toMatchObject({ ok: true, value: { status: "REVERSED" } });
      const retry = minted(await s.store.applyOnce(mintCall(key, "alice", 7n), { deadlineMs: NO_DEADLINE }));
      expect(retry.replayed).toBe(false);
      expect(retry.mint.mintId).not.toBe(first.mint.mintId);
      expect(await s.store.getBalance("alice")).toBe(7n);
      covered("replay-after-reconcile", name);
    });

    it("reverseMint failures change nothing: MINT_NOT_FOUND, MINT_ALREADY_REVERSED, INSUFFICIENT_FUNDS", async () => {
      const key = newKey();
      const m = minted(await s.store.applyOnce(mintCall(key, "alice", 7n), { deadlineMs: NO_DEADLINE })).mint;
      expect(await s.store.reverseMint(newMintId(), "x", s.clock.wallMs(), { deadlineMs: NO_DEADLINE })).toMatchObject({
        ok: false,
        error: { code: "MINT_NOT_FOUND" },
      });
      await s.store.applyOnce(transferCall(newKey(), "alice", "bob", 5n), { deadlineMs: NO_DEADLINE });
      expect(await s.store.reverseMint(m.mintId, "x", s.clock.wallMs(), { deadlineMs: NO_DEADLINE })).toMatchObject({
        ok: false,
        error: { code: "INSUFFICIENT_FUNDS" },
      });
      // The failed reversal kept the key: a retry still replays.
      expect(minted(await s.store.applyOnce(mintCall(key, "alice", 7n), { deadlineMs: NO_DEADLINE })).replayed).toBe(true);
      await s.store.applyOnce(transferCall(newKey(), "bob", "alice", 5n), { deadlineMs: NO_DEADLINE });
      expect((await s.store.reverseMint(m.mintId, "x", s.clock.wallMs(), { deadlineMs: NO_DEADLINE })).ok).toBe(true);
      expect(await s.store.reverseMint(m.mintId, "x", s.clock.wallMs(), { deadlineMs: NO_DEADLINE })).toMatchObject({
        ok: false,
        error: { code: "MINT_ALREADY_REVERSED" },
      });
      expect(await s.store.getBalance("alice")).toBe(0n);
    });

    it("interleaved same-key mints apply once; every other answer is a replay of it", async () => {
      await fc.assert(
        fc.asyncProperty(fc.scheduler(), fc.integer({ min: 2, max: 5 }), async (sched, n) => {
          const key = newKey();
          const account = `acct-${key}`;
          const calls = Array.from({ length: n }, () => sched.schedule(Promise.resolve()).then(() => s.store.applyOnce(mintCall(key, account, 3n), { deadlineMs: NO_DEADLINE })));
          await sched.waitAll();
          const results = (await Promise.all(calls)).map(minted);
          expect(results.filter((r) => !r.replayed)).toHaveLength(1);
          expect(new Set(results.map((r) => r.mint.mintId)).size).toBe(1);
          expect(await s.store.getBalance(account)).toBe(3n);
        }),
        { numRuns: 10 },
      );
    });

    it("reconcile against a same-key retry: a retry started after the reversal answered never replays COMPLETED", async () => {
      await fc.assert(
        fc.asyncProperty(fc.scheduler(), async (sched) => {
          const key = newKey();
          const account = `acct-${key}`;
          const request: CanonicalRequest = mintRequest(account, 4n);
          const first = minted(await s.store.applyOnce(mintCall(key, account, 4n), { deadlineMs: NO_DEADLINE })).mint;
          let reversalAnswered = false;
          let retryStartedAfterReversal = false;
          const reversal = sched
            .schedule(Promise.resolve())
            .then(() => s.store.reverseMint(first.mintId, "reorg", s.clock.wallMs(), { deadlineMs: NO_DEADLINE }))
            .then((r) => {
              reversalAnswered = true;
              return r;
            });
          const retry = sched.schedule(Promise.resolve()).then(() => {
            retryStartedAfterReversal = reversalAnswered;
            return s.store.applyOnce({ ...mintCall(key, account, 4n), request }, { deadlineMs: NO_DEADLINE });
          });
          await sched.waitAll();
          const [rev, again] = [await reversal, minted(await retry)];
          expect(rev.ok).toBe(true);
          if (retryStartedAfterReversal) expect(again.replayed).toBe(false);
          // Either way the books agree with the answers.
          expect(await s.store.getBalance(account)).toBe(again.replayed ? 0n : 4n);
        }),
        { numRuns: 10 },
      );
    });
  });
}
