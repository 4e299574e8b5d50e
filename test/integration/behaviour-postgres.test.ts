/**
 * The behaviours of API.md (test/support/behaviour-suite.ts, the same suite
 * as behaviour.test.ts runs in memory) against an in-process server on the
 * shared adapters: a fresh PostgreSQL database per server (MINT_STORE) and
 * the Redis limiter (MINT_REDIS_URL, logical database 6, flushed first).
 *
 * What differs from the memory run, and why:
 * - The two "rate limit (FakeClock)" tests step the sliding window on a
 *   FakeClock and expect exact RetryInfo delays (991 ms, 1 ms...). The Redis
 *   limiter counts on Redis `TIME`, which no test clock moves, so those two
 *   run on PostgreSQL with the in-memory limiter on the FakeClock
 *   (`startWithClockedLimiter`): the stores and the replay-before-limiter
 *   path are still PostgreSQL's. The Redis limiter itself is covered here by
 *   the suite's real-time rate-limit test (which both runs share), by
 *   replicas.test.ts (one limit across three processes) and, window
 *   arithmetic to the millisecond, by redis-rate-limiter.test.ts.
 * - Mints and transfers go through group commit (the service's default), which
 *   takes no in-process account lock; the test that holds a call in flight
 *   holds its account's row in the database instead (`holdAccounts`).
 * - Everything else, FakeClock tests included (reconciliation times, the
 *   idempotency TTL and the sweep), runs unchanged: the PostgreSQL adapter
 *   takes create/reverse times and key expiry from the injected clock.
 * - MINT_PG_CONNECT_TIMEOUT is 30 s instead of 5 s. A call waits in the pool
 *   queue for a connection at most that long, then gets UNAVAILABLE (by
 *   design). "200 opposing transfers at once" puts 200 calls on one account
 *   pair: they run one at a time (the account lock), each holding one of the
 *   10 connections from its key claim on, so the last ones queue for the
 *   whole run, which on two busy cores has passed 5 s. The suite tests
 *   behaviour, not capacity; the memory run has no such queue.
 */
import { Redis } from "ioredis";
import { beforeAll } from "vitest";
import { behaviourSuite } from "../support/behaviour-suite.js";
import { redisUrl, startPgTestServer, type PgTestServer } from "../support/pg-test-server.js";
import { testClient } from "../support/pg-test-database.js";

const REDIS = redisUrl(6);

beforeAll(async () => {
  const redis = new Redis(REDIS, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    await redis.flushdb();
  } finally {
    redis.disconnect();
  }
});

const PG_ENV = { MINT_PG_CONNECT_TIMEOUT: "30s" };

behaviourSuite({
  name: "postgres + redis",
  start: (env, clock) => startPgTestServer({ ...PG_ENV, ...env }, REDIS, clock),
  startWithClockedLimiter: (env, clock) => startPgTestServer({ ...PG_ENV, ...env }, "", clock),
  // Mints and transfers go through group commit, which takes no in-process
  // account lock: the rows are held in the database instead.
  async holdAccounts(s, accountIds) {
    const client = testClient({ connectionString: (s as PgTestServer).db.url });
    await client.connect();
    await client.query("BEGIN");
    await client.query("SELECT 1 FROM accounts WHERE account_id = ANY ($1::text[]) FOR UPDATE", [accountIds]);
    return {
      // A session of this database waiting for a lock: the call, blocked on the rows.
      async blocked() {
        const res = await client.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'");
        return (res.rows[0] as { n: number }).n > 0;
      },
      async release() {
        await client.query("ROLLBACK");
        await client.end();
      },
    };
  },
});
