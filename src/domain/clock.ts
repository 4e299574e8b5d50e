/**
 * Time, injected everywhere. Windows, TTLs and deadlines run on the monotonic
 * clock (`nowMs`), which never jumps back; records carry wall time (`wallMs`).
 * Tests replace it with `FakeClock`, so nothing in the core ever sleeps for real.
 */
export interface Clock {
  /** Monotonic milliseconds since an arbitrary origin (may be fractional). */
  nowMs(): number;
  /** Wall-clock milliseconds since the Unix epoch, for records shown to callers. */
  wallMs(): number;
  /**
   * Calls `fn` once after `delayMs` of monotonic time. Returns a function that
   * cancels the timer. Timers never keep the process alive.
   */
  setTimer(delayMs: number, fn: () => void): () => void;
}

/** The real clock: `performance.now()` and `Date.now()`. */
export const systemClock: Clock = {
  nowMs: () => performance.now(),
  wallMs: () => Date.now(),
  setTimer(delayMs, fn) {
    const t = setTimeout(fn, Math.max(0, delayMs));
    t.unref();
    return () => clearTimeout(t);
  },
};

/**
 * Resolves after `delayMs` on `clock`, or rejects never; used for waits that are
 * raced against other events.
 */
export function sleep(clock: Clock, delayMs: number): Promise<void> {
  return new Promise((resolve) => clock.setTimer(delayMs, resolve));
}
