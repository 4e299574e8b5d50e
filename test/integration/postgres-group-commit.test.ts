/**
 * Group commit on PostgreSQL: concurrent mints and transfers of one replica
 * share one transaction and one round trip, each with its own answer; a
 * refused item leaves the others committed and its key free; a group
 * PostgreSQL refuses as a whole falls back to one call at a time; a lone
 * call waits for nothing. Also the mint seq that allows many mints per
 * transaction, migrated on a database filled before it.
 */
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { MIGRATIONS, openPostgresStores, runMigrations, type PostgresStores } from "../../src/adapters/postgres/index.js";
import { MemoryRateLimiter } from "../../src/adapters/memory/memory-rate-limiter.js";
import { MintCore } from "../../src/domain/mint-core.js";
import { decodePageToken, encodePageToken } from "../../src/domain/page-token.js";
import { UnavailableError } from "../../src/domain/errors.js";
import { realSleep } from "../contract/stores-under-test.js";
import { FakeClock } from "../support/fake-clock.js";
import { PgRelay } from "../support/pg-relay.js";
import { createTestDatabase, testClient, type TestDatabase } from "../support/pg-test-database.js";

const NO_DEADLINE = { deadlineMs: Infinity };
const USDC = 1_000_000n;
const journal = (action: string) => ({ actor: "ops", action, idempotencyKey: null, request: {}, accounts: [] });

interface Replica {
  readonly stores: PostgresStores;
  readonly core: MintCore;
  readonly clock: FakeClock;
  readonly limiter: MemoryRateLimiter;
}

let db: TestDatabase;
const opened: Replica[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
});

afterEach(async () => {
  for (const r of opened.splice(0)) await r.stores.close().catch(() => undefined);
});

afterAll(async () => {
  await db.drop();
});

async function replica(
  url = db.url,
  opts: { groupsInFlight?: number; maxItems?: number; waitMs?: number; rateLimit?: number; reserveRequired?: boolean; journal?: boolean; connectTimeoutMs?: number } = {},
): Promise<Replica> {
  const clock = new FakeClock();
  const stores = await openPostgresStores({
    url,
    poolSize: 4,
    statementTimeoutMs: 5_000,
    connectTimeoutMs: opts.connectTimeoutMs ?? 5_000,
    idempotencyTtlMs: 60_000,
    clock,
    // The sealer's passes run on pooled connections too: off where statements are counted.
    auditJournal: opts.journal !== false,
    groupCommit: { maxItems: opts.maxItems ?? 64, waitMs: opts.waitMs ?? 0, groupsInFlight: opts.groupsInFlight ?? 1 },
  });
  const limiter = new MemoryRateLimiter({ limit: opts.rateLimit ?? 1_000_000, windowMs: 1000, clock });
  const core = new MintCore({ store: stores.store, limiter, clock, maxAmountMicros: 10n ** 18n, reserveRequired: opts.reserveRequired === true });
  const r = { stores, core, clock, limiter };
  opened.push(r);
  return r;
}

/** Counts the statements pooled clients send while `fn` runs (each is one round trip). */
async function statements<T>(fn: () => T | Promise<T>): Promise<{ n: number; out: T }> {
  const spy = vi.spyOn(pg.Client.prototype, "query");
  try {
    const out = await fn();
    return { n: spy.mock.calls.length, out };
  } finally {
    spy.mockRestore();
  }
}

async function balance(r: Replica, accountId: string): Promise<bigint> {
  return r.stores.store.getBalance(accountId);
}

async function sumOfEntries(accountId: string): Promise<bigint> {
  const res = await db.query<{ s: string }>("SELECT COALESCE(SUM(amount), 0)::text AS s FROM ledger_entries WHERE account_id = $1", [accountId]);
  return BigInt(res.rows[0]?.s ?? "0");
}

describe("group commit", () => {
  it("a lone transfer is one round trip, and concurrent ones on a hot account share one transaction, each with its own answer", async () => {
    const r = await replica(db.url, { journal: false });
    await r.core.mintUsdc({ accountId: "hot", amount: "100", blockchain: "ETHEREUM", idempotencyKey: "g1-m" }, NO_DEADLINE);
    const lone = await statements(() => r.core.transfer({ fromAccountId: "hot", toAccountId: "g1-new", amount: "1", idempotencyKey: "g1-t0" }, NO_DEADLINE));
    expect(lone.n).toBe(1);
    expect(lone.out).toMatchObject({ ok: true, value: { replayed: false } });

    const xacts = await db.query<{ n: string }>("SELECT xact_commit::text AS n FROM pg_stat_database WHERE datname = current_database()");
    const many = await statements(() =>
      Promise.all(Array.from({ length: 20 }, (_, i) => Promise.resolve(r.core.transfer({ fromAccountId: "hot", toAccountId: `g1-to-${i % 5}`, amount: "2", idempotencyKey: `g1-t${i + 1}` }, NO_DEADLINE)))),
    );
    // Sent in one turn of the event loop: they leave together, one statement.
    expect(many.n).toBe(1);
    const ids = new Set<string>();
    for (const t of many.out) {
      expect(t.ok && !t.value.replayed).toBe(true);
      if (t.ok) ids.add(t.value.transfer.transferId);
    }
    expect(ids.size).toBe(20);
    expect(await balance(r, "hot")).toBe(100n * USDC - 1n * USDC - 40n * USDC);
    for (let k = 0; k < 5; k++) expect(await balance(r, `g1-to-${k}`)).toBe(8n * USDC);
    expect(await sumOfEntries("hot")).toBe(59n * USDC);
    const keys = await db.query<{ n: string }>("SELECT count(*)::text AS n FROM idempotency_keys WHERE scope = 'transfer' AND key LIKE 'g1-t%' AND state = 'completed'");
    expect(keys.rows[0]?.n).toBe("21");
    const after = await db.query<{ n: string }>("SELECT xact_commit::text AS n FROM pg_stat_database WHERE datname = current_database()");
    expect(Number(after.rows[0]?.n) - Number(xacts.rows[0]?.n)).toBeLessThan(20);
    // Each answer replays as it was given.
    const again = await r.core.transfer({ fromAccountId: "hot", toAccountId: "g1-to-3", amount: "2", idempotencyKey: "g1-t4" }, NO_DEADLINE);
    expect(again.ok && again.value.replayed && again.value.transfer.transferId).toBe(many.out[3]?.ok && many.out[3].value.transfer.transferId);
  });

  it("a refused item leaves the others committed, its key free and nothing of its own written", async () => {
    const r = await replica();
    await r.core.mintUsdc({ accountId: "g2-a", amount: "5", blockchain: "ETHEREUM", idempotencyKey: "g2-m1" }, NO_DEADLINE);
    await r.core.mintUsdc({ accountId: "g2-ice", amount: "5", blockchain: "ETHEREUM", idempotencyKey: "g2-m2" }, NO_DEADLINE);
    expect((await r.stores.store.setFrozen("g2-ice", true, "court order", journal("FreezeAccount"), NO_DEADLINE)).ok).toBe(true);
    // Sent in one turn: one group, applied in arrival order.
    const blocker = r.core.transfer({ fromAccountId: "g2-a", toAccountId: "g2-b", amount: "1", idempotencyKey: "g2-t0" }, NO_DEADLINE);
    const calls = await Promise.all([
      blocker,
      r.core.transfer({ fromAccountId: "g2-a", toAccountId: "g2-b", amount: "3", idempotencyKey: "g2-t1" }, NO_DEADLINE),
      r.core.transfer({ fromAccountId: "g2-a", toAccountId: "g2-fresh", amount: "2", idempotencyKey: "g2-t2" }, NO_DEADLINE),
      r.core.transfer({ fromAccountId: "g2-a", toAccountId: "g2-ice", amount: "1", idempotencyKey: "g2-t3" }, NO_DEADLINE),
      r.core.transfer({ fromAccountId: "g2-nobody", toAccountId: "g2-b", amount: "1", idempotencyKey: "g2-t4" }, NO_DEADLINE),
      r.core.transfer({ fromAccountId: "g2-b", toAccountId: "g2-c", amount: "4", idempotencyKey: "g2-t5" }, NO_DEADLINE),
      r.core.mintUsdc({ accountId: "g2-ice", amount: "1", blockchain: "ETHEREUM", idempotencyKey: "g2-m3" }, NO_DEADLINE),
    ]);
    expect(calls.map((c) => (c.ok ? "ok" : c.error.code))).toEqual(["ok", "ok", "INSUFFICIENT_FUNDS", "ACCOUNT_FROZEN", "INSUFFICIENT_FUNDS", "ok", "ACCOUNT_FROZEN"]);
    // Later items saw what earlier ones left: g2-b got 1 + 3 and sent 4 on.
    expect([await balance(r, "g2-a"), await balance(r, "g2-b"), await balance(r, "g2-c"), await balance(r, "g2-ice")]).toEqual([1n * USDC, 0n, 4n * USDC, 5n * USDC]);
    const stray = await db.query("SELECT 1 FROM accounts WHERE account_id IN ('g2-fresh', 'g2-nobody')");
    expect(stray.rowCount).toBe(0);
    const freed = await db.query("SELECT key FROM idempotency_keys WHERE key IN ('g2-t2', 'g2-t3', 'g2-t4', 'g2-m3')");
    expect(freed.rowCount).toBe(0);
    // Each applied item journaled with its own key, the refused ones not at all.
    const journaled = await db.query<{ k: string }>("SELECT idempotency_key AS k FROM audit_journal WHERE idempotency_key LIKE 'g2-%' ORDER BY record_id");
    expect(journaled.rows.map((x) => x.k)).toEqual(["g2-m1", "g2-m2", "g2-t0", "g2-t1", "g2-t5"]);
    // A refused key is free: the same key with money now there applies.
    await r.core.mintUsdc({ accountId: "g2-a", amount: "1", blockchain: "ETHEREUM", idempotencyKey: "g2-m4" }, NO_DEADLINE);
    const retried = await r.core.transfer({ fromAccountId: "g2-a", toAccountId: "g2-fresh", amount: "2", idempotencyKey: "g2-t2" }, NO_DEADLINE);
    expect(retried).toMatchObject({ ok: true, value: { replayed: false } });
    expect(await balance(r, "g2-fresh")).toBe(2n * USDC);
  });

  it("one key twice in a group: the same request replays, another is IDEMPOTENCY_KEY_REUSED, and a completed key replays", async () => {
    const r = await replica();
    await r.core.mintUsdc({ accountId: "g3-a", amount: "10", blockchain: "ETHEREUM", idempotencyKey: "g3-m" }, NO_DEADLINE);
    const calls = await Promise.all([
      r.core.transfer({ fromAccountId: "g3-a", toAccountId: "g3-b", amount: "1", idempotencyKey: "g3-t0" }, NO_DEADLINE),
      r.core.transfer({ fromAccountId: "g3-a", toAccountId: "g3-b", amount: "2", idempotencyKey: "g3-t1" }, NO_DEADLINE),
      r.core.transfer({ fromAccountId: "g3-a", toAccountId: "g3-b", amount: "2", idempotencyKey: "g3-t1" }, NO_DEADLINE),
      r.core.transfer({ fromAccountId: "g3-a", toAccountId: "g3-b", amount: "3", idempotencyKey: "g3-t1" }, NO_DEADLINE),
      r.core.mintUsdc({ accountId: "g3-a", amount: "10", blockchain: "ETHEREUM", idempotencyKey: "g3-m" }, NO_DEADLINE),
      r.core.mintUsdc({ accountId: "g3-a", amount: "11", blockchain: "ETHEREUM", idempotencyKey: "g3-m" }, NO_DEADLINE),
    ]);
    expect(calls.map((c) => (c.ok ? (c.value.replayed ? "replay" : "ok") : c.error.code))).toEqual(["ok", "ok", "replay", "IDEMPOTENCY_KEY_REUSED", "replay", "IDEMPOTENCY_KEY_REUSED"]);
    const [, first, second] = calls;
    expect(first?.ok && second?.ok && "transfer" in first.value && "transfer" in second.value && first.value.transfer.transferId === second.value.transfer.transferId).toBe(true);
    expect(await balance(r, "g3-b")).toBe(3n * USDC);
  });

  it("mints in one transaction get distinct seqs in arrival order, supply rises once, the reserve refuses what exceeds it", async () => {
    // A database of its own: the reserve set here would refuse the other tests' mints.
    const own = await createTestDatabase();
    try {
      await reserveGroup(await replica(own.url, { reserveRequired: true }));
    } finally {
      for (const r of opened.splice(0)) await r.stores.close().catch(() => undefined);
      await own.drop();
    }
  });

  async function reserveGroup(r: Replica): Promise<void> {
    const refusedFirst = await r.core.mintUsdc({ accountId: "g4-a", amount: "1", blockchain: "ETHEREUM", idempotencyKey: "g4-m0" }, NO_DEADLINE);
    expect(refusedFirst.ok ? "ok" : refusedFirst.error.code).toBe("RESERVE_NOT_SET");
    const supply0 = (await r.stores.store.getSupply()).supplyMicros;
    expect((await r.stores.store.setReserve(supply0 + 10n * USDC, "att-1", journal("SetReserve"), NO_DEADLINE)).ok).toBe(true);
    const mints = await Promise.all(
      [4, 3, 5, 2, 1].map((amount, i) => Promise.resolve(r.core.mintUsdc({ accountId: `g4-${i % 2}`, amount: String(amount), blockchain: "ETHEREUM", idempotencyKey: `g4-m${i + 1}` }, NO_DEADLINE))),
    );
    // In arrival order: 4 and 3 fit, 5 exceeds the 3 left, 2 and 1 fit.
    expect(mints.map((m) => (m.ok ? "ok" : m.error.code))).toEqual(["ok", "ok", "RESERVE_EXCEEDED", "ok", "ok"]);
    const refused = mints[2];
    expect(refused !== undefined && !refused.ok && refused.error).toMatchObject({ code: "RESERVE_EXCEEDED", supplyMicros: supply0 + 7n * USDC, requestedMicros: 5n * USDC });
    expect((await r.stores.store.getSupply()).supplyMicros).toBe(supply0 + 10n * USDC);
    const seqs = mints.flatMap((m) => (m.ok ? [m.value.mint.seq] : []));
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    expect(new Set(seqs).size).toBe(4);
    // The four mints of the group share a transaction id: consecutive seqs.
    expect(seqs.slice(1).map((q, k) => q - (seqs[k] as number))).toEqual([1, 1, 1]);
    const listed = await r.core.listMints({ accountId: "", pageSize: 100, pageToken: "" });
    expect(listed.ok && listed.value.mints.filter((m) => m.mintId.length > 0 && seqs.includes(m.seq)).map((m) => m.seq)).toEqual(seqs);
    // The stored results carry the seqs.
    const replay = await r.core.mintUsdc({ accountId: "g4-1", amount: "2", blockchain: "ETHEREUM", idempotencyKey: "g4-m4" }, NO_DEADLINE);
    expect(replay.ok && replay.value.replayed && replay.value.mint.seq).toBe(seqs[2]);
  }

  it("a replay in a group does not count against the rate limit", async () => {
    const r = await replica(db.url, { rateLimit: 2 });
    const first = await r.core.mintUsdc({ accountId: "g5-a", amount: "1", blockchain: "ETHEREUM", idempotencyKey: "g5-m1" }, NO_DEADLINE);
    expect(first.ok).toBe(true);
    const replays = await Promise.all([1, 2, 3].map(() => Promise.resolve(r.core.mintUsdc({ accountId: "g5-a", amount: "1", blockchain: "ETHEREUM", idempotencyKey: "g5-m1" }, NO_DEADLINE))));
    expect(replays.every((x) => x.ok && x.value.replayed)).toBe(true);
    const second = await r.core.mintUsdc({ accountId: "g5-a", amount: "1", blockchain: "ETHEREUM", idempotencyKey: "g5-m2" }, NO_DEADLINE);
    expect(second).toMatchObject({ ok: true, value: { replayed: false } });
    const third = await r.core.mintUsdc({ accountId: "g5-a", amount: "1", blockchain: "ETHEREUM", idempotencyKey: "g5-m3" }, NO_DEADLINE);
    expect(third.ok ? "ok" : third.error.code).toBe("RATE_LIMITED");
  });

  it("a group PostgreSQL refuses as a whole (a key held past the lock timeout) falls back to one call at a time", async () => {
    const r = await replica();
    await r.core.mintUsdc({ accountId: "g6-a", amount: "10", blockchain: "ETHEREUM", idempotencyKey: "g6-m" }, NO_DEADLINE);
    // Another replica's claim of g6-t2, still in flight.
    const held = await r.stores.idempotency.begin("transfer", "g6-t2", { amount: "1", from_account_id: "g6-a", to_account_id: "g6-b" }, Infinity);
    expect(held.ok && held.value.kind).toBe("claimed");
    try {
      const calls = Promise.all([
        r.core.transfer({ fromAccountId: "g6-a", toAccountId: "g6-b", amount: "1", idempotencyKey: "g6-t1" }, NO_DEADLINE),
        r.core.transfer({ fromAccountId: "g6-a", toAccountId: "g6-b", amount: "1", idempotencyKey: "g6-t2" }, { deadlineMs: r.clock.nowMs() + 300 }),
        r.core.transfer({ fromAccountId: "g6-a", toAccountId: "g6-b", amount: "1", idempotencyKey: "g6-t3" }, NO_DEADLINE),
      ]);
      const out = await calls;
      expect(out.map((c) => (c.ok ? "ok" : c.error.code))).toEqual(["ok", "IDEMPOTENCY_KEY_IN_USE", "ok"]);
    } finally {
      if (held.ok && held.value.kind === "claimed") await r.stores.idempotency.release(held.value.claim);
    }
    expect(await balance(r, "g6-b")).toBe(2n * USDC);
  });

  it("the same keys raced from two replicas apply once each", async () => {
    const [a, b] = [await replica(), await replica()];
    await a.core.mintUsdc({ accountId: "g7-src", amount: "1000", blockchain: "ETHEREUM", idempotencyKey: "g7-m" }, NO_DEADLINE);
    const calls = (r: Replica) =>
      Array.from({ length: 30 }, (_, i) => r.core.transfer({ fromAccountId: "g7-src", toAccountId: `g7-to-${i % 3}`, amount: "1", idempotencyKey: `g7-t${i}` }, NO_DEADLINE));
    const out = await Promise.all([...calls(a), ...calls(b)]);
    expect(out.every((x) => x.ok)).toBe(true);
    const applied = out.filter((x) => x.ok && !x.value.replayed).length;
    expect(applied).toBe(30);
    expect(await balance(a, "g7-src")).toBe(970n * USDC);
    const rows = await db.query<{ n: string }>("SELECT count(*)::text AS n FROM transfers WHERE idempotency_key LIKE 'g7-t%'");
    expect(rows.rows[0]?.n).toBe("30");
  });
});

describe("batches under group commit", () => {
  const t = (i: number, from = "b1-src") => ({ fromAccountId: from, toAccountId: `b1-to-${i % 3}`, amount: "1", idempotencyKey: `b1-t${i}` });
  const outcome = (x: { ok: boolean; value?: { replayed: boolean }; error?: { code: string } }): string => (x.ok ? (x.value?.replayed === true ? "replayed" : "ok") : (x.error?.code ?? ""));

  it("a BatchTransfer of N items takes ceil(N / MINT_PG_GROUP_MAX) statements and applies its items in request order", async () => {
    const r = await replica(db.url, { journal: false, maxItems: 8, groupsInFlight: 4 });
    await r.core.mintUsdc({ accountId: "b1-src", amount: "10", blockchain: "ETHEREUM", idempotencyKey: "b1-m" }, NO_DEADLINE);
    // Item 5's key already holds its result: it replays and moves nothing.
    expect(await r.core.transfer(t(5), NO_DEADLINE)).toMatchObject({ ok: true, value: { replayed: false } });
    const items = Array.from({ length: 20 }, (_, i) => t(i));
    const { n, out } = await statements(() => r.core.batchTransfer({ items, atomic: false }, { maxItems: 1000 }, NO_DEADLINE));
    expect(n).toBe(3);
    const got = out.ok ? out.value.items.map(outcome) : [];
    // Nine USDC left for the 19 new items: the first nine in request order apply, the rest find no funds.
    expect(got).toEqual([...Array<string>(5).fill("ok"), "replayed", ...Array<string>(4).fill("ok"), ...Array<string>(10).fill("INSUFFICIENT_FUNDS")]);
    expect(await balance(r, "b1-src")).toBe(0n);
    const rows = await db.query<{ n: string }>("SELECT count(*)::text AS n FROM transfers WHERE idempotency_key LIKE 'b1-t%'");
    expect(rows.rows[0]?.n).toBe("10");
  });

  it("a BatchMint keeps the limiter per account with replays mixed in, and its mints' seqs follow request order", async () => {
    const r = await replica(db.url, { journal: false, maxItems: 2, groupsInFlight: 4, rateLimit: 3 });
    const m = (accountId: string, key: string) => ({ accountId, amount: "1", blockchain: "ETHEREUM", idempotencyKey: key });
    expect(await r.core.mintUsdc(m("b2-a", "b2-k0"), NO_DEADLINE)).toMatchObject({ ok: true, value: { replayed: false } });
    // Limit 3 per window, one used: the replay counts nothing, two new ones fit, the third is refused.
    const items = [m("b2-a", "b2-k0"), m("b2-a", "b2-k1"), m("b2-b", "b2-k2"), m("b2-a", "b2-k3"), m("b2-a", "b2-k4"), m("b2-b", "b2-k5"), m("b2-a", "b2-k1")];
    const spy = vi.spyOn(pg.Client.prototype, "query");
    let groups = 0;
    const out = await r.core.batchMint({ items }, { maxItems: 1000 }, NO_DEADLINE).finally(() => {
      groups = spy.mock.calls.filter((c) => typeof c[0] === "string" && c[0].includes("ledger_group_apply")).length;
      spy.mockRestore();
    });
    const got = out.ok ? out.value : [];
    expect(got.map(outcome)).toEqual(["replayed", "ok", "ok", "ok", "RATE_LIMITED", "ok", "replayed"]);
    expect(got[4]).toMatchObject({ ok: false, error: { code: "RATE_LIMITED", accountId: "b2-a" } });
    const seqs = got.flatMap((x, i) => (x.ok && !x.value.replayed ? [[i, x.value.mint.seq] as const] : []));
    expect(seqs.map(([i]) => i)).toEqual([1, 2, 3, 5]);
    expect(seqs.map(([, q]) => q)).toEqual([...seqs.map(([, q]) => q)].sort((a, b) => a - b));
    expect(await balance(r, "b2-a")).toBe(3n * USDC);
    // Groups of two at most; what the limiter refuses is answered on the single-call path (a replay, or RATE_LIMITED).
    expect(groups).toBeLessThanOrEqual(Math.ceil(items.length / 2));
    expect(groups).toBeGreaterThanOrEqual(3);
  });
});

describe("the group queue", () => {
  /** Holds `accountId`'s row from a session of its own until the returned release; `blocked` says when a call waits on it. */
  async function holdRow(accountId: string): Promise<{ blocked(): Promise<boolean>; release(): Promise<void> }> {
    const c = testClient({ connectionString: db.url });
    await c.connect();
    await c.query("BEGIN");
    await c.query("SELECT 1 FROM accounts WHERE account_id = $1 FOR UPDATE", [accountId]);
    return {
      async blocked() {
        const res = await c.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'");
        return (res.rows[0]?.n ?? 0) > 0;
      },
      async release() {
        await c.query("ROLLBACK");
        await c.end();
      },
    };
  }

  async function until(what: string, check: () => Promise<boolean>): Promise<void> {
    for (let i = 0; !(await check()); i++) {
      if (i > 250) throw new Error(`timed out waiting for ${what}`);
      await realSleep(20);
    }
  }

  it("calls that arrive while the only group slot is busy queue, then leave together, at most MINT_PG_GROUP_MAX per group", async () => {
    const r = await replica(db.url, { journal: false, groupsInFlight: 1, maxItems: 3, waitMs: 1 });
    await r.core.mintUsdc({ accountId: "q1-held", amount: "10", blockchain: "ETHEREUM", idempotencyKey: "q1-m0" }, NO_DEADLINE);
    await r.core.mintUsdc({ accountId: "q1-src", amount: "10", blockchain: "ETHEREUM", idempotencyKey: "q1-m1" }, NO_DEADLINE);
    const hold = await holdRow("q1-held");
    const spy = vi.spyOn(pg.Client.prototype, "query");
    const groups = (): number => spy.mock.calls.filter((c) => typeof c[0] === "string" && c[0].includes("ledger_group_apply")).length;
    try {
      const first = r.core.transfer({ fromAccountId: "q1-held", toAccountId: "q1-x", amount: "1", idempotencyKey: "q1-t0" }, NO_DEADLINE);
      await until("the first group to wait for the held row", () => hold.blocked());
      const sent = groups();
      // Five calls in five turns of the event loop: the one slot is busy, so they queue.
      const later: Promise<unknown>[] = [];
      for (let i = 1; i <= 5; i++) {
        later.push(Promise.resolve(r.core.transfer({ fromAccountId: "q1-src", toAccountId: `q1-to-${i}`, amount: "1", idempotencyKey: `q1-t${i}` }, NO_DEADLINE)));
        await realSleep(5);
      }
      expect(groups()).toBe(sent);
      await hold.release();
      const out = (await Promise.all([first, ...later])) as { ok: boolean }[];
      expect(out.every((x) => x.ok)).toBe(true);
      // The five left as groups of at most 3: two statements.
      expect(groups() - sent).toBe(2);
    } finally {
      spy.mockRestore();
    }
    expect(await balance(r, "q1-src")).toBe(5n * USDC);
  });

  it("a queued call waits at most MINT_PG_GROUP_WAIT for others while a group is in flight, then takes a free slot", async () => {
    const r = await replica(db.url, { journal: false, groupsInFlight: 2, maxItems: 64, waitMs: 50 });
    await r.core.mintUsdc({ accountId: "q2-held", amount: "10", blockchain: "ETHEREUM", idempotencyKey: "q2-m0" }, NO_DEADLINE);
    await r.core.mintUsdc({ accountId: "q2-src", amount: "10", blockchain: "ETHEREUM", idempotencyKey: "q2-m1" }, NO_DEADLINE);
    const hold = await holdRow("q2-held");
    try {
      const first = r.core.transfer({ fromAccountId: "q2-held", toAccountId: "q2-x", amount: "1", idempotencyKey: "q2-t0" }, NO_DEADLINE);
      await until("the first group to wait for the held row", () => hold.blocked());
      let answered = false;
      const second = Promise.resolve(r.core.transfer({ fromAccountId: "q2-src", toAccountId: "q2-y", amount: "1", idempotencyKey: "q2-t1" }, NO_DEADLINE)).then((x) => {
        answered = true;
        return x;
      });
      await realSleep(100);
      // A slot is free, but a group is in flight: the call waits for company, on the store's clock.
      expect(answered).toBe(false);
      await r.clock.advance(50);
      expect(await second).toMatchObject({ ok: true, value: { replayed: false } });
      await hold.release();
      expect(await first).toMatchObject({ ok: true, value: { replayed: false } });
    } finally {
      await hold.release().catch(() => undefined);
    }
  });
});

describe("group commit when PostgreSQL goes away mid-group", () => {
  it("the calls of a group cut off mid-statement answer UNAVAILABLE; retried with their keys, each applies exactly once", async () => {
    const relay = new PgRelay();
    await relay.start();
    try {
      const direct = await replica();
      const r = await replica(relay.url(db.name), { connectTimeoutMs: 500 });
      await direct.core.mintUsdc({ accountId: "o-src", amount: "10", blockchain: "ETHEREUM", idempotencyKey: "o-m" }, NO_DEADLINE);
      // Another replica holds o-t1's key, so the group that carries it waits in PostgreSQL, mid-statement.
      const held = await direct.stores.idempotency.begin("transfer", "o-t1", { amount: "9", from_account_id: "o-src", to_account_id: "o-x" }, Infinity);
      if (!held.ok || held.value.kind !== "claimed") throw new Error("o-t1 not claimed");
      const transfer = (c: MintCore, i: number) => c.transfer({ fromAccountId: "o-src", toAccountId: "o-dst", amount: "1", idempotencyKey: `o-t${i}` }, NO_DEADLINE);
      const calls = Promise.allSettled([1, 2, 3].map((i) => Promise.resolve(transfer(r.core, i))));
      await realSleep(200);
      await relay.stop();
      const out = await calls;
      for (const c of out) {
        expect(c.status).toBe("rejected");
        if (c.status === "rejected") expect(c.reason).toBeInstanceOf(UnavailableError);
      }
      // The group still waiting in PostgreSQL goes on once the key is free: its caller never heard whether it committed.
      await direct.stores.idempotency.release(held.value.claim);
      await relay.start(relay.port);
      for (let tries = 0; !(await r.stores.probe.healthy()); tries++) {
        if (tries > 250) throw new Error("PostgreSQL did not come back through the relay");
        await realSleep(20);
      }
      const retried = await Promise.all([1, 2, 3].map((i) => Promise.resolve(transfer(r.core, i))));
      expect(retried.every((x) => x.ok)).toBe(true);
      expect(await balance(r, "o-src")).toBe(7n * USDC);
      expect(await balance(r, "o-dst")).toBe(3n * USDC);
      const rows = await db.query<{ k: string }>("SELECT idempotency_key AS k FROM transfers WHERE idempotency_key LIKE 'o-t%' ORDER BY 1");
      expect(rows.rows.map((x) => x.k)).toEqual(["o-t1", "o-t2", "o-t3"]);
    } finally {
      await relay.stop();
    }
  });
});

describe("the mint seq migration", () => {
  it("keeps page tokens handed out before it valid and orders the mints after it behind them", async () => {
    const filled = await createTestDatabase();
    try {
      const c = testClient({ connectionString: filled.url });
      await c.connect();
      try {
        await runMigrations(c, undefined, MIGRATIONS.filter((m) => m.version < 2801));
        // Mints as the one-mint-per-transaction schema numbered them (base + transaction id), one transaction each.
        for (let i = 0; i < 5; i++) {
          await c.query(
            `WITH a AS (INSERT INTO accounts (account_id, balance) VALUES ('old', $2) ON CONFLICT (account_id) DO UPDATE SET balance = accounts.balance + EXCLUDED.balance RETURNING 1)
             INSERT INTO mints (seq, mint_id, account_id, amount, blockchain, status, idempotency_key, create_time)
             SELECT b.base + pg_current_xact_id()::text::bigint, $1, 'old', $2, 'ETHEREUM', 'COMPLETED', $1, now() FROM mint_seq_base AS b, a`,
            [`mint_old_${i}`, 1_000_000],
          );
        }
        expect(await runMigrations(c)).toEqual(MIGRATIONS.filter((m) => m.version >= 2801).map((m) => m.version));
      } finally {
        await c.end();
      }
      const r = await replica(filled.url);
      const before = await r.core.listMints({ accountId: "", pageSize: 2, pageToken: "" });
      if (!before.ok) throw new Error(before.error.code);
      expect(before.value.mints.map((m) => m.mintId)).toEqual(["mint_old_0", "mint_old_1"]);
      // A token of an old seq, as a client kept it from before the migration.
      const token = before.value.nextPageToken;
      expect(decodePageToken(token, "")).toBe(before.value.mints[1]?.seq);
      const fresh = await Promise.all([0, 1, 2, 3].map((i) => Promise.resolve(r.core.mintUsdc({ accountId: "new", amount: "1", blockchain: "ETHEREUM", idempotencyKey: `mig-${i}` }, NO_DEADLINE))));
      const freshIds = fresh.map((m) => (m.ok ? m.value.mint.mintId : ""));
      const rest = await r.core.listMints({ accountId: "", pageSize: 100, pageToken: token });
      if (!rest.ok) throw new Error(rest.error.code);
      expect(rest.value.mints.map((m) => m.mintId)).toEqual(["mint_old_2", "mint_old_3", "mint_old_4", ...freshIds]);
      const seqs = rest.value.mints.map((m) => m.seq);
      expect([...seqs].sort((x, y) => x - y)).toEqual(seqs);
      // A token of a new seq pages on from it.
      const tail = await r.core.listMints({ accountId: "", pageSize: 100, pageToken: encodePageToken(seqs[3] as number, "") });
      expect(tail.ok && tail.value.mints.map((m) => m.mintId)).toEqual(freshIds.slice(1));
    } finally {
      for (const r of opened.splice(0)) await r.stores.close().catch(() => undefined);
      await filled.drop();
    }
  });
});
