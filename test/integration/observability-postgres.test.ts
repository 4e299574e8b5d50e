/**
 * The PostgreSQL series through the real server on a fresh database: the pool
 * gauges, the idempotency keys the database holds, and a real deadlock
 * (40P01) that the service retries. The deadlock is made by a foreign writer:
 * it locks account B, the service's transfer A→B locks A and waits for B,
 * then the writer asks for A. PostgreSQL checks for a deadlock once, when a
 * backend has waited `deadlock_timeout`, and aborts the backend that finds
 * it. The service's sessions check after 3 s and the writer's after 60 s, so
 * the service is the one aborted (however slowly a loaded machine runs the
 * test), and it retries once the writer commits.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parsePromText, sampleValue, type Sample } from "../support/prom-text.js";
import { createTestDatabase, type TestDatabase, testClient } from "../support/pg-test-database.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { rpc, waitFor } from "./helpers.js";

async function samplesOf(s: TestServer): Promise<Sample[]> {
  const res = await fetch(`http://${s.app.metricsAddress}/metrics`);
  expect(res.status).toBe(200);
  return parsePromText(await res.text());
}

describe("PostgreSQL metrics", () => {
  let db: TestDatabase;
  let s: TestServer;

  beforeAll(async () => {
    db = await createTestDatabase();
    // Before the service connects: its sessions look for deadlocks after 3 s (the default is 1 s).
    await db.query(`ALTER DATABASE ${db.name} SET deadlock_timeout = '3s'`);
    s = await startTestServer({ MINT_STORE: db.url, MINT_REDIS_URL: "", MINT_METRICS_LISTEN: "127.0.0.1:0", MINT_PG_POOL_SIZE: "4" });
  });

  afterAll(async () => {
    await s?.stop();
    await db?.drop();
  });

  it("report the pool and the keys the database holds", async () => {
    const r = rpc(s.call);
    await r.mint("pg-a", "10", "pg-k1");
    await r.mint("pg-b", "10", "pg-k2");
    const m = await samplesOf(s);
    expect(sampleValue(m, "usdc_mint_pg_pool_connections")).toBeGreaterThanOrEqual(1);
    expect(sampleValue(m, "usdc_mint_pg_pool_connections")).toBeLessThanOrEqual(4);
    expect(sampleValue(m, "usdc_mint_pg_pool_idle_connections")).toBeLessThanOrEqual(sampleValue(m, "usdc_mint_pg_pool_connections"));
    // Only the scrape's own estimate of the keys may be waiting for a connection while the gauges are read.
    expect(sampleValue(m, "usdc_mint_pg_pool_waiting_requests")).toBeLessThanOrEqual(1);
    expect(sampleValue(m, "usdc_mint_minted_micro_usdc_total")).toBe(20_000_000);
    // The key gauge is PostgreSQL's live-row statistic (a scrape never counts the table): it
    // reaches the database's 2 keys once the service's sessions have reported their inserts.
    let keys = sampleValue(m, "usdc_mint_idempotency_keys");
    for (const until = Date.now() + 30_000; keys !== 2 && Date.now() < until; ) {
      await new Promise((r) => setTimeout(r, 200));
      keys = sampleValue(await samplesOf(s), "usdc_mint_idempotency_keys");
    }
    expect(keys).toBe(2);
  });

  it("count a deadlock the service retried", async () => {
    const r = rpc(s.call);
    const foreign = testClient({ connectionString: db.url, application_name: "foreign-writer" });
    await foreign.connect();
    try {
      await foreign.query("BEGIN");
      await foreign.query("SET LOCAL deadlock_timeout = '60s'");
      await foreign.query("SELECT 1 FROM accounts WHERE account_id = 'pg-b' FOR UPDATE");
      const transfer = r.transfer("pg-a", "pg-b", "3", "pg-t1");
      // The service holds pg-a and waits for pg-b.
      await waitFor(async () => {
        const w = await foreign.query(
          "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'usdc-mint-service' AND wait_event_type = 'Lock' AND datname = current_database()",
        );
        return (w.rows[0] as { n: number }).n === 1;
      }, "the service's transfer to wait for pg-b");
      // Closing the cycle: the service's deadlock check (after 3 s of waiting) aborts its transaction.
      await foreign.query("SELECT 1 FROM accounts WHERE account_id = 'pg-a' FOR UPDATE");
      await foreign.query("COMMIT");
      expect((await transfer).replayed).toBe(false);
    } finally {
      await foreign.end();
    }
    expect([await r.balance("pg-a"), await r.balance("pg-b")]).toEqual(["7", "13"]);
    const m = await samplesOf(s);
    expect(sampleValue(m, "usdc_mint_pg_deadlocks_total", { outcome: "retried" })).toBe(1);
    expect(sampleValue(m, "usdc_mint_pg_deadlocks_total", { outcome: "gave_up" })).toBe(0);
    expect(sampleValue(m, "usdc_mint_pg_serialization_failures_total", { outcome: "retried" })).toBe(0);
  });
});
