/**
 * The behaviour every IdempotencyStore must show (ports.ts, API.md
 * "Idempotency"). Effects go through the ledger of the same stores, because an
 * adapter may store a key's result in the ledger's transaction.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { flushPromises } from "../support/fake-clock.js";
import {
  applyMint,
  claimFree,
  CONTRACT_IDEMPOTENCY_TTL_MS,
  expectReplayOf,
  mintRequest,
  newKey,
  NO_DEADLINE,
  realSleep,
  track,
  transferNow,
  transferRequest,
  type MakeStores,
  type StoresUnderTest,
} from "./stores-under-test.js";

/** Long enough, in real time, for a duplicate to reach its wait on any adapter (a new pooled connection included). */
const SETTLE_REAL_MS = 200;

export function idempotencyStoreContract(name: string, makeStores: MakeStores): void {
  describe(`IdempotencyStore contract: ${name}`, () => {
    let s: StoresUnderTest;
    beforeEach(async () => {
      s = await makeStores();
    });
    afterEach(async () => {
      await s.close();
    });

    it("claims a fresh key, then replays the stored result for the same request without a new effect", async () => {
      const key = newKey();
      const req = mintRequest("alice", 5_000_000n);
      const claim = await claimFree(s, "mint", key, req);
      expect(claim.scope).toBe("mint");
      expect(claim.key).toBe(key);
      const applied = await applyMint(s, claim, { accountId: "alice", amountMicros: 5_000_000n });
      expect(applied.ok).toBe(true);
      if (!applied.ok) return;

      const again = await s.idempotency.begin("mint", key, { ...req }, NO_DEADLINE);
      expectReplayOf(again, { scope: "mint", mint: applied.mint });
      expect(await s.ledger.getBalance("alice")).toBe(5_000_000n);
    });

    it("replays a transfer result with its exact amount", async () => {
      const claim = await claimFree(s, "mint", newKey(), mintRequest("src", 10n ** 20n));
      expect((await applyMint(s, claim, { accountId: "src", amountMicros: 10n ** 20n })).ok).toBe(true);
      const key = newKey();
      const amount = 10n ** 20n - 1n;
      const moved = await transferNow(s, "src", "dst", amount, key);
      expect(moved.ok).toBe(true);
      if (!moved.ok) return;
      expect(moved.transfer.amountMicros).toBe(amount);
      const again = await s.idempotency.begin("transfer", key, transferRequest("src", "dst", amount), NO_DEADLINE);
      expectReplayOf(again, { scope: "transfer", transfer: moved.transfer });
      expect(await s.ledger.getBalance("dst")).toBe(amount);
    });

    it("refuses the same key with a different request and names the differing fields, sorted", async () => {
      const key = newKey();
      const claim = await claimFree(s, "mint", key, mintRequest("alice", 1_000_000n, "ETHEREUM"));
      expect((await applyMint(s, claim, { accountId: "alice", amountMicros: 1_000_000n })).ok).toBe(true);

      const r1 = await s.idempotency.begin("mint", key, mintRequest("alice", 2_000_000n, "SOLANA"), NO_DEADLINE);
      expect(r1).toEqual({ ok: false, error: { code: "IDEMPOTENCY_KEY_REUSED", key, fields: ["amount", "blockchain"] } });
      const r2 = await s.idempotency.begin("mint", key, mintRequest("bob", 1_000_000n, "ETHEREUM"), NO_DEADLINE);
      expect(r2).toEqual({ ok: false, error: { code: "IDEMPOTENCY_KEY_REUSED", key, fields: ["account_id"] } });
      // A refusal changes nothing: the original still replays.
      const r3 = await s.idempotency.begin("mint", key, mintRequest("alice", 1_000_000n, "ETHEREUM"), NO_DEADLINE);
      expect(r3.ok && r3.value.kind).toBe("replay");
    });

    it("keeps scopes apart: a mint key and a transfer key never collide", async () => {
      const key = newKey();
      const claim = await claimFree(s, "mint", key, mintRequest("alice", 3n));
      expect((await applyMint(s, claim, { accountId: "alice", amountMicros: 3n })).ok).toBe(true);
      const other = await s.idempotency.begin("transfer", key, transferRequest("alice", "bob", 1n), NO_DEADLINE);
      expect(other.ok && other.value.kind).toBe("claimed");
      if (other.ok && other.value.kind === "claimed") await s.idempotency.release(other.value.claim);
    });

    it("release leaves the key free, even for a different request", async () => {
      const key = newKey();
      const claim = await claimFree(s, "mint", key, mintRequest("alice", 1n));
      await s.idempotency.release(claim);
      const again = await s.idempotency.begin("mint", key, mintRequest("bob", 2n), NO_DEADLINE);
      expect(again.ok && again.value.kind).toBe("claimed");
      if (!again.ok || again.value.kind !== "claimed") return;
      const applied = await applyMint(s, again.value.claim, { accountId: "bob", amountMicros: 2n });
      expect(applied.ok).toBe(true);
      expect(await s.ledger.getBalance("alice")).toBe(0n);
      expect(await s.ledger.getBalance("bob")).toBe(2n);
    });

    it("a duplicate arriving while the first call is in flight waits, then replays its result", async () => {
      const key = newKey();
      const req = mintRequest("alice", 7_000_000n);
      const first = await claimFree(s, "mint", key, req);
      const dup = track(s.idempotency.begin("mint", key, req, s.clock.nowMs() + 10_000));
      await realSleep(SETTLE_REAL_MS);
      await flushPromises();
      expect(dup.settled()).toBe(false);

      const applied = await applyMint(s, first, { accountId: "alice", amountMicros: 7_000_000n });
      expect(applied.ok).toBe(true);
      if (!applied.ok) return;
      expectReplayOf(await dup.promise, { scope: "mint", mint: applied.mint });
      expect(await s.ledger.getBalance("alice")).toBe(7_000_000n);
    });

    it("a duplicate waiting on a call that is released claims the key itself", async () => {
      const key = newKey();
      const req = mintRequest("alice", 4n);
      const first = await claimFree(s, "mint", key, req);
      const dup = track(s.idempotency.begin("mint", key, req, s.clock.nowMs() + 10_000));
      await realSleep(SETTLE_REAL_MS);
      expect(dup.settled()).toBe(false);
      await s.idempotency.release(first);

      const r = await dup.promise;
      expect(r.ok && r.value.kind).toBe("claimed");
      if (!r.ok || r.value.kind !== "claimed") return;
      const applied = await applyMint(s, r.value.claim, { accountId: "alice", amountMicros: 4n });
      expect(applied.ok).toBe(true);
      expect(await s.ledger.getBalance("alice")).toBe(4n);
    });

    it("a duplicate still waiting at its deadline fails IDEMPOTENCY_KEY_IN_USE, and the key stays usable", async () => {
      const key = newKey();
      const req = mintRequest("alice", 9n);
      const first = await claimFree(s, "mint", key, req);
      const dup = track(s.idempotency.begin("mint", key, req, s.clock.nowMs() + 50));
      await realSleep(SETTLE_REAL_MS);
      await s.clock.advance(60);
      const r = await dup.promise;
      expect(r.ok).toBe(false);
      if (r.ok) return;
      expect(r.error.code).toBe("IDEMPOTENCY_KEY_IN_USE");
      if (r.error.code !== "IDEMPOTENCY_KEY_IN_USE") return;
      expect(r.error.key).toBe(key);
      expect(r.error.retryAfterMs).toBeGreaterThan(0);

      // The first call is unaffected and completes; the key then replays.
      const applied = await applyMint(s, first, { accountId: "alice", amountMicros: 9n });
      expect(applied.ok).toBe(true);
      if (!applied.ok) return;
      expectReplayOf(await s.idempotency.begin("mint", key, req, NO_DEADLINE), { scope: "mint", mint: applied.mint });
    });

    it("forget frees a completed key only while it holds the given result; absent keys are harmless", async () => {
      const key = newKey();
      const req = mintRequest("alice", 1n);
      const claim = await claimFree(s, "mint", key, req);
      const applied = await applyMint(s, claim, { accountId: "alice", amountMicros: 1n });
      expect(applied.ok).toBe(true);
      if (!applied.ok) return;

      // Another result id (a newer use of the key) leaves it alone.
      await s.idempotency.forget("mint", key, "mint_SOMEOTHERMINTXXXXXXXXXXXXX");
      expectReplayOf(await s.idempotency.begin("mint", key, req, NO_DEADLINE), { scope: "mint", mint: applied.mint });

      await s.idempotency.forget("mint", key, applied.mint.mintId);
      await s.idempotency.forget("mint", key, applied.mint.mintId);
      await s.idempotency.forget("transfer", newKey(), "xfr_ABSENT");
      const again = await s.idempotency.begin("mint", key, mintRequest("alice", 2n), NO_DEADLINE);
      expect(again.ok && again.value.kind).toBe("claimed");
      if (again.ok && again.value.kind === "claimed") await s.idempotency.release(again.value.claim);
    });

    it("forget leaves a key in flight alone", async () => {
      const key = newKey();
      const req = mintRequest("alice", 1n);
      const claim = await claimFree(s, "mint", key, req);
      const forgetting = track(s.idempotency.forget("mint", key, "mint_WHATEVERXXXXXXXXXXXXXXXXX"));
      const applied = await applyMint(s, claim, { accountId: "alice", amountMicros: 1n });
      expect(applied.ok).toBe(true);
      if (!applied.ok) return;
      await forgetting.promise;
      expectReplayOf(await s.idempotency.begin("mint", key, req, NO_DEADLINE), { scope: "mint", mint: applied.mint });
    });

    it("a key replays until the TTL passes, counted from the success, then counts as free", async () => {
      const key = newKey();
      const req = mintRequest("alice", 2n);
      const claim = await claimFree(s, "mint", key, req);
      // Time spent in flight does not count against the TTL.
      await s.clock.advance(30_000);
      const applied = await applyMint(s, claim, { accountId: "alice", amountMicros: 2n });
      expect(applied.ok).toBe(true);
      if (!applied.ok) return;

      await s.clock.advance(CONTRACT_IDEMPOTENCY_TTL_MS - 1_000);
      expectReplayOf(await s.idempotency.begin("mint", key, req, NO_DEADLINE), { scope: "mint", mint: applied.mint });

      await s.clock.advance(2_000);
      const after = await s.idempotency.begin("mint", key, mintRequest("alice", 3n), NO_DEADLINE);
      expect(after.ok && after.value.kind).toBe("claimed");
      if (after.ok && after.value.kind === "claimed") await s.idempotency.release(after.value.claim);
    });

    it("sweepExpired deletes only expired keys, at most maxKeys per call", async () => {
      const base = await s.idempotency.size();
      for (let i = 0; i < 3; i++) {
        const claim = await claimFree(s, "mint", newKey(), mintRequest("alice", 1n));
        expect((await applyMint(s, claim, { accountId: "alice", amountMicros: 1n })).ok).toBe(true);
      }
      await s.clock.advance(10_000);
      const freshKey = newKey();
      const freshReq = mintRequest("bob", 1n);
      const fresh = await claimFree(s, "mint", freshKey, freshReq);
      const freshMint = await applyMint(s, fresh, { accountId: "bob", amountMicros: 1n });
      expect(freshMint.ok).toBe(true);
      if (!freshMint.ok) return;

      // Nothing has expired yet.
      expect(await s.idempotency.sweepExpired(100)).toBe(0);
      await s.clock.advance(CONTRACT_IDEMPOTENCY_TTL_MS - 5_000);
      expect(await s.idempotency.size()).toBe(base + 4);
      expect(await s.idempotency.sweepExpired(0)).toBe(0);
      expect(await s.idempotency.sweepExpired(2)).toBe(2);
      expect(await s.idempotency.sweepExpired(100)).toBe(1);
      expect(await s.idempotency.sweepExpired(100)).toBe(0);
      expect(await s.idempotency.size()).toBe(base + 1);
      expectReplayOf(await s.idempotency.begin("mint", freshKey, freshReq, NO_DEADLINE), { scope: "mint", mint: freshMint.mint });
    });

    it("size counts keys in flight and stored; a released claim is not counted", async () => {
      const base = await s.idempotency.size();
      const a = await claimFree(s, "mint", newKey(), mintRequest("alice", 1n));
      expect(await s.idempotency.size()).toBe(base + 1);
      expect((await applyMint(s, a, { accountId: "alice", amountMicros: 1n })).ok).toBe(true);
      expect(await s.idempotency.size()).toBe(base + 1);
      const b = await claimFree(s, "transfer", newKey(), transferRequest("alice", "bob", 1n));
      expect(await s.idempotency.size()).toBe(base + 2);
      await s.idempotency.release(b);
      expect(await s.idempotency.size()).toBe(base + 1);
    });

    it("a failed effect leaves the key free: insufficient funds, then the same request claims again", async () => {
      const key = newKey();
      const req = transferRequest("empty", "bob", 5n);
      const failed = await transferNow(s, "empty", "bob", 5n, key);
      expect(failed).toEqual({ ok: false, error: { code: "INSUFFICIENT_FUNDS", accountId: "empty" } });
      const again = await s.idempotency.begin("transfer", key, req, NO_DEADLINE);
      expect(again.ok && again.value.kind).toBe("claimed");
      if (again.ok && again.value.kind === "claimed") await s.idempotency.release(again.value.claim);
    });
  });
}
