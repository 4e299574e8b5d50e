/**
 * Memory per entry of the in-process limiter and idempotency store, measured
 * in a child process started with --expose-gc:
 *
 *   node --expose-gc --import tsx bench/memory-probe.ts limiter|idempotency|store <count>
 *
 * heapUsed after a full GC with the structure filled, minus heapUsed after a
 * full GC with it empty, divided by the number of entries. Then the fake
 * clock moves past the window (limiter) or the TTL (idempotency store), the
 * structure is swept, and heapUsed after GC is compared with the empty
 * baseline: does the memory come back? Prints one JSON line.
 *
 * The idempotency figure is what the store adds per completed key: its Map
 * slot and entry (the request is kept only when the stored record does not
 * restate it); the MintRecord and the key string it holds are counted apart,
 * as the ledger keeps them anyway.
 */
import { MemoryIdempotencyStore } from "../src/adapters/memory/memory-idempotency-store.js";
import { MemoryRateLimiter } from "../src/adapters/memory/memory-rate-limiter.js";
import type { Clock } from "../src/domain/clock.js";
import type { MintRecord } from "../src/domain/model.js";
import { KEY_LENGTH, accountId } from "./frames.js";

/** A clock that moves only when told; timers never fire (nothing here waits). */
class ManualClock implements Clock {
  private now = 0;
  nowMs(): number {
    return this.now;
  }
  wallMs(): number {
    return Date.UTC(2026, 0, 1) + this.now;
  }
  setTimer(): () => void {
    return () => {};
  }
  advance(ms: number): void {
    this.now += ms;
  }
}

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  process.stderr.write("run with node --expose-gc\n");
  process.exit(2);
}

function heapAfterGc(): number {
  // Several passes: weak references and finalization settle over more than one.
  for (let i = 0; i < 4; i++) (gc as () => void)();
  return process.memoryUsage().heapUsed;
}

export interface MemoryFigure {
  readonly structure: "limiter" | "idempotency";
  readonly entries: number;
  /** What each entry holds, in words. */
  readonly shape: string;
  readonly baselineHeapBytes: number;
  readonly filledHeapBytes: number;
  readonly bytesPerEntry: number;
  readonly afterExpiryHeapBytes: number;
  /** (afterExpiry - baseline) / baseline. */
  readonly afterExpiryVsBaseline: number;
  /** Whether the heap came back within 10% of its baseline. */
  readonly returnsWithin10Pct: boolean;
  /** (afterExpiry - baseline) / (filled - baseline): the share of the growth still held. */
  readonly residualOfGrowth: number;
  readonly sweptEntries: number;
  readonly fillSeconds: number;
}

// Strings built from digits, so each entry owns its own (flat) string as in the service.
const ids = (n: number): string => accountId(n % 1_000_000) + (n >= 1_000_000 ? "-" + Math.floor(n / 1_000_000) : "");
const keyOf = (n: number): string => "k" + String(n).padStart(KEY_LENGTH - 1, "0");

async function limiter(count: number, mintsPerAccount: number): Promise<MemoryFigure> {
  const clock = new ManualClock();
  const windowMs = 1000;
  // The service's default limit (10): a full ring holds 10 timestamps.
  const lim = new MemoryRateLimiter({ limit: 10, windowMs, clock });
  // Account ids are kept by the caller anyway in the service (they arrive in
  // the request); here they are created before the baseline so that only the
  // limiter's own memory is counted... but the Map keeps them alive, so make
  // them before and keep them referenced throughout.
  const accounts = Array.from({ length: count }, (_, i) => ids(i));
  const baseline = heapAfterGc();
  const t0 = performance.now();
  for (let m = 0; m < mintsPerAccount; m++) {
    for (let i = 0; i < count; i++) {
      const d = await lim.tryAcquire(accounts[i] as string);
      if (!d.allowed) throw new Error("limiter refused during fill");
    }
    clock.advance(0.001);
  }
  const fillSeconds = (performance.now() - t0) / 1000;
  const filled = heapAfterGc();
  if (lim.accountCount() !== count) throw new Error(`limiter holds ${lim.accountCount()} accounts, expected ${count}`);
  clock.advance(windowMs * 2 + 1);
  const swept = await lim.sweepIdle();
  const after = heapAfterGc();
  if (accounts.length !== count) throw new Error("unreachable");
  return {
    structure: "limiter",
    entries: count,
    shape: `limit 10, window 1s, ${mintsPerAccount} mint(s) per account; account id strings excluded (the caller holds them)`,
    baselineHeapBytes: baseline,
    filledHeapBytes: filled,
    bytesPerEntry: (filled - baseline) / count,
    afterExpiryHeapBytes: after,
    afterExpiryVsBaseline: (after - baseline) / baseline,
    returnsWithin10Pct: Math.abs(after - baseline) / baseline <= 0.1,
    residualOfGrowth: (after - baseline) / (filled - baseline),
    sweptEntries: swept,
    fillSeconds,
  };
}

async function idempotency(count: number): Promise<MemoryFigure & { recordBytesPerEntry: number }> {
  const clock = new ManualClock();
  const ttlMs = 24 * 3_600_000;
  const store = new MemoryIdempotencyStore({ ttlMs, maxKeys: count + 1, clock });
  const empty = heapAfterGc();
  // The records (and the key and account strings in them) exist in the service
  // whether or not the store keeps them: the ledger holds every mint. They are
  // made before the baseline, so the figure is what the store itself adds.
  const mintIdChars = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
  const records: MintRecord[] = new Array(count);
  for (let i = 0; i < count; i++) {
    // A 26-character id body, distinct per mint, as the service's id generator makes.
    let body = "";
    for (let j = 0, n = i; j < 26; j++, n = Math.floor(n / 32)) body = (mintIdChars[(n + j * 7) % 32] as string) + body;
    records[i] = {
      mintId: "mint_" + body,
      seq: i + 1,
      accountId: ids(i % 10_000),
      amountMicros: 1_500_000n,
      blockchain: "ETHEREUM",
      status: "COMPLETED",
      idempotencyKey: keyOf(i),
      createWallMs: clock.wallMs(),
      reverseWallMs: null,
      reverseReason: "",
    };
  }
  const baseline = heapAfterGc();
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    const mint = records[i] as MintRecord;
    // The request as the core builds it from the decoded call: fresh strings.
    const request = { account_id: ids(i % 10_000), amount: "1500000", blockchain: "ETHEREUM" };
    const begun = await store.begin("mint", mint.idempotencyKey, request, Infinity);
    if (!begun.ok || begun.value.kind !== "claimed") throw new Error("begin did not claim");
    await store.complete(begun.value.claim, { scope: "mint", mint });
  }
  const fillSeconds = (performance.now() - t0) / 1000;
  const filled = heapAfterGc();
  if ((await store.size()) !== count) throw new Error("store size mismatch");
  clock.advance(ttlMs + 1);
  let swept = 0;
  for (;;) {
    const n = await store.sweepExpired(100_000);
    swept += n;
    if (n === 0) break;
  }
  const after = heapAfterGc();
  if (records.length !== count) throw new Error("unreachable");
  return {
    structure: "idempotency",
    entries: count,
    shape: "completed mint keys (19-char key): map slot and entry (with its expiry); the MintRecord and its key string are held by the ledger and counted apart (recordBytesPerEntry)",
    baselineHeapBytes: baseline,
    filledHeapBytes: filled,
    bytesPerEntry: (filled - baseline) / count,
    recordBytesPerEntry: (baseline - empty) / count,
    afterExpiryHeapBytes: after,
    afterExpiryVsBaseline: (after - baseline) / baseline,
    returnsWithin10Pct: Math.abs(after - baseline) / baseline <= 0.1,
    residualOfGrowth: (after - baseline) / (filled - baseline),
    sweptEntries: swept,
    fillSeconds,
  };
}

/**
 * Live heap kept per completed mint by the whole memory store, as the
 * service runs it: MintCore over the memory ledger, key store and limiter,
 * with the audit journal (sealed, as every read sees it) and the ledger's
 * event feed. Everything a mint leaves behind counts, its key and account
 * strings included (in the service they arrive with the request and the
 * records keep them). Nothing expires here: this is what a mint costs while
 * its key replays.
 */
async function store(count: number): Promise<{ structure: "store"; entries: number; shape: string; baselineHeapBytes: number; filledHeapBytes: number; bytesPerEntry: number; fillSeconds: number; journalRecords: number }> {
  const clock = new ManualClock();
  const { MintCore } = await import("../src/domain/mint-core.js");
  const { MemoryExactlyOnceStore } = await import("../src/adapters/memory/memory-exactly-once-store.js");
  const { MemoryLedgerStore } = await import("../src/adapters/memory/memory-ledger-store.js");
  const memoryStore = new MemoryExactlyOnceStore(new MemoryLedgerStore({ clock }), new MemoryIdempotencyStore({ ttlMs: 24 * 3_600_000, maxKeys: count + 10_001, clock }), clock);
  const core = new MintCore({
    store: memoryStore,
    limiter: new MemoryRateLimiter({ limit: 1_000_000, windowMs: 1000, clock }),
    clock,
    maxAmountMicros: 10n ** 18n,
  });
  // Warm the paths (and the accounts' limiter rings) before the baseline, then measure the next `count` mints.
  const ACCOUNTS = 10_000;
  const mint = async (i: number): Promise<void> => {
    const r = await core.mintUsdc({ accountId: ids(i % ACCOUNTS), amount: "1.5", blockchain: "ETHEREUM", idempotencyKey: keyOf(i) }, { deadlineMs: Infinity });
    if (!r.ok) throw new Error("mint failed: " + JSON.stringify(r.error));
    // A second per mint: each account's limiter window holds its one latest mint, as in a service at any steady rate.
    clock.advance(1);
  };
  for (let i = 0; i < ACCOUNTS; i++) await mint(count + i);
  const audit = memoryStore.audit as { sealAll?: () => unknown; readOne(seq: number): Promise<unknown> };
  // Sealed before each reading, as any read of the journal would.
  await audit.readOne(1);
  const baseline = heapAfterGc();
  const t0 = performance.now();
  for (let i = 0; i < count; i++) await mint(i);
  const fillSeconds = (performance.now() - t0) / 1000;
  await audit.readOne(1);
  const filled = heapAfterGc();
  return {
    structure: "store",
    entries: count,
    shape: "completed mints (19-char keys, 10,000 accounts): ledger record, key, journal record (sealed), ledger events, limiter ring",
    baselineHeapBytes: baseline,
    filledHeapBytes: filled,
    bytesPerEntry: (filled - baseline) / count,
    fillSeconds,
    journalRecords: memoryStore.audit.size,
  };
}

async function main(): Promise<void> {
  const [what, countText, mintsText] = process.argv.slice(2);
  const count = Number(countText);
  if (!Number.isSafeInteger(count) || count < 1) throw new Error("usage: memory-probe.ts limiter|idempotency|store <count> [mints-per-account]");
  const result =
    what === "limiter" ? await limiter(count, Number(mintsText ?? 1)) : what === "idempotency" ? await idempotency(count) : what === "store" ? await store(count) : null;
  if (result === null) throw new Error(`unknown structure ${what}`);
  process.stdout.write(JSON.stringify(result) + "\n");
}

main().catch((e: unknown) => {
  process.stderr.write(String(e instanceof Error ? e.stack : e) + "\n");
  process.exit(1);
});
