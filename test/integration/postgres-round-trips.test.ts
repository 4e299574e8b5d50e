/**
 * Round trips the PostgreSQL store makes per call, counted at the driver:
 * every `query` a pooled client sends is one round trip (pg sends one
 * message batch and waits for its reply). Also: reconcile answers from the
 * reversal's own commit, with no key delete after it (issue 7 defect 6).
 * Issue 16: a page of mints' settlements is one query.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { openPostgresStores, type PostgresStores } from "../../src/adapters/postgres/index.js";
import { MemoryRateLimiter } from "../../src/adapters/memory/memory-rate-limiter.js";
import { UnavailableError } from "../../src/domain/errors.js";
import { MintCore } from "../../src/domain/mint-core.js";
import type { Settlement } from "../../src/domain/settlement/ports.js";
import { noSettlement, settlementReads } from "../../src/settlement-runtime.js";
import { FakeClock } from "../support/fake-clock.js";
import { createTestDatabase, type TestDatabase } from "../support/pg-test-database.js";

const NO_DEADLINE = { deadlineMs: Infinity };

let db: TestDatabase;
let stores: PostgresStores;
let core: MintCore;

beforeAll(async () => {
  db = await createTestDatabase();
  const clock = new FakeClock();
  // The journal's insert rides in the change's own statement (no round trip of its own); the
  // sealer's passes run on their own connection and would be counted here, so it is off.
  stores = await openPostgresStores({ url: db.url, poolSize: 2, statementTimeoutMs: 5_000, connectTimeoutMs: 5_000, idempotencyTtlMs: 60_000, clock, auditJournal: false });
  core = new MintCore({ store: stores.store, limiter: new MemoryRateLimiter({ limit: 1000, windowMs: 1000, clock }), clock, maxAmountMicros: 10n ** 18n });
});

afterAll(async () => {
  await stores.close();
  await db.drop();
});

/** Counts the queries pooled clients send while `fn` runs. */
async function roundTrips(fn: () => unknown): Promise<number> {
  const spy = vi.spyOn(pg.Client.prototype, "query");
  try {
    await fn();
    return spy.mock.calls.length;
  } finally {
    spy.mockRestore();
  }
}

describe("PostgreSQL round trips", () => {
  it("a transfer is one transaction of 6 round trips (was 7: the new-account insert now rides with the lock)", async () => {
    await core.mintUsdc({ accountId: "rt-a", amount: "10", blockchain: "ETHEREUM", idempotencyKey: "rt-m" }, NO_DEADLINE);
    const n = await roundTrips(() =>
      core.transfer({ fromAccountId: "rt-a", toAccountId: "rt-new", amount: "1", idempotencyKey: "rt-t1" }, NO_DEADLINE),
    );
    // BEGIN+timeouts, claim, SAVEPOINT+timeouts, create-and-lock accounts, transfer+result, COMMIT.
    expect(n).toBe(6);
    expect((await core.getBalance("rt-new")).ok && (await stores.store.getBalance("rt-new"))).toBe(1_000_000n);
  });

  it("a mint is 6 round trips", async () => {
    const n = await roundTrips(() => core.mintUsdc({ accountId: "rt-b", amount: "1", blockchain: "ETHEREUM", idempotencyKey: "rt-m2" }, NO_DEADLINE));
    // The 5 of before issue 12, plus raising supply under the reserve check
    // (its own statement: the supply row must be locked after the account row).
    expect(n).toBe(6);
  });

  it("reconcile is one transaction and nothing after its commit: a key-store failure cannot turn a done reversal into UNAVAILABLE (defect 6)", async () => {
    const m = await core.mintUsdc({ accountId: "rt-c", amount: "2", blockchain: "ETHEREUM", idempotencyKey: "rt-m3" }, NO_DEADLINE);
    if (!m.ok) throw new Error(m.error.code);
    // Before, the core called idempotency.forget after the reversal committed.
    const forget = vi.spyOn(stores.idempotency, "forget").mockRejectedValue(new UnavailableError("connection lost after the commit"));
    try {
      let result: Awaited<ReturnType<MintCore["reconcileMint"]>> | undefined;
      const n = await roundTrips(async () => {
        result = await core.reconcileMint(m.value.mint.mintId, "reorg", NO_DEADLINE);
      });
      expect(result).toMatchObject({ ok: true, value: { status: "REVERSED" } });
      expect(forget).not.toHaveBeenCalled();
      // BEGIN+timeouts, lock the mint, free its key, debit, reverse, COMMIT.
      expect(n).toBe(6);
    } finally {
      forget.mockRestore();
    }
    // The key was freed in the reversal's transaction: the same key mints afresh.
    const again = await core.mintUsdc({ accountId: "rt-c", amount: "2", blockchain: "ETHEREUM", idempotencyKey: "rt-m3" }, NO_DEADLINE);
    expect(again).toMatchObject({ ok: true, value: { replayed: false } });
  });

  it("issue 16: the settlements of a ListMints page are one round trip, whatever the page size (was 2 per mint)", async () => {
    const outbox = stores.settlementOutbox();
    const ids = Array.from({ length: 40 }, (_, i) => `rt-settle-${i}`);
    for (const [i, id] of ids.entries()) {
      await outbox.enqueue({ settlementId: id, blockchain: "ETHEREUM", amountMicros: BigInt(i + 1), createWallMs: 1_700_000_000_000 });
      if (i % 2 === 0) {
        const tx = (n: number) => ({ hash: `0x${(i * 10 + n).toString(16).padStart(64, "0")}` as const, raw: "0x02" as const, nonce: i, maxFeePerGas: 2n ** 70n + BigInt(n), maxPriorityFeePerGas: 1n, signedWallMs: 1_700_000_000_000 + n });
        await outbox.recordSigned(id, tx(1), 1_700_000_000_001);
        await outbox.recordReplacement(id, tx(2), 1_700_000_000_002);
      }
    }
    const reads = settlementReads(noSettlement, outbox);
    let found = new Map<string, Settlement>();
    const batched = await roundTrips(async () => {
      found = await reads.getMany([...ids, "rt-settle-missing"]);
    });
    expect(batched).toBe(1);
    expect(found.size).toBe(40);
    // The same settlements as one lookup per mint gives (fees beyond 2^53 intact).
    for (const id of ids) expect(found.get(id)).toEqual(await outbox.get(id));
    expect(found.get("rt-settle-0")?.txs.map((t) => t.maxFeePerGas)).toEqual([2n ** 70n + 1n, 2n ** 70n + 2n]);
    // What the handlers did before: one get per mint, two round trips each.
    const oneByOne = await roundTrips(() => Promise.all(ids.map((id) => outbox.get(id))));
    expect(oneByOne).toBe(80);
  });
});

describe("PostgreSQL round trips with group commit", () => {
  it("a lone transfer and a lone mint are one round trip each (one statement, its own transaction)", async () => {
    const clock = new FakeClock();
    const grouped = await openPostgresStores({
      url: db.url,
      poolSize: 2,
      statementTimeoutMs: 5_000,
      connectTimeoutMs: 5_000,
      idempotencyTtlMs: 60_000,
      clock,
      auditJournal: false,
      groupCommit: { maxItems: 64, waitMs: 1, groupsInFlight: 1 },
    });
    try {
      const c = new MintCore({ store: grouped.store, limiter: new MemoryRateLimiter({ limit: 1000, windowMs: 1000, clock }), clock, maxAmountMicros: 10n ** 18n });
      let minted: Awaited<ReturnType<MintCore["mintUsdc"]>> | undefined;
      expect(await roundTrips(async () => {
        minted = await c.mintUsdc({ accountId: "rt-g", amount: "10", blockchain: "ETHEREUM", idempotencyKey: "rt-gm" }, NO_DEADLINE);
      })).toBe(1);
      expect(minted).toMatchObject({ ok: true, value: { replayed: false } });
      let moved: Awaited<ReturnType<MintCore["transfer"]>> | undefined;
      expect(await roundTrips(async () => {
        moved = await c.transfer({ fromAccountId: "rt-g", toAccountId: "rt-g-new", amount: "1", idempotencyKey: "rt-gt" }, NO_DEADLINE);
      })).toBe(1);
      expect(moved).toMatchObject({ ok: true, value: { replayed: false } });
      expect(await grouped.store.getBalance("rt-g-new")).toBe(1_000_000n);
      // A replay is one round trip too.
      expect(await roundTrips(() => c.transfer({ fromAccountId: "rt-g", toAccountId: "rt-g-new", amount: "1", idempotencyKey: "rt-gt" }, NO_DEADLINE))).toBe(1);
    } finally {
      await grouped.close();
    }
  });
});
