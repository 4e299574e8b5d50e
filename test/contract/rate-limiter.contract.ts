/**
 * The contract of `RateLimiter`, run against the in-process ring and the
 * Redis sorted set (the same sliding-window rules, written twice). Time moves
 * through the harness: a fake clock for memory; for Redis, whose window runs
 * on the server's clock, real waits with a short window.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { RateLimiter } from "../../src/domain/ports.js";

export interface LimiterUnderTest {
  readonly limiter: RateLimiter;
  /** Lets `ms` pass on the limiter's clock. */
  advance(ms: number): Promise<void>;
  close(): Promise<void>;
}

/** Builds a fresh limiter with this limit and window (ms). */
export type MakeLimiter = (limit: number, windowMs: number) => Promise<LimiterUnderTest>;

export function rateLimiterContract(name: string, make: MakeLimiter, windowMs: number): void {
  describe(`RateLimiter contract: ${name}`, () => {
    const LIMIT = 3;
    let t: LimiterUnderTest;
    beforeEach(async () => {
      t = await make(LIMIT, windowMs);
    });
    afterEach(async () => {
      await t.close();
    });

    async function admitted(account: string, n: number): Promise<boolean[]> {
      const out: boolean[] = [];
      for (let i = 0; i < n; i++) out.push((await t.limiter.tryAcquire(account)).allowed);
      return out;
    }

    it("admits `limit` mints per account in a window and refuses the next with a delay within the window", async () => {
      expect(await admitted("a", LIMIT)).toEqual([true, true, true]);
      const refused = await t.limiter.tryAcquire("a");
      expect(refused.allowed).toBe(false);
      if (!refused.allowed) {
        expect(refused.retryAfterMs).toBeGreaterThan(0);
        expect(refused.retryAfterMs).toBeLessThanOrEqual(windowMs);
      }
      // Accounts are independent.
      expect(await admitted("b", 1)).toEqual([true]);
    });

    it("a refusal counts nothing; once the window has passed, `limit` more are admitted", async () => {
      await admitted("a", LIMIT);
      expect(await admitted("a", 3)).toEqual([false, false, false]);
      await t.advance(windowMs + 5);
      expect(await admitted("a", LIMIT + 1)).toEqual([true, true, true, false]);
    });

    it("slides: a mint leaves the window `windowMs` after it was counted, not at a fixed boundary", async () => {
      await admitted("a", 1);
      await t.advance(windowMs / 2);
      await admitted("a", LIMIT - 1);
      expect(await admitted("a", 1)).toEqual([false]);
      await t.advance(windowMs / 2 + 5);
      // Only the first mint has left.
      expect(await admitted("a", 2)).toEqual([true, false]);
    });

    it("giveBack frees exactly one counted slot (a mint known not applied)", async () => {
      await admitted("a", LIMIT);
      await t.limiter.giveBack("a");
      expect(await admitted("a", 2)).toEqual([true, false]);
    });

    it("giveBack with nothing counted is a no-op: it never lets more than `limit` through", async () => {
      await t.limiter.giveBack("fresh");
      await t.limiter.giveBack("fresh");
      expect(await admitted("fresh", LIMIT + 1)).toEqual([true, true, true, false]);
    });
  });
}
