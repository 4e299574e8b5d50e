/**
 * The contract of `SettlementOutbox` and `SenderLock`, run against every
 * adapter (settlement-outbox.test.ts): commit order, signing exactly once,
 * nonces never reused, cancellation only while PENDING, final states once
 * with their ledger effect.
 */
import { describe, expect, it } from "vitest";
import type { Blockchain } from "../../src/domain/model.js";
import { MAX_GET_MANY, type Hex, type SenderLock, type Settlement, type SettlementOutbox, type SettlementTx } from "../../src/domain/settlement/ports.js";

export interface OutboxUnderTest {
  readonly outbox: SettlementOutbox;
  /** What the effects saw, in order: "confirmed:<id>" / "failed:<id>:<reason>". */
  readonly effects: string[];
  /** Two locks as two replicas would hold them. */
  readonly locks: [SenderLock, SenderLock];
  close(): Promise<void>;
}

const hash = (n: number): Hex => `0x${n.toString(16).padStart(64, "0")}`;
function tx(n: number, nonce: number): SettlementTx {
  return { hash: hash(n), raw: `0x02${n.toString(16).padStart(8, "0")}`, nonce, maxFeePerGas: 3_000_000_000n, maxPriorityFeePerGas: 10n ** 9n, signedWallMs: 1_700_000_000_000 };
}
const mined = (n: number, blockNumber: bigint, confirmations: number): { hash: Hex; blockNumber: bigint; confirmations: number } => ({ hash: hash(n), blockNumber, confirmations });

export function settlementOutboxContract(name: string, open: () => Promise<OutboxUnderTest>): void {
  describe(`SettlementOutbox contract: ${name}`, () => {
    const use = async (fn: (t: OutboxUnderTest) => Promise<void>): Promise<void> => {
      const t = await open();
      try {
        await fn(t);
      } finally {
        await t.close();
      }
    };
    const add = (o: SettlementOutbox, id: string, amountMicros = 1_000_000n, blockchain: Blockchain = "ETHEREUM", createWallMs = 1_700_000_000_000): Promise<void> =>
      o.enqueue({ settlementId: id, blockchain, amountMicros, createWallMs });

    it("getMany returns the settlements that exist, each with its transactions in signing order, as get does", () =>
      use(async ({ outbox }) => {
        await add(outbox, "g1", 1n);
        await add(outbox, "g2", 2n, "BASE");
        await add(outbox, "g3", 3n);
        expect((await outbox.recordSigned("g1", tx(1, 0), 1)).ok).toBe(true);
        expect(await outbox.recordReplacement("g1", { ...tx(2, 0), signedWallMs: 1_700_000_000_500 }, 2)).toBe(true);
        await outbox.markConfirmed("g1", mined(2, 9n, 1), 3);
        const found = await outbox.getMany(["g3", "missing", "g1", "g2", "g1"]);
        expect([...found.keys()].sort()).toEqual(["g1", "g2", "g3"]);
        for (const id of ["g1", "g2", "g3"]) expect(found.get(id)).toEqual(await outbox.get(id));
        expect(found.get("g1")?.txs.map((t) => t.hash)).toEqual([hash(1), hash(2)]);
        expect(found.get("g1")?.txs[1]).toEqual({ ...tx(2, 0), signedWallMs: 1_700_000_000_500 });
        expect([found.get("g2")?.state, found.get("g2")?.txs]).toEqual(["PENDING", []]);
        expect((await outbox.getMany([])).size).toBe(0);
        expect((await outbox.getMany(["nope"])).size).toBe(0);
      }));

    it("a final settlement keeps its cost in wei exactly (reverted ones pay too); one finished without a cost, or not final, reads null (unknown), never 0", () =>
      use(async ({ outbox }) => {
        for (const [i, id] of ["c1", "c2", "c3", "c4"].entries()) {
          await add(outbox, id);
          if (id !== "c4") expect((await outbox.recordSigned(id, tx(10 + i, i), 1)).ok).toBe(true);
        }
        const big = 123_456_789_012_345_678_901_234_567_890n; // far past 2^53
        expect(await outbox.markConfirmed("c1", { ...mined(10, 5n, 1), costWei: big }, 2)).toBe(true);
        expect(await outbox.markFailed("c2", { ...mined(11, 5n, 1), costWei: 21_000n }, "reverted", 2)).toBe(true);
        expect(await outbox.markConfirmed("c3", mined(12, 6n, 1), 2)).toBe(true);
        const found = await outbox.getMany(["c1", "c2", "c3", "c4"]);
        expect(["c1", "c2", "c3", "c4"].map((id) => found.get(id)?.costWei)).toEqual([big, 21_000n, null, null]);
        expect((await outbox.get("c1"))?.costWei).toBe(big);
      }));

    it("setWaitReason: every PENDING settlement of the chain carries the chain's reason; signed ones and other chains do not; an empty reason clears it", () =>
      use(async ({ outbox }) => {
        await add(outbox, "w1");
        await add(outbox, "w2");
        await add(outbox, "w3", 1n, "BASE");
        expect((await outbox.recordSigned("w2", tx(20, 0), 1)).ok).toBe(true);
        const reasons = async (): Promise<(string | undefined)[]> => {
          const m = await outbox.getMany(["w1", "w2", "w3"]);
          const one = await outbox.get("w1");
          expect(one?.waitReason).toBe(m.get("w1")?.waitReason);
          return ["w1", "w2", "w3"].map((id) => m.get(id)?.waitReason);
        };
        expect(await reasons()).toEqual(["", "", ""]);
        await outbox.setWaitReason("ETHEREUM", "waiting for the fee ceiling: x");
        expect(await reasons()).toEqual(["waiting for the fee ceiling: x", "", ""]);
        await outbox.setWaitReason("ETHEREUM", "waiting for funds: y");
        expect(await reasons()).toEqual(["waiting for funds: y", "", ""]);
        await outbox.setWaitReason("ETHEREUM", "");
        expect(await reasons()).toEqual(["", "", ""]);
      }));

    it(`getMany refuses more than ${MAX_GET_MANY} ids`, () =>
      use(async ({ outbox }) => {
        await expect(outbox.getMany(Array.from({ length: MAX_GET_MANY + 1 }, (_, i) => `id-${i}`))).rejects.toThrow(/at most/);
        expect((await outbox.getMany(Array.from({ length: MAX_GET_MANY }, (_, i) => `id-${i}`))).size).toBe(0);
      }));

    it("backlog counts the open settlements per chain by state and dates the oldest; final ones drop out", () =>
      use(async ({ outbox }) => {
        expect(await outbox.backlog()).toEqual(new Map());
        await add(outbox, "b1", 1n, "ETHEREUM", 1_700_000_000_000);
        await add(outbox, "b2", 1n, "ETHEREUM", 1_700_000_005_000);
        await add(outbox, "b3", 1n, "ETHEREUM", 1_700_000_009_000);
        await add(outbox, "b4", 1n, "BASE", 1_700_000_007_000);
        await outbox.recordSigned("b1", tx(1, 0), 1);
        expect(await outbox.backlog()).toEqual(
          new Map([
            ["ETHEREUM", { pending: 2, submitted: 1, oldestCreateWallMs: 1_700_000_000_000 }],
            ["BASE", { pending: 1, submitted: 0, oldestCreateWallMs: 1_700_000_007_000 }],
          ]),
        );
        expect(await outbox.markConfirmed("b1", mined(1, 5n, 1), 2)).toBe(true);
        expect(await outbox.cancel("b4")).toBe("PENDING");
        expect(await outbox.backlog()).toEqual(new Map([["ETHEREUM", { pending: 2, submitted: 0, oldestCreateWallMs: 1_700_000_005_000 }]]));
      }));

    it("enqueue is idempotent per id; nextPending returns PENDING settlements of one chain in commit order, up to the limit", () =>
      use(async ({ outbox }) => {
        await add(outbox, "a", 1n);
        await add(outbox, "b", 2n, "BASE");
        await add(outbox, "c", 3n);
        await add(outbox, "a", 999n);
        const eth = await outbox.nextPending("ETHEREUM", 10);
        expect(eth.map((s) => [s.settlementId, s.amountMicros, s.state, s.txs.length])).toEqual([
          ["a", 1n, "PENDING", 0],
          ["c", 3n, "PENDING", 0],
        ]);
        expect((eth[0] as Settlement).seq).toBeLessThan((eth[1] as Settlement).seq);
        expect((await outbox.nextPending("ETHEREUM", 1)).map((s) => s.settlementId)).toEqual(["a"]);
        expect((await outbox.nextPending("BASE", 10)).map((s) => s.settlementId)).toEqual(["b"]);
        expect(await outbox.nextPending("POLYGON", 10)).toEqual([]);
        expect(await outbox.highestNonce("ETHEREUM")).toBe(-1);
      }));

    it("recordReplacement stores a same-nonce replacement only while SUBMITTED; the mined one settles", () =>
      use(async ({ outbox, effects }) => {
        await add(outbox, "r");
        expect(await outbox.recordReplacement("r", tx(2, 0), 1)).toBe(false); // PENDING: nothing signed yet
        expect((await outbox.recordSigned("r", tx(1, 0), 1)).ok).toBe(true);
        // Another nonce is never stored as a replacement (memory throws, PostgreSQL stores nothing).
        expect(await outbox.recordReplacement("r", tx(9, 1), 2).catch(() => false)).toBe(false);
        expect(await outbox.recordReplacement("r", tx(2, 0), 2)).toBe(true);
        expect((await outbox.get("r"))?.txs.map((t) => [t.hash, t.nonce])).toEqual([
          [hash(1), 0],
          [hash(2), 0],
        ]);
        await outbox.markConfirmed("r", mined(2, 7n, 1), 3);
        const done = await outbox.get("r");
        expect([done?.state, done?.minedHash]).toEqual(["CONFIRMED", hash(2)]);
        expect(effects).toEqual(["confirmed:r"]);
        expect(await outbox.recordReplacement("r", tx(3, 0), 4)).toBe(false); // final: nothing more is stored
        expect((await outbox.get("r"))?.txs).toHaveLength(2);
      }));

    it("a burn (kind 'burn') shares the chain's commit order and nonces with mints; it fails once, its effect sees its kind", () =>
      use(async ({ outbox, effects }) => {
        await add(outbox, "m1");
        await outbox.enqueue({ settlementId: "rdm-1", kind: "burn", blockchain: "ETHEREUM", amountMicros: 2_000_000n, createWallMs: 1_700_000_000_000 });
        await outbox.enqueue({ settlementId: "rdm-1", kind: "burn", blockchain: "ETHEREUM", amountMicros: 9n, createWallMs: 1_700_000_000_000 });
        await add(outbox, "m2");
        const pending = await outbox.nextPending("ETHEREUM", 10);
        expect(pending.map((s) => [s.settlementId, s.kind, s.amountMicros])).toEqual([
          ["m1", "mint", 1_000_000n],
          ["rdm-1", "burn", 2_000_000n],
          ["m2", "mint", 1_000_000n],
        ]);
        expect((await outbox.recordSigned("m1", tx(1, 0), 1)).ok).toBe(true);
        expect((await outbox.recordSigned("rdm-1", tx(2, 1), 1)).ok).toBe(true);
        await expect(outbox.recordSigned("m2", tx(3, 1), 1)).rejects.toThrow(); // nonce 1 is the burn's
        expect((await outbox.inFlight("ETHEREUM")).map((s) => [s.settlementId, s.kind, s.txs[0]?.nonce])).toEqual([
          ["m1", "mint", 0],
          ["rdm-1", "burn", 1],
        ]);
        await outbox.markFailed("rdm-1", mined(2, 5n, 1), "the burn transaction reverted on-chain", 2);
        await outbox.markFailed("rdm-1", mined(2, 5n, 1), "again", 3);
        await outbox.markConfirmed("rdm-1", mined(2, 5n, 1), 4);
        await outbox.markConfirmed("m1", mined(1, 5n, 1), 4);
        const burn = await outbox.get("rdm-1");
        expect([burn?.kind, burn?.state, burn?.lastError, burn?.minedHash]).toEqual(["burn", "FAILED", "the burn transaction reverted on-chain", hash(2)]);
        expect((await outbox.get("m1"))?.kind).toBe("mint");
        expect(effects).toEqual(["failed:burn:rdm-1:the burn transaction reverted on-chain", "confirmed:m1"]);
      }));

    it("refuses a non-positive amount and changes nothing", () =>
      use(async ({ outbox }) => {
        await expect(add(outbox, "zero", 0n)).rejects.toThrow();
        expect(await outbox.get("zero")).toBeNull();
      }));

    it("recordSigned stores the transaction and moves PENDING → SUBMITTED once; a second signature is refused", () =>
      use(async ({ outbox }) => {
        await add(outbox, "a");
        const first = await outbox.recordSigned("a", tx(1, 0), 1_700_000_000_100);
        expect(first.ok).toBe(true);
        expect(await outbox.recordSigned("a", tx(2, 1), 1_700_000_000_200)).toEqual({ ok: false, code: "SETTLEMENT_NOT_PENDING", state: "SUBMITTED" });
        expect(await outbox.recordSigned("nope", tx(3, 2), 1_700_000_000_200)).toEqual({ ok: false, code: "SETTLEMENT_NOT_PENDING", state: "MISSING" });
        const s = (await outbox.get("a")) as Settlement;
        expect(s.state).toBe("SUBMITTED");
        expect(s.txs).toEqual([tx(1, 0)]);
        expect(await outbox.highestNonce("ETHEREUM")).toBe(0);
        expect(await outbox.nextPending("ETHEREUM", 10)).toEqual([]);
        expect((await outbox.inFlight("ETHEREUM")).map((x) => x.settlementId)).toEqual(["a"]);
      }));

    it("never gives one nonce of a chain to two settlements (another chain may use it)", () =>
      use(async ({ outbox }) => {
        await add(outbox, "a");
        await add(outbox, "b");
        await add(outbox, "c", 1n, "BASE");
        expect((await outbox.recordSigned("a", tx(1, 7), 1)).ok).toBe(true);
        await expect(outbox.recordSigned("b", tx(2, 7), 1)).rejects.toThrow();
        expect((await outbox.get("b"))?.state).toBe("PENDING");
        expect((await outbox.recordSigned("c", tx(3, 7), 1)).ok).toBe(true);
      }));

    it("inFlight lists SUBMITTED settlements by nonce; attempts and progress are recorded", () =>
      use(async ({ outbox }) => {
        for (const id of ["a", "b", "c"]) await add(outbox, id);
        await outbox.recordSigned("b", tx(2, 0), 1);
        await outbox.recordSigned("a", tx(1, 1), 1);
        expect((await outbox.inFlight("ETHEREUM")).map((s) => s.settlementId)).toEqual(["b", "a"]);
        await outbox.recordAttempt("b", "", 2);
        await outbox.recordAttempt("b", "node unreachable", 3);
        await outbox.recordProgress("b", mined(2, 41n, 1), 4);
        let b = (await outbox.get("b")) as Settlement;
        expect([b.attempts, b.lastError, b.minedHash, b.blockNumber, b.confirmations]).toEqual([2, "node unreachable", hash(2), 41n, 1]);
        // A reorg took it out again.
        await outbox.recordProgress("b", null, 5);
        b = (await outbox.get("b")) as Settlement;
        expect([b.minedHash, b.blockNumber, b.confirmations, b.state]).toEqual([null, null, 0, "SUBMITTED"]);
      }));

    it("markConfirmed and markFailed are final, once, each with its ledger effect in the same step", () =>
      use(async ({ outbox, effects }) => {
        for (const id of ["ok", "bad", "pending"]) await add(outbox, id);
        await outbox.recordSigned("ok", tx(1, 0), 1);
        await outbox.recordSigned("bad", tx(2, 1), 1);
        // True only for the call that made the change (the worker counts outcomes by it).
        expect(await outbox.markConfirmed("ok", mined(1, 10n, 3), 2)).toBe(true);
        expect(await outbox.markConfirmed("ok", mined(1, 10n, 4), 3)).toBe(false);
        expect(await outbox.markFailed("ok", null, "late", 3)).toBe(false);
        expect(await outbox.markFailed("bad", mined(2, 11n, 3), "reverted", 2)).toBe(true);
        expect(await outbox.markFailed("bad", mined(2, 11n, 3), "reverted", 2)).toBe(false);
        expect(await outbox.markConfirmed("pending", mined(3, 12n, 3), 2)).toBe(false);
        expect(await outbox.markConfirmed("missing", mined(4, 12n, 3), 2)).toBe(false);
        expect(effects).toEqual(["confirmed:ok", "failed:bad:reverted"]);
        const ok = (await outbox.get("ok")) as Settlement;
        expect([ok.state, ok.minedHash, ok.blockNumber, ok.confirmations]).toEqual(["CONFIRMED", hash(1), 10n, 3]);
        const bad = (await outbox.get("bad")) as Settlement;
        expect([bad.state, bad.lastError]).toEqual(["FAILED", "reverted"]);
        expect((await outbox.get("pending"))?.state).toBe("PENDING");
        expect(await outbox.inFlight("ETHEREUM")).toEqual([]);
      }));

    it("cancel removes a PENDING settlement only; it reports the state otherwise", () =>
      use(async ({ outbox }) => {
        await add(outbox, "p");
        await add(outbox, "s");
        await outbox.recordSigned("s", tx(1, 0), 1);
        expect(await outbox.cancel("p")).toBe("PENDING");
        expect(await outbox.get("p")).toBeNull();
        expect(await outbox.cancel("p")).toBe("MISSING");
        expect(await outbox.cancel("s")).toBe("SUBMITTED");
        expect((await outbox.get("s"))?.state).toBe("SUBMITTED");
        expect((await outbox.recordSigned("p", tx(2, 1), 1)).ok).toBe(false);
      }));

    it("one sender per chain: the second replica's lock waits until the first releases", () =>
      use(async ({ locks: [one, two] }) => {
        expect(await one.tryAcquire("ETHEREUM")).toBe(true);
        expect(await one.tryAcquire("ETHEREUM")).toBe(true);
        expect(await two.tryAcquire("ETHEREUM")).toBe(false);
        expect(await two.tryAcquire("BASE")).toBe(true);
        expect([await one.held("ETHEREUM"), await two.held("ETHEREUM"), await two.held("BASE")]).toEqual([true, false, true]);
        await one.release("ETHEREUM");
        expect(await one.held("ETHEREUM")).toBe(false);
        expect(await two.tryAcquire("ETHEREUM")).toBe(true);
        await two.release("ETHEREUM");
        await two.release("BASE");
      }));
  });
}
