/**
 * Reserve, redemption and freeze in the core (memory adapters, fake clock):
 * redemption keys are scoped to the caller; a reserve refusal gives the
 * rate-limit slot back; MINT_RESERVE_REQUIRED; input validation of SetReserve,
 * RedeemUsdc and freezes changes nothing.
 */
import { describe, expect, it } from "vitest";
import { MemoryExactlyOnceStore } from "../../src/adapters/memory/memory-exactly-once-store.js";
import { MemoryIdempotencyStore } from "../../src/adapters/memory/memory-idempotency-store.js";
import { MemoryLedgerStore } from "../../src/adapters/memory/memory-ledger-store.js";
import { MemoryRateLimiter } from "../../src/adapters/memory/memory-rate-limiter.js";
import { MintCore, type RedeemUsdcInput } from "../../src/domain/mint-core.js";
import { FakeClock } from "../support/fake-clock.js";
import type { Principal } from "../../src/domain/authorization.js";

const as = (name: string): Principal => ({ name, roles: new Set(["redeemer"]), scopes: ["*"] });

const CTX = { deadlineMs: Infinity };

function setup(opts: { limit?: number; reserveRequired?: boolean } = {}) {
  const clock = new FakeClock();
  const ledger = new MemoryLedgerStore({ clock });
  const idempotency = new MemoryIdempotencyStore({ ttlMs: 60_000, maxKeys: 10_000, clock });
  const limiter = new MemoryRateLimiter({ limit: opts.limit ?? 1_000_000, windowMs: 1_000, clock });
  const core = new MintCore({
    store: new MemoryExactlyOnceStore(ledger, idempotency, clock),
    limiter,
    clock,
    maxAmountMicros: 10n ** 18n,
    reserveRequired: opts.reserveRequired ?? false,
  });
  const snapshot = async () => ({ balances: ledger.allBalances(), entries: ledger.ledgerEntries().length, keys: await idempotency.size(), supply: await core.getSupply() });
  return { core, ledger, snapshot };
}

const redeemInput = (over: Partial<RedeemUsdcInput> = {}): RedeemUsdcInput => ({ accountId: "a", amount: "1", blockchain: "BASE", idempotencyKey: "k", ...over });

describe("reserve, redemption and freeze in the core", () => {
  it("a redemption key is scoped to the caller: two principals' `k` are two redemptions; the same principal's replays", async () => {
    const { core } = setup();
    await core.mintUsdc({ accountId: "a", amount: "10", blockchain: "BASE", idempotencyKey: "m" }, CTX);
    const one = await core.redeemUsdc(redeemInput(), { ...CTX, principal: as("ops-1") });
    const two = await core.redeemUsdc(redeemInput(), { ...CTX, principal: as("ops-2") });
    const again = await core.redeemUsdc(redeemInput(), { ...CTX, principal: as("ops-1") });
    if (!one.ok || !two.ok || !again.ok) throw new Error("expected three successes");
    expect(one.value.redemption.redemptionId).not.toBe(two.value.redemption.redemptionId);
    expect([one.value.redemption.actor, two.value.redemption.actor]).toEqual(["ops-1", "ops-2"]);
    expect(again.value).toEqual({ redemption: one.value.redemption, replayed: true });
    expect((await core.getSupply()).supplyMicros).toBe(8_000_000n);
    // Without a principal the actor is `local`.
    const local = await core.redeemUsdc(redeemInput({ idempotencyKey: "k2" }), CTX);
    expect(local).toMatchObject({ ok: true, value: { redemption: { actor: "local" } } });
  });

  it("a mint refused RESERVE_EXCEEDED gives its rate-limit slot back", async () => {
    const { core } = setup({ limit: 1 });
    await core.setReserve({ amount: "1", attestationRef: "a" }, CTX);
    expect(await core.mintUsdc({ accountId: "a", amount: "2", blockchain: "BASE", idempotencyKey: "m1" }, CTX)).toMatchObject({
      ok: false,
      error: { code: "RESERVE_EXCEEDED", headroomMicros: 1_000_000n },
    });
    // The one slot of the window is still free.
    expect(await core.mintUsdc({ accountId: "a", amount: "1", blockchain: "BASE", idempotencyKey: "m2" }, CTX)).toMatchObject({ ok: true });
  });

  it("with reserveRequired, mints are RESERVE_NOT_SET until a reserve is set; nothing changes", async () => {
    const { core, snapshot } = setup({ reserveRequired: true });
    const before = await snapshot();
    expect(await core.mintUsdc({ accountId: "a", amount: "1", blockchain: "BASE", idempotencyKey: "m" }, CTX)).toEqual({ ok: false, error: { code: "RESERVE_NOT_SET" } });
    expect(await snapshot()).toEqual(before);
    expect(await core.setReserve({ amount: "0", attestationRef: "zero" }, CTX)).toMatchObject({ ok: true, value: { reserveMicros: 0n, headroomMicros: 0n } });
    expect(await core.mintUsdc({ accountId: "a", amount: "1", blockchain: "BASE", idempotencyKey: "m" }, CTX)).toMatchObject({ ok: false, error: { code: "RESERVE_EXCEEDED" } });
  });

  it.each([
    ["setReserve amount", (c: MintCore) => c.setReserve({ amount: "1.0000001", attestationRef: "a" }, CTX), "INVALID_AMOUNT"],
    ["setReserve negative", (c: MintCore) => c.setReserve({ amount: "-5", attestationRef: "a" }, CTX), "INVALID_AMOUNT"],
    ["setReserve empty ref", (c: MintCore) => c.setReserve({ amount: "5", attestationRef: "" }, CTX), "INVALID_ATTESTATION_REF"],
    ["setReserve long ref", (c: MintCore) => c.setReserve({ amount: "5", attestationRef: "r".repeat(513) }, CTX), "INVALID_ATTESTATION_REF"],
    ["setReserve control ref", (c: MintCore) => c.setReserve({ amount: "5", attestationRef: "a\nb" }, CTX), "INVALID_ATTESTATION_REF"],
    ["redeem account", (c: MintCore) => c.redeemUsdc(redeemInput({ accountId: " a" }), CTX), "INVALID_ACCOUNT_ID"],
    ["redeem amount", (c: MintCore) => c.redeemUsdc(redeemInput({ amount: "0" }), CTX), "INVALID_AMOUNT"],
    ["redeem chain", (c: MintCore) => c.redeemUsdc(redeemInput({ blockchain: "" }), CTX), "INVALID_BLOCKCHAIN"],
    ["redeem key", (c: MintCore) => c.redeemUsdc(redeemInput({ idempotencyKey: "" }), CTX), "INVALID_IDEMPOTENCY_KEY"],
    ["freeze account", (c: MintCore) => c.setFrozen("", true, "r", CTX), "INVALID_ACCOUNT_ID"],
    ["freeze reason", (c: MintCore) => c.setFrozen("a", true, "x".repeat(1025), CTX), "INVALID_REASON"],
    ["redemption id", (c: MintCore) => c.getRedemption("mint_X"), "INVALID_REDEMPTION_ID"],
    ["list page size", (c: MintCore) => c.listRedemptions({ accountId: "", pageSize: -1, pageToken: "" }), "INVALID_PAGE_SIZE"],
    ["list page token", (c: MintCore) => c.listRedemptions({ accountId: "", pageSize: 1, pageToken: "nope" }), "INVALID_PAGE_TOKEN"],
  ])("%s: INVALID_ARGUMENT %s, nothing changed", async (_name, call, reason) => {
    const { core, snapshot } = setup();
    await core.mintUsdc({ accountId: "a", amount: "10", blockchain: "BASE", idempotencyKey: "m" }, CTX);
    const before = await snapshot();
    expect(await call(core)).toMatchObject({ ok: false, error: { code: "INVALID_ARGUMENT", reason } });
    expect(await snapshot()).toEqual(before);
    expect((await core.getAccount("a")).ok && (await core.getAccount("a"))).toMatchObject({ value: { frozen: false } });
  });

  it("ListRedemptions pages oldest first with a token, filtered by account", async () => {
    const { core } = setup();
    await core.mintUsdc({ accountId: "a", amount: "10", blockchain: "BASE", idempotencyKey: "m" }, CTX);
    await core.mintUsdc({ accountId: "b", amount: "10", blockchain: "BASE", idempotencyKey: "m2" }, CTX);
    for (const [acct, key] of [["a", "1"], ["b", "2"], ["a", "3"], ["a", "4"]] as const) await core.redeemUsdc(redeemInput({ accountId: acct, idempotencyKey: key }), CTX);
    const p1 = await core.listRedemptions({ accountId: "a", pageSize: 2, pageToken: "" });
    if (!p1.ok) throw new Error("page 1");
    expect(p1.value.redemptions.map((r) => r.idempotencyKey)).toEqual(["1", "3"]);
    const p2 = await core.listRedemptions({ accountId: "a", pageSize: 2, pageToken: p1.value.nextPageToken });
    expect(p2).toMatchObject({ ok: true, value: { nextPageToken: "" } });
    if (p2.ok) expect(p2.value.redemptions.map((r) => r.idempotencyKey)).toEqual(["4"]);
    const all = await core.listRedemptions({ accountId: "", pageSize: 0, pageToken: "" });
    if (all.ok) expect(all.value.redemptions).toHaveLength(4);
  });
});
