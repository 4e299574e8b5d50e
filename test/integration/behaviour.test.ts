/**
 * The behaviours of API.md (test/support/behaviour-suite.ts) against one
 * in-memory server: every adapter in memory, every time-based test on the
 * FakeClock. behaviour-postgres.test.ts runs the same suite on PostgreSQL +
 * Redis.
 */
import { behaviourSuite } from "../support/behaviour-suite.js";
import { startTestServer } from "../support/test-server.js";

behaviourSuite({
  name: "memory",
  start: (env, clock) => startTestServer({ ...env, MINT_STORE: "memory", MINT_REDIS_URL: "" }, clock),
  // The in-memory limiter always counts on the injected clock.
  startWithClockedLimiter: (env, clock) => startTestServer({ ...env, MINT_STORE: "memory", MINT_REDIS_URL: "" }, clock),
});
