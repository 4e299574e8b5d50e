/**
 * Per-account mutexes, taken in one total order (the code-unit order of the
 * account ids, i.e. JavaScript's default string order), so that opposing
 * transfers A→B and B→A never wait on each other in a cycle.
 *
 * Waiting respects the call's deadline: a waiter whose deadline passes gives
 * up, releases what it already holds, and — if its turn comes later — lets the
 * lock go at once, so nothing is applied on its behalf. Entries exist only
 * while some call holds or waits for the lock: idle accounts cost nothing.
 */
import { Mutex } from "async-mutex";
import type { Clock } from "./clock.js";

interface Entry {
  readonly mutex: Mutex;
  /** Calls holding or waiting for this lock; the entry is dropped at 0. */
  refs: number;
}

/** Releases every lock a successful `acquire` took. Call exactly once. */
export type ReleaseLocks = () => void;

export class AccountLocks {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly clock: Clock) {}

  /**
   * Takes the locks of `accountIds` (duplicates ignored) in code-unit order.
   * Resolves to a release function, or to null when `deadlineMs` (monotonic,
   * Infinity for none) passes first, in which case nothing is held.
   */
  async acquire(accountIds: readonly string[], deadlineMs: number): Promise<ReleaseLocks | null> {
    const ids = accountIds.length === 1 ? (accountIds as string[]) : [...new Set(accountIds)].sort();
    const held: (() => void)[] = [];
    const entries = ids.map((id) => this.ref(id));
    for (let i = 0; i < ids.length; i++) {
      const release = await this.lockOne((entries[i] as Entry).mutex, deadlineMs);
      if (release === null) {
        for (const r of held) r();
        for (const id of ids) this.unref(id);
        return null;
      }
      held.push(release);
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (let i = held.length - 1; i >= 0; i--) (held[i] as () => void)();
      for (const id of ids) this.unref(id);
    };
  }

  /** Number of accounts with a lock entry (held or awaited); for tests and memory checks. */
  size(): number {
    return this.entries.size;
  }

  private ref(id: string): Entry {
    let e = this.entries.get(id);
    if (e === undefined) {
      e = { mutex: new Mutex(), refs: 0 };
      this.entries.set(id, e);
    }
    e.refs++;
    return e;
  }

  private unref(id: string): void {
    const e = this.entries.get(id);
    if (e === undefined) return;
    if (--e.refs === 0) this.entries.delete(id);
  }

  private lockOne(mutex: Mutex, deadlineMs: number): Promise<(() => void) | null> {
    if (deadlineMs === Infinity) return mutex.acquire();
    const remainingMs = deadlineMs - this.clock.nowMs();
    if (remainingMs <= 0 && mutex.isLocked()) return Promise.resolve(null);
    return new Promise((resolve) => {
      let settled = false;
      const cancel = this.clock.setTimer(remainingMs, () => {
        if (settled) return;
        settled = true;
        resolve(null);
      });
      void mutex.acquire().then((release) => {
        if (settled) {
          // The deadline won: our turn came too late, hand the lock on untouched.
          release();
          return;
        }
        settled = true;
        cancel();
        resolve(release);
      });
    });
  }
}
