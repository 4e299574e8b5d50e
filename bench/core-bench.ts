/**
 * In-process core: MintCore wired with the memory adapters and called
 * directly (no gRPC, no sockets), to show what the core alone can do and what
 * the gRPC layer costs on top. Also times the lock path (AccountLocks) alone.
 *
 * Run as a child process by bench/run.ts: `node --import tsx bench/core-bench.ts <ms-per-figure> <repeats>`.
 * Prints one JSON line (CoreResult) on stdout.
 */
import { systemClock } from "../src/domain/clock.js";
import { AccountLocks } from "../src/domain/account-locks.js";
import { MintCore } from "../src/domain/mint-core.js";
import { MemoryExactlyOnceStore } from "../src/adapters/memory/memory-exactly-once-store.js";
import { MemoryIdempotencyStore } from "../src/adapters/memory/memory-idempotency-store.js";
import { MemoryLedgerStore } from "../src/adapters/memory/memory-ledger-store.js";
import { MemoryRateLimiter } from "../src/adapters/memory/memory-rate-limiter.js";
import { MINT_AMOUNT, SEED_AMOUNT, TRANSFER_AMOUNT, accountId } from "./frames.js";

export interface CoreFigure {
  /** Median operations per second over the repeats. */
  readonly opsPerSec: number;
  readonly minOpsPerSec: number;
  readonly maxOpsPerSec: number;
  /** Median time per operation, in microseconds (1e6 / opsPerSec). */
  readonly usPerOp: number;
  /**
   * Median CPU time of the process per operation, in microseconds (user +
   * system, every thread: GC included). Other load on the machine slows the
   * wall clock figures above but hardly this one, so compare runs by it.
   */
  readonly cpuUsPerOp: number;
  readonly failures: number;
}

const msPerFigure = Number(process.argv[2] ?? 500);
const repeats = Number(process.argv[3] ?? 3);
const ACCOUNTS = 10_000;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/**
 * Runs `op` from `concurrency` async loops for `ms`, `repeats` times after a
 * warm-up, and returns the median rate. `op` resolves to false on a failure.
 */
async function figure(concurrency: number, op: (i: number) => Promise<boolean>): Promise<CoreFigure> {
  let seq = 0;
  let failures = 0;
  const once = async (ms: number): Promise<{ rate: number; cpuUs: number }> => {
    let done = 0;
    const cpu0 = process.cpuUsage();
    const end = performance.now() + ms;
    const loop = async (): Promise<void> => {
      // Check the clock every 64 ops: performance.now() is not free either.
      for (;;) {
        for (let k = 0; k < 64; k++) {
          if (!(await op(seq++))) failures++;
          done++;
        }
        if (performance.now() >= end) return;
      }
    };
    const t0 = performance.now();
    await Promise.all(Array.from({ length: concurrency }, loop));
    const rate = done / ((performance.now() - t0) / 1000);
    const cpu = process.cpuUsage(cpu0);
    return { rate, cpuUs: (cpu.user + cpu.system) / done };
  };
  await once(Math.min(300, msPerFigure));
  failures = 0;
  const rates: number[] = [];
  const cpuUs: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const one = await once(msPerFigure);
    rates.push(one.rate);
    cpuUs.push(one.cpuUs);
  }
  const med = median(rates);
  return { opsPerSec: med, minOpsPerSec: Math.min(...rates), maxOpsPerSec: Math.max(...rates), usPerOp: 1e6 / med, cpuUsPerOp: median(cpuUs), failures };
}

/** The store of each core made, to seal its journal afterwards. */
const storeOf = new WeakMap<MintCore, MemoryExactlyOnceStore>();

function newCore(): MintCore {
  const clock = systemClock;
  const store = new MemoryExactlyOnceStore(
    new MemoryLedgerStore({ clock }),
    new MemoryIdempotencyStore({ ttlMs: 24 * 3_600_000, maxKeys: 100_000_000, clock }),
    clock,
  );
  const core = new MintCore({
    store,
    limiter: new MemoryRateLimiter({ limit: 1_000_000, windowMs: 1000, clock }),
    clock,
    maxAmountMicros: 10n ** 18n,
  });
  storeOf.set(core, store);
  return core;
}

/**
 * The journal's seal, measured on its own: the figures above answer before
 * their records are sealed (the seal runs after the answer, and these loops
 * never yield to it), so this seals what a figure left and divides by the
 * records. Adding it to a figure's µs gives the whole cost of a call.
 */
function sealFigure(core: MintCore): { records: number; usPerRecord: number; cpuUsPerRecord: number } {
  const journal = (storeOf.get(core) as MemoryExactlyOnceStore).audit;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const records = journal.sealAll();
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { records, usPerRecord: (ms * 1000) / records, cpuUsPerRecord: (cpu.user + cpu.system) / records };
}

const NO_DEADLINE = { deadlineMs: Infinity };

async function main(): Promise<void> {
  const accounts = Array.from({ length: ACCOUNTS }, (_, i) => accountId(i));
  const keyBase = "core-" + process.pid + "-";

  // Mints: many accounts, unique keys (a fresh core per figure, so the maps start empty alike).
  const mintOp = (core: MintCore, prefix: string) => async (i: number) =>
    (
      await core.mintUsdc(
        { accountId: accounts[i % ACCOUNTS] as string, amount: MINT_AMOUNT, blockchain: "ETHEREUM", idempotencyKey: keyBase + prefix + i },
        NO_DEADLINE,
      )
    ).ok;
  const mintCore = newCore();
  const mintC1 = await figure(1, mintOp(mintCore, "m1-"));
  const sealMint = sealFigure(mintCore);
  const mintC64 = await figure(64, mintOp(newCore(), "m64-"));

  // Transfers: seed every account, then uniform pairs vs two hot accounts.
  const seeded = async (): Promise<MintCore> => {
    const core = newCore();
    for (let i = 0; i < ACCOUNTS; i++) {
      const r = await core.mintUsdc({ accountId: accounts[i] as string, amount: SEED_AMOUNT, blockchain: "ETHEREUM", idempotencyKey: "seed-" + i }, NO_DEADLINE);
      if (!r.ok) throw new Error("seed mint failed: " + JSON.stringify(r.error));
    }
    return core;
  };
  const transferOp = (core: MintCore, prefix: string, n: number) => async (i: number) => {
    const from = i % n;
    const to = (from + 1 + ((i * 7919) % (n - 1))) % n;
    return (
      await core.transfer(
        { fromAccountId: accounts[from] as string, toAccountId: accounts[to] as string, amount: TRANSFER_AMOUNT, idempotencyKey: keyBase + prefix + i },
        NO_DEADLINE,
      )
    ).ok;
  };
  const transferCore = await seeded();
  sealFigure(transferCore);
  const transferC1 = await figure(1, transferOp(transferCore, "t1-", ACCOUNTS));
  const sealTransfer = sealFigure(transferCore);
  const transferC64 = await figure(64, transferOp(await seeded(), "t64-", ACCOUNTS));
  const transferHotC64 = await figure(64, transferOp(await seeded(), "th64-", 2));

  const balCore = await seeded();
  const getBalanceC64 = await figure(64, async (i) => (await balCore.getBalance(accounts[i % ACCOUNTS] as string)).ok);

  // The lock path alone: acquire + release, uncontended, with and without a deadline
  // (a finite deadline arms a timer per lock), and two accounts as a transfer takes them.
  const locks = new AccountLocks(systemClock);
  const lockOne = await figure(1, async (i) => {
    const release = await locks.acquire([accounts[i % ACCOUNTS] as string], Infinity);
    release?.();
    return release !== null;
  });
  const lockTwo = await figure(1, async (i) => {
    const release = await locks.acquire([accounts[i % ACCOUNTS] as string, accounts[(i + 1) % ACCOUNTS] as string], Infinity);
    release?.();
    return release !== null;
  });
  const lockOneDeadline = await figure(1, async (i) => {
    const release = await locks.acquire([accounts[i % ACCOUNTS] as string], performance.now() + 30_000);
    release?.();
    return release !== null;
  });
  // 64 callers on one account: every acquire waits for the previous holder.
  const lockHotC64 = await figure(64, async () => {
    const release = await locks.acquire([accounts[0] as string], Infinity);
    release?.();
    return release !== null;
  });

  const out = {
    accounts: ACCOUNTS,
    msPerFigure,
    repeats,
    mint_c1: mintC1,
    /** The seal of mint_c1's journal records, per record (off the answer's path). */
    seal_mint_record: sealMint,
    mint_c64: mintC64,
    transfer_c1: transferC1,
    /** The seal of transfer_c1's journal records, per record. */
    seal_transfer_record: sealTransfer,
    transfer_c64: transferC64,
    transfer_hot_c64: transferHotC64,
    getbalance_c64: getBalanceC64,
    lock_one_account: lockOne,
    lock_two_accounts: lockTwo,
    lock_one_account_with_deadline: lockOneDeadline,
    lock_hot_c64: lockHotC64,
    /** Share of one uncontended mint spent taking and releasing its lock. */
    lock_share_of_mint: lockOne.usPerOp / mintC1.usPerOp,
    lock_share_of_transfer: lockTwo.usPerOp / transferC1.usPerOp,
  };
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch((e: unknown) => {
  process.stderr.write(String(e instanceof Error ? e.stack : e) + "\n");
  process.exit(1);
});
