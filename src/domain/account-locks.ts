/**
 * Per-account mutexes, taken in one total order (the code-unit order of the
 * account ids, i.e. JavaScript's default string order), so that opposing
 * transfers A→B and B→A never wait on each other in a cycle.
 *
 * Waiting respects the call's deadline: a waiter whose deadline passes gives
 * up, releases what it already holds, and — if its turn comes later — lets the
 * lock go at once, so nothing is applied on its behalf. Entries exist only
 * while some call holds or waits for the lock: idle accounts cost nothing.
 *
 * Fast path: a lock nobody holds or awaits has no entry, and taking it only
 * creates one — no Mutex, no promise, no timer (most calls on a ledger of many
 * accounts never contend). An `async-mutex` Mutex is created for an entry
 * when a second call arrives while the entry exists; it is first taken on
 * behalf of the holder already there, so from then until the entry is
 * dropped every holder and waiter goes through the Mutex, which hands the
 * lock on in FIFO order.
 */
import { Mutex } from "async-mutex";
import type { Clock } from "./clock.js";
import { assert } from "./errors.js";

class Entry {
  /** Made on the first contention; null while only the fast-path holder is here. */
  mutex: Mutex | null = null;
  /** Calls holding or waiting for this lock; the entry is dropped at 0. */
  refs = 1;
}

/** Releases every lock a successful `acquire` took. Call exactly once (later calls do nothing). */
export type ReleaseLocks = () => void;

export class AccountLocks {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly clock: Clock) {}

  /**
   * Takes the locks of `accountIds` (duplicates ignored) in code-unit order.
   * Resolves to a release function, or to null when `deadlineMs` (monotonic,
   * Infinity for none) passes first, in which case nothing is held. A free
   * lock is taken even when the deadline has passed.
   */
  acquire(accountIds: readonly string[], deadlineMs: number): Promise<ReleaseLocks | null> {
    const r = this.take(accountIds, deadlineMs);
    return typeof r === "function" ? Promise.resolve(r) : r;
  }

  /**
   * `acquire` without the promise when it is not needed: returns the release
   * function at once when every lock was free, and otherwise a promise that
   * settles as `acquire`'s does (holding the locks taken so far meanwhile).
   */
  take(accountIds: readonly string[], deadlineMs: number): ReleaseLocks | Promise<ReleaseLocks | null> {
    const ids = lockOrder(accountIds);
    const held: Entry[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as string;
      if (this.entries.has(id)) return this.takeRest(ids, i, held, deadlineMs);
      const e = new Entry();
      this.entries.set(id, e);
      held.push(e);
    }
    return this.releaser(ids, held);
  }

  /** Number of accounts with a lock entry (held or awaited); for tests and memory checks. */
  size(): number {
    return this.entries.size;
  }

  /** The slow path of `take`: some lock of `ids[from..]` is held or awaited by another call. */
  private async takeRest(ids: readonly string[], from: number, held: Entry[], deadlineMs: number): Promise<ReleaseLocks | null> {
    for (let i = from; i < ids.length; i++) {
      const id = ids[i] as string;
      let e = this.entries.get(id);
      if (e === undefined) {
        // Free (again) by the time we got here: take it directly.
        e = new Entry();
        this.entries.set(id, e);
        held.push(e);
        continue;
      }
      e.refs++;
      if (e.mutex === null) {
        // The entry's holder took it on the fast path; it now holds the Mutex,
        // so that its release hands the lock to the queue. A new Mutex is
        // free, and async-mutex takes a free one synchronously.
        e.mutex = new Mutex();
        void e.mutex.acquire();
        assert(e.mutex.isLocked(), "a free Mutex is taken synchronously");
      }
      if (!(await this.lockOne(e.mutex, deadlineMs))) {
        this.unref(id, e);
        for (let j = held.length - 1; j >= 0; j--) this.unlock(ids[j] as string, held[j] as Entry);
        return null;
      }
      held.push(e);
    }
    return this.releaser(ids, held);
  }

  /** The release function of `held[i]` = the lock of `ids[i]`: unlocks them in reverse order, once. */
  private releaser(ids: readonly string[], held: readonly Entry[]): ReleaseLocks {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (let i = held.length - 1; i >= 0; i--) this.unlock(ids[i] as string, held[i] as Entry);
    };
  }

  /** Gives up a held lock: to the next waiter through the Mutex if there is one, and drops the entry when idle. */
  private unlock(id: string, e: Entry): void {
    e.mutex?.release();
    this.unref(id, e);
  }

  private unref(id: string, e: Entry): void {
    if (--e.refs === 0) this.entries.delete(id);
  }

  /** Waits for `mutex`; true once held, false when `deadlineMs` passes first (then nothing is held). */
  private lockOne(mutex: Mutex, deadlineMs: number): Promise<boolean> {
    if (deadlineMs === Infinity) return mutex.acquire().then(acquired);
    const remainingMs = deadlineMs - this.clock.nowMs();
    if (remainingMs <= 0 && mutex.isLocked()) return Promise.resolve(false);
    return new Promise((resolve) => {
      let settled = false;
      const cancel = this.clock.setTimer(remainingMs, () => {
        if (settled) return;
        settled = true;
        resolve(false);
      });
      void mutex.acquire().then((release) => {
        if (settled) {
          // The deadline won: our turn came too late, hand the lock on untouched.
          release();
          return;
        }
        settled = true;
        cancel();
        resolve(true);
      });
    });
  }
}

const acquired = (): true => true;

/** The ids to lock, without duplicates, in code-unit order. */
function lockOrder(accountIds: readonly string[]): readonly string[] {
  if (accountIds.length === 1) return accountIds;
  if (accountIds.length === 2) {
    const a = accountIds[0] as string;
    const b = accountIds[1] as string;
    if (a === b) return [a];
    return a < b ? accountIds : [b, a];
  }
  return [...new Set(accountIds)].sort();
}
