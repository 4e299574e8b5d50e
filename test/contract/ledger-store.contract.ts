/**
 * The behaviour every LedgerStore must show (ports.ts, API.md "Transfers",
 * "Reconciliation", "ListMints"), driven through claims exactly as the core
 * drives it. Includes the ledger's laws: money is conserved, no balance goes
 * negative, a refused call changes nothing.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { MintRecord } from "../../src/domain/model.js";
import {
  applyMint,
  claimFree,
  mintNow,
  mintRequest,
  newKey,
  newMintId,
  NO_DEADLINE,
  transferNow,
  type MakeStores,
  type StoresUnderTest,
} from "./stores-under-test.js";
import { covered } from "./coverage.js";
import { prng } from "../support/prng.js";

export function ledgerStoreContract(name: string, makeStores: MakeStores): void {
  describe(`LedgerStore contract: ${name}`, () => {
    let s: StoresUnderTest;
    beforeEach(async () => {
      s = await makeStores();
    });
    afterEach(async () => {
      await s.close();
    });

    it("a mint credits the account and returns the completed record", async () => {
      const key = newKey();
      const createWallMs = s.clock.wallMs();
      const claim = await claimFree(s, "mint", key, mintRequest("alice", 100_500_000n, "SOLANA"));
      const mintId = newMintId();
      const r = await s.ledger.mint(
        { mintId, accountId: "alice", amountMicros: 100_500_000n, blockchain: "SOLANA", idempotencyKey: key, createWallMs },
        claim,
        NO_DEADLINE,
      );
      expect(r.ok).toBe(true);
      if (!r.ok) return;
      await s.idempotency.complete(claim, { scope: "mint", mint: r.value });
      const expected: Omit<MintRecord, "seq"> = {
        mintId,
        accountId: "alice",
        amountMicros: 100_500_000n,
        blockchain: "SOLANA",
        status: "COMPLETED",
        idempotencyKey: key,
        createWallMs,
        reverseWallMs: null,
        reverseReason: "",
      };
      expect(r.value).toMatchObject(expected);
      expect(Number.isSafeInteger(r.value.seq) && r.value.seq > 0).toBe(true);
      expect(await s.ledger.getMint(mintId)).toEqual(r.value);
      expect(await s.ledger.getBalance("alice")).toBe(100_500_000n);
      covered("mint-credit", name);
    });

    it("unknown accounts have balance 0 and unknown mints are null", async () => {
      expect(await s.ledger.getBalance("nobody")).toBe(0n);
      expect(await s.ledger.getMint(newMintId())).toBeNull();
      expect(await s.ledger.listMints({ accountId: "nobody", afterSeq: 0, limit: 10 })).toEqual([]);
    });

    it("amounts beyond 64 bits are exact", async () => {
      const big = 10n ** 30n + 1n;
      await mintNow(s, "whale", big);
      await mintNow(s, "whale", big);
      expect(await s.ledger.getBalance("whale")).toBe(2n * big);
      const moved = await transferNow(s, "whale", "minnow", big + 7n);
      expect(moved.ok).toBe(true);
      expect(await s.ledger.getBalance("whale")).toBe(big - 7n);
      expect(await s.ledger.getBalance("minnow")).toBe(big + 7n);
    });

    it("listMints returns mints oldest first, filtered by account, paged by afterSeq and limit", async () => {
      const made: MintRecord[] = [];
      for (let i = 0; i < 6; i++) made.push(await mintNow(s, i % 2 === 0 ? "acct-a" : "acct-b", BigInt(i + 1)));
      const all = await s.ledger.listMints({ accountId: null, afterSeq: 0, limit: 100 });
      expect(all.map((m) => m.mintId)).toEqual(made.map((m) => m.mintId));
      for (let i = 1; i < all.length; i++) expect(all[i]!.seq).toBeGreaterThan(all[i - 1]!.seq);

      const onlyA = await s.ledger.listMints({ accountId: "acct-a", afterSeq: 0, limit: 100 });
      expect(onlyA.map((m) => m.mintId)).toEqual(made.filter((_, i) => i % 2 === 0).map((m) => m.mintId));

      const pages: string[] = [];
      let after = 0;
      for (;;) {
        const page = await s.ledger.listMints({ accountId: null, afterSeq: after, limit: 4 });
        expect(page.length).toBeLessThanOrEqual(4);
        if (page.length === 0) break;
        pages.push(...page.map((m) => m.mintId));
        after = page[page.length - 1]!.seq;
      }
      expect(pages).toEqual(made.map((m) => m.mintId));
      const pageOfB = await s.ledger.listMints({ accountId: "acct-b", afterSeq: made[1]!.seq, limit: 1 });
      expect(pageOfB.map((m) => m.mintId)).toEqual([made[3]!.mintId]);
    });

    it("a transfer moves money atomically and creates the receiving account", async () => {
      await mintNow(s, "alice", 10_000_000n);
      const key = newKey();
      const r = await transferNow(s, "alice", "bob", 2_500_000n, key);
      expect(r.ok).toBe(true);
      if (!r.ok) return;
      expect(r.transfer).toMatchObject({
        fromAccountId: "alice",
        toAccountId: "bob",
        amountMicros: 2_500_000n,
        idempotencyKey: key,
        createWallMs: s.clock.wallMs(),
      });
      expect(r.transfer.transferId).toMatch(/^xfr_/);
      expect(await s.ledger.getBalance("alice")).toBe(7_500_000n);
      expect(await s.ledger.getBalance("bob")).toBe(2_500_000n);
      covered("transfer", name);
    });

    it("a transfer of the whole balance leaves exactly zero", async () => {
      await mintNow(s, "alice", 3n);
      expect((await transferNow(s, "alice", "bob", 3n)).ok).toBe(true);
      expect(await s.ledger.getBalance("alice")).toBe(0n);
      expect((await transferNow(s, "bob", "alice", 3n)).ok).toBe(true);
      expect(await s.ledger.getBalance("bob")).toBe(0n);
      expect(await s.ledger.getBalance("alice")).toBe(3n);
    });

    it("insufficient funds is a value and changes nothing", async () => {
      await mintNow(s, "alice", 5n);
      await mintNow(s, "bob", 1n);
      const r = await transferNow(s, "alice", "bob", 6n);
      expect(r).toEqual({ ok: false, error: { code: "INSUFFICIENT_FUNDS", accountId: "alice" } });
      expect(await s.ledger.getBalance("alice")).toBe(5n);
      expect(await s.ledger.getBalance("bob")).toBe(1n);

      // From an account that never received money, to one that does not exist either.
      const r2 = await transferNow(s, "ghost", "carol", 1n);
      expect(r2).toEqual({ ok: false, error: { code: "INSUFFICIENT_FUNDS", accountId: "ghost" } });
      expect(await s.ledger.getBalance("carol")).toBe(0n);
      expect(await s.ledger.getBalance("ghost")).toBe(0n);
    });

    it("reverseMint marks the mint REVERSED and debits its amount", async () => {
      const mint = await mintNow(s, "alice", 8_000_000n);
      await mintNow(s, "alice", 1_000_000n);
      await s.clock.advance(5_000);
      const wallMs = s.clock.wallMs();
      const r = await s.ledger.reverseMint(mint.mintId, "chain reorg", wallMs, NO_DEADLINE);
      expect(r.ok).toBe(true);
      if (!r.ok) return;
      expect(r.value).toEqual({ ...mint, status: "REVERSED", reverseWallMs: wallMs, reverseReason: "chain reorg" });
      expect(await s.ledger.getMint(mint.mintId)).toEqual(r.value);
      expect(await s.ledger.getBalance("alice")).toBe(1_000_000n);
      const listed = await s.ledger.listMints({ accountId: "alice", afterSeq: 0, limit: 10 });
      expect(listed.map((m) => m.status)).toEqual(["REVERSED", "COMPLETED"]);
      covered("reconcile-reversal", name);
    });

    it("a second reverse is MINT_ALREADY_REVERSED and changes nothing", async () => {
      const mint = await mintNow(s, "alice", 4n);
      await mintNow(s, "alice", 10n);
      expect((await s.ledger.reverseMint(mint.mintId, "first", s.clock.wallMs(), NO_DEADLINE)).ok).toBe(true);
      const again = await s.ledger.reverseMint(mint.mintId, "second", s.clock.wallMs(), NO_DEADLINE);
      expect(again).toEqual({ ok: false, error: { code: "MINT_ALREADY_REVERSED", mintId: mint.mintId } });
      expect(await s.ledger.getBalance("alice")).toBe(10n);
      expect((await s.ledger.getMint(mint.mintId))?.reverseReason).toBe("first");
    });

    it("reversing an unknown mint is MINT_NOT_FOUND", async () => {
      const mintId = newMintId();
      expect(await s.ledger.reverseMint(mintId, "why", s.clock.wallMs(), NO_DEADLINE)).toEqual({
        ok: false,
        error: { code: "MINT_NOT_FOUND", mintId },
      });
    });

    it("reversing a mint whose money has moved on is INSUFFICIENT_FUNDS and changes nothing", async () => {
      const mint = await mintNow(s, "alice", 10n);
      expect((await transferNow(s, "alice", "bob", 4n)).ok).toBe(true);
      const r = await s.ledger.reverseMint(mint.mintId, "too late", s.clock.wallMs(), NO_DEADLINE);
      expect(r).toEqual({ ok: false, error: { code: "INSUFFICIENT_FUNDS", accountId: "alice" } });
      expect(await s.ledger.getMint(mint.mintId)).toEqual(mint);
      expect(await s.ledger.getBalance("alice")).toBe(6n);
      expect(await s.ledger.getBalance("bob")).toBe(4n);
    });

    it("after reverse and forget, the mint's key mints again with a new mint id", async () => {
      const key = newKey();
      const req = mintRequest("alice", 6n);
      const first = await mintNow(s, "alice", 6n, key);
      expect((await s.ledger.reverseMint(first.mintId, "failed on chain", s.clock.wallMs(), NO_DEADLINE)).ok).toBe(true);
      await s.idempotency.forget("mint", key, first.mintId);
      const claim = await claimFree(s, "mint", key, req);
      const second = await applyMint(s, claim, { accountId: "alice", amountMicros: 6n });
      expect(second.ok).toBe(true);
      if (!second.ok) return;
      expect(second.mint.mintId).not.toBe(first.mintId);
      expect(await s.ledger.getBalance("alice")).toBe(6n);
    });

    it("concurrent opposing transfers conserve money and never go negative", async () => {
      await mintNow(s, "acct-a", 1_000n);
      await mintNow(s, "acct-b", 1_000n);
      const rnd = prng(7);
      const moves = Array.from({ length: 40 }, () => ({ aToB: rnd() < 0.5, amount: BigInt(1 + Math.floor(rnd() * 300)) }));
      const results = await Promise.all(
        moves.map((m) => (m.aToB ? transferNow(s, "acct-a", "acct-b", m.amount) : transferNow(s, "acct-b", "acct-a", m.amount))),
      );
      let expectedA = 1_000n;
      results.forEach((r, i) => {
        const m = moves[i]!;
        if (r.ok) expectedA += m.aToB ? -m.amount : m.amount;
        else expect(r.error.code).toBe("INSUFFICIENT_FUNDS");
      });
      const a = await s.ledger.getBalance("acct-a");
      const b = await s.ledger.getBalance("acct-b");
      expect(a + b).toBe(2_000n);
      expect(a).toBe(expectedA);
      expect(a >= 0n && b >= 0n).toBe(true);
      expect(results.some((r) => r.ok)).toBe(true);
      covered("transfer", name);
    });

    it("a random sequence of mints, transfers and reversals matches a simple model", async () => {
      const rnd = prng(20260101);
      const accounts = ["a", "b", "c", "d"];
      const model = new Map<string, bigint>(accounts.map((a) => [a, 0n]));
      const reversible: MintRecord[] = [];
      const pick = (): string => accounts[Math.floor(rnd() * accounts.length)]!;
      let minted = 0n;
      let reversed = 0n;
      for (let step = 0; step < 40; step++) {
        const op = rnd();
        if (op < 0.35) {
          const acct = pick();
          const amount = BigInt(1 + Math.floor(rnd() * 1_000));
          reversible.push(await mintNow(s, acct, amount));
          model.set(acct, model.get(acct)! + amount);
          minted += amount;
        } else if (op < 0.85) {
          const from = pick();
          let to = pick();
          if (to === from) to = accounts[(accounts.indexOf(from) + 1) % accounts.length]!;
          const amount = BigInt(1 + Math.floor(rnd() * 800));
          const r = await transferNow(s, from, to, amount);
          const enough = model.get(from)! >= amount;
          expect(r.ok).toBe(enough);
          if (enough) {
            model.set(from, model.get(from)! - amount);
            model.set(to, model.get(to)! + amount);
          }
        } else if (reversible.length > 0) {
          const m = reversible.splice(Math.floor(rnd() * reversible.length), 1)[0]!;
          const r = await s.ledger.reverseMint(m.mintId, "model", s.clock.wallMs(), NO_DEADLINE);
          const enough = model.get(m.accountId)! >= m.amountMicros;
          expect(r.ok ? "ok" : r.error.code).toBe(enough ? "ok" : "INSUFFICIENT_FUNDS");
          if (enough) {
            model.set(m.accountId, model.get(m.accountId)! - m.amountMicros);
            reversed += m.amountMicros;
          }
        }
        await s.clock.advance(1);
      }
      let total = 0n;
      for (const acct of accounts) {
        const balance = await s.ledger.getBalance(acct);
        expect(balance).toBe(model.get(acct));
        expect(balance >= 0n).toBe(true);
        total += balance;
      }
      expect(total).toBe(minted - reversed);
    });
  });
}
