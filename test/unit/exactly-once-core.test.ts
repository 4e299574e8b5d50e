/**
 * The core over the exactly-once port: what the core's use of its stores
 * guarantees, each shown at the core's API.
 */
import { describe, expect, it } from "vitest";
import { MemoryExactlyOnceStore } from "../../src/adapters/memory/memory-exactly-once-store.js";
import { MemoryIdempotencyStore } from "../../src/adapters/memory/memory-idempotency-store.js";
import { MemoryLedgerStore } from "../../src/adapters/memory/memory-ledger-store.js";
import { MemoryRateLimiter } from "../../src/adapters/memory/memory-rate-limiter.js";
import { UnavailableError } from "../../src/domain/errors.js";
import { MintCore, type MintUsdcInput } from "../../src/domain/mint-core.js";
import type { MintRecord, NewMint } from "../../src/domain/model.js";
import type { ExactlyOnceStore } from "../../src/domain/ports.js";
import type { Result } from "../../src/domain/result.js";
import { FakeClock, flushPromises } from "../support/fake-clock.js";

const NO_DEADLINE = { deadlineMs: Infinity };
const MAX_MICROS = 10n ** 24n;

function mintInput(over: Partial<MintUsdcInput> = {}): MintUsdcInput {
  return { accountId: "acct-a", amount: "10", blockchain: "ETHEREUM", idempotencyKey: "k1", ...over };
}

function value<T>(r: Result<T>): T {
  if (!r.ok) throw new Error(`expected success, got ${JSON.stringify(r.error)}`);
  return r.value;
}

/** A memory ledger whose next mints throw, and which can run a hook right after a reversal is applied. */
class HookedLedger extends MemoryLedgerStore {
  failNextMints = 0;
  afterReverse: (() => void) | null = null;

  override async mint(cmd: NewMint): Promise<Result<MintRecord>> {
    if (this.failNextMints > 0) {
      this.failNextMints--;
      throw new UnavailableError("store unreachable before anything was written");
    }
    return super.mint(cmd);
  }

  override async reverseMint(mintId: string, reason: string, wallMs: number): Promise<Result<MintRecord>> {
    const r = await super.reverseMint(mintId, reason, wallMs);
    this.afterReverse?.();
    return r;
  }
}

function setup(opts: { limit?: number; wrap?: (s: ExactlyOnceStore) => ExactlyOnceStore } = {}) {
  const clock = new FakeClock();
  const ledger = new HookedLedger({ clock });
  const idempotency = new MemoryIdempotencyStore({ ttlMs: 86_400_000, maxKeys: 10_000, clock });
  const limiter = new MemoryRateLimiter({ limit: opts.limit ?? 1_000, windowMs: 60_000, clock });
  const inner = new MemoryExactlyOnceStore(ledger, idempotency, clock);
  const store = opts.wrap === undefined ? inner : opts.wrap(inner);
  const core = new MintCore({ store, limiter, clock, maxAmountMicros: MAX_MICROS });
  return { clock, ledger, idempotency, limiter, core };
}

describe("the core over ExactlyOnceStore", () => {
  it("a same-key retry right after a reversal is applied never replays COMPLETED", async () => {
    const { core, ledger } = setup();
    const first = value(await core.mintUsdc(mintInput(), NO_DEADLINE)).mint;
    let retry: ReturnType<MintCore["mintUsdc"]> | null = null;
    // The retry arrives in the gap between the ledger's reversal and the
    // freeing of the key: before, it was answered replayed=true, COMPLETED.
    ledger.afterReverse = () => {
      retry = core.mintUsdc(mintInput(), NO_DEADLINE);
    };
    expect(value(await core.reconcileMint(first.mintId, "reorg", NO_DEADLINE)).status).toBe("REVERSED");
    expect(retry).not.toBeNull();
    const again = value(await retry!);
    expect(again.replayed).toBe(false);
    expect(again.mint.status).toBe("COMPLETED");
    expect(again.mint.mintId).not.toBe(first.mintId);
    expect(value(await core.getBalance("acct-a")).balanceMicros).toBe(10_000_000n);
  });

  it("gives the limiter slot back when the mint is known not applied", async () => {
    const { core, ledger } = setup({ limit: 1 });
    ledger.failNextMints = 1;
    await expect(core.mintUsdc(mintInput(), NO_DEADLINE)).rejects.toBeInstanceOf(UnavailableError);
    // Before: RATE_LIMITED with nothing applied.
    const retry = value(await core.mintUsdc(mintInput(), NO_DEADLINE));
    expect(retry.replayed).toBe(false);
    expect(value(await core.getBalance("acct-a")).balanceMicros).toBe(10_000_000n);
  });

  it("gives the slot back after a returned failure too (deadline passed in the store)", async () => {
    const { core, clock } = setup({ limit: 1 });
    const controller = new AbortController();
    controller.abort();
    expect(await core.mintUsdc(mintInput(), { deadlineMs: clock.nowMs() + 1_000, signal: controller.signal })).toMatchObject({
      ok: false,
      error: { code: "CANCELLED" },
    });
    expect(value(await core.mintUsdc(mintInput(), NO_DEADLINE)).replayed).toBe(false);
  });

  it("keeps the slot when the outcome is unknown (a store failing between apply and answer), and the retry replays", async () => {
    let loseNextAnswer = true;
    const { core } = setup({
      limit: 1,
      wrap: (inner) => ({
        applyOnce: async (call, wait) => {
          const r = await inner.applyOnce(call, wait);
          if (loseNextAnswer) {
            loseNextAnswer = false;
            throw new UnavailableError("commit reply lost");
          }
          return r;
        },
        applyAllOrNone: (...a) => inner.applyAllOrNone(...a),
        reverseMint: (...a) => inner.reverseMint(...a),
        getBalance: (a) => inner.getBalance(a),
        getMint: (id) => inner.getMint(id),
        listMints: (q) => inner.listMints(q),
        audit: inner.audit,
        setReserve: (...a) => inner.setReserve(...a),
        getSupply: () => inner.getSupply(),
        setFrozen: (...a) => inner.setFrozen(...a),
        getAccount: (a) => inner.getAccount(a),
        getRedemption: (id) => inner.getRedemption(id),
        listRedemptions: (q) => inner.listRedemptions(q),
      }),
    });
    await expect(core.mintUsdc(mintInput(), NO_DEADLINE)).rejects.toBeInstanceOf(UnavailableError);
    expect(value(await core.mintUsdc(mintInput(), NO_DEADLINE)).replayed).toBe(true);
    // The slot stayed counted: a new mint of the account is refused.
    expect(await core.mintUsdc(mintInput({ idempotencyKey: "k2" }), NO_DEADLINE)).toMatchObject({ ok: false, error: { code: "RATE_LIMITED" } });
  });

  it("same key, different request, while the first is in flight: IDEMPOTENCY_KEY_REUSED at once", async () => {
    const { core, clock } = setup();
    const hold = await core.locks.acquire(["acct-a"], Infinity);
    const first = core.mintUsdc(mintInput(), NO_DEADLINE);
    const other = await core.mintUsdc(mintInput({ amount: "11" }), { deadlineMs: clock.nowMs() + 20 });
    expect(other).toMatchObject({ ok: false, error: { code: "IDEMPOTENCY_KEY_REUSED", fields: ["amount"] } });
    hold!();
    await flushPromises();
    expect(value(await first).replayed).toBe(false);
  });
});
