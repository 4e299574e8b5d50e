/**
 * The in-process `RateLimiter`: a sliding-window log per account, kept as a
 * small ring of monotonic timestamps. Suits one replica; several replicas
 * need the shared (Redis) adapter, because each process counts only its own
 * mints.
 */
import { assert } from "../../domain/errors.js";
import type { Clock, LimitDecision, RateLimiter } from "../../domain/ports.js";
import type { MaybePromise } from "../../domain/result.js";

export interface MemoryRateLimiterOptions {
  /** Mints allowed per account in any window: an integer, 1 or more. */
  readonly limit: number;
  /** Length of the sliding window in monotonic ms (> 0). */
  readonly windowMs: number;
  readonly clock: Clock;
}

/**
 * Rings start this small and double up to `limit`, so a large limit costs
 * memory only for the accounts that actually mint that often, and the default
 * limit of 10 stays at 11 numbers per account at most.
 */
const INITIAL_RING_CAPACITY = 4;

// The allowed path is the hot one: sharing one frozen decision and one settled
// promise means it allocates nothing per call.
const ALLOWED: LimitDecision = Object.freeze({ allowed: true });

/**
 * One account's log: `ring[0 .. cap-1]` hold the monotonic times of its last
 * `cap` mints (-Infinity for a slot never used), and `ring[cap]` is the index
 * of the next slot to overwrite, which is also the oldest mint kept. A plain
 * array of numbers (one backing store of doubles) rather than an object with
 * a typed array keeps an account near 150 bytes at limit 10.
 */
type Ring = number[];

/**
 * At most `limit` mints per account in any `windowMs`: at monotonic time t the
 * mints that count are those with a time > t - windowMs, so a mint exactly
 * `windowMs` old has left the window.
 *
 * Idle accounts are reclaimed by two generations of maps swapped every
 * `windowMs`: an account touched is (moved) in `current`; at a swap the old
 * `previous` holds only accounts untouched for a whole window, whose mints have
 * all left it, so the map is dropped whole instead of scanned. Swaps happen
 * lazily in `tryAcquire` and in `sweepIdle` (call it on a timer so an idle
 * process frees memory too). Memory is therefore bounded by the accounts seen
 * in the last two windows.
 */
export class MemoryRateLimiter implements RateLimiter {
  readonly limit: number;
  readonly windowMs: number;
  private readonly clock: Clock;
  private current = new Map<string, Ring>();
  private previous = new Map<string, Ring>();
  /** Monotonic time of the last generation swap. */
  private rotatedAtMs: number;

  constructor(options: MemoryRateLimiterOptions) {
    assert(Number.isSafeInteger(options.limit) && options.limit >= 1, `rate limit must be an integer >= 1, got ${options.limit}`);
    assert(Number.isFinite(options.windowMs) && options.windowMs > 0, `rate window must be > 0 ms, got ${options.windowMs}`);
    this.limit = options.limit;
    this.windowMs = options.windowMs;
    this.clock = options.clock;
    this.rotatedAtMs = options.clock.nowMs();
  }

  /**
   * Counts one mint for `accountId` when fewer than `limit` count at the
   * clock's now; otherwise refuses with the exact ms until the oldest counted
   * mint leaves the window (> 0). A refusal records nothing. Decided at once,
   * so the answer is a value (the mint's stretch goes on without a turn).
   */
  tryAcquire(accountId: string): MaybePromise<LimitDecision> {
    const t = this.clock.nowMs();
    if (t - this.rotatedAtMs >= this.windowMs) this.rotate(t);

    let ring = this.current.get(accountId);
    if (ring === undefined) {
      ring = this.previous.get(accountId);
      if (ring === undefined) {
        this.current.set(accountId, newRing(Math.min(this.limit, INITIAL_RING_CAPACITY), t));
        return ALLOWED;
      }
      // Touched again: it must survive the next swap.
      this.previous.delete(accountId);
      this.current.set(accountId, ring);
    }

    const cap = ring.length - 1;
    const head = ring[cap]!;
    // The slot at `head` is the oldest of the last `cap` mints. Deciding on the
    // same difference that is returned keeps "refused" and "retryAfterMs > 0"
    // consistent even with fractional clock readings.
    const untilOldestLeavesMs = ring[head]! + this.windowMs - t;
    if (untilOldestLeavesMs <= 0) {
      // Fewer than `cap` (<= limit) mints count: reuse the oldest slot.
      ring[head] = t;
      ring[cap] = head + 1 === cap ? 0 : head + 1;
      return ALLOWED;
    }
    if (cap === this.limit) return { allowed: false, retryAfterMs: untilOldestLeavesMs };
    // All `cap` kept mints count but the limit is higher: make room.
    this.current.set(accountId, grow(ring, t, this.limit));
    return ALLOWED;
  }

  /**
   * Forgets the account's most recent counted mint (a mint known not to have
   * been applied). The ring runs oldest (at `head`) to newest (just before
   * it), so emptying the newest slot and making it the head keeps that order:
   * an empty slot counts as the oldest. O(1).
   */
  giveBack(accountId: string): Promise<void> {
    const ring = this.current.get(accountId) ?? this.previous.get(accountId);
    if (ring === undefined) return Promise.resolve();
    const cap = ring.length - 1;
    const newest = (ring[cap]! + cap - 1) % cap;
    if (ring[newest] !== -Infinity) {
      ring[newest] = -Infinity;
      ring[cap] = newest;
    }
    return Promise.resolve();
  }

  /**
   * Swaps the generations if a window has passed since the last swap and
   * returns how many idle accounts were dropped (0 when no swap was due).
   */
  sweepIdle(): Promise<number> {
    const t = this.clock.nowMs();
    if (t - this.rotatedAtMs < this.windowMs) return Promise.resolve(0);
    return Promise.resolve(this.rotate(t));
  }

  /** Accounts with state held (both generations); for tests and the bench. */
  accountCount(): number {
    return this.current.size + this.previous.size;
  }

  close(): Promise<void> {
    this.current.clear();
    this.previous.clear();
    return Promise.resolve();
  }

  /**
   * Every access since the last swap happened within one window of it (an
   * access after that would have swapped first), so `previous` was last
   * touched before `rotatedAtMs` <= t - windowMs: all its mints have left.
   * If two windows have passed, the same holds for `current`.
   */
  private rotate(t: number): number {
    let dropped = this.previous.size;
    if (t - this.rotatedAtMs >= 2 * this.windowMs) {
      dropped += this.current.size;
      this.previous = new Map();
    } else {
      this.previous = this.current;
    }
    this.current = new Map();
    this.rotatedAtMs = t;
    return dropped;
  }
}

/** A ring of `cap` slots holding one mint at time `t`. */
function newRing(cap: number, t: number): Ring {
  // Preallocated to the exact length so the backing store has no slack.
  const ring: Ring = new Array<number>(cap + 1);
  ring[0] = t;
  for (let i = 1; i < cap; i++) ring[i] = -Infinity;
  ring[cap] = cap === 1 ? 0 : 1;
  return ring;
}

/**
 * A ring with twice the slots (at most `limit`) holding the full `ring`'s
 * mints oldest first, then `t`. Only called when every slot of `ring` holds a
 * mint that still counts.
 */
function grow(ring: Ring, t: number, limit: number): Ring {
  const cap = ring.length - 1;
  const head = ring[cap]!;
  const nextCap = Math.min(limit, cap * 2);
  const next: Ring = new Array<number>(nextCap + 1);
  let j = 0;
  for (let i = head; i < cap; i++) next[j++] = ring[i]!;
  for (let i = 0; i < head; i++) next[j++] = ring[i]!;
  next[j++] = t;
  const nextHead = j === nextCap ? 0 : j;
  while (j < nextCap) next[j++] = -Infinity;
  next[nextCap] = nextHead;
  return next;
}
