/**
 * The core over the memory store answers a call that waits for nothing in
 * one synchronous stretch, as a value (no promise), with one look-up of the
 * key's table; a call that must wait answers with a promise and keeps every
 * rule of the waiting path. The journal's records are sealed off that
 * stretch, and every read sees them sealed.
 */
import { describe, expect, it, vi } from "vitest";
import { MemoryExactlyOnceStore } from "../../src/adapters/memory/memory-exactly-once-store.js";
import { MemoryIdempotencyStore } from "../../src/adapters/memory/memory-idempotency-store.js";
import { MemoryLedgerStore } from "../../src/adapters/memory/memory-ledger-store.js";
import { MemoryRateLimiter } from "../../src/adapters/memory/memory-rate-limiter.js";
import { GENESIS_HASH, verifyChain } from "../../src/domain/audit.js";
import { MintCore, type MintUsdcInput } from "../../src/domain/mint-core.js";
import { isPromise, type Result } from "../../src/domain/result.js";
import { FakeClock, flushPromises } from "../support/fake-clock.js";

const NO_DEADLINE = { deadlineMs: Infinity };

function setup(limit = 1_000) {
  const clock = new FakeClock();
  const ledger = new MemoryLedgerStore({ clock });
  const idempotency = new MemoryIdempotencyStore({ ttlMs: 86_400_000, maxKeys: 10_000, clock });
  const store = new MemoryExactlyOnceStore(ledger, idempotency, clock);
  const limiter = new MemoryRateLimiter({ limit, windowMs: 60_000, clock });
  const core = new MintCore({ store, limiter, clock, maxAmountMicros: 10n ** 15n });
  return { clock, idempotency, store, limiter, core };
}

function mintInput(over: Partial<MintUsdcInput> = {}): MintUsdcInput {
  return { accountId: "acct-a", amount: "10", blockchain: "ETHEREUM", idempotencyKey: "k1", ...over };
}

/** The answer, which must be a value, not a promise. */
function now<T>(r: T | Promise<T>): T {
  if (isPromise(r)) throw new Error("expected an answer without a promise");
  return r;
}

function value<T>(r: Result<T>): T {
  if (!r.ok) throw new Error(`expected success, got ${JSON.stringify(r.error)}`);
  return r.value;
}

describe("the synchronous answer path (memory store)", () => {
  it("MintUsdc, Transfer and GetBalance answer with values when nothing waits", () => {
    const { core } = setup();
    const minted = value(now(core.mintUsdc(mintInput(), NO_DEADLINE)));
    expect(minted.replayed).toBe(false);
    expect(minted.mint).toMatchObject({ accountId: "acct-a", amountMicros: 10_000_000n, status: "COMPLETED" });
    const moved = value(now(core.transfer({ fromAccountId: "acct-a", toAccountId: "acct-b", amount: "4", idempotencyKey: "t1" }, NO_DEADLINE)));
    expect(moved.transfer).toMatchObject({ fromAccountId: "acct-a", toAccountId: "acct-b", amountMicros: 4_000_000n });
    expect(value(now(core.getBalance("acct-a"))).balanceMicros).toBe(6_000_000n);
    expect(value(now(core.getBalance("acct-b"))).balanceMicros).toBe(4_000_000n);
  });

  it("a replay, a reused key, a refusal and a rate-limited mint answer with values too, and change nothing", () => {
    const { core } = setup(1);
    const first = value(now(core.mintUsdc(mintInput(), NO_DEADLINE)));
    const again = value(now(core.mintUsdc(mintInput(), NO_DEADLINE)));
    expect(again).toEqual({ mint: first.mint, replayed: true });
    expect(now(core.mintUsdc(mintInput({ amount: "11" }), NO_DEADLINE))).toMatchObject({ ok: false, error: { code: "IDEMPOTENCY_KEY_REUSED", fields: ["amount"] } });
    expect(now(core.mintUsdc(mintInput({ idempotencyKey: "k2" }), NO_DEADLINE))).toMatchObject({ ok: false, error: { code: "RATE_LIMITED", accountId: "acct-a" } });
    expect(now(core.transfer({ fromAccountId: "acct-a", toAccountId: "acct-b", amount: "11", idempotencyKey: "t1" }, NO_DEADLINE))).toMatchObject({
      ok: false,
      error: { code: "INSUFFICIENT_FUNDS" },
    });
    expect(value(now(core.getBalance("acct-a"))).balanceMicros).toBe(10_000_000n);
    expect(value(now(core.getBalance("acct-b"))).balanceMicros).toBe(0n);
  });

  it("one look-up of the key's table: the call neither waits on the key nor enters it in flight", () => {
    const { core, idempotency } = setup();
    const claim = vi.spyOn(idempotency, "claimNow");
    const begin = vi.spyOn(idempotency, "begin");
    const hold = vi.spyOn(idempotency, "hold");
    value(now(core.mintUsdc(mintInput(), NO_DEADLINE)));
    value(now(core.mintUsdc(mintInput(), NO_DEADLINE)));
    value(now(core.transfer({ fromAccountId: "acct-a", toAccountId: "acct-b", amount: "1", idempotencyKey: "t1" }, NO_DEADLINE)));
    expect(claim).toHaveBeenCalledTimes(3);
    expect(begin).not.toHaveBeenCalled();
    expect(hold).not.toHaveBeenCalled();
  });

  it("a call that must wait for a busy account answers with a promise; a duplicate queues and replays, a reuse is refused at once", async () => {
    const { core } = setup();
    const release = await core.locks.acquire(["acct-a"], Infinity);
    const waiting = core.mintUsdc(mintInput(), NO_DEADLINE);
    expect(isPromise(waiting)).toBe(true);
    const duplicate = core.mintUsdc(mintInput(), NO_DEADLINE);
    const reuse = core.mintUsdc(mintInput({ amount: "12" }), NO_DEADLINE);
    await flushPromises();
    // Refused while the first still waits for the lock: the key is in flight with another request.
    expect(await reuse).toMatchObject({ ok: false, error: { code: "IDEMPOTENCY_KEY_REUSED", fields: ["amount"] } });
    release?.();
    const first = value(await waiting);
    expect(first.replayed).toBe(false);
    expect(value(await duplicate)).toEqual({ mint: first.mint, replayed: true });
    expect(value(now(core.getBalance("acct-a"))).balanceMicros).toBe(10_000_000n);
    // Nothing waits any more: the next call is synchronous again.
    const next = core.mintUsdc(mintInput({ idempotencyKey: "k2" }), NO_DEADLINE);
    expect(isPromise(next)).toBe(false);
    expect(value(await next).replayed).toBe(false);
  });

  it("a duplicate whose deadline passes while the first waits is told IDEMPOTENCY_KEY_IN_USE", async () => {
    const { core, clock } = setup();
    const release = await core.locks.acquire(["acct-a"], Infinity);
    const waiting = core.mintUsdc(mintInput(), NO_DEADLINE);
    const impatient = core.mintUsdc(mintInput(), { deadlineMs: clock.nowMs() + 100 });
    await flushPromises();
    await clock.advance(100);
    expect(await impatient).toMatchObject({ ok: false, error: { code: "IDEMPOTENCY_KEY_IN_USE" } });
    release?.();
    expect(value(await waiting).replayed).toBe(false);
  });
});

describe("the journal's seal off the answer's path", () => {
  it("a read right after a mint sees its record sealed and linked; the chain verifies whole with nothing unsealed", async () => {
    const { core, store } = setup();
    const minted = value(now(core.mintUsdc(mintInput(), NO_DEADLINE)));
    value(now(core.transfer({ fromAccountId: "acct-a", toAccountId: "acct-b", amount: "1", idempotencyKey: "t1" }, NO_DEADLINE)));
    // No turn has passed since the answers: the records are read as the reads seal them.
    const events = value(await core.listAuditEvents({ accountId: "", principal: "", startWallMs: 0, endWallMs: 0, pageSize: 0, pageToken: "" })).events;
    expect(events.map((e) => [e.seq, e.action])).toEqual([
      [1, "MintUsdc"],
      [2, "Transfer"],
    ]);
    expect(events[0]!.result).toEqual({ mint_id: minted.mint.mintId, status: "COMPLETED" });
    expect(events[0]!.prevHash).toBe(GENESIS_HASH);
    expect(events[0]!.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(events[1]!.prevHash).toBe(events[0]!.hash);
    value(now(core.mintUsdc(mintInput({ idempotencyKey: "k3" }), NO_DEADLINE)));
    expect(value(await core.verifyAuditChain(0, 0))).toMatchObject({ whole: true, checked: 3, lastSeq: 3, unsealed: 0 });
    expect(await verifyChain(store.audit, 0, 0)).toMatchObject({ whole: true, checked: 3 });
  });

  it("records are sealed after the stretch that appended them, by a background pass", async () => {
    const { core, store } = setup();
    value(now(core.mintUsdc(mintInput(), NO_DEADLINE)));
    value(now(core.mintUsdc(mintInput({ idempotencyKey: "k2" }), NO_DEADLINE)));
    // Appended, not yet sealed: sealing now finds both.
    expect(store.audit.sealAll()).toBe(2);
    value(now(core.mintUsdc(mintInput({ idempotencyKey: "k3" }), NO_DEADLINE)));
    await new Promise<void>((resolve) => setImmediate(resolve));
    // The pass ran after the stretch: nothing is left for a read to seal.
    expect(store.audit.sealAll()).toBe(0);
    expect(await verifyChain(store.audit, 0, 0)).toMatchObject({ whole: true, checked: 3, unsealed: 0 });
  });
});
