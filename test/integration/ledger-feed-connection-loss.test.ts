/**
 * pg emits 'error' on a client whose connection ends unexpectedly, also while
 * it is checked out of its pool, where the pool no longer listens. The event
 * feed's poller holds a client across its two statements: when PostgreSQL goes
 * away under it, the read must reject (the poller retries) instead of an
 * unheard 'error' ending the process.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresLedgerEventFeed } from "../../src/adapters/postgres/ledger-events.js";
import { runMigrations } from "../../src/adapters/postgres/migrations.js";
import { FEED_START } from "../../src/domain/ledger-events.js";
import { PgRelay } from "../support/pg-relay.js";
import { createTestDatabase, testClient, type TestDatabase } from "../support/pg-test-database.js";

describe("the PostgreSQL event feed when its connection drops mid-read", () => {
  let db: TestDatabase;
  const relay = new PgRelay();

  beforeAll(async () => {
    db = await createTestDatabase();
    const c = testClient({ connectionString: db.url });
    await c.connect();
    try {
      await runMigrations(c, undefined);
    } finally {
      await c.end();
    }
    await relay.start(0);
  });

  afterAll(async () => {
    await relay.stop().catch(() => undefined);
    await db?.drop();
  });

  it("the read rejects and nothing is left unheard", async () => {
    const unheard: unknown[] = [];
    const onUncaught = (err: unknown): void => {
      unheard.push(err);
    };
    process.on("uncaughtException", onUncaught);
    const feed = await PostgresLedgerEventFeed.connect({ url: relay.url(db.name), statementTimeoutMs: 60_000, connectTimeoutMs: 5_000 });
    const blocker = testClient({ connectionString: db.url });
    await blocker.connect();
    try {
      // Hold the feed's table so the read waits inside its checked-out client.
      await blocker.query("BEGIN");
      await blocker.query("LOCK TABLE ledger_events IN ACCESS EXCLUSIVE MODE");
      const reading = feed.read(FEED_START, 10).then(
        () => "read",
        (err: unknown) => err,
      );
      for (;;) {
        const waiting = await db.query<{ n: string }>(
          "SELECT count(*)::text AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = 'usdc-mint-service ledger events' AND wait_event_type = 'Lock'",
          [db.name],
        );
        if (waiting.rows[0]?.n !== "0") break;
        await new Promise((r) => setImmediate(r));
      }
      await relay.stop();
      const outcome = await reading;
      expect(outcome).toBeInstanceOf(Error);
      // Let the socket's close events run before looking for unheard errors.
      await new Promise((r) => setTimeout(r, 50));
      expect(unheard).toEqual([]);
    } finally {
      process.off("uncaughtException", onUncaught);
      await blocker.query("ROLLBACK").catch(() => undefined);
      await blocker.end();
      await feed.close().catch(() => undefined);
    }
  });
});
