import { describe, expect, it, vi } from "vitest";
import { MemoryExactlyOnceStore } from "../../src/adapters/memory/memory-exactly-once-store.js";
import { MemoryIdempotencyStore } from "../../src/adapters/memory/memory-idempotency-store.js";
import { MemoryLedgerStore } from "../../src/adapters/memory/memory-ledger-store.js";
import { MemoryRateLimiter } from "../../src/adapters/memory/memory-rate-limiter.js";
import type { Failure } from "../../src/domain/errors.js";
import type { Principal } from "../../src/domain/authorization.js";
import { MintCore, type MintUsdcInput, type TransferInput } from "../../src/domain/mint-core.js";
import { encodePageToken } from "../../src/domain/page-token.js";
import type { Result } from "../../src/domain/result.js";
import { FakeClock, flushPromises } from "../support/fake-clock.js";

const NO_DEADLINE = { deadlineMs: Infinity };
const MAX_MICROS = 1_000_000_000_000n * 1_000_000n;

function setup(opts: { limit?: number; windowMs?: number; ttlMs?: number; maxKeys?: number } = {}) {
  const clock = new FakeClock();
  const ledger = new MemoryLedgerStore({ clock });
  const idempotency = new MemoryIdempotencyStore({ ttlMs: opts.ttlMs ?? 86_400_000, maxKeys: opts.maxKeys ?? 10_000, clock });
  const limiter = new MemoryRateLimiter({ limit: opts.limit ?? 1_000_000, windowMs: opts.windowMs ?? 1_000, clock });
  const core = new MintCore({ store: new MemoryExactlyOnceStore(ledger, idempotency, clock), limiter, clock, maxAmountMicros: MAX_MICROS });
  const balance = async (id: string) => {
    const r = await core.getBalance(id);
    if (!r.ok) throw new Error(JSON.stringify(r.error));
    return r.value.balanceMicros;
  };
  /** Everything a refused call must leave untouched. */
  const snapshot = async () => ({
    balances: ledger.allBalances(),
    entries: ledger.ledgerEntries().length,
    keys: await idempotency.size(),
    limiterAccounts: limiter.accountCount(),
  });
  return { clock, ledger, idempotency, limiter, core, balance, snapshot };
}

function mintInput(over: Partial<MintUsdcInput> = {}): MintUsdcInput {
  return { accountId: "acct-a", amount: "10", blockchain: "ETHEREUM", idempotencyKey: "k1", ...over };
}

function transferInput(over: Partial<TransferInput> = {}): TransferInput {
  return { fromAccountId: "acct-a", toAccountId: "acct-b", amount: "1", idempotencyKey: "t1", ...over };
}

function value<T>(r: Result<T>): T {
  if (!r.ok) throw new Error(`expected success, got ${JSON.stringify(r.error)}`);
  return r.value;
}

function failure<T>(r: Result<T>): Failure {
  if (r.ok) throw new Error(`expected a failure, got ${JSON.stringify(r.value, (_k, v: unknown) => (typeof v === "bigint" ? `${v}n` : v))}`);
  return r.error;
}

/** Tracks a pending promise without awaiting it. */
function track<T>(p: T | Promise<T>) {
  const s: { settled: boolean; value: T | undefined } = { settled: false, value: undefined };
  void Promise.resolve(p).then((v) => {
    s.settled = true;
    s.value = v;
  });
  return s;
}

describe("MintUsdc", () => {
  it("credits the account and returns the record", async () => {
    const { core, balance, clock } = setup();
    const r = value(await core.mintUsdc(mintInput({ amount: "100.50" }), NO_DEADLINE));
    expect(r.replayed).toBe(false);
    expect(r.mint).toMatchObject({
      accountId: "acct-a",
      amountMicros: 100_500_000n,
      blockchain: "ETHEREUM",
      status: "COMPLETED",
      idempotencyKey: "k1",
      createWallMs: clock.wallMs(),
      reverseWallMs: null,
      reverseReason: "",
    });
    expect(r.mint.mintId).toMatch(/^mint_[0-9A-Z]{26}$/);
    expect(await balance("acct-a")).toBe(100_500_000n);
    expect(value(await core.getMint(r.mint.mintId))).toEqual(r.mint);
  });

  it("replays the same request under the same key: same mint, replayed, no new effect", async () => {
    const { core, balance, ledger } = setup();
    const first = value(await core.mintUsdc(mintInput({ amount: "7" }), NO_DEADLINE));
    const again = value(await core.mintUsdc(mintInput({ amount: "7.000000" }), NO_DEADLINE)); // same amount, other spelling
    expect(again).toEqual({ mint: first.mint, replayed: true });
    expect(await balance("acct-a")).toBe(7_000_000n);
    expect(ledger.ledgerEntries()).toHaveLength(1);
  });

  it("refuses the key with another request, naming the fields that differ", async () => {
    const { core, snapshot } = setup();
    value(await core.mintUsdc(mintInput(), NO_DEADLINE));
    const before = await snapshot();
    expect(failure(await core.mintUsdc(mintInput({ amount: "11" }), NO_DEADLINE))).toEqual({
      code: "IDEMPOTENCY_KEY_REUSED",
      key: "k1",
      fields: ["amount"],
    });
    expect(failure(await core.mintUsdc(mintInput({ accountId: "acct-z", blockchain: "SOLANA" }), NO_DEADLINE))).toMatchObject({
      code: "IDEMPOTENCY_KEY_REUSED",
      fields: ["account_id", "blockchain"],
    });
    expect(await snapshot()).toEqual(before);
  });

  it("scopes keys per RPC: a mint key and a transfer key never collide", async () => {
    const { core, balance } = setup();
    value(await core.mintUsdc(mintInput({ idempotencyKey: "same" }), NO_DEADLINE));
    const t = value(await core.transfer(transferInput({ idempotencyKey: "same" }), NO_DEADLINE));
    expect(t.replayed).toBe(false);
    expect(await balance("acct-b")).toBe(1_000_000n);
  });

  it.each([
    [{ accountId: "" }, "INVALID_ACCOUNT_ID", "account_id"],
    [{ accountId: "-bad" }, "INVALID_ACCOUNT_ID", "account_id"],
    [{ amount: "0" }, "INVALID_AMOUNT", "amount"],
    [{ amount: "-1" }, "INVALID_AMOUNT", "amount"],
    [{ amount: "1.0000001" }, "INVALID_AMOUNT", "amount"],
    [{ amount: "1000000000000.000001" }, "AMOUNT_TOO_LARGE", "amount"],
    [{ blockchain: "" }, "INVALID_BLOCKCHAIN", "blockchain"],
    [{ blockchain: "BITCOIN" }, "INVALID_BLOCKCHAIN", "blockchain"],
    [{ idempotencyKey: "" }, "INVALID_IDEMPOTENCY_KEY", "idempotency_key"],
    [{ idempotencyKey: "x".repeat(256) }, "INVALID_IDEMPOTENCY_KEY", "idempotency_key"],
  ] as const)("refuses %j as %s on %s and touches nothing", async (over, reason, field) => {
    const { core, snapshot } = setup();
    const before = await snapshot();
    expect(failure(await core.mintUsdc(mintInput(over), NO_DEADLINE))).toMatchObject({ code: "INVALID_ARGUMENT", reason, field });
    expect(await snapshot()).toEqual(before);
  });

  it("accepts exactly the maximum amount", async () => {
    const { core, balance } = setup();
    value(await core.mintUsdc(mintInput({ amount: "1000000000000" }), NO_DEADLINE));
    expect(await balance("acct-a")).toBe(MAX_MICROS);
  });

  it("keeps balances exact past 2^53 micro-USDC", async () => {
    const { core, balance } = setup();
    for (let i = 0; i < 10; i++) value(await core.mintUsdc(mintInput({ amount: "999999999999.999999", idempotencyKey: `big-${i}` }), NO_DEADLINE));
    expect(await balance("acct-a")).toBe(9_999_999_999_999_999_990n);
  });
});

describe("rate limit", () => {
  it("refuses the (N+1)th mint in a window with the exact retry delay, per account", async () => {
    const { core, clock } = setup({ limit: 3, windowMs: 1_000 });
    for (let i = 0; i < 3; i++) {
      value(await core.mintUsdc(mintInput({ idempotencyKey: `k${i}` }), NO_DEADLINE));
      await clock.advance(100); // mints at t = 0, 100, 200
    }
    expect(failure(await core.mintUsdc(mintInput({ idempotencyKey: "k3" }), NO_DEADLINE))).toEqual({
      code: "RATE_LIMITED",
      accountId: "acct-a",
      retryAfterMs: 700, // now t = 300; the oldest (t = 0) leaves at t = 1000
      limit: 3,
      windowMs: 1_000,
    });
    // Another account is not limited by acct-a's mints.
    value(await core.mintUsdc(mintInput({ accountId: "acct-b", idempotencyKey: "kb" }), NO_DEADLINE));
  });

  it("checks replays before the limiter: a replay is never refused and never counts", async () => {
    const { core, balance } = setup({ limit: 2, windowMs: 1_000 });
    const first = value(await core.mintUsdc(mintInput({ idempotencyKey: "k0" }), NO_DEADLINE));
    // Replays under the limit do not use up the window's second slot...
    for (let i = 0; i < 3; i++) expect(value(await core.mintUsdc(mintInput({ idempotencyKey: "k0" }), NO_DEADLINE)).replayed).toBe(true);
    value(await core.mintUsdc(mintInput({ idempotencyKey: "k1" }), NO_DEADLINE));
    // ...and at the limit they are still answered, not refused.
    for (let i = 0; i < 5; i++) {
      expect(value(await core.mintUsdc(mintInput({ idempotencyKey: "k0" }), NO_DEADLINE))).toEqual({ mint: first.mint, replayed: true });
    }
    expect(failure(await core.mintUsdc(mintInput({ idempotencyKey: "k2" }), NO_DEADLINE)).code).toBe("RATE_LIMITED");
    expect(await balance("acct-a")).toBe(20_000_000n);
  });

  it("does not count refused calls, and a refusal leaves the key free", async () => {
    const { core, clock, snapshot, balance } = setup({ limit: 2, windowMs: 1_000 });
    value(await core.mintUsdc(mintInput({ idempotencyKey: "k0" }), NO_DEADLINE));
    value(await core.mintUsdc(mintInput({ idempotencyKey: "k1" }), NO_DEADLINE));
    await clock.advance(500);
    const before = await snapshot();
    for (let i = 0; i < 5; i++) {
      expect(failure(await core.mintUsdc(mintInput({ idempotencyKey: "k2" }), NO_DEADLINE))).toMatchObject({ code: "RATE_LIMITED", retryAfterMs: 500 });
    }
    expect(await snapshot()).toEqual(before);
    await clock.advance(500); // t = 1000: both counted mints have left the window
    // Had the refusals at t = 500 counted, these two would be refused.
    expect(value(await core.mintUsdc(mintInput({ idempotencyKey: "k2" }), NO_DEADLINE)).replayed).toBe(false); // the key was free
    expect(value(await core.mintUsdc(mintInput({ idempotencyKey: "k3" }), NO_DEADLINE)).replayed).toBe(false);
    expect(failure(await core.mintUsdc(mintInput({ idempotencyKey: "k4" }), NO_DEADLINE))).toMatchObject({ code: "RATE_LIMITED", retryAfterMs: 1_000 });
    expect(await balance("acct-a")).toBe(40_000_000n);
  });

  it("lets a refused key be used for a different request later (failures are not stored)", async () => {
    const { core, clock } = setup({ limit: 1, windowMs: 1_000 });
    value(await core.mintUsdc(mintInput({ idempotencyKey: "k0" }), NO_DEADLINE));
    expect(failure(await core.mintUsdc(mintInput({ idempotencyKey: "k1" }), NO_DEADLINE)).code).toBe("RATE_LIMITED");
    await clock.advance(1_000);
    expect(value(await core.mintUsdc(mintInput({ idempotencyKey: "k1", amount: "3" }), NO_DEADLINE)).mint.amountMicros).toBe(3_000_000n);
  });
});

describe("Transfer", () => {
  it("moves money atomically and replays", async () => {
    const { core, balance, ledger } = setup();
    value(await core.mintUsdc(mintInput({ amount: "10" }), NO_DEADLINE));
    const t = value(await core.transfer(transferInput({ amount: "2.5" }), NO_DEADLINE));
    expect(t.replayed).toBe(false);
    expect(t.transfer).toMatchObject({ fromAccountId: "acct-a", toAccountId: "acct-b", amountMicros: 2_500_000n, idempotencyKey: "t1" });
    expect(t.transfer.transferId).toMatch(/^xfr_[0-9A-Z]{26}$/);
    expect([await balance("acct-a"), await balance("acct-b")]).toEqual([7_500_000n, 2_500_000n]);
    expect(value(await core.transfer(transferInput({ amount: "2.500000" }), NO_DEADLINE))).toEqual({ transfer: t.transfer, replayed: true });
    expect([await balance("acct-a"), await balance("acct-b")]).toEqual([7_500_000n, 2_500_000n]);
    expect(ledger.ledgerEntries().map((e) => e.kind)).toEqual(["mint", "transfer_out", "transfer_in"]);
    expect(failure(await core.transfer(transferInput({ toAccountId: "acct-c" }), NO_DEADLINE))).toMatchObject({
      code: "IDEMPOTENCY_KEY_REUSED",
      fields: ["amount", "to_account_id"],
    });
  });

  it("refuses INSUFFICIENT_FUNDS, changes nothing, and leaves the key free", async () => {
    const { core, snapshot, balance } = setup();
    value(await core.mintUsdc(mintInput({ amount: "1" }), NO_DEADLINE));
    const before = await snapshot();
    expect(failure(await core.transfer(transferInput({ amount: "1.000001" }), NO_DEADLINE))).toEqual({ code: "INSUFFICIENT_FUNDS", accountId: "acct-a" });
    expect(await snapshot()).toEqual(before);
    // Unknown accounts have nothing to send.
    expect(failure(await core.transfer(transferInput({ fromAccountId: "nobody", idempotencyKey: "t2" }), NO_DEADLINE)).code).toBe("INSUFFICIENT_FUNDS");
    expect(await snapshot()).toEqual(before);
    // The same key, same request, works once the money is there.
    value(await core.mintUsdc(mintInput({ amount: "1", idempotencyKey: "k2" }), NO_DEADLINE));
    expect(value(await core.transfer(transferInput({ amount: "1.000001" }), NO_DEADLINE)).replayed).toBe(false);
    expect(await balance("acct-b")).toBe(1_000_001n);
  });

  it("can move an account's whole balance to exactly zero", async () => {
    const { core, balance } = setup();
    value(await core.mintUsdc(mintInput({ amount: "3" }), NO_DEADLINE));
    value(await core.transfer(transferInput({ amount: "3" }), NO_DEADLINE));
    expect(await balance("acct-a")).toBe(0n);
  });

  it("refuses from == to before any lock or key (no lock entry created)", async () => {
    const { core, idempotency } = setup();
    value(await core.mintUsdc(mintInput(), NO_DEADLINE));
    const acquire = vi.spyOn(core.locks, "acquire");
    const take = vi.spyOn(core.locks, "take");
    // Even with the account's lock held elsewhere, the refusal is immediate.
    const hold = await core.locks.acquire(["acct-a"], Infinity);
    acquire.mockClear();
    take.mockClear();
    const keysBefore = await idempotency.size();
    const r = track(core.transfer(transferInput({ toAccountId: "acct-a" }), NO_DEADLINE));
    await flushPromises();
    expect(r.settled).toBe(true);
    expect(failure(r.value!)).toMatchObject({ code: "INVALID_ARGUMENT", reason: "SAME_ACCOUNT", field: "to_account_id" });
    expect(acquire).not.toHaveBeenCalled();
    expect(take).not.toHaveBeenCalled();
    expect(core.locks.size()).toBe(1); // only the lock this test holds
    expect(await idempotency.size()).toBe(keysBefore);
    hold!();
    expect(core.locks.size()).toBe(0);
  });

  it.each([
    [{ fromAccountId: "" }, "INVALID_ACCOUNT_ID", "from_account_id"],
    [{ toAccountId: "b c" }, "INVALID_ACCOUNT_ID", "to_account_id"],
    [{ amount: "0" }, "INVALID_AMOUNT", "amount"],
    [{ amount: "1e3" }, "INVALID_AMOUNT", "amount"],
    [{ amount: "1000000000001" }, "AMOUNT_TOO_LARGE", "amount"],
    [{ idempotencyKey: "" }, "INVALID_IDEMPOTENCY_KEY", "idempotency_key"],
  ] as const)("refuses %j as %s on %s and touches nothing", async (over, reason, field) => {
    const { core, snapshot } = setup();
    value(await core.mintUsdc(mintInput({ amount: "10000" }), NO_DEADLINE));
    const before = await snapshot();
    expect(failure(await core.transfer(transferInput(over), NO_DEADLINE))).toMatchObject({ code: "INVALID_ARGUMENT", reason, field });
    expect(await snapshot()).toEqual(before);
  });
});

describe("ReconcileMint", () => {
  it("reverses with a compensating entry, frees the key, and refuses a second reversal", async () => {
    const { core, balance, ledger, clock } = setup();
    const m = value(await core.mintUsdc(mintInput({ amount: "10" }), NO_DEADLINE)).mint;
    await clock.advance(5_000);
    const r = value(await core.reconcileMint(m.mintId, "chain reorg", NO_DEADLINE));
    expect(r).toMatchObject({ mintId: m.mintId, status: "REVERSED", reverseReason: "chain reorg", reverseWallMs: clock.wallMs(), amountMicros: 10_000_000n });
    expect(await balance("acct-a")).toBe(0n);
    expect(value(await core.getMint(m.mintId)).status).toBe("REVERSED");
    expect(ledger.ledgerEntries().map((e) => [e.kind, e.amountMicros])).toEqual([
      ["mint", 10_000_000n],
      ["reversal", -10_000_000n],
    ]);
    expect(failure(await core.reconcileMint(m.mintId, "again", NO_DEADLINE))).toEqual({ code: "MINT_ALREADY_REVERSED", mintId: m.mintId });
    expect(await balance("acct-a")).toBe(0n);

    // The key is free: the same request mints again, with a new id.
    const again = value(await core.mintUsdc(mintInput({ amount: "10" }), NO_DEADLINE));
    expect(again.replayed).toBe(false);
    expect(again.mint.mintId).not.toBe(m.mintId);
    expect(await balance("acct-a")).toBe(10_000_000n);
    // The reversed mint is kept (nothing deleted).
    expect(value(await core.listMints({ accountId: "acct-a", pageSize: 0, pageToken: "" })).mints.map((x) => x.status)).toEqual(["REVERSED", "COMPLETED"]);
  });

  it("refuses INSUFFICIENT_FUNDS when the money has moved on, and changes nothing (the key still replays)", async () => {
    const { core, snapshot } = setup();
    const m = value(await core.mintUsdc(mintInput({ amount: "10" }), NO_DEADLINE)).mint;
    value(await core.transfer(transferInput({ amount: "0.000001" }), NO_DEADLINE));
    const before = await snapshot();
    expect(failure(await core.reconcileMint(m.mintId, "", NO_DEADLINE))).toEqual({ code: "INSUFFICIENT_FUNDS", accountId: "acct-a" });
    expect(await snapshot()).toEqual(before);
    expect(value(await core.getMint(m.mintId)).status).toBe("COMPLETED");
    expect(value(await core.mintUsdc(mintInput({ amount: "10" }), NO_DEADLINE))).toEqual({ mint: m, replayed: true });
  });

  it("frees the key only for its own mint (not a newer mint that reused an expired key)", async () => {
    const { core, clock } = setup({ ttlMs: 1_000 });
    const old = value(await core.mintUsdc(mintInput(), NO_DEADLINE)).mint;
    await clock.advance(1_000); // the key expires
    const newer = value(await core.mintUsdc(mintInput(), NO_DEADLINE));
    expect(newer.replayed).toBe(false);
    expect(newer.mint.mintId).not.toBe(old.mintId);
    value(await core.reconcileMint(old.mintId, "old one", NO_DEADLINE));
    // The key still replays the newer mint.
    expect(value(await core.mintUsdc(mintInput(), NO_DEADLINE))).toEqual({ mint: newer.mint, replayed: true });
  });

  it("refuses unknown and malformed mint ids, and bad reasons", async () => {
    const { core, snapshot } = setup();
    const m = value(await core.mintUsdc(mintInput(), NO_DEADLINE)).mint;
    const before = await snapshot();
    expect(failure(await core.reconcileMint("mint_00000000000000000000000000", "", NO_DEADLINE))).toMatchObject({ code: "MINT_NOT_FOUND" });
    expect(failure(await core.reconcileMint("", "", NO_DEADLINE))).toMatchObject({ code: "INVALID_ARGUMENT", field: "mint_id" });
    expect(failure(await core.reconcileMint("mint-1", "", NO_DEADLINE))).toMatchObject({ code: "INVALID_ARGUMENT", field: "mint_id" });
    expect(failure(await core.reconcileMint(m.mintId, "x".repeat(1025), NO_DEADLINE))).toMatchObject({ code: "INVALID_ARGUMENT", reason: "INVALID_REASON", field: "reason" });
    expect(failure(await core.reconcileMint(m.mintId, "a\u0000b", NO_DEADLINE))).toMatchObject({ code: "INVALID_ARGUMENT", field: "reason" });
    expect(await snapshot()).toEqual(before);
    expect(failure(await core.getMint("mint_00000000000000000000000000"))).toMatchObject({ code: "MINT_NOT_FOUND" });
  });

  it("reverses once when two reconciles race", async () => {
    const { core, balance, ledger } = setup();
    const m = value(await core.mintUsdc(mintInput(), NO_DEADLINE)).mint;
    const results = await Promise.all([core.reconcileMint(m.mintId, "a", NO_DEADLINE), core.reconcileMint(m.mintId, "b", NO_DEADLINE)]);
    expect(results.filter((r) => r.ok)).toHaveLength(1);
    expect(results.filter((r) => !r.ok).map((r) => failure(r).code)).toEqual(["MINT_ALREADY_REVERSED"]);
    expect(await balance("acct-a")).toBe(0n);
    expect(ledger.ledgerEntries().filter((e) => e.kind === "reversal")).toHaveLength(1);
  });
});

describe("deadlines", () => {
  it("a mint whose deadline passes while waiting for the lock is DEADLINE_EXCEEDED, applies nothing, and frees the key", async () => {
    const { core, clock, snapshot, balance, idempotency } = setup({ limit: 1 });
    const hold = await core.locks.acquire(["acct-a"], Infinity);
    const before = await snapshot();
    const pending = track(core.mintUsdc(mintInput(), { deadlineMs: clock.nowMs() + 100 }));
    await clock.advance(99);
    expect(pending.settled).toBe(false);
    await clock.advance(1);
    expect(pending.settled).toBe(true);
    expect(failure(pending.value!)).toMatchObject({ code: "DEADLINE_EXCEEDED" });
    expect(await snapshot()).toEqual(before);
    expect(await idempotency.size()).toBe(0);
    // When the lock frees later, nothing is applied on the abandoned call's behalf.
    hold!();
    await flushPromises();
    expect(await snapshot()).toEqual(before);
    expect(core.locks.size()).toBe(0);
    // The key is free and the limiter did not count the abandoned call (limit 1).
    expect(value(await core.mintUsdc(mintInput(), NO_DEADLINE)).replayed).toBe(false);
    expect(await balance("acct-a")).toBe(10_000_000n);
    expect(clock.pendingTimers()).toBe(0);
  });

  it("a transfer whose deadline passes while waiting applies nothing and frees the key", async () => {
    const { core, clock, snapshot, balance } = setup();
    value(await core.mintUsdc(mintInput(), NO_DEADLINE));
    const hold = await core.locks.acquire(["acct-b"], Infinity);
    const before = await snapshot();
    const pending = track(core.transfer(transferInput(), { deadlineMs: clock.nowMs() + 50 }));
    await clock.advance(50);
    expect(failure(pending.value!)).toMatchObject({ code: "DEADLINE_EXCEEDED" });
    hold!();
    await flushPromises();
    expect(await snapshot()).toEqual(before);
    expect(core.locks.size()).toBe(0);
    expect(value(await core.transfer(transferInput(), NO_DEADLINE)).replayed).toBe(false);
    expect(await balance("acct-b")).toBe(1_000_000n);
  });

  it("a reconcile does not queue behind account locks: the store reverses and frees the key in one step", async () => {
    const { core, clock } = setup();
    const minted = value(await core.mintUsdc(mintInput(), NO_DEADLINE)).mint;
    const hold = await core.locks.acquire([minted.accountId], Infinity);
    const r = await core.reconcileMint(minted.mintId, "late", { deadlineMs: clock.nowMs() + 30 });
    expect(value(r).status).toBe("REVERSED");
    hold!();
    expect(core.locks.size()).toBe(0);
  });

  it("a duplicate of a call in flight waits and replays; past its own deadline it is IDEMPOTENCY_KEY_IN_USE", async () => {
    const { core, clock, balance, ledger } = setup();
    const hold = await core.locks.acquire(["acct-a"], Infinity);
    const first = track(core.mintUsdc(mintInput(), NO_DEADLINE));
    const impatient = track(core.mintUsdc(mintInput(), { deadlineMs: clock.nowMs() + 20 }));
    const patient = track(core.mintUsdc(mintInput(), NO_DEADLINE));
    await clock.advance(20);
    expect(failure(impatient.value!)).toMatchObject({ code: "IDEMPOTENCY_KEY_IN_USE", key: "k1" });
    expect(first.settled).toBe(false);
    expect(patient.settled).toBe(false);
    hold!();
    await flushPromises();
    const a = value(first.value!);
    const b = value(patient.value!);
    expect(a.replayed).toBe(false);
    expect(b).toEqual({ mint: a.mint, replayed: true });
    expect(await balance("acct-a")).toBe(10_000_000n);
    expect(ledger.ledgerEntries()).toHaveLength(1);
  });

  it("calls queued on a busy account hold no idempotency claim while they wait (a hot account cannot tie up store resources)", async () => {
    const { core, idempotency, balance } = setup({ limit: 100 });
    const hold = await core.locks.acquire(["acct-a"], Infinity);
    const queued = [1, 2, 3, 4, 5].map((i) => track(core.mintUsdc(mintInput({ idempotencyKey: `q-${i}` }), NO_DEADLINE)));
    await flushPromises();
    expect(queued.every((q) => !q.settled)).toBe(true);
    expect(await idempotency.size()).toBe(0);
    hold!();
    await flushPromises();
    expect(queued.every((q) => q.settled && q.value!.ok)).toBe(true);
    expect(await idempotency.size()).toBe(5);
    expect(await balance("acct-a")).toBe(50_000_000n);
  });

  it("a duplicate waiting on a call that fails then runs itself (the failure was not stored)", async () => {
    const { core, clock, balance, ledger } = setup();
    const hold = await core.locks.acquire(["acct-a"], Infinity);
    const first = track(core.mintUsdc(mintInput(), { deadlineMs: clock.nowMs() + 10 })); // waits on the lock
    const dup = track(core.mintUsdc(mintInput(), NO_DEADLINE)); // queues behind it, same key
    await clock.advance(10);
    // Another call with the same key is still in flight: the caller is told to retry with the key.
    expect(failure(first.value!)).toMatchObject({ code: "IDEMPOTENCY_KEY_IN_USE", retryAfterMs: 50 });
    expect(dup.settled).toBe(false); // it still waits on the lock; the key was never claimed by `first`
    hold!();
    await flushPromises();
    expect(value(dup.value!).replayed).toBe(false);
    expect(await balance("acct-a")).toBe(10_000_000n);
    expect(ledger.ledgerEntries()).toHaveLength(1);
  });
});

describe("GetBalance and ListMints", () => {
  it("unknown accounts have balance 0; malformed ids are INVALID_ARGUMENT", async () => {
    const { core } = setup();
    expect(value(await core.getBalance("nobody"))).toEqual({ accountId: "nobody", balanceMicros: 0n, pendingMicros: 0n });
    expect(failure(await core.getBalance("no body"))).toMatchObject({ code: "INVALID_ARGUMENT", field: "account_id" });
  });

  it("pages oldest first, per account or all, with a token only when more remain", async () => {
    const { core } = setup();
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      ids.push(value(await core.mintUsdc(mintInput({ accountId: i % 2 === 0 ? "acct-a" : "acct-b", idempotencyKey: `k${i}` }), NO_DEADLINE)).mint.mintId);
    }
    const pages: string[][] = [];
    let token = "";
    do {
      const page = value(await core.listMints({ accountId: "", pageSize: 3, pageToken: token }));
      pages.push(page.mints.map((m) => m.mintId));
      token = page.nextPageToken;
    } while (token !== "");
    expect(pages).toEqual([ids.slice(0, 3), ids.slice(3, 6), ids.slice(6)]);

    const a1 = value(await core.listMints({ accountId: "acct-a", pageSize: 2, pageToken: "" }));
    expect(a1.mints.map((m) => m.mintId)).toEqual([ids[0], ids[2]]);
    const a2 = value(await core.listMints({ accountId: "acct-a", pageSize: 2, pageToken: a1.nextPageToken }));
    expect(a2.mints.map((m) => m.mintId)).toEqual([ids[4], ids[6]]);
    expect(a2.nextPageToken).toBe("");
    // Exactly full last page: no token.
    expect(value(await core.listMints({ accountId: "acct-b", pageSize: 3, pageToken: "" })).nextPageToken).toBe("");
  });

  it("page_size 0 means 50, above 1000 means 1000, negative is INVALID_ARGUMENT", async () => {
    const { core } = setup();
    for (let i = 0; i < 1001; i++) value(await core.mintUsdc(mintInput({ idempotencyKey: `k${i}`, amount: "0.000001" }), NO_DEADLINE));
    const zero = value(await core.listMints({ accountId: "", pageSize: 0, pageToken: "" }));
    expect(zero.mints).toHaveLength(50);
    expect(zero.nextPageToken).not.toBe("");
    expect(value(await core.listMints({ accountId: "", pageSize: 5000, pageToken: "" })).mints).toHaveLength(1000);
    expect(value(await core.listMints({ accountId: "", pageSize: 1000, pageToken: "" })).mints).toHaveLength(1000);
    expect(failure(await core.listMints({ accountId: "", pageSize: -1, pageToken: "" }))).toMatchObject({
      code: "INVALID_ARGUMENT",
      reason: "INVALID_PAGE_SIZE",
      field: "page_size",
    });
  });

  it("refuses a page token the server did not issue, or issued for another filter", async () => {
    const { core } = setup();
    for (let i = 0; i < 3; i++) value(await core.mintUsdc(mintInput({ idempotencyKey: `k${i}` }), NO_DEADLINE));
    const forA = value(await core.listMints({ accountId: "acct-a", pageSize: 1, pageToken: "" })).nextPageToken;
    expect(forA).not.toBe("");
    for (const [accountId, pageToken] of [
      ["acct-b", forA],
      ["", forA],
      ["acct-a", "garbage"],
      ["acct-a", forA + "A"],
      ["acct-a", encodePageToken(1, "acct-b")],
    ] as const) {
      expect(failure(await core.listMints({ accountId, pageSize: 1, pageToken }))).toMatchObject({
        code: "INVALID_ARGUMENT",
        reason: "INVALID_PAGE_TOKEN",
        field: "page_token",
      });
    }
    expect(failure(await core.listMints({ accountId: "-x", pageSize: 1, pageToken: "" }))).toMatchObject({ field: "account_id" });
  });
});

describe("the caller's principal in the core", () => {
  const alice: Principal = { name: "alice-app", roles: new Set(["minter", "reader", "reconciler"]), scopes: ["alice:*"] };
  const bob: Principal = { name: "bob-app", roles: new Set(["minter"]), scopes: ["*"] };

  it("scopes idempotency keys per caller: one key from two principals is two mints, from one is a replay", async () => {
    const { core, balance } = setup();
    const a = await core.mintUsdc(mintInput({ accountId: "alice:1" }), { ...NO_DEADLINE, principal: alice });
    const b = await core.mintUsdc(mintInput({ accountId: "alice:1" }), { ...NO_DEADLINE, principal: bob });
    const a2 = await core.mintUsdc(mintInput({ accountId: "alice:1" }), { ...NO_DEADLINE, principal: alice });
    if (!a.ok || !b.ok || !a2.ok) throw new Error("expected three successes");
    expect([a.value.replayed, b.value.replayed, a2.value.replayed]).toEqual([false, false, true]);
    expect(a2.value.mint.mintId).toBe(a.value.mint.mintId);
    expect(b.value.mint.mintId).not.toBe(a.value.mint.mintId);
    expect(await balance("alice:1")).toBe(20_000_000n);
    // A caller without a principal (and `local`) keeps the bare key.
    const bare = await core.mintUsdc(mintInput({ accountId: "alice:1" }), NO_DEADLINE);
    if (!bare.ok) throw new Error("expected success");
    expect([bare.value.replayed, bare.value.mint.idempotencyKey]).toEqual([false, "k1"]);
    expect(a.value.mint.idempotencyKey).toBe("alice-app\tk1");
  });

  it("GetMint and ReconcileMint outside the caller's scopes: PERMISSION_DENIED, nothing changed", async () => {
    const { core, snapshot } = setup();
    const m = await core.mintUsdc(mintInput({ accountId: "carol:1" }), NO_DEADLINE);
    if (!m.ok) throw new Error("expected success");
    const before = await snapshot();
    expect(await core.getMint(m.value.mint.mintId, { principal: alice })).toEqual({
      ok: false,
      error: { code: "PERMISSION_DENIED", rpc: "GetMint", principal: "alice-app", idNamed: "mint" },
    });
    expect(await core.reconcileMint(m.value.mint.mintId, "x", { ...NO_DEADLINE, principal: alice })).toEqual({
      ok: false,
      error: { code: "PERMISSION_DENIED", rpc: "ReconcileMint", principal: "alice-app", idNamed: "mint" },
    });
    expect(await snapshot()).toEqual(before);
    expect((await core.getMint(m.value.mint.mintId, { principal: bob })).ok).toBe(true);
  });

  it("ReconcileMint frees the caller-scoped key of the mint it reverses", async () => {
    const { core } = setup();
    const m = await core.mintUsdc(mintInput({ accountId: "alice:2" }), { ...NO_DEADLINE, principal: alice });
    if (!m.ok) throw new Error("expected success");
    expect((await core.reconcileMint(m.value.mint.mintId, "chain failed", { ...NO_DEADLINE, principal: alice })).ok).toBe(true);
    const again = await core.mintUsdc(mintInput({ accountId: "alice:2" }), { ...NO_DEADLINE, principal: alice });
    if (!again.ok) throw new Error("expected success");
    expect(again.value.replayed).toBe(false);
  });
});
