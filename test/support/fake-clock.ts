import type { Clock } from "../../src/domain/clock.js";

/**
 * A clock that moves only when told. Timers fire, in due order, inside
 * `advance`; nothing sleeps for real.
 */
export class FakeClock implements Clock {
  private now = 0;
  private wall: number;
  private seq = 0;
  private timers: { at: number; seq: number; fn: () => void }[] = [];

  constructor(startWallMs = Date.UTC(2026, 0, 1)) {
    this.wall = startWallMs;
  }

  nowMs(): number {
    return this.now;
  }

  wallMs(): number {
    return this.wall + this.now;
  }

  setTimer(delayMs: number, fn: () => void): () => void {
    const t = { at: this.now + Math.max(0, delayMs), seq: this.seq++, fn };
    this.timers.push(t);
    return () => {
      this.timers = this.timers.filter((x) => x !== t);
    };
  }

  /** Number of timers not yet fired or cancelled. */
  pendingTimers(): number {
    return this.timers.length;
  }

  /**
   * Moves time forward by `ms`, firing due timers in order and letting the
   * promise jobs they start run before the next one fires.
   */
  async advance(ms: number): Promise<void> {
    const target = this.now + ms;
    for (;;) {
      const due = this.timers.filter((t) => t.at <= target).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (due === undefined) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.now = Math.max(this.now, due.at);
      due.fn();
      await flushPromises();
    }
    this.now = target;
    await flushPromises();
  }
}

/** Lets queued promise jobs (and their follow-ups) run. */
export async function flushPromises(rounds = 10): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r));
}
