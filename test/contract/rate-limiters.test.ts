/** Runs the RateLimiter contract against the in-process ring and the Redis Lua limiter. */
import { randomBytes } from "node:crypto";
import { MemoryRateLimiter } from "../../src/adapters/memory/memory-rate-limiter.js";
import { createRedisRateLimiter } from "../../src/adapters/redis/redis-rate-limiter.js";
import { FakeClock } from "../support/fake-clock.js";
import { rateLimiterContract } from "./rate-limiter.contract.js";

const REDIS_URL = process.env["MINT_TEST_REDIS_URL"] ?? "redis://127.0.0.1:6379";

rateLimiterContract(
  "memory",
  async (limit, windowMs) => {
    const clock = new FakeClock();
    const limiter = new MemoryRateLimiter({ limit, windowMs, clock });
    return { limiter, advance: (ms) => clock.advance(ms), close: () => limiter.close() };
  },
  1_000,
);

// Redis runs the window on its own clock (TIME), which cannot be faked: the
// window is short and time passes for real. One second leaves ~half a
// second of slack for a loaded machine in the sliding test.
rateLimiterContract(
  "redis",
  async (limit, windowMs) => {
    const limiter = createRedisRateLimiter({
      url: REDIS_URL,
      limit,
      windowMs,
      failOpen: false,
      keyPrefix: `test:rl-contract:${process.pid}:${randomBytes(4).toString("hex")}:`,
    });
    return {
      limiter,
      advance: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      close: () => limiter.close(),
    };
  },
  1_000,
);
