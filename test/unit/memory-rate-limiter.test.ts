import { describe, expect, it } from "vitest";
import { MemoryRateLimiter } from "../../src/adapters/memory/memory-rate-limiter.js";
import type { LimitDecision } from "../../src/domain/ports.js";
import { FakeClock } from "../support/fake-clock.js";

function setup(limit = 10, windowMs = 1000) {
  const clock = new FakeClock();
  const limiter = new MemoryRateLimiter({ limit, windowMs, clock });
  return { clock, limiter };
}

async function acquireMany(limiter: MemoryRateLimiter, accountId: string, n: number): Promise<LimitDecision[]> {
  const out: LimitDecision[] = [];
  for (let i = 0; i < n; i++) out.push(await limiter.tryAcquire(accountId));
  return out;
}

const allowedCount = (ds: LimitDecision[]) => ds.filter((d) => d.allowed).length;

describe("MemoryRateLimiter", () => {
  it("allows `limit` mints, then refuses the next with the exact time until the oldest leaves", async () => {
    const { clock, limiter } = setup(10, 1000);
    for (let i = 0; i < 10; i++) {
      expect(await limiter.tryAcquire("acct-a")).toEqual({ allowed: true });
      await clock.advance(10); // mints at t = 0, 10, ..., 90
    }
    // now t = 100: the oldest (t = 0) leaves at t = 1000.
    expect(await limiter.tryAcquire("acct-a")).toEqual({ allowed: false, retryAfterMs: 900 });
    await clock.advance(250);
    expect(await limiter.tryAcquire("acct-a")).toEqual({ allowed: false, retryAfterMs: 650 });
    expect(limiter.limit).toBe(10);
    expect(limiter.windowMs).toBe(1000);
  });

  it("frees a slot exactly when the oldest mint is windowMs old, not a millisecond before", async () => {
    const { clock, limiter } = setup(10, 1000);
    expect(allowedCount(await acquireMany(limiter, "acct-a", 10))).toBe(10); // all at t = 0
    await clock.advance(999);
    expect(await limiter.tryAcquire("acct-a")).toEqual({ allowed: false, retryAfterMs: 1 });
    await clock.advance(1); // t = first + windowMs
    expect(await limiter.tryAcquire("acct-a")).toEqual({ allowed: true });
    // The other nine from t = 0 also left; the one just taken counts.
    const next = await acquireMany(limiter, "acct-a", 10);
    expect(allowedCount(next)).toBe(9);
    expect(next[9]).toEqual({ allowed: false, retryAfterMs: 1000 });
  });

  it("does not count refusals: after many refusals a slot still frees on time", async () => {
    const { clock, limiter } = setup(10, 1000);
    await acquireMany(limiter, "acct-a", 10); // t = 0
    for (let i = 0; i < 50; i++) {
      await clock.advance(19); // refusals spread over t = 19 .. 950
      const d = await limiter.tryAcquire("acct-a");
      expect(d).toEqual({ allowed: false, retryAfterMs: 1000 - clock.nowMs() });
    }
    await clock.advance(1000 - clock.nowMs());
    expect(allowedCount(await acquireMany(limiter, "acct-a", 11))).toBe(10);
  });

  it("counts each account on its own", async () => {
    const { limiter } = setup(3, 1000);
    expect(allowedCount(await acquireMany(limiter, "acct-a", 5))).toBe(3);
    expect(allowedCount(await acquireMany(limiter, "acct-b", 5))).toBe(3);
    expect(await limiter.tryAcquire("acct-c")).toEqual({ allowed: true });
    expect((await limiter.tryAcquire("acct-a")).allowed).toBe(false);
    expect(limiter.accountCount()).toBe(3);
  });

  it("slides: staggered mints leave one by one, unlike a fixed window", async () => {
    const { clock, limiter } = setup(3, 1000);
    await limiter.tryAcquire("acct-a"); // t = 0
    await clock.advance(400);
    await limiter.tryAcquire("acct-a"); // t = 400
    await clock.advance(400);
    await limiter.tryAcquire("acct-a"); // t = 800
    await clock.advance(100); // t = 900
    expect(await limiter.tryAcquire("acct-a")).toEqual({ allowed: false, retryAfterMs: 100 });
    // A fixed 1 s window would reset all three at t = 1000; the sliding one frees only t = 0's.
    await clock.advance(150); // t = 1050
    expect(await limiter.tryAcquire("acct-a")).toEqual({ allowed: true }); // t = 1050
    expect(await limiter.tryAcquire("acct-a")).toEqual({ allowed: false, retryAfterMs: 350 }); // 400 leaves at 1400
    await clock.advance(350); // t = 1400
    expect(await limiter.tryAcquire("acct-a")).toEqual({ allowed: true });
    expect(await limiter.tryAcquire("acct-a")).toEqual({ allowed: false, retryAfterMs: 400 }); // 800 leaves at 1800
  });

  it("never lets more than `limit` through in any window under a steady stream", async () => {
    const { clock, limiter } = setup(5, 1000);
    const allowedAt: number[] = [];
    for (let i = 0; i < 600; i++) {
      if ((await limiter.tryAcquire("acct-a")).allowed) allowedAt.push(clock.nowMs());
      await clock.advance(7);
    }
    for (let i = 5; i < allowedAt.length; i++) {
      // The 6th mint back must be at least a full window older.
      expect(allowedAt[i]! - allowedAt[i - 5]!).toBeGreaterThanOrEqual(1000);
    }
    // And the limiter is not stingier than it must be: ~4200 ms of stream at 5/s.
    expect(allowedAt.length).toBeGreaterThanOrEqual(20);
  });

  it("drops idle accounts after two windows while keeping an active account and its counts", async () => {
    const { clock, limiter } = setup(10, 1000);
    for (const id of ["idle-1", "idle-2", "idle-3"]) await limiter.tryAcquire(id);
    await acquireMany(limiter, "busy", 10); // t = 0, at its limit
    expect(limiter.accountCount()).toBe(4);

    await clock.advance(999);
    expect(await limiter.sweepIdle()).toBe(0); // no swap due yet
    await clock.advance(1); // t = 1000: first swap, nothing old enough to drop
    expect(await limiter.sweepIdle()).toBe(0);
    expect(limiter.accountCount()).toBe(4);

    await clock.advance(500); // t = 1500: busy mints 5 more (moves to the current generation)
    expect(allowedCount(await acquireMany(limiter, "busy", 5))).toBe(5);
    await clock.advance(500); // t = 2000: second swap drops the idle ones
    expect(await limiter.sweepIdle()).toBe(3);
    expect(limiter.accountCount()).toBe(1);

    // busy's 5 mints at t = 1500 survived the swaps: 5 more fit, the 11th is refused.
    const after = await acquireMany(limiter, "busy", 6);
    expect(allowedCount(after)).toBe(5);
    expect(after[5]).toEqual({ allowed: false, retryAfterMs: 500 });

    await clock.advance(2000);
    expect(await limiter.sweepIdle()).toBe(1);
    expect(limiter.accountCount()).toBe(0);
  });

  it("drops both generations when more than two windows pass without any call", async () => {
    const { clock, limiter } = setup(10, 1000);
    await limiter.tryAcquire("a");
    await clock.advance(1000);
    await limiter.tryAcquire("b"); // swaps: a -> previous, b -> current
    await clock.advance(2000);
    expect(await limiter.sweepIdle()).toBe(2);
    expect(limiter.accountCount()).toBe(0);
  });

  it("swaps lazily inside tryAcquire, without sweepIdle", async () => {
    const { clock, limiter } = setup(10, 1000);
    for (let i = 0; i < 100; i++) await limiter.tryAcquire(`idle-${i}`);
    await clock.advance(1000);
    await limiter.tryAcquire("x");
    await clock.advance(1000);
    await limiter.tryAcquire("x"); // second swap drops the 100 idle accounts
    expect(limiter.accountCount()).toBe(1);
  });

  it("an account back after its state was dropped starts from zero", async () => {
    const { clock, limiter } = setup(2, 1000);
    await acquireMany(limiter, "a", 2);
    await clock.advance(3000);
    await limiter.sweepIdle();
    expect(limiter.accountCount()).toBe(0);
    expect(allowedCount(await acquireMany(limiter, "a", 3))).toBe(2);
  });

  it("limit 1: one mint per window, the refusal names the exact wait", async () => {
    const { clock, limiter } = setup(1, 1000);
    expect(await limiter.tryAcquire("a")).toEqual({ allowed: true });
    await clock.advance(300);
    expect(await limiter.tryAcquire("a")).toEqual({ allowed: false, retryAfterMs: 700 });
    await clock.advance(700);
    expect(await limiter.tryAcquire("a")).toEqual({ allowed: true });
    expect(await limiter.tryAcquire("a")).toEqual({ allowed: false, retryAfterMs: 1000 });
  });

  it("large limits: exactly `limit` pass (the ring grows) and the oldest sets the wait", async () => {
    const { clock, limiter } = setup(1000, 60_000);
    const ds: LimitDecision[] = [];
    for (let i = 0; i < 1001; i++) {
      ds.push(await limiter.tryAcquire("a"));
      await clock.advance(1); // mints at t = 0 .. 999
    }
    expect(allowedCount(ds)).toBe(1000);
    expect(ds[1000]).toEqual({ allowed: false, retryAfterMs: 60_000 - 1000 });
    await clock.advance(60_000 - clock.nowMs()); // t = 60000: the t = 0 mint leaves
    expect(await limiter.tryAcquire("a")).toEqual({ allowed: true });
    expect(await limiter.tryAcquire("a")).toEqual({ allowed: false, retryAfterMs: 1 }); // t = 1 leaves at 60001
  });

  it("growing the ring keeps the order of mints whatever the ring's position", async () => {
    // limit 6 grows 4 -> 6 after the 4-slot ring wrapped, so the copy must unroll it.
    const { clock, limiter } = setup(6, 100);
    for (let i = 0; i < 4; i++) {
      await limiter.tryAcquire("a"); // t = 0, 10, 20, 30
      await clock.advance(10);
    }
    await clock.advance(75); // t = 115: 0 and 10 have left, 20 and 30 count
    await limiter.tryAcquire("a"); // t = 115, overwrites t = 0
    await limiter.tryAcquire("a"); // t = 115, overwrites t = 10
    // The ring has wrapped (115, 115, 20, 30 with 20 oldest); 2 more fit after it grows.
    expect(allowedCount(await acquireMany(limiter, "a", 2))).toBe(2);
    expect(await limiter.tryAcquire("a")).toEqual({ allowed: false, retryAfterMs: 20 + 100 - 115 });
    await clock.advance(5); // t = 120: 20 leaves, then 30 is the oldest
    expect(await limiter.tryAcquire("a")).toEqual({ allowed: true });
    expect(await limiter.tryAcquire("a")).toEqual({ allowed: false, retryAfterMs: 30 + 100 - 120 });
    await clock.advance(10); // t = 130: 30 leaves; next oldest are the two t = 115 copied from the wrapped part
    expect(await limiter.tryAcquire("a")).toEqual({ allowed: true });
    expect(await limiter.tryAcquire("a")).toEqual({ allowed: false, retryAfterMs: 115 + 100 - 130 });
  });

  it("rejects impossible settings", () => {
    const clock = new FakeClock();
    expect(() => new MemoryRateLimiter({ limit: 0, windowMs: 1000, clock })).toThrow(/limit/);
    expect(() => new MemoryRateLimiter({ limit: 1.5, windowMs: 1000, clock })).toThrow(/limit/);
    expect(() => new MemoryRateLimiter({ limit: 10, windowMs: 0, clock })).toThrow(/window/);
  });

  it("close() drops all state", async () => {
    const { limiter } = setup();
    await limiter.tryAcquire("a");
    await limiter.close();
    expect(limiter.accountCount()).toBe(0);
  });
});
