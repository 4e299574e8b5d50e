/**
 * The ledger's laws under random command sequences and random interleavings:
 * money is conserved (sum of balances = minted - reversed), no balance goes
 * negative, a refused call changes nothing, replays change nothing, and
 * concurrent calls never double-apply or deadlock.
 *
 * The sequential property runs every command against the real core (memory
 * adapters, FakeClock) and against a small reference model of API.md's rules,
 * and checks the outcome of each call as well as the invariants after it.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MemoryExactlyOnceStore, type MemoryLedger } from "../../src/adapters/memory/memory-exactly-once-store.js";
import { MemoryIdempotencyStore } from "../../src/adapters/memory/memory-idempotency-store.js";
import { MemoryLedgerStore } from "../../src/adapters/memory/memory-ledger-store.js";
import { MemoryRateLimiter } from "../../src/adapters/memory/memory-rate-limiter.js";
import type { Failure } from "../../src/domain/errors.js";
import { MintCore, type MintUsdcInput, type TransferInput } from "../../src/domain/mint-core.js";
import type { MintRecord } from "../../src/domain/model.js";
import { formatMicros } from "../../src/domain/money.js";
import type { IdempotencyStore, RateLimiter } from "../../src/domain/ports.js";
import type { Result } from "../../src/domain/result.js";
import { memoryLedgerEffects, recordEffects } from "../support/audit-checks.js";
import { FakeClock } from "../support/fake-clock.js";

const NO_DEADLINE = { deadlineMs: Infinity };
/** A small maximum (1000 USDC) so AMOUNT_TOO_LARGE is generated often. */
const MAX_MICROS = 1_000_000_000n;
const LIMIT = 3;
const WINDOW_MS = 1_000;
const TTL_MS = 3_000;

// ---------------------------------------------------------------------------
// Shared checks

/** Asserts the ledger's laws against the totals of successful mints and reversals. */
function checkLedgerLaws(ledger: MemoryLedgerStore, mintedMicros: bigint, reversedMicros: bigint): void {
  const balances = ledger.allBalances();
  const entries = ledger.ledgerEntries();
  let sum = 0n;
  for (const [account, b] of balances) {
    expect(b, `balance of ${account}`).toBeGreaterThanOrEqual(0n);
    sum += b;
  }
  expect(sum, "sum of balances = minted - reversed").toBe(mintedMicros - reversedMicros);

  // The entries tell the same story as the balances and the totals.
  const perAccount = new Map<string, bigint>();
  let minted = 0n;
  let reversed = 0n;
  let transfersNet = 0n;
  for (const e of entries) {
    perAccount.set(e.accountId, (perAccount.get(e.accountId) ?? 0n) + e.amountMicros);
    if (e.kind === "mint") {
      expect(e.amountMicros).toBeGreaterThan(0n);
      minted += e.amountMicros;
    } else if (e.kind === "reversal") {
      expect(e.amountMicros).toBeLessThan(0n);
      reversed -= e.amountMicros;
    } else {
      transfersNet += e.amountMicros;
    }
  }
  expect(minted, "mint entries").toBe(mintedMicros);
  expect(reversed, "reversal entries").toBe(reversedMicros);
  expect(transfersNet, "transfers move money, never create it").toBe(0n);
  for (const [account, b] of balances) expect(perAccount.get(account) ?? 0n, `entries of ${account}`).toBe(b);
  for (const [account, total] of perAccount) expect(balances.get(account) ?? 0n, `balance of ${account}`).toBe(total);
}

function snapshot(ledger: MemoryLedgerStore) {
  return { balances: ledger.allBalances(), entries: ledger.ledgerEntries().length };
}

function value<T>(r: Result<T>): T {
  if (!r.ok) throw new Error(`expected success, got ${JSON.stringify(r.error)}`);
  return r.value;
}

function failure<T>(r: Result<T>): Failure {
  if (r.ok) throw new Error("expected a failure, got a success");
  return r.error;
}

// ---------------------------------------------------------------------------
// Sequential commands against a reference model

const ACCOUNTS = ["a", "b", "c", "Z"] as const;
const KEYS = ["k0", "k1", "k2", "k3"] as const;
const CHAINS = ["ETHEREUM", "SOLANA", "BASE"] as const;
const BAD_AMOUNTS = ["", "0", "0.000000", "-1", "+1", "1e3", "01", "00.1", "1.", ".5", "1.0000001", " 1", "1,5", "0x10", "NaN", "Infinity", "\uff11"];
const BAD_ACCOUNTS = ["", "-a", "a b", "\u00e9", "x".repeat(129)];
const BAD_CHAINS = ["", "BITCOIN", "ethereum", "BLOCKCHAIN_BASE", "UNSPECIFIED"];
const BAD_KEYS = ["", "\u00e9", "x".repeat(256), "a\nb", "\u0000"];

/** A field and a value that is bad for it. */
function badField<F extends string>(field: F, values: readonly string[]) {
  return fc.record({ field: fc.constant(field), bad: fc.constantFrom(...values) });
}

/** Micro-USDC amounts up to `max`, in canonical or padded spelling; sometimes at or just above the maximum. */
function amountArb(maxMicros: bigint) {
  return fc
    .tuple(
      fc.oneof(
        { weight: 3, arbitrary: fc.constantFrom(1n, 500_000n, 1_000_000n, 2_500_000n, 10_000_000n) },
        { weight: 3, arbitrary: fc.bigInt({ min: 1n, max: maxMicros }) },
        { weight: 1, arbitrary: fc.bigInt({ min: MAX_MICROS - 2n, max: MAX_MICROS + 2n }) },
      ),
      fc.boolean(),
    )
    .map(([micros, padded]) => {
      const canonical = formatMicros(micros);
      const text = padded && !canonical.includes(".") ? canonical + ".000000" : canonical;
      return { micros, text };
    });
}

type Cmd =
  | { kind: "mint"; account: string; amount: { micros: bigint; text: string }; chain: string; key: string }
  | { kind: "transfer"; from: string; to: string; amount: { micros: bigint; text: string }; key: string }
  | { kind: "reconcile"; pick: number; reason: string }
  | { kind: "replay"; pick: number }
  | { kind: "badMint"; field: "amount" | "account" | "chain" | "key"; bad: string; key: string }
  | { kind: "badTransfer"; field: "amount" | "same" | "from" | "to"; bad: string; key: string }
  | { kind: "advance"; ms: number };

const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("mint" as const), account: fc.constantFrom(...ACCOUNTS), amount: amountArb(50_000_000n), chain: fc.constantFrom(...CHAINS), key: fc.constantFrom(...KEYS) }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant("transfer" as const), from: fc.constantFrom(...ACCOUNTS), to: fc.constantFrom(...ACCOUNTS), amount: amountArb(5_000_000n), key: fc.constantFrom(...KEYS) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("reconcile" as const), pick: fc.nat(), reason: fc.constantFrom("", "reorg", "duplicate") }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("replay" as const), pick: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.oneof(badField("amount", BAD_AMOUNTS), badField("account", BAD_ACCOUNTS), badField("chain", BAD_CHAINS), badField("key", BAD_KEYS)), fc.constantFrom(...KEYS))
      .map(([b, key]) => ({ kind: "badMint" as const, ...b, key })),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.oneof(badField("amount", BAD_AMOUNTS), badField("from", BAD_ACCOUNTS), badField("to", BAD_ACCOUNTS), badField("same", [""])), fc.constantFrom(...KEYS))
      .map(([b, key]) => ({ kind: "badTransfer" as const, ...b, key })),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("advance" as const), ms: fc.constantFrom(0, 1, 250, 999, 1_000, 1_500, 3_000) }) },
);

interface StoredKey {
  readonly fp: string;
  readonly resultId: string;
  readonly expiresAtMs: number;
}

/** API.md's rules, kept as simply as possible. */
class Model {
  balances = new Map<string, bigint>();
  minted = 0n;
  reversed = 0n;
  /** Fresh successes, oldest first; reconcile picks from these. */
  mints: { record: MintRecord; reversed: boolean }[] = [];
  keys = new Map<string, StoredKey>();
  /** Per account, monotonic times of the mints the limiter counted. */
  limiterLog = new Map<string, number[]>();
  /** Requests that succeeded (fresh), for replays. */
  successes: ({ kind: "mint"; input: MintUsdcInput } | { kind: "transfer"; input: TransferInput })[] = [];

  balance(a: string): bigint {
    return this.balances.get(a) ?? 0n;
  }

  liveKey(scopedKey: string, nowMs: number): StoredKey | undefined {
    const k = this.keys.get(scopedKey);
    return k !== undefined && nowMs < k.expiresAtMs ? k : undefined;
  }

  /** ms until a mint is allowed for `account`, 0 if allowed now. */
  limiterWaitMs(account: string, nowMs: number): number {
    const counted = (this.limiterLog.get(account) ?? []).filter((t) => t > nowMs - WINDOW_MS);
    if (counted.length < LIMIT) return 0;
    return (counted[counted.length - LIMIT] as number) + WINDOW_MS - nowMs;
  }
}

function isValidMicros(micros: bigint): boolean {
  return micros >= 1n && micros <= MAX_MICROS;
}

async function runSequence(cmds: Cmd[]): Promise<void> {
  const clock = new FakeClock();
  const ledger = new MemoryLedgerStore({ clock });
  const idempotency = new MemoryIdempotencyStore({ ttlMs: TTL_MS, maxKeys: 10_000, clock });
  const limiter = new MemoryRateLimiter({ limit: LIMIT, windowMs: WINDOW_MS, clock });
  const store = new MemoryExactlyOnceStore(ledger, idempotency, clock);
  const core = new MintCore({ store, limiter, clock, maxAmountMicros: MAX_MICROS });
  const model = new Model();

  const doMint = async (input: MintUsdcInput, micros: bigint | null): Promise<void> => {
    const before = snapshot(ledger);
    const r = await core.mintUsdc(input, NO_DEADLINE);
    const now = clock.nowMs();
    const valid = micros !== null && isValidMicros(micros) && /^[A-Za-z0-9]/.test(input.accountId) && input.accountId.length <= 128 && input.idempotencyKey !== "" && (CHAINS as readonly string[]).includes(input.blockchain);
    if (!valid) {
      expect(failure(r).code).toBe("INVALID_ARGUMENT");
    } else {
      const fp = `${input.accountId}|${micros}|${input.blockchain}`;
      const stored = model.liveKey("mint:" + input.idempotencyKey, now);
      const waitMs = model.limiterWaitMs(input.accountId, now);
      if (stored !== undefined && stored.fp === fp) {
        const out = value(r);
        expect(out.replayed).toBe(true);
        expect(out.mint.mintId).toBe(stored.resultId);
      } else if (stored !== undefined) {
        expect(failure(r).code).toBe("IDEMPOTENCY_KEY_REUSED");
      } else if (waitMs > 0) {
        expect(failure(r)).toMatchObject({ code: "RATE_LIMITED", retryAfterMs: waitMs });
      } else {
        const out = value(r);
        expect(out.replayed).toBe(false);
        expect(out.mint).toMatchObject({ accountId: input.accountId, amountMicros: micros, status: "COMPLETED" });
        model.balances.set(input.accountId, model.balance(input.accountId) + micros);
        model.minted += micros;
        model.mints.push({ record: out.mint, reversed: false });
        model.keys.set("mint:" + input.idempotencyKey, { fp, resultId: out.mint.mintId, expiresAtMs: now + TTL_MS });
        model.limiterLog.set(input.accountId, [...(model.limiterLog.get(input.accountId) ?? []), now]);
        model.successes.push({ kind: "mint", input });
        expect(ledger.ledgerEntries().length).toBe(before.entries + 1);
        return;
      }
    }
    expect(snapshot(ledger), "a refused call or a replay changes nothing").toEqual(before);
  };

  const doTransfer = async (input: TransferInput, micros: bigint | null): Promise<void> => {
    const before = snapshot(ledger);
    const r = await core.transfer(input, NO_DEADLINE);
    const now = clock.nowMs();
    const accountOk = (a: string) => /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/.test(a);
    const valid = micros !== null && isValidMicros(micros) && accountOk(input.fromAccountId) && accountOk(input.toAccountId) && input.fromAccountId !== input.toAccountId && input.idempotencyKey !== "";
    if (!valid) {
      expect(failure(r).code).toBe("INVALID_ARGUMENT");
    } else {
      const fp = `${input.fromAccountId}|${input.toAccountId}|${micros}`;
      const stored = model.liveKey("transfer:" + input.idempotencyKey, now);
      if (stored !== undefined && stored.fp === fp) {
        const out = value(r);
        expect(out.replayed).toBe(true);
        expect(out.transfer.transferId).toBe(stored.resultId);
      } else if (stored !== undefined) {
        expect(failure(r).code).toBe("IDEMPOTENCY_KEY_REUSED");
      } else if (model.balance(input.fromAccountId) < micros) {
        expect(failure(r)).toEqual({ code: "INSUFFICIENT_FUNDS", accountId: input.fromAccountId });
      } else {
        const out = value(r);
        expect(out.replayed).toBe(false);
        model.balances.set(input.fromAccountId, model.balance(input.fromAccountId) - micros);
        model.balances.set(input.toAccountId, model.balance(input.toAccountId) + micros);
        model.keys.set("transfer:" + input.idempotencyKey, { fp, resultId: out.transfer.transferId, expiresAtMs: now + TTL_MS });
        model.successes.push({ kind: "transfer", input });
        expect(ledger.ledgerEntries().length).toBe(before.entries + 2);
        return;
      }
    }
    expect(snapshot(ledger), "a refused call or a replay changes nothing").toEqual(before);
  };

  for (const cmd of cmds) {
    switch (cmd.kind) {
      case "mint":
        await doMint({ accountId: cmd.account, amount: cmd.amount.text, blockchain: cmd.chain, idempotencyKey: cmd.key }, cmd.amount.micros);
        break;
      case "transfer":
        await doTransfer({ fromAccountId: cmd.from, toAccountId: cmd.to, amount: cmd.amount.text, idempotencyKey: cmd.key }, cmd.amount.micros);
        break;
      case "replay": {
        const s = model.successes[cmd.pick % Math.max(1, model.successes.length)];
        if (s === undefined) break;
        if (s.kind === "mint") await doMint(s.input, microsOf(s.input.amount));
        else await doTransfer(s.input, microsOf(s.input.amount));
        break;
      }
      case "reconcile": {
        const before = snapshot(ledger);
        const target = model.mints[cmd.pick % Math.max(1, model.mints.length)];
        const mintId = target?.record.mintId ?? "mint_00000000000000000000000000";
        const r = await core.reconcileMint(mintId, cmd.reason, NO_DEADLINE);
        if (target === undefined) {
          expect(failure(r).code).toBe("MINT_NOT_FOUND");
        } else if (target.reversed) {
          expect(failure(r)).toEqual({ code: "MINT_ALREADY_REVERSED", mintId });
        } else if (model.balance(target.record.accountId) < target.record.amountMicros) {
          expect(failure(r)).toEqual({ code: "INSUFFICIENT_FUNDS", accountId: target.record.accountId });
        } else {
          const out = value(r);
          expect(out).toMatchObject({ mintId, status: "REVERSED", reverseReason: cmd.reason });
          target.reversed = true;
          model.reversed += target.record.amountMicros;
          model.balances.set(target.record.accountId, model.balance(target.record.accountId) - target.record.amountMicros);
          const k = model.keys.get("mint:" + target.record.idempotencyKey);
          if (k !== undefined && k.resultId === mintId) model.keys.delete("mint:" + target.record.idempotencyKey);
          expect(ledger.ledgerEntries().length).toBe(before.entries + 1);
          break;
        }
        expect(snapshot(ledger)).toEqual(before);
        break;
      }
      case "badMint": {
        const input: MintUsdcInput = {
          accountId: cmd.field === "account" ? cmd.bad : "a",
          amount: cmd.field === "amount" ? cmd.bad : "1",
          blockchain: cmd.field === "chain" ? cmd.bad : "ETHEREUM",
          idempotencyKey: cmd.field === "key" ? cmd.bad : cmd.key,
        };
        const before = snapshot(ledger);
        expect(failure(await core.mintUsdc(input, NO_DEADLINE)).code).toBe("INVALID_ARGUMENT");
        expect(snapshot(ledger)).toEqual(before);
        break;
      }
      case "badTransfer": {
        const input: TransferInput = {
          fromAccountId: cmd.field === "from" ? cmd.bad : "a",
          toAccountId: cmd.field === "same" ? "a" : cmd.field === "to" ? cmd.bad : "b",
          amount: cmd.field === "amount" ? cmd.bad : "0.000001",
          idempotencyKey: cmd.key,
        };
        const before = snapshot(ledger);
        expect(failure(await core.transfer(input, NO_DEADLINE)).code).toBe("INVALID_ARGUMENT");
        expect(snapshot(ledger)).toEqual(before);
        break;
      }
      case "advance":
        await clock.advance(cmd.ms);
        break;
    }
    checkLedgerLaws(ledger, model.minted, model.reversed);
    for (const a of ACCOUNTS) expect(value(await core.getBalance(a)).balanceMicros, `balance of ${a}`).toBe(model.balance(a));
    // One journal record per applied mutation (a transfer is two ledger entries, the rest one).
    expect(store.audit.size, "journal records").toBe(ledger.ledgerEntries().filter((e) => e.kind !== "transfer_in").length);
  }
  expect(core.locks.size()).toBe(0);
  // Every record matches a ledger effect and vice versa, and the chain is whole.
  const records = await store.audit.readSealed(0, Number.MAX_SAFE_INTEGER);
  expect(recordEffects(records)).toEqual(memoryLedgerEffects(ledger.ledgerEntries()));
  expect(value(await core.verifyAuditChain(0, 0))).toMatchObject({ whole: true, checked: records.length });
}

function microsOf(text: string): bigint {
  const [whole, frac = ""] = text.split(".");
  return BigInt(whole as string) * 1_000_000n + BigInt(frac.padEnd(6, "0"));
}

describe("ledger laws under random command sequences", () => {
  it("conserve money, never go negative, and refused calls and replays change nothing", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(cmdArb, { minLength: 1, maxLength: 60, size: "medium" }), async (cmds) => {
        await runSequence(cmds);
      }),
      { numRuns: 200 },
    );
  });

  it("hold for a fixed sequence that exercises every path (regression seed)", async () => {
    const amt = (t: string) => ({ micros: microsOf(t), text: t });
    await runSequence([
      { kind: "mint", account: "a", amount: amt("10"), chain: "ETHEREUM", key: "k0" },
      { kind: "mint", account: "a", amount: amt("10.000000"), chain: "ETHEREUM", key: "k0" }, // replay
      { kind: "mint", account: "a", amount: amt("11"), chain: "ETHEREUM", key: "k0" }, // reused
      { kind: "mint", account: "a", amount: amt("1"), chain: "ETHEREUM", key: "k1" },
      { kind: "mint", account: "a", amount: amt("1"), chain: "ETHEREUM", key: "k2" },
      { kind: "mint", account: "a", amount: amt("1"), chain: "ETHEREUM", key: "k3" }, // rate limited
      { kind: "transfer", from: "a", to: "b", amount: amt("12"), key: "k0" },
      { kind: "transfer", from: "a", to: "b", amount: amt("13"), key: "k1" }, // insufficient
      { kind: "reconcile", pick: 0, reason: "reorg" }, // insufficient (money moved)
      { kind: "transfer", from: "b", to: "a", amount: amt("12"), key: "k2" },
      { kind: "reconcile", pick: 0, reason: "reorg" },
      { kind: "reconcile", pick: 0, reason: "again" }, // already reversed
      { kind: "advance", ms: 1_000 },
      { kind: "mint", account: "a", amount: amt("10"), chain: "ETHEREUM", key: "k0" }, // key freed: fresh
      { kind: "badMint", field: "amount", bad: "1e3", key: "k3" },
      { kind: "badTransfer", field: "same", bad: "", key: "k3" },
      { kind: "replay", pick: 0 },
      { kind: "advance", ms: 3_000 },
      { kind: "replay", pick: 0 }, // expired: fresh again
    ]);
  });
});

// ---------------------------------------------------------------------------
// Interleavings under fc.scheduler

/**
 * A core whose adapter calls are scheduled by fast-check: each call waits for
 * the scheduler before it runs and again before its result is handed back, so
 * the scheduler chooses the order of every async step between the core and
 * its stores. `controlled` is off while a test sets up its starting state.
 */
function scheduledCore(s: fc.Scheduler) {
  const clock = new FakeClock();
  const ledger = new MemoryLedgerStore({ clock });
  const idempotency = new MemoryIdempotencyStore({ ttlMs: 86_400_000, maxKeys: 10_000, clock });
  const limiter = new MemoryRateLimiter({ limit: 1_000_000, windowMs: 1_000, clock });
  let controlled = false;
  const step = async <T>(label: string, run: () => T | Promise<T>): Promise<T> => {
    if (!controlled) return run();
    await s.schedule(Promise.resolve(), label);
    const out = await run();
    return s.schedule(Promise.resolve(out), `${label} returned`);
  };
  const ledgerPort: MemoryLedger = {
    mint: (cmd) => step(`ledger.mint(${cmd.accountId})`, () => ledger.mint(cmd)),
    transfer: (cmd) => step(`ledger.transfer(${cmd.fromAccountId}->${cmd.toAccountId})`, () => ledger.transfer(cmd)),
    reverseMint: (id, reason, wallMs) => step("ledger.reverseMint", () => ledger.reverseMint(id, reason, wallMs)),
    getBalance: (a) => step(`ledger.getBalance(${a})`, () => ledger.getBalance(a)),
    getMint: (id) => step("ledger.getMint", () => ledger.getMint(id)),
    listMints: (q) => step("ledger.listMints", () => ledger.listMints(q)),
    close: () => ledger.close(),
    redeem: (cmd) => step(`ledger.redeem(${cmd.accountId})`, () => ledger.redeem(cmd)),
    setReserve: (r, ref) => ledger.setReserve(r, ref),
    getSupply: () => ledger.getSupply(),
    setFrozen: (a, f, reason) => ledger.setFrozen(a, f, reason),
    getAccount: (a) => ledger.getAccount(a),
    getRedemption: (id) => ledger.getRedemption(id),
    listRedemptions: (q) => ledger.listRedemptions(q),
    // The synchronous steps approvals, settling redemptions and settlement effects use (not scheduled: they have no await to interleave).
    peekMint: (id) => ledger.peekMint(id),
    peekAccount: (a) => ledger.peekAccount(a),
    replacePending: (next, settle) => ledger.replacePending(next, settle),
    checkCompletion: (m, r) => ledger.checkCompletion(m, r),
    expiredPending: (w, l) => ledger.expiredPending(w, l),
    getPendingBalance: (a) => ledger.getPendingBalance(a),
    settleConfirmed: (id) => ledger.settleConfirmed(id),
    redeemNow: (cmd) => ledger.redeemNow(cmd),
    peekRedemption: (id) => ledger.peekRedemption(id),
    recreditRedemption: (id, reason, w) => ledger.recreditRedemption(id, reason, w),
  };
  const idempotencyPort: IdempotencyStore = {
    begin: (scope, key, req, d) => step(`idem.begin(${scope}:${key})`, () => idempotency.begin(scope, key, req, d)),
    complete: (claim, result) => step(`idem.complete(${claim.key})`, () => idempotency.complete(claim, result)),
    release: (claim) => step(`idem.release(${claim.key})`, () => idempotency.release(claim)),
    forget: (scope, key, id) => step(`idem.forget(${key})`, () => idempotency.forget(scope, key, id)),
    sweepExpired: (n) => idempotency.sweepExpired(n),
    size: () => idempotency.size(),
    close: () => idempotency.close(),
  };
  const limiterPort: RateLimiter = {
    limit: limiter.limit,
    windowMs: limiter.windowMs,
    tryAcquire: (a) => step(`limiter(${a})`, () => limiter.tryAcquire(a)),
    giveBack: (a) => step(`limiter.giveBack(${a})`, () => limiter.giveBack(a)),
    sweepIdle: () => limiter.sweepIdle(),
    close: () => limiter.close(),
  };
  const core = new MintCore({ store: new MemoryExactlyOnceStore(ledgerPort, idempotencyPort, clock), limiter: limiterPort, clock, maxAmountMicros: MAX_MICROS });
  return {
    core,
    ledger,
    idempotency,
    control: () => {
      controlled = true;
    },
    /** Back to direct calls, for checks after the interleaved part. */
    uncontrol: () => {
      controlled = false;
    },
  };
}

/** Starts the calls and tracks which settled (and any that threw: a bug), without awaiting them. */
function startAll<T>(calls: (() => T | Promise<T>)[]) {
  const results: (T | undefined)[] = calls.map(() => undefined);
  const settled = calls.map(() => false);
  const thrown: unknown[] = [];
  calls.forEach((call, i) => {
    // Started at once; a call that answers with a value (nothing waited) settles on the next turn.
    void new Promise<T>((resolve) => resolve(call())).then(
      (v) => {
        results[i] = v;
        settled[i] = true;
      },
      (err: unknown) => {
        thrown.push(err);
        settled[i] = true;
      },
    );
  });
  return {
    results,
    thrown,
    allSettled: () => settled.every(Boolean),
  };
}

/**
 * Lets the scheduler run every scheduled and reachable step (its waitIdle, the
 * successor of the deprecated waitAll), draining plain promise jobs between
 * rounds. A deadlock shows up as calls still unsettled when nothing is left.
 */
async function runToIdle(s: fc.Scheduler): Promise<void> {
  for (let round = 0; round < 1_000; round++) {
    await s.waitIdle();
    await new Promise<void>((r) => setImmediate(r));
    if (s.count() === 0) return;
  }
  throw new Error("the scheduler never became idle");
}

describe("interleavings (fc.scheduler)", () => {
  it("concurrent same-key mints apply exactly once; the others replay (or are REUSED when their request differs)", async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), fc.array(fc.constantFrom("5", "5.000000", "6"), { minLength: 2, maxLength: 6 }), async (s, amounts) => {
        const { core, ledger, control } = scheduledCore(s);
        control();
        const run = startAll(amounts.map((amount) => () => core.mintUsdc({ accountId: "a", amount, blockchain: "BASE", idempotencyKey: "same" }, NO_DEADLINE)));
        await runToIdle(s);
        expect(run.allSettled(), `calls left hanging:\n${s.report().map((t) => t.label).join("\n")}`).toBe(true);
        expect(run.thrown).toEqual([]);

        const results = run.results.map((r) => r!);
        const fresh = results.filter((r) => r.ok && !r.value.replayed);
        expect(fresh).toHaveLength(1);
        const winner = value(fresh[0]!).mint;
        const winnerIs5 = winner.amountMicros === 5_000_000n;
        results.forEach((r, i) => {
          const sameRequest = (amounts[i] === "6") !== winnerIs5;
          if (sameRequest) expect(value(r).mint).toEqual(winner);
          else expect(failure(r)).toMatchObject({ code: "IDEMPOTENCY_KEY_REUSED", fields: ["amount"] });
        });
        expect(ledger.ledgerEntries()).toHaveLength(1);
        checkLedgerLaws(ledger, winner.amountMicros, 0n);
        expect(core.locks.size()).toBe(0);
      }),
      { numRuns: 150 },
    );
  });

  it("opposing transfers A->B and B->A never deadlock and conserve money", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.scheduler(),
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 1, max: 4 })), { minLength: 2, maxLength: 8 }),
        async (s, moves) => {
          const { core, ledger, control } = scheduledCore(s);
          value(await core.mintUsdc({ accountId: "A", amount: "5", blockchain: "BASE", idempotencyKey: "fund-a" }, NO_DEADLINE));
          value(await core.mintUsdc({ accountId: "B", amount: "5", blockchain: "BASE", idempotencyKey: "fund-b" }, NO_DEADLINE));
          control();
          const run = startAll(
            moves.map(([aToB, usdc], i) => () =>
              core.transfer({ fromAccountId: aToB ? "A" : "B", toAccountId: aToB ? "B" : "A", amount: String(usdc), idempotencyKey: `t${i}` }, NO_DEADLINE),
            ),
          );
          await runToIdle(s);
          expect(run.allSettled(), `deadlock; steps:\n${s.report().map((t) => `${t.status} ${t.label}`).join("\n")}`).toBe(true);
          expect(run.thrown).toEqual([]);

          let expectedA = 5_000_000n;
          let okCount = 0;
          run.results.forEach((r, i) => {
            const [aToB, usdc] = moves[i]!;
            if (r!.ok) {
              okCount++;
              expect(r!.value.replayed).toBe(false);
              expectedA += (aToB ? -1n : 1n) * BigInt(usdc) * 1_000_000n;
            } else {
              expect(failure(r!)).toEqual({ code: "INSUFFICIENT_FUNDS", accountId: aToB ? "A" : "B" });
            }
          });
          const balances = ledger.allBalances();
          expect(balances.get("A")).toBe(expectedA);
          expect(balances.get("B")).toBe(10_000_000n - expectedA);
          expect(ledger.ledgerEntries()).toHaveLength(2 + 2 * okCount);
          checkLedgerLaws(ledger, 10_000_000n, 0n);
          expect(core.locks.size()).toBe(0);
        },
      ),
      { numRuns: 150 },
    );
  });

  it("a reconcile racing the mint it reverses still frees the mint's key", async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), async (s) => {
        const { core, ledger, control, uncontrol } = scheduledCore(s);
        const input: MintUsdcInput = { accountId: "a", amount: "2", blockchain: "BASE", idempotencyKey: "k" };
        control();
        // An operator who sees the mint in ListMints (before the caller has its answer) reverses it.
        const reconciler = async (): Promise<Result<MintRecord> | null> => {
          for (let i = 0; i < 10; i++) {
            const page = value(await core.listMints({ accountId: "a", pageSize: 1, pageToken: "" }));
            const m = page.mints[0];
            if (m !== undefined) return core.reconcileMint(m.mintId, "race", NO_DEADLINE);
          }
          return null;
        };
        const mint = startAll([() => core.mintUsdc(input, NO_DEADLINE)]);
        const rec = startAll([reconciler]);
        await runToIdle(s);
        expect(mint.allSettled() && rec.allSettled(), "calls left hanging").toBe(true);
        expect([...mint.thrown, ...rec.thrown]).toEqual([]);
        uncontrol();
        const minted = value(mint.results[0]!);
        expect(minted.replayed).toBe(false);
        const reconciled = rec.results[0];
        if (reconciled === null || reconciled === undefined) return; // the reconciler never saw the mint
        expect(value(reconciled).status).toBe("REVERSED");
        checkLedgerLaws(ledger, 2_000_000n, 2_000_000n);
        // API.md: reconciling frees the key, so the same request mints again.
        const again = value(await core.mintUsdc(input, NO_DEADLINE));
        expect(again.replayed, "the key still replays a reversed mint").toBe(false);
        expect(again.mint.mintId).not.toBe(minted.mint.mintId);
      }),
      { numRuns: 150 },
    );
  });

  it("concurrent reconciles reverse once, even racing mints with the same key", async () => {
    await fc.assert(
      fc.asyncProperty(fc.scheduler(), fc.integer({ min: 2, max: 5 }), fc.integer({ min: 0, max: 3 }), async (s, reconciles, mints) => {
        const { core, ledger, control } = scheduledCore(s);
        const input: MintUsdcInput = { accountId: "a", amount: "3", blockchain: "NOBLE", idempotencyKey: "k" };
        const original = value(await core.mintUsdc(input, NO_DEADLINE)).mint;
        control();
        const rec = startAll(Array.from({ length: reconciles }, (_, i) => () => core.reconcileMint(original.mintId, `r${i}`, NO_DEADLINE)));
        const mnt = startAll(Array.from({ length: mints }, () => () => core.mintUsdc(input, NO_DEADLINE)));
        await runToIdle(s);
        expect(rec.allSettled() && mnt.allSettled(), "calls left hanging").toBe(true);
        expect([...rec.thrown, ...mnt.thrown]).toEqual([]);

        const recResults = rec.results.map((r) => r!);
        expect(recResults.filter((r) => r.ok)).toHaveLength(1);
        for (const r of recResults.filter((x) => !x.ok)) expect(failure(r)).toEqual({ code: "MINT_ALREADY_REVERSED", mintId: original.mintId });
        expect(ledger.ledgerEntries().filter((e) => e.kind === "reversal")).toHaveLength(1);

        // The racing mints either replayed the original (before its key was freed) or
        // made at most one new mint, which the rest replayed.
        const mintResults = mnt.results.map((r) => value(r!));
        const fresh = mintResults.filter((r) => !r.replayed);
        expect(fresh.length).toBeLessThanOrEqual(1);
        for (const r of mintResults.filter((x) => x.replayed)) expect([original.mintId, fresh[0]?.mint.mintId]).toContain(r.mint.mintId);
        const minted = 3_000_000n * BigInt(1 + fresh.length);
        checkLedgerLaws(ledger, minted, 3_000_000n);
        expect(ledger.allBalances().get("a")).toBe(3_000_000n * BigInt(fresh.length));
        expect(core.locks.size()).toBe(0);
      }),
      { numRuns: 150 },
    );
  });
});
