/**
 * Per-account mutexes, taken in one total order (the code-unit order of the
 * account ids, i.e. JavaScript's default string order), so that opposing
 * transfers A→B and B→A never wait on each other in a cycle.
 *
 * Waiting respects the call's deadline and its AbortSignal: a waiter whose
 * deadline passes, or whose caller cancels or goes away, gives up, releases
 * what it already holds, and — if its turn comes later — lets the lock go at
 * once, so nothing is applied on its behalf. Waiting is also bounded: beyond
 * `maxWaiters` calls waiting for one account, a new one is refused at once
 * (ACCOUNT_BUSY, holding nothing) rather than queued without limit. Entries exist only
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
import { assert, type Failure } from "./errors.js";
import { ACCOUNT_BUSY_RETRY_AFTER_MS } from "./limits.js";
import { noMetrics, type MetricsSink } from "./ports.js";

class Entry {
  /** Made on the first contention; null while only the fast-path holder is here. */
  mutex: Mutex | null = null;
  /** Calls holding or waiting for this lock; the entry is dropped at 0. */
  refs = 1;
}

/** Releases every lock a successful `acquire` took. Call exactly once (later calls do nothing). */
export type ReleaseLocks = () => void;

/** Why `acquire` gave up without the locks, other than its deadline (null): nothing is held. */
export type LockRefusal = Extract<Failure, { code: "CANCELLED" } | { code: "ACCOUNT_BUSY" }>;

const CANCELLED: LockRefusal = { code: "CANCELLED", message: "the call was cancelled while it waited for an account lock; nothing was applied" };

/**
 * Where a waiter finds the AbortSignal of its call. It is read only when the
 * call must wait: at the edge a signal is made on first read, and making one
 * costs more than an uncontended call's whole lock path.
 */
export interface Cancellable {
  readonly signal?: AbortSignal;
}

/** What one wait for a Mutex came to. */
type Waited = "held" | "deadline" | "cancelled";

export class AccountLocks {
  private readonly entries = new Map<string, Entry>();

  /**
   * `maxWaiters`: most calls waiting for one account at once (default: no
   * bound). `metrics` hears how long each call that found a lock taken waited.
   */
  constructor(
    private readonly clock: Clock,
    private readonly maxWaiters = Infinity,
    private readonly metrics: MetricsSink = noMetrics,
  ) {}

  /**
   * Takes the locks of `accountIds` (duplicates ignored) in code-unit order.
   * Resolves to a release function, or to null when it gave up (`deadlineMs`,
   * monotonic and Infinity for none, passed first, or the call was cancelled,
   * or too many calls wait); then nothing is held. `take` tells the reasons apart.
   */
  async acquire(accountIds: readonly string[], deadlineMs: number, cancel?: Cancellable): Promise<ReleaseLocks | null> {
    const r = await this.take(accountIds, deadlineMs, cancel);
    return typeof r === "function" ? r : null;
  }

  /**
   * Takes the locks as `acquire` does, without a promise when every lock was
   * free (then it returns the release function at once). Otherwise a promise
   * of the release function; of null when `deadlineMs` passed first; of
   * CANCELLED when `cancel.signal` aborted first (or already had); of ACCOUNT_BUSY
   * when `maxWaiters` calls already wait for one of the accounts. Unless it
   * comes to a release function, nothing is held. A free lock is taken even
   * when the deadline has passed.
   */
  take(accountIds: readonly string[], deadlineMs: number, cancel?: Cancellable): ReleaseLocks | Promise<ReleaseLocks | LockRefusal | null> {
    const ids = lockOrder(accountIds);
    const held: Entry[] = [];
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as string;
      if (this.entries.has(id)) return this.takeRest(ids, i, held, deadlineMs, cancel);
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

  /**
   * Calls waiting for a lock now (one waiting for two accounts counts twice),
   * for the lock-waiters gauge. Walks the entries, which exist only for locks
   * held or awaited, so it is bounded by the calls in flight.
   */
  waiting(): number {
    let n = 0;
    // Each entry's refs are its holder and its waiters.
    for (const e of this.entries.values()) n += e.refs - 1;
    return n;
  }

  /** The slow path of `take`: some lock of `ids[from..]` is held or awaited by another call. */
  private async takeRest(
    ids: readonly string[],
    from: number,
    held: Entry[],
    deadlineMs: number,
    cancel: Cancellable | undefined,
  ): Promise<ReleaseLocks | LockRefusal | null> {
    const signal = cancel?.signal;
    if (signal?.aborted === true) {
      this.releaseHeld(ids, held);
      return CANCELLED;
    }
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
      // refs counts the holder and every waiter.
      if (e.refs - 1 >= this.maxWaiters) {
        this.releaseHeld(ids, held);
        return { code: "ACCOUNT_BUSY", accountId: id, maxWaiters: this.maxWaiters, retryAfterMs: ACCOUNT_BUSY_RETRY_AFTER_MS };
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
      const waitStartMs = this.clock.nowMs();
      const waited = await this.lockOne(e.mutex, deadlineMs, signal);
      this.metrics.lockWaited(this.clock.nowMs() - waitStartMs, waited === "held");
      if (waited !== "held") {
        this.unref(id, e);
        this.releaseHeld(ids, held);
        return waited === "deadline" ? null : CANCELLED;
      }
      held.push(e);
    }
    return this.releaser(ids, held);
  }

  /** Gives up the locks taken so far (`held[j]` is the lock of `ids[j]`), in reverse order. */
  private releaseHeld(ids: readonly string[], held: readonly Entry[]): void {
    for (let j = held.length - 1; j >= 0; j--) this.unlock(ids[j] as string, held[j] as Entry);
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

  /**
   * Waits for `mutex`: "held" once it is ours; "deadline" when `deadlineMs`
   * passes first, "cancelled" when `signal` aborts first (then nothing is held:
   * a turn that comes later is handed on untouched).
   */
  private lockOne(mutex: Mutex, deadlineMs: number, signal: AbortSignal | undefined): Promise<Waited> {
    if (deadlineMs === Infinity && signal === undefined) return mutex.acquire().then(held);
    const remainingMs = deadlineMs - this.clock.nowMs();
    if (remainingMs <= 0 && mutex.isLocked()) return Promise.resolve("deadline");
    return new Promise((resolve) => {
      let settled = false;
      const settle = (outcome: Waited): void => {
        settled = true;
        cancelTimer?.();
        signal?.removeEventListener("abort", onAbort);
        resolve(outcome);
      };
      const onAbort = (): void => {
        if (!settled) settle("cancelled");
      };
      const cancelTimer = deadlineMs === Infinity ? undefined : this.clock.setTimer(remainingMs, () => {
        if (!settled) settle("deadline");
      });
      signal?.addEventListener("abort", onAbort, { once: true });
      void mutex.acquire().then((release) => {
        if (!settled && deadlineMs !== Infinity && this.clock.nowMs() >= deadlineMs) {
          // The deadline passed but its timer has not run yet (a busy event loop runs the
          // promise that hands the lock on before due timers): the deadline still wins.
          settle("deadline");
        }
        if (settled) {
          // The deadline or the caller won: our turn came too late, hand the lock on untouched.
          release();
          return;
        }
        settle("held");
      });
    });
  }
}

const held = (): Waited => "held";

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
