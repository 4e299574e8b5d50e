/**
 * A settlement is declared dropped only on proof: its nonce consumed at a
 * block `confirmations` deep, none of the nonce's transactions known when
 * looked up again after that read, on two passes a poll interval apart. The
 * worker runs against each store's outbox wired to the ledger (memory and
 * PostgreSQL), for a mint and for a redemption's burn, with a chain double:
 * a real node cannot be made to miss a lookup while it mines the transaction.
 * The real dropped-for-good case runs on a node in settlement-failures.test.ts.
 */
import { describe, expect, it } from "vitest";
import type { Hex, SettlementOutbox } from "../../src/settlement/ports.js";
import { InProcessSenderLock } from "../../src/settlement/outbox-memory.js";
import { SettlementWorker } from "../../src/settlement/worker.js";
import { ChainDouble } from "../support/chain-double.js";
import { plainMint, SETTLING_STORES, settlingMint, settlingRedemption, type SettlingStores } from "../support/settlement-stores.js";

const POLL_MS = 1_000;
const CONFIRMATIONS = 3;

/** One settlement of `kind` signed and sent, with what the ledger must show untouched and reversed. */
interface Case {
  readonly id: string;
  /** The ledger as it must stay while no verdict is taken. */
  untouched(): Promise<void>;
  /** The ledger after the settlement FAILED: the mint reversed, the burn re-credited. */
  reversed(): Promise<void>;
}

async function openCase(s: SettlingStores, kind: "mint" | "burn", account: string): Promise<Case> {
  if (kind === "mint") {
    const m = await settlingMint(s, account, 5_000_000n);
    return {
      id: m.mintId,
      async untouched() {
        expect((await s.store.getMint(m.mintId))?.status).toBe("COMPLETED");
        expect(await s.store.getPendingBalance?.(account)).toBe(5_000_000n);
      },
      async reversed() {
        expect((await s.store.getMint(m.mintId))?.status).toBe("REVERSED");
        expect(await s.store.getPendingBalance?.(account)).toBe(0n);
        expect(await s.store.getBalance(account)).toBe(0n);
      },
    };
  }
  await plainMint(s, account, 10_000_000n);
  const r = await settlingRedemption(s, account, 4_000_000n);
  return {
    id: r.redemptionId,
    async untouched() {
      expect(await s.store.getBalance(account)).toBe(6_000_000n);
    },
    async reversed() {
      expect(await s.store.getBalance(account)).toBe(10_000_000n);
    },
  };
}

function newWorker(s: SettlingStores, chain: ChainDouble, warnings: string[] = []): SettlementWorker {
  return new SettlementWorker({
    chain,
    outbox: s.outbox,
    lock: new InProcessSenderLock(new Map()),
    clock: s.clock,
    confirmations: CONFIRMATIONS,
    pollIntervalMs: POLL_MS,
    onWarning: (m) => warnings.push(m),
  });
}

async function stateOf(outbox: SettlementOutbox, id: string): Promise<{ state: string | undefined; lastError: string | undefined }> {
  const got = await outbox.get(id);
  return { state: got?.state, lastError: got?.lastError };
}

describe.each(SETTLING_STORES)("dropped only on proof (%s store)", (_name, make) => {
  const use = async (fn: (s: SettlingStores) => Promise<void>): Promise<void> => {
    const s = await make();
    try {
      await fn(s);
    } finally {
      await s.close();
    }
  };

  /** Signs and sends the case's settlement (nonce 0); returns its hash. */
  async function signed(s: SettlingStores, chain: ChainDouble, worker: SettlementWorker, c: Case): Promise<Hex> {
    expect((await worker.tick()).signed).toBe(1);
    const got = await s.outbox.get(c.id);
    expect(got?.state).toBe("SUBMITTED");
    const hash = got?.txs[0]?.hash as Hex;
    expect(chain.sent).toHaveLength(1);
    return hash;
  }

  it.each(["mint", "burn"] as const)("%s: the lookup misses while the count says used (the race): no verdict; found mined on the next pass, CONFIRMED", (kind) =>
    use(async (s) => {
      const chain = new ChainDouble();
      const worker = newWorker(s, chain);
      const c = await openCase(s, kind, `race-${kind}`);
      const hash = await signed(s, chain, worker, c);
      // Mined at block 101, buried 10 deep; the node behind the balancer
      // misses the first lookup and finds the transaction on the next.
      chain.consumedAt.push(101n);
      chain.head = 110n;
      const mined = { kind: "mined", blockNumber: 101n, blockHash: `0x${"11".repeat(32)}`, confirmations: 10, status: "success" } as const;
      chain.answer(hash, { kind: "unknown" }, mined);
      const report = await worker.tick();
      expect(report.failed).toBe(0);
      expect((await stateOf(s.outbox, c.id)).state).toBe("SUBMITTED");
      await c.untouched();
      await s.clock.advance(POLL_MS);
      expect((await worker.tick()).confirmed).toBe(1);
      expect((await s.outbox.get(c.id))?.state).toBe("CONFIRMED");
      if (kind === "mint") expect(await s.store.getBalance(`race-${kind}`)).toBe(5_000_000n);
      else await c.untouched();
    }),
  );

  it.each(["mint", "burn"] as const)("%s: nonce consumed at the head, not yet deep: no verdict however long, status says why, nothing re-sent", (kind) =>
    use(async (s) => {
      const chain = new ChainDouble();
      const worker = newWorker(s, chain);
      const c = await openCase(s, kind, `shallow-${kind}`);
      await signed(s, chain, worker, c);
      chain.head = 110n;
      chain.consumedAt.push(109n); // 2 deep: one short of the confirmation depth
      for (let pass = 0; pass < 4; pass++) {
        expect((await worker.tick()).failed).toBe(0);
        await s.clock.advance(5 * POLL_MS);
      }
      expect(await stateOf(s.outbox, c.id)).toEqual({ state: "SUBMITTED", lastError: `waiting for proof of a drop: nonce 0 is used at the head (block 110) but not yet ${CONFIRMATIONS} blocks deep` });
      await c.untouched();
      expect(chain.sent).toHaveLength(1);
    }),
  );

  it.each(["mint", "burn"] as const)("%s: dropped for good: FAILED only on the second pass a poll interval after the first proof, reversed once", (kind) =>
    use(async (s) => {
      const chain = new ChainDouble();
      const worker = newWorker(s, chain);
      const c = await openCase(s, kind, `gone-${kind}`);
      await signed(s, chain, worker, c);
      chain.head = 110n;
      chain.consumedAt.push(101n); // another transaction of the key took nonce 0, 10 deep
      expect((await worker.tick()).failed).toBe(0);
      expect(await stateOf(s.outbox, c.id)).toEqual({
        state: "SUBMITTED",
        lastError: `waiting for proof of a drop: nonce 0 is used ${CONFIRMATIONS} blocks deep (block 108) and none of its transactions is known; checked again on the next pass`,
      });
      await c.untouched();
      // A pass sooner than the poll interval (a wake-up) proves nothing new.
      await s.clock.advance(POLL_MS / 2);
      expect((await worker.tick()).failed).toBe(0);
      await c.untouched();
      await s.clock.advance(POLL_MS / 2);
      expect((await worker.tick()).failed).toBe(1);
      expect(await stateOf(s.outbox, c.id)).toEqual({ state: "FAILED", lastError: "dropped: nonce 0 was used by another transaction" });
      await c.reversed();
      await s.clock.advance(POLL_MS);
      await worker.tick();
      await c.reversed();
    }),
  );

  it("a transaction the lookup finds only after the deep count was read is never dropped (the second look)", () =>
    use(async (s) => {
      const chain = new ChainDouble();
      const worker = newWorker(s, chain);
      const c = await openCase(s, "mint", "second-look");
      const hash = await signed(s, chain, worker, c);
      chain.head = 110n;
      chain.consumedAt.push(101n);
      const mined = { kind: "mined", blockNumber: 101n, blockHash: `0x${"13".repeat(32)}`, confirmations: 10, status: "success" } as const;
      // Pass 1: unknown twice (a first proof). Pass 2: unknown, then mined when looked up again after the count.
      chain.answer(hash, { kind: "unknown" }, { kind: "unknown" }, { kind: "unknown" }, mined);
      await worker.tick();
      await s.clock.advance(POLL_MS);
      expect((await worker.tick()).failed).toBe(0);
      await c.untouched();
      await s.clock.advance(POLL_MS);
      expect((await worker.tick()).confirmed).toBe(1);
    }),
  );

  it("a proof broken by a pass that finds the transaction starts over", () =>
    use(async (s) => {
      const chain = new ChainDouble();
      const worker = newWorker(s, chain);
      const c = await openCase(s, "mint", "broken-proof");
      const hash = await signed(s, chain, worker, c);
      chain.head = 110n;
      chain.consumedAt.push(101n);
      const pending = { kind: "pending" } as const;
      // unknown (proof 1), then pending in the next pass, then unknown again.
      chain.answer(hash, { kind: "unknown" }, { kind: "unknown" }, pending, { kind: "unknown" });
      await worker.tick();
      await s.clock.advance(POLL_MS);
      await worker.tick(); // pending: no proof this pass
      await s.clock.advance(POLL_MS);
      expect((await worker.tick()).failed).toBe(0); // the first proof of a new run
      await c.untouched();
      await s.clock.advance(POLL_MS);
      expect((await worker.tick()).failed).toBe(1);
      await c.reversed();
    }),
  );

  it("a node that cannot read the deep nonce gives no proof: SUBMITTED, the reason in the status, warned once, no pass failure", () =>
    use(async (s) => {
      const chain = new ChainDouble();
      const warnings: string[] = [];
      const worker = newWorker(s, chain, warnings);
      const c = await openCase(s, "mint", "no-archive");
      await signed(s, chain, worker, c);
      chain.head = 500n;
      chain.consumedAt.push(101n);
      chain.deepReadError = "missing trie node";
      for (let pass = 0; pass < 3; pass++) {
        await expect(worker.tick()).resolves.toMatchObject({ failed: 0 });
        await s.clock.advance(POLL_MS);
      }
      const reason = `waiting for proof of a drop: the node cannot read the signer's nonce at block 498 (${CONFIRMATIONS} blocks deep): missing trie node; deep confirmation settings need an archive node`;
      expect(await stateOf(s.outbox, c.id)).toEqual({ state: "SUBMITTED", lastError: reason });
      expect(warnings).toEqual([`ETHEREUM: ${reason}`]);
      await c.untouched();
    }),
  );
});
