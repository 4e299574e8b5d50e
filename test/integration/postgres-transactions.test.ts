/**
 * Every PostgreSQL transaction of the settlement outbox and the audit sealer
 * opens through the store's one helper: READ COMMITTED pinned (whatever the
 * database's default), lock_timeout, statement_timeout and the
 * idle-in-transaction bound set to the store's statement timeout. Checked
 * from inside each transaction on a database whose default is SERIALIZABLE.
 * And one lock order: a settlement's final step locks the mint before the
 * settlement row, as ReconcileMint does, so the two never deadlock.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openPostgresStores } from "../../src/adapters/postgres/index.js";
import { runMigrations } from "../../src/adapters/postgres/migrations.js";
import { PostgresAuditJournal } from "../../src/adapters/postgres/postgres-audit-journal.js";
import { BURN_SETTLEMENT_MIGRATION, PostgresSettlementOutbox, SETTLEMENT_MIGRATIONS } from "../../src/settlement/outbox-postgres.js";
import type { Hex } from "../../src/settlement/ports.js";
import { FakeClock } from "../support/fake-clock.js";
import { createTestDatabase, testClient, testPool, type TestDatabase } from "../support/pg-test-database.js";
import { settlingMint } from "../support/settlement-stores.js";

const STATEMENT_TIMEOUT_MS = 4_000;

interface Seen {
  readonly iso: string;
  readonly lock: string;
  readonly stmt: string;
  readonly idle: string;
}

/** The settings every transaction of the store must run with. */
const PINNED: Seen = { iso: "read committed", lock: "4s", stmt: "4s", idle: "4s" };

/**
 * A pool whose clients, right after each BEGIN (the helper's one statement),
 * read the transaction's own settings on the same session.
 */
function observingPool(pool: pg.Pool, seen: Seen[]): pg.Pool {
  const patched = new WeakSet<pg.PoolClient>();
  return new Proxy(pool, {
    get(target, prop) {
      if (prop === "connect") {
        return async () => {
          const client = await target.connect();
          if (!patched.has(client)) {
            patched.add(client);
            const query = client.query.bind(client) as (...args: unknown[]) => Promise<pg.QueryResult>;
            (client as unknown as { query: unknown }).query = async (...args: unknown[]) => {
              const out = await query(...args);
              if (typeof args[0] === "string" && args[0].startsWith("BEGIN")) {
                const r = await query(
                  "SELECT current_setting('transaction_isolation') AS iso, current_setting('lock_timeout') AS lock, current_setting('statement_timeout') AS stmt, current_setting('idle_in_transaction_session_timeout') AS idle",
                );
                seen.push(r.rows[0] as Seen);
              }
              return out;
            };
          }
          return client;
        };
      }
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase({ defaultIsolation: "serializable" });
});
afterAll(async () => {
  await db?.drop();
});

const tx = (hash: string, nonce: number) => ({ hash: hash as Hex, raw: "0x02" as Hex, nonce, maxFeePerGas: 2n, maxPriorityFeePerGas: 1n, signedWallMs: 0 });

describe("every transaction through one helper (default isolation SERIALIZABLE)", () => {
  it("the settlement outbox: recordSigned, markConfirmed, markFailed and cancel run READ COMMITTED with lock, statement and idle bounds", async () => {
    const c = testClient({ connectionString: db.url });
    await c.connect();
    try {
      await runMigrations(c, undefined, [...SETTLEMENT_MIGRATIONS, BURN_SETTLEMENT_MIGRATION]);
    } finally {
      await c.end();
    }
    const pool = testPool({ connectionString: db.url, max: 2 });
    const seen: Seen[] = [];
    try {
      const outbox = new PostgresSettlementOutbox(observingPool(pool, seen), undefined, { statementTimeoutMs: STATEMENT_TIMEOUT_MS });
      for (const id of ["a", "b", "c"]) await outbox.enqueue({ settlementId: id, blockchain: "ETHEREUM", amountMicros: 5n, createWallMs: 0 });
      expect((await outbox.recordSigned("a", tx(`0x${"aa".repeat(32)}`, 0), 1)).ok).toBe(true);
      expect((await outbox.recordSigned("b", tx(`0x${"bb".repeat(32)}`, 1), 1)).ok).toBe(true);
      expect(await outbox.markConfirmed("a", { hash: `0x${"aa".repeat(32)}`, blockNumber: 1n, confirmations: 1 }, 2)).toBe(true);
      expect(await outbox.markFailed("b", null, "reverted", 2)).toBe(true);
      expect(await outbox.cancel("c")).toBe("PENDING");
      expect(seen).toEqual([PINNED, PINNED, PINNED, PINNED, PINNED]);
    } finally {
      await pool.end();
    }
  });

  it("the audit sealer: each sealing pass runs READ COMMITTED with lock, statement and idle bounds", async () => {
    const clock = new FakeClock();
    const stores = await openPostgresStores({ url: db.url, poolSize: 2, statementTimeoutMs: STATEMENT_TIMEOUT_MS, connectTimeoutMs: 5_000, idempotencyTtlMs: 60_000, clock, auditJournal: false });
    const pool = testPool({ connectionString: db.url, max: 2 });
    const seen: Seen[] = [];
    try {
      const journal = new PostgresAuditJournal(observingPool(pool, seen), { clock, statementTimeoutMs: STATEMENT_TIMEOUT_MS });
      await journal.sealOnce();
      await journal.sealOnce();
      expect(seen).toEqual([PINNED, PINNED]);
    } finally {
      await pool.end();
      await stores.close();
    }
  });
});

describe("one lock order: the mint, then its settlement", () => {
  it("a settlement's final step waiting for a locked mint holds no lock on the settlement row", async () => {
    const other = await createTestDatabase();
    const clock = new FakeClock();
    const stores = await openPostgresStores({ url: other.url, poolSize: 4, statementTimeoutMs: 20_000, connectTimeoutMs: 5_000, idempotencyTtlMs: 60_000, clock });
    const holder = testClient({ connectionString: other.url });
    const prober = testClient({ connectionString: other.url });
    await Promise.all([holder.connect(), prober.connect()]);
    try {
      const outbox = stores.settlementOutbox();
      const m = await settlingMint({ store: stores.store, outbox, clock, close: async () => undefined }, "lock-order", 3_000_000n);
      expect((await outbox.recordSigned(m.mintId, tx(`0x${"cc".repeat(32)}`, 0), 1)).ok).toBe(true);
      // ReconcileMint's first lock, held: the mint row.
      await holder.query("BEGIN");
      await holder.query("SELECT 1 FROM mints WHERE mint_id = $1 FOR UPDATE", [m.mintId]);
      const finishing = outbox.markConfirmed(m.mintId, { hash: `0x${"cc".repeat(32)}`, blockNumber: 1n, confirmations: 1 }, 2);
      // Wait until the final step is blocked on a lock.
      for (let i = 0; ; i++) {
        const waiting = await prober.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'");
        if ((waiting.rows[0]?.n ?? 0) > 0) break;
        if (i > 500) throw new Error("the final step never waited for the mint's lock");
        await new Promise((r) => setTimeout(r, 20));
      }
      // ReconcileMint's second lock: free, because the final step took the mint first.
      await prober.query("BEGIN");
      const free = await prober.query("SELECT state FROM settlements WHERE settlement_id = $1 FOR UPDATE NOWAIT", [m.mintId]);
      expect(free.rows[0]?.state).toBe("SUBMITTED");
      await prober.query("ROLLBACK");
      await holder.query("ROLLBACK");
      expect(await finishing).toBe(true);
      expect(await stores.store.getBalance("lock-order")).toBe(3_000_000n);
    } finally {
      await holder.query("ROLLBACK").catch(() => undefined);
      await Promise.all([holder.end(), prober.end()]);
      await stores.close();
      await other.drop();
    }
  }, 60_000);

  it("ReconcileMint racing the worker's signature: it waits for the settlement row and, once signed, refuses (MINT_SETTLEMENT_IN_FLIGHT)", async () => {
    const other = await createTestDatabase();
    const clock = new FakeClock();
    const stores = await openPostgresStores({ url: other.url, poolSize: 4, statementTimeoutMs: 20_000, connectTimeoutMs: 5_000, idempotencyTtlMs: 60_000, clock });
    const worker = testClient({ connectionString: other.url });
    const prober = testClient({ connectionString: other.url });
    await Promise.all([worker.connect(), prober.connect()]);
    try {
      const outbox = stores.settlementOutbox();
      const m = await settlingMint({ store: stores.store, outbox, clock, close: async () => undefined }, "race-sign", 4_000_000n);
      // recordSigned's transaction, not yet committed: PENDING → SUBMITTED with its transaction row.
      await worker.query("BEGIN");
      await worker.query("UPDATE settlements SET state = 'SUBMITTED', nonce = 0, update_time = now() WHERE settlement_id = $1 AND state = 'PENDING'", [m.mintId]);
      await worker.query("INSERT INTO settlement_txs (hash, settlement_id, nonce, raw, max_fee_per_gas, max_priority_fee_per_gas, signed_time) VALUES ($1, $2, 0, '0x02', 2, 1, now())", [`0x${"dd".repeat(32)}`, m.mintId]);
      const reversing = stores.store.reverseMint(m.mintId, "wrong account", clock.wallMs(), { deadlineMs: Number.POSITIVE_INFINITY });
      for (let i = 0; ; i++) {
        const waiting = await prober.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'");
        if ((waiting.rows[0]?.n ?? 0) > 0) break;
        if (i > 500) throw new Error("ReconcileMint never waited for the settlement row");
        await new Promise((r) => setTimeout(r, 20));
      }
      await worker.query("COMMIT");
      const r = await reversing;
      expect(r.ok ? "reversed" : r.error.code).toBe("MINT_SETTLEMENT_IN_FLIGHT");
      expect((await outbox.get(m.mintId))?.state).toBe("SUBMITTED");
      expect((await stores.store.getMint(m.mintId))?.status).toBe("COMPLETED");
    } finally {
      await worker.query("ROLLBACK").catch(() => undefined);
      await Promise.all([worker.end(), prober.end()]);
      await stores.close();
      await other.drop();
    }
  }, 60_000);
});
