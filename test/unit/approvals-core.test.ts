/** Mint approval in the core: which mints wait, the rate limit, the expiry sweep, and input checks of the approval and allowance calls. */
import { describe, expect, it } from "vitest";
import { MemoryExactlyOnceStore } from "../../src/adapters/memory/memory-exactly-once-store.js";
import { MemoryIdempotencyStore } from "../../src/adapters/memory/memory-idempotency-store.js";
import { MemoryLedgerStore } from "../../src/adapters/memory/memory-ledger-store.js";
import { MemoryRateLimiter } from "../../src/adapters/memory/memory-rate-limiter.js";
import { LOCAL_PRINCIPAL, type Principal } from "../../src/domain/authorization.js";
import { MintCore } from "../../src/domain/mint-core.js";
import { FakeClock } from "../support/fake-clock.js";

const TTL_MS = 60_000;
const as = (name: string): Principal => ({ ...LOCAL_PRINCIPAL, name });

function setup(opts: { limit?: number; allowances?: boolean } = {}) {
  const clock = new FakeClock();
  const ledger = new MemoryLedgerStore({ clock });
  const idempotency = new MemoryIdempotencyStore({ ttlMs: 86_400_000, maxKeys: 10_000, clock });
  const store = new MemoryExactlyOnceStore(ledger, idempotency, clock);
  const limiter = new MemoryRateLimiter({ limit: opts.limit ?? 1000, windowMs: 1_000, clock });
  const core = new MintCore({
    store,
    limiter,
    clock,
    maxAmountMicros: 10n ** 18n,
    approvals: { store, thresholdMicros: 1_000_000_000n, required: 2, ttlMs: TTL_MS, allowances: opts.allowances ?? false },
  });
  const mint = (key: string, amount: string, principal = "minter") =>
    core.mintUsdc({ accountId: "acct", amount, blockchain: "BASE", idempotencyKey: key }, { deadlineMs: Infinity, principal: as(principal) });
  return { clock, ledger, store, core, mint };
}

describe("approval in the core", () => {
  it("mints below the threshold complete at once; at the threshold they wait; a plain mint records no requester", async () => {
    const { mint } = setup();
    const small = await mint("k1", "999.999999");
    expect(small.ok && small.value.mint.status).toBe("COMPLETED");
    expect(small.ok && small.value.mint.requester).toBeUndefined();
    const big = await mint("k2", "1000");
    expect(big.ok && big.value.mint.status).toBe("PENDING_APPROVAL");
    expect(big.ok && big.value.mint.requester).toBe("minter");
  });

  it("the rate limit counts a pending mint once; its replay is not refused", async () => {
    const { mint } = setup({ limit: 1 });
    expect((await mint("k1", "5000")).ok).toBe(true);
    const replay = await mint("k1", "5000");
    expect(replay.ok && replay.value.replayed).toBe(true);
    const next = await mint("k2", "1");
    expect(!next.ok && next.error.code).toBe("RATE_LIMITED");
  });

  it("the sweep rejects pending mints past MINT_APPROVAL_TTL as expired, and frees their keys", async () => {
    const { clock, core, mint } = setup();
    const big = await mint("k1", "5000");
    if (!big.ok) throw new Error("mint failed");
    await clock.advance(TTL_MS - 1);
    expect(await core.expirePending(100)).toBe(0);
    await clock.advance(1);
    const late = await core.approveMint(big.value.mint.mintId, { deadlineMs: Infinity, principal: as("bob") });
    expect(!late.ok && late.error).toEqual({ code: "MINT_NOT_PENDING", mintId: big.value.mint.mintId, reason: "MINT_EXPIRED" });
    expect(await core.expirePending(100)).toBe(1);
    const swept = await core.getMint(big.value.mint.mintId);
    expect(swept.ok && swept.value.status).toBe("REJECTED");
    expect(swept.ok && swept.value.approval?.rejectedBy).toBe("sweeper");
    expect(swept.ok && swept.value.approval?.rejectReason).toMatch(/^expired/);
    expect(await core.expirePending(100)).toBe(0);
    const again = await mint("k1", "5000");
    expect(again.ok && again.value.replayed).toBe(false);
  });

  it("bad input to the approval and allowance calls is INVALID_ARGUMENT and changes nothing", async () => {
    const { core } = setup({ allowances: true });
    const ctx = { deadlineMs: Infinity, principal: as("rm") };
    expect(await core.approveMint("", ctx)).toMatchObject({ ok: false, error: { code: "INVALID_ARGUMENT", reason: "INVALID_MINT_ID" } });
    expect(await core.approveMint("mint_nope", ctx)).toEqual({ ok: false, error: { code: "MINT_NOT_FOUND", mintId: "mint_nope" } });
    expect(await core.rejectMint("mint_x", "bad\u0001", ctx)).toMatchObject({ ok: false, error: { reason: "INVALID_REASON" } });
    expect(await core.setMinterAllowance("a b", "1", ctx)).toMatchObject({ ok: false, error: { reason: "INVALID_ACCOUNT_ID", field: "principal" } });
    for (const amount of ["", "-1", "1.0000001", "01", "1e3"]) {
      expect(await core.setMinterAllowance("m", amount, ctx)).toMatchObject({ ok: false, error: { reason: "INVALID_AMOUNT" } });
    }
    const left = await core.getMinterAllowance("m");
    expect(left.ok && left.value.allowanceMicros).toBe(0n);
    expect((await core.setMinterAllowance("m", "12.5", ctx)).ok).toBe(true);
    expect((await core.setMinterAllowance("m", "0", ctx)).ok).toBe(true);
    const revoked = await core.getMinterAllowance("m");
    expect(revoked.ok && revoked.value.allowanceMicros).toBe(0n);
    expect(await core.listMints({ accountId: "", pageSize: 0, pageToken: "", status: "DONE" })).toMatchObject({ ok: false, error: { reason: "INVALID_STATUS" } });
  });

  it("with allowances on, a minter with none set is refused ALLOWANCE_EXCEEDED", async () => {
    const { mint } = setup({ allowances: true });
    const r = await mint("k1", "1", "fresh-minter");
    expect(!r.ok && r.error).toEqual({ code: "ALLOWANCE_EXCEEDED", principal: "fresh-minter", remainingMicros: 0n, amountMicros: 1_000_000n });
  });
});

describe("approver scope", () => {
  it("an approver without scope over the mint's account is PERMISSION_DENIED and changes nothing", async () => {
    const { core, mint } = setup();
    const big = await mint("k1", "5000");
    if (!big.ok) throw new Error("mint failed");
    const outsider: Principal = { name: "outsider", roles: new Set(["approver"]), scopes: ["other:*"] };
    const r = await core.approveMint(big.value.mint.mintId, { deadlineMs: Infinity, principal: outsider });
    expect(!r.ok && r.error).toMatchObject({ code: "PERMISSION_DENIED", rpc: "ApproveMint", principal: "outsider", idNamed: "mint" });
    const rj = await core.rejectMint(big.value.mint.mintId, "x", { deadlineMs: Infinity, principal: outsider });
    expect(!rj.ok && rj.error).toMatchObject({ code: "PERMISSION_DENIED", rpc: "RejectMint" });
    const after = await core.getMint(big.value.mint.mintId);
    expect(after.ok && [after.value.status, after.value.approval?.approvals.length]).toEqual(["PENDING_APPROVAL", 0]);
  });
});
