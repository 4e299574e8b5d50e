/**
 * BatchMint and BatchTransfer item by item, on a store adapter: the core's
 * batch calls over the adapter's exactly-once store (and, for all-or-none
 * transfers, its `applyAllOrNone`). Each unary rule must hold per item: a
 * refused item among good ones, replays mixed with new keys, keys shared with
 * the unary calls, the limiter per account, approval and allowances, and the
 * audit journal's one record per item effect.
 */
import { afterEach, describe, expect, it } from "vitest";
import { MemoryRateLimiter } from "../../src/adapters/memory/memory-rate-limiter.js";
import type { Principal } from "../../src/domain/authorization.js";
import { MintCore, type MintUsdcInput, type TransferInput, type ItemResult } from "../../src/domain/mint-core.js";
import type { Result } from "../../src/domain/result.js";
import type { MakeSettlementStores, SettlementStoresUnderTest } from "./stores-under-test.js";

const CTX = { deadlineMs: Infinity };
const LIMITS = { maxItems: 1000 };
const MAX_MICROS = 1_000_000_000_000n * 1_000_000n;

function value<T>(r: Result<T>): T {
  if (!r.ok) throw new Error(`expected success, got ${JSON.stringify(r.error, (_k, v: unknown) => (typeof v === "bigint" ? `${v}n` : v))}`);
  return r.value;
}

/** Each item's outcome as "ok" / "replayed" / its failure code (and reason for INVALID_ARGUMENT). */
function outcomes<T extends { replayed: boolean }>(items: readonly ItemResult<T>[]): string[] {
  return items.map((i) => {
    if (i.ok) return i.value.replayed ? "replayed" : "ok";
    const e = i.error as { code: string; reason?: string };
    return e.code === "INVALID_ARGUMENT" ? `INVALID_ARGUMENT ${e.reason}` : e.code;
  });
}

export function batchContract(name: string, makeStores: MakeSettlementStores): void {
  describe(`batches on ${name}`, () => {
    let s: SettlementStoresUnderTest | undefined;
    afterEach(async () => {
      await s?.close();
      s = undefined;
    });

    async function setup(opts: { limit?: number; threshold?: bigint; allowances?: boolean } = {}) {
      s = await makeStores();
      const stores = s;
      const limiter = new MemoryRateLimiter({ limit: opts.limit ?? 1_000_000, windowMs: 1_000, clock: stores.clock });
      const approvals =
        opts.threshold === undefined && opts.allowances !== true
          ? {}
          : { approvals: { store: stores.store, thresholdMicros: opts.threshold ?? null, required: 2, ttlMs: 60_000, allowances: opts.allowances === true, selfAllowance: true } };
      const core = new MintCore({ store: stores.store, limiter, clock: stores.clock, maxAmountMicros: MAX_MICROS, ...approvals });
      const balance = async (id: string): Promise<bigint> => value(await core.getBalance(id)).balanceMicros;
      return { core, stores, balance };
    }
    const m = (accountId: string, amount: string, idempotencyKey: string): MintUsdcInput => ({ accountId, amount, blockchain: "ETHEREUM", idempotencyKey });
    const t = (fromAccountId: string, toAccountId: string, amount: string, idempotencyKey: string): TransferInput => ({ fromAccountId, toAccountId, amount, idempotencyKey });

    it("BatchMint: a refused item among good ones fails alone, results in request order, one journal record per applied item", async () => {
      const { core, stores, balance } = await setup();
      value(await core.setFrozen("frozen-1", true, "test", CTX));
      const items = [m("a-1", "1", "k1"), m("a-2", "0", "k2"), m("frozen-1", "1", "k3"), m("a-3", "3", "k4"), m("bad id!", "1", "k5")];
      const r = value(await core.batchMint({ items }, LIMITS, CTX));
      expect(outcomes(r)).toEqual(["ok", "INVALID_ARGUMENT INVALID_AMOUNT", "ACCOUNT_FROZEN", "ok", "INVALID_ARGUMENT INVALID_ACCOUNT_ID"]);
      expect([await balance("a-1"), await balance("a-3"), await balance("frozen-1")]).toEqual([1_000_000n, 3_000_000n, 0n]);
      expect((await stores.journaled("MintUsdc")).map((j) => j.request.account_id)).toEqual(["a-1", "a-3"]);
    });

    it("a retried batch replays item by item; a batch mixing used and new keys applies only the new ones", async () => {
      const { core, balance } = await setup();
      const first = value(await core.batchMint({ items: [m("r-1", "1", "k1"), m("r-2", "2", "k2")] }, LIMITS, CTX));
      const again = value(await core.batchMint({ items: [m("r-1", "1", "k1"), m("r-2", "2", "k2"), m("r-3", "3", "k3")] }, LIMITS, CTX));
      expect(outcomes(again)).toEqual(["replayed", "replayed", "ok"]);
      expect(again[0]?.ok && first[0]?.ok && again[0].value.mint.mintId === first[0].value.mint.mintId).toBe(true);
      expect([await balance("r-1"), await balance("r-2"), await balance("r-3")]).toEqual([1_000_000n, 2_000_000n, 3_000_000n]);
      // A key used for another request is the unary answer, for that item alone.
      const reused = value(await core.batchMint({ items: [m("r-1", "5", "k1"), m("r-4", "4", "k4")] }, LIMITS, CTX));
      expect(outcomes(reused)).toEqual(["IDEMPOTENCY_KEY_REUSED", "ok"]);
    });

    it("keys are shared with the unary calls, both ways, for mints and transfers", async () => {
      const { core, balance } = await setup();
      const unary = value(await core.mintUsdc(m("u-1", "10", "shared-1"), CTX));
      const batch = value(await core.batchMint({ items: [m("u-1", "10", "shared-1"), m("u-2", "10", "shared-2")] }, LIMITS, CTX));
      expect(outcomes(batch)).toEqual(["replayed", "ok"]);
      expect(batch[0]?.ok && batch[0].value.mint.mintId).toBe(unary.mint.mintId);
      const unaryAfter = value(await core.mintUsdc(m("u-2", "10", "shared-2"), CTX));
      expect(unaryAfter.replayed).toBe(true);
      const tUnary = value(await core.transfer(t("u-1", "u-3", "1", "tk-1"), CTX));
      const tBatch = value(await core.batchTransfer({ items: [t("u-1", "u-3", "1", "tk-1"), t("u-2", "u-3", "2", "tk-2")], atomic: false }, LIMITS, CTX));
      expect(outcomes(tBatch.items)).toEqual(["replayed", "ok"]);
      expect(tBatch.items[0]?.ok && tBatch.items[0].value.transfer.transferId).toBe(tUnary.transfer.transferId);
      expect(value(await core.transfer(t("u-2", "u-3", "2", "tk-2"), CTX)).replayed).toBe(true);
      expect(await balance("u-3")).toBe(3_000_000n);
    });

    it("the rate limit applies per account, item by item; replays never count", async () => {
      const { core } = await setup({ limit: 2 });
      const items = [m("l-a", "1", "k1"), m("l-a", "1", "k2"), m("l-b", "1", "k3"), m("l-a", "1", "k4"), m("l-a", "1", "k1")];
      const r = value(await core.batchMint({ items }, LIMITS, CTX));
      expect(outcomes(r)).toEqual(["ok", "ok", "ok", "RATE_LIMITED", "replayed"]);
      expect(r[3]?.ok === false && r[3].error).toMatchObject({ code: "RATE_LIMITED", accountId: "l-a", limit: 2 });
    });

    it("approval and allowances per item: a large item is PENDING_APPROVAL, one beyond the allowance ALLOWANCE_EXCEEDED", async () => {
      const { core, balance } = await setup({ threshold: 100_000_000n, allowances: true });
      value(await core.setMinterAllowance("local", "150", CTX));
      const r = value(await core.batchMint({ items: [m("p-1", "100", "k1"), m("p-2", "40", "k2"), m("p-3", "20", "k3")] }, LIMITS, CTX));
      expect(outcomes(r)).toEqual(["ok", "ok", "ALLOWANCE_EXCEEDED"]);
      expect(r[0]?.ok && r[0].value.mint.status).toBe("PENDING_APPROVAL");
      expect([await balance("p-1"), await balance("p-2")]).toEqual([0n, 40_000_000n]);
    });

    it("each item's account must be in the caller's scopes: an item outside them fails alone, as the unary call would", async () => {
      const { core, balance } = await setup();
      const principal: Principal = { name: "scoped", roles: new Set(["minter", "transferer"]), scopes: ["mine:*"] };
      const ctx = { ...CTX, principal };
      const r = value(await core.batchMint({ items: [m("mine:1", "5", "k1"), m("theirs:1", "5", "k2")] }, LIMITS, ctx));
      expect(outcomes(r)).toEqual(["ok", "PERMISSION_DENIED"]);
      expect(r[1]?.ok === false && r[1].error).toEqual({ code: "PERMISSION_DENIED", rpc: "MintUsdc", principal: "scoped", missingScope: "theirs:1" });
      const tr = value(await core.batchTransfer({ items: [t("mine:1", "theirs:1", "1", "t1"), t("theirs:1", "mine:1", "1", "t2")], atomic: false }, LIMITS, ctx));
      expect(outcomes(tr.items)).toEqual(["ok", "PERMISSION_DENIED"]);
      expect(await balance("theirs:1")).toBe(1_000_000n);
    });

    it("BatchTransfer: insufficient funds fails the item alone; later items see the earlier items' effect", async () => {
      const { core, balance } = await setup();
      value(await core.mintUsdc(m("f-1", "10", "seed"), CTX));
      const items = [t("f-1", "f-2", "6", "t1"), t("f-1", "f-3", "6", "t2"), t("f-2", "f-3", "6", "t3"), t("f-1", "f-1", "1", "t4")];
      const r = value(await core.batchTransfer({ items, atomic: false }, LIMITS, CTX));
      expect(outcomes(r.items)).toEqual(["ok", "INSUFFICIENT_FUNDS", "ok", "INVALID_ARGUMENT SAME_ACCOUNT"]);
      expect(r.refusedItem).toBeUndefined();
      expect([await balance("f-1"), await balance("f-2"), await balance("f-3")]).toEqual([4_000_000n, 0n, 6_000_000n]);
      expect(await stores().journaled("Transfer")).toHaveLength(2);
    });
    const stores = (): SettlementStoresUnderTest => s as SettlementStoresUnderTest;

    it("atomic: every item applies in one step, one journal record each", async () => {
      const { core, balance } = await setup();
      value(await core.mintUsdc(m("x-1", "10", "seed"), CTX));
      const items = [t("x-1", "x-2", "6", "t1"), t("x-2", "x-3", "5", "t2"), t("x-3", "x-1", "1", "t3")];
      const r = value(await core.batchTransfer({ items, atomic: true }, LIMITS, CTX));
      expect(outcomes(r.items)).toEqual(["ok", "ok", "ok"]);
      expect([await balance("x-1"), await balance("x-2"), await balance("x-3")]).toEqual([5_000_000n, 1_000_000n, 4_000_000n]);
      expect(await stores().journaled("Transfer")).toHaveLength(3);
      // A retry replays whole.
      const again = value(await core.batchTransfer({ items, atomic: true }, LIMITS, CTX));
      expect(outcomes(again.items)).toEqual(["replayed", "replayed", "replayed"]);
      expect(again.items.map((i) => i.ok && i.value.transfer.transferId)).toEqual(r.items.map((i) => i.ok && i.value.transfer.transferId));
      expect(await balance("x-1")).toBe(5_000_000n);
    });

    it("atomic: a refusing item names itself; nothing moves, no journal record, every key stays free", async () => {
      const { core, balance } = await setup();
      value(await core.mintUsdc(m("y-1", "10", "seed"), CTX));
      value(await core.setFrozen("y-frozen", true, "test", CTX));
      const items = [t("y-1", "y-2", "4", "t1"), t("y-1", "y-3", "7", "t2"), t("y-1", "y-4", "1", "t3")];
      const r = value(await core.batchTransfer({ items, atomic: true }, LIMITS, CTX));
      expect(r.refusedItem).toBe(1);
      expect(outcomes(r.items)).toEqual(["ATOMIC_BATCH_REFUSED", "INSUFFICIENT_FUNDS", "ATOMIC_BATCH_REFUSED"]);
      expect(r.items[0]?.ok === false && r.items[0].error).toEqual({ code: "ATOMIC_BATCH_REFUSED", refusedItem: 1 });
      const frozen = value(await core.batchTransfer({ items: [t("y-1", "y-2", "1", "t1"), t("y-1", "y-frozen", "1", "t5")], atomic: true }, LIMITS, CTX));
      expect([frozen.refusedItem, outcomes(frozen.items)]).toEqual([1, ["ATOMIC_BATCH_REFUSED", "ACCOUNT_FROZEN"]]);
      const invalid = value(await core.batchTransfer({ items: [t("y-1", "y-2", "1", "t1"), t("y-1", "y-2", "-1", "t6")], atomic: true }, LIMITS, CTX));
      expect([invalid.refusedItem, outcomes(invalid.items)]).toEqual([1, ["ATOMIC_BATCH_REFUSED", "INVALID_ARGUMENT INVALID_AMOUNT"]]);
      expect([await balance("y-1"), await balance("y-2"), await balance("y-3")]).toEqual([10_000_000n, 0n, 0n]);
      expect(await stores().journaled("Transfer")).toHaveLength(0);
      // The keys were left free: the same items apply once funded.
      value(await core.mintUsdc(m("y-1", "2", "seed-2"), CTX));
      const retried = value(await core.batchTransfer({ items, atomic: true }, LIMITS, CTX));
      expect(outcomes(retried.items)).toEqual(["ok", "ok", "ok"]);
      expect(await balance("y-1")).toBe(0n);
    });

    it("atomic with used keys: an item whose key holds its own result replays and the rest apply; a key holding another request refuses the batch", async () => {
      const { core, balance } = await setup();
      value(await core.mintUsdc(m("z-1", "10", "seed"), CTX));
      const unary = value(await core.transfer(t("z-1", "z-2", "2", "used"), CTX));
      const r = value(await core.batchTransfer({ items: [t("z-1", "z-3", "3", "new"), t("z-1", "z-2", "2", "used")], atomic: true }, LIMITS, CTX));
      expect(outcomes(r.items)).toEqual(["ok", "replayed"]);
      expect(r.items[1]?.ok && r.items[1].value.transfer.transferId).toBe(unary.transfer.transferId);
      expect(await balance("z-1")).toBe(5_000_000n);
      const reused = value(await core.batchTransfer({ items: [t("z-1", "z-4", "1", "fresh"), t("z-1", "z-2", "9", "used")], atomic: true }, LIMITS, CTX));
      expect([reused.refusedItem, outcomes(reused.items)]).toEqual([1, ["ATOMIC_BATCH_REFUSED", "IDEMPOTENCY_KEY_REUSED"]]);
      expect(await balance("z-4")).toBe(0n);
      // The refused batch left "fresh" free: a unary call with it applies.
      expect(value(await core.transfer(t("z-1", "z-4", "1", "fresh"), CTX)).replayed).toBe(false);
    });

    it("whole-call refusals: no items, too many, duplicate keys in an atomic batch; nothing applied", async () => {
      const { core, balance } = await setup();
      value(await core.mintUsdc(m("w-1", "10", "seed"), CTX));
      expect(await core.batchMint({ items: [] }, LIMITS, CTX)).toMatchObject({ ok: false, error: { code: "INVALID_ARGUMENT", reason: "EMPTY_BATCH", field: "items" } });
      expect(await core.batchTransfer({ items: [], atomic: true }, LIMITS, CTX)).toMatchObject({ ok: false, error: { reason: "EMPTY_BATCH" } });
      const three = [m("w-2", "1", "a"), m("w-2", "1", "b"), m("w-2", "1", "c")];
      expect(await core.batchMint({ items: three }, { maxItems: 2 }, CTX)).toMatchObject({ ok: false, error: { reason: "TOO_MANY_ITEMS", field: "items" } });
      const dup = [t("w-1", "w-3", "1", "same"), t("w-1", "w-4", "1", "same")];
      expect(await core.batchTransfer({ items: dup, atomic: true }, LIMITS, CTX)).toMatchObject({ ok: false, error: { reason: "DUPLICATE_IDEMPOTENCY_KEY", field: "items[1].idempotency_key" } });
      expect([await balance("w-2"), await balance("w-3"), await balance("w-1")]).toEqual([0n, 0n, 10_000_000n]);
      // Without atomic, the second item of one key replays the first (same request) or is refused (another).
      const plain = value(await core.batchTransfer({ items: [t("w-1", "w-3", "1", "same"), t("w-1", "w-3", "1", "same"), t("w-1", "w-4", "1", "same")], atomic: false }, LIMITS, CTX));
      expect(outcomes(plain.items)).toEqual(["ok", "replayed", "IDEMPOTENCY_KEY_REUSED"]);
    });
  });
}
