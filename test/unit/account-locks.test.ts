import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AccountLocks, type ReleaseLocks } from "../../src/domain/account-locks.js";
import { FakeClock, flushPromises } from "../support/fake-clock.js";

/** Tracks a pending acquire so tests can ask whether (and with what) it has settled, without awaiting it. */
function track(p: Promise<ReleaseLocks | null>) {
  const state: { settled: boolean; value: ReleaseLocks | null | undefined } = { settled: false, value: undefined };
  void p.then((v) => {
    state.settled = true;
    state.value = v;
  });
  return state;
}

/** Resolves once the fake clock reaches `atMs` (on a later `advance`). */
function sleepUntil(clock: FakeClock, atMs: number): Promise<void> {
  return new Promise((resolve) => clock.setTimer(atMs - clock.nowMs(), resolve));
}

function setup() {
  const clock = new FakeClock();
  return { clock, locks: new AccountLocks(clock) };
}

async function mustAcquire(locks: AccountLocks, ids: string[], deadlineMs = Infinity): Promise<ReleaseLocks> {
  const r = await locks.acquire(ids, deadlineMs);
  if (r === null) throw new Error(`could not lock ${ids.join(",")}`);
  return r;
}

describe("AccountLocks", () => {
  it("excludes: a second caller waits until the first releases", async () => {
    const { locks } = setup();
    const first = await mustAcquire(locks, ["a"]);
    const second = track(locks.acquire(["a"], Infinity));
    await flushPromises();
    expect(second.settled).toBe(false);
    first();
    await flushPromises();
    expect(second.settled).toBe(true);
    expect(second.value).toBeTypeOf("function");
    second.value!();
    expect(locks.size()).toBe(0);
  });

  it("does not make unrelated accounts wait", async () => {
    const { locks } = setup();
    const a = await mustAcquire(locks, ["a"]);
    const b = track(locks.acquire(["b"], Infinity));
    await flushPromises();
    expect(b.settled).toBe(true);
    a();
    b.value!();
  });

  it("takes locks in code-unit order: [b, a] waits on a while holding nothing", async () => {
    const { locks } = setup();
    const holdA = await mustAcquire(locks, ["a"]);
    const ba = track(locks.acquire(["b", "a"], Infinity));
    await flushPromises();
    expect(ba.settled).toBe(false);
    // b was not taken first: someone else can take it now.
    const b = track(locks.acquire(["b"], Infinity));
    await flushPromises();
    expect(b.settled).toBe(true);
    b.value!();
    holdA();
    await flushPromises();
    expect(ba.settled).toBe(true);
    ba.value!();
    expect(locks.size()).toBe(0);
  });

  it("uses code-unit order, not locale order ('Z' < 'a', '9' < 'A', '-' < '.')", async () => {
    const pairs: [string, string][] = [
      ["Z", "a"], // localeCompare puts "a" first
      ["9", "A"],
      ["a-b", "a.b"],
      ["acct:1", "acct@1"],
      ["B", "a"],
    ];
    for (const [lo, hi] of pairs) {
      expect(lo < hi).toBe(true);
      const { locks } = setup();
      const holdLo = await mustAcquire(locks, [lo]);
      const both = track(locks.acquire([hi, lo], Infinity));
      await flushPromises();
      expect(both.settled).toBe(false);
      // The waiter must be waiting on `lo` first, so `hi` is still free.
      const other = track(locks.acquire([hi], Infinity));
      await flushPromises();
      expect(other.settled, `${hi} should be free while waiting on ${lo}`).toBe(true);
      other.value!();
      holdLo();
      await flushPromises();
      expect(both.settled).toBe(true);
      both.value!();
    }
  });

  it("never deadlocks opposing acquisitions [b, a] and [a, b] started together", async () => {
    const { locks } = setup();
    const done: string[] = [];
    const run = async (name: string, ids: string[]) => {
      const release = await mustAcquire(locks, ids);
      await flushPromises(2); // hold across turns so the other call really contends
      done.push(name);
      release();
    };
    const all = Promise.all([run("ba", ["b", "a"]), run("ab", ["a", "b"]), run("ba2", ["b", "a"]), run("ab2", ["a", "b"])]);
    await flushPromises(50);
    expect(done.sort()).toEqual(["ab", "ab2", "ba", "ba2"]);
    await all;
    expect(locks.size()).toBe(0);
  });

  it("never deadlocks random multi-account acquisitions (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.uniqueArray(fc.constantFrom("a", "b", "c", "Z", "9"), { minLength: 1, maxLength: 3 }), fc.nat({ max: 3 })), {
          minLength: 2,
          maxLength: 8,
        }),
        async (calls) => {
          const { locks } = setup();
          const held = new Set<string>();
          let finished = 0;
          const runs = calls.map(async ([ids, holdTurns]) => {
            const release = await mustAcquire(locks, ids);
            for (const id of ids) {
              expect(held.has(id), `${id} held twice`).toBe(false);
              held.add(id);
            }
            await flushPromises(holdTurns);
            for (const id of ids) held.delete(id);
            release();
            finished++;
          });
          await flushPromises(20 * calls.length);
          expect(finished).toBe(calls.length);
          await Promise.all(runs);
          expect(locks.size()).toBe(0);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("excludes and cleans up with deadlines, fast-path holders and Mutex waiters mixed (property)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            ids: fc.uniqueArray(fc.constantFrom("a", "b", "c"), { minLength: 1, maxLength: 3 }),
            // Infinity, already passed, or a few ms ahead.
            deadline: fc.oneof(fc.constant(Infinity), fc.integer({ min: -2, max: 8 })),
            holdMs: fc.integer({ min: 0, max: 5 }),
            startMs: fc.integer({ min: 0, max: 6 }),
          }),
          { minLength: 1, maxLength: 10 },
        ),
        async (calls) => {
          const { clock, locks } = setup();
          const held = new Set<string>();
          let settled = 0;
          const runs = calls.map(async ({ ids, deadline, holdMs, startMs }) => {
            await sleepUntil(clock, startMs);
            const release = await locks.acquire(ids, deadline === Infinity ? Infinity : clock.nowMs() + deadline);
            if (release !== null) {
              for (const id of ids) {
                expect(held.has(id), `${id} held twice`).toBe(false);
                held.add(id);
              }
              await sleepUntil(clock, clock.nowMs() + holdMs);
              for (const id of ids) held.delete(id);
              release();
              release(); // a second call changes nothing
            }
            settled++;
          });
          for (let t = 0; t < 200 && settled < calls.length; t++) await clock.advance(1);
          expect(settled).toBe(calls.length);
          await Promise.all(runs);
          expect(locks.size()).toBe(0);
          expect(clock.pendingTimers()).toBe(0);
        },
      ),
      { numRuns: 150 },
    );
  });

  it("ignores duplicate ids instead of deadlocking on itself", async () => {
    const { locks } = setup();
    const r = track(locks.acquire(["a", "a", "b", "a"], Infinity));
    await flushPromises();
    expect(r.settled).toBe(true);
    expect(locks.size()).toBe(2);
    r.value!();
    expect(locks.size()).toBe(0);
  });

  describe("deadlines", () => {
    it("a waiter whose deadline passes gets null; the lock then goes to the next waiter, not to it", async () => {
      const { clock, locks } = setup();
      const holder = await mustAcquire(locks, ["a"]);
      const late = track(locks.acquire(["a"], clock.nowMs() + 100));
      await clock.advance(99);
      expect(late.settled).toBe(false);
      await clock.advance(1);
      expect(late.settled).toBe(true);
      expect(late.value).toBeNull();

      const next = track(locks.acquire(["a"], Infinity));
      await flushPromises();
      expect(next.settled).toBe(false);
      holder();
      await flushPromises();
      // The abandoned waiter was ahead in the queue; it must hand the lock on at once.
      expect(next.settled).toBe(true);
      expect(next.value).toBeTypeOf("function");
      // And the lock really is held by `next` now: a third caller waits.
      const third = track(locks.acquire(["a"], Infinity));
      await flushPromises();
      expect(third.settled).toBe(false);
      next.value!();
      await flushPromises();
      expect(third.settled).toBe(true);
      third.value!();
      expect(locks.size()).toBe(0);
      expect(clock.pendingTimers()).toBe(0);
    });

    it("a waiter that gives up holds nothing: locks it took first are released", async () => {
      const { clock, locks } = setup();
      const holdB = await mustAcquire(locks, ["b"]);
      const ab = track(locks.acquire(["a", "b"], clock.nowMs() + 50)); // takes a, waits on b
      await flushPromises();
      const probeA = track(locks.acquire(["a"], Infinity));
      await flushPromises();
      expect(probeA.settled).toBe(false); // a is held by the waiter
      await clock.advance(50);
      expect(ab.value).toBeNull();
      await flushPromises();
      expect(probeA.settled).toBe(true); // a was given back
      probeA.value!();
      holdB();
      await flushPromises();
      expect(locks.size()).toBe(0);
      // b is free again despite the abandoned waiter's late turn.
      const b = track(locks.acquire(["b"], clock.nowMs()));
      await flushPromises();
      expect(b.value).toBeTypeOf("function");
      b.value!();
      expect(locks.size()).toBe(0);
    });

    it("a deadline already passed on a busy lock gives null at once", async () => {
      const { clock, locks } = setup();
      const holder = await mustAcquire(locks, ["a"]);
      await clock.advance(10);
      expect(await locks.acquire(["a"], clock.nowMs() - 1)).toBeNull();
      expect(await locks.acquire(["a"], clock.nowMs())).toBeNull();
      holder();
      expect(locks.size()).toBe(0);
    });

    it("a finite deadline that is met cancels its timer (no timers left behind)", async () => {
      const { clock, locks } = setup();
      const holder = await mustAcquire(locks, ["a"]);
      const w = track(locks.acquire(["a", "b"], clock.nowMs() + 1_000));
      await flushPromises();
      expect(clock.pendingTimers()).toBeGreaterThan(0);
      holder();
      await flushPromises();
      expect(w.value).toBeTypeOf("function");
      expect(clock.pendingTimers()).toBe(0);
      w.value!();
      // Moving time past the old deadline changes nothing.
      await clock.advance(5_000);
      const again = track(locks.acquire(["a", "b"], Infinity));
      await flushPromises();
      expect(again.settled).toBe(true);
      again.value!();
      expect(locks.size()).toBe(0);
    });

    it("many abandoned waiters never keep the lock from a live one", async () => {
      const { clock, locks } = setup();
      const holder = await mustAcquire(locks, ["a"]);
      const abandoned = Array.from({ length: 20 }, (_, i) => track(locks.acquire(["a"], clock.nowMs() + 10 + i)));
      await clock.advance(100);
      expect(abandoned.every((w) => w.settled && w.value === null)).toBe(true);
      const live = track(locks.acquire(["a"], clock.nowMs() + 100));
      holder();
      await flushPromises();
      expect(live.value).toBeTypeOf("function");
      live.value!();
      await flushPromises();
      expect(locks.size()).toBe(0);
      expect(clock.pendingTimers()).toBe(0);
    });
  });

  describe("memory", () => {
    it("drops entries when idle: size() is 0 after every holder and waiter is gone", async () => {
      const { clock, locks } = setup();
      for (let i = 0; i < 100; i++) {
        const r = await mustAcquire(locks, [`acct-${i}`, `acct-${i + 1}`]);
        expect(locks.size()).toBe(2);
        r();
      }
      expect(locks.size()).toBe(0);

      const holder = await mustAcquire(locks, ["x", "y"]);
      const waiters = [track(locks.acquire(["y"], Infinity)), track(locks.acquire(["x"], clock.nowMs() + 5))];
      await flushPromises();
      expect(locks.size()).toBe(2);
      await clock.advance(5); // the second waiter gives up
      expect(locks.size()).toBe(2); // still held by holder and awaited by the first waiter
      holder();
      await flushPromises();
      expect(locks.size()).toBe(1); // only y, held by the first waiter
      waiters[0]!.value!();
      expect(locks.size()).toBe(0);
    });

    it("a release function is idempotent: calling it twice frees nobody else's lock", async () => {
      const { locks } = setup();
      const first = await mustAcquire(locks, ["a"]);
      first();
      const second = await mustAcquire(locks, ["a"]);
      first(); // a stray second call
      const third = track(locks.acquire(["a"], Infinity));
      await flushPromises();
      expect(third.settled).toBe(false);
      expect(locks.size()).toBe(1);
      second();
      await flushPromises();
      expect(third.settled).toBe(true);
      third.value!();
      expect(locks.size()).toBe(0);
    });
  });
});

describe("AccountLocks: cancellation and the waiter cap", () => {
  it("a waiter whose signal aborts gives up holding nothing, and its turn is handed on untouched", async () => {
    const { locks } = setup();
    const holder = await mustAcquire(locks, ["a", "b"]);
    const controller = new AbortController();
    const cancelled = locks.take(["a", "b"], Infinity, controller);
    const next = track(locks.acquire(["a"], Infinity));
    controller.abort();
    expect(await cancelled).toMatchObject({ code: "CANCELLED" });
    expect(next.settled).toBe(false);
    holder();
    await flushPromises();
    expect(next.value).toBeTypeOf("function");
    next.value!();
    expect(locks.size()).toBe(0);
  });

  it("a call already cancelled does not wait for a held lock, and releases the locks it took first", async () => {
    const { locks } = setup();
    const holdB = await mustAcquire(locks, ["b"]);
    const r = await locks.take(["a", "b"], Infinity, { signal: AbortSignal.abort() });
    expect(r).toMatchObject({ code: "CANCELLED" });
    // "a" (taken on the fast path before "b" was found busy) is free again.
    const a = track(locks.acquire(["a"], Infinity));
    await flushPromises();
    expect(a.value).toBeTypeOf("function");
    a.value!();
    holdB();
    expect(locks.size()).toBe(0);
  });

  it("reads the signal only when it must wait", async () => {
    const { locks } = setup();
    let reads = 0;
    const ctx = {
      get signal(): AbortSignal {
        reads++;
        return new AbortController().signal;
      },
    };
    const free = locks.take(["a"], Infinity, ctx);
    expect(typeof free).toBe("function");
    expect(reads).toBe(0);
    const waiting = locks.take(["a"], Infinity, ctx);
    expect(reads).toBe(1);
    (free as ReleaseLocks)();
    const got = await waiting;
    expect(got).toBeTypeOf("function");
    (got as ReleaseLocks)();
  });

  it("refuses a waiter beyond maxWaiters at once with ACCOUNT_BUSY, holding nothing", async () => {
    const clock = new FakeClock();
    const locks = new AccountLocks(clock, 2);
    const holder = await mustAcquire(locks, ["a"]);
    const w1 = track(locks.acquire(["a"], Infinity));
    const w2 = track(locks.acquire(["a"], Infinity));
    const holdZ = await mustAcquire(locks, ["z"]);
    const refused = await locks.take(["a", "z"], Infinity);
    expect(refused).toEqual({ code: "ACCOUNT_BUSY", accountId: "a", maxWaiters: 2, retryAfterMs: 50 });
    // Another account is not affected by a's queue.
    const b = await locks.take(["b"], Infinity);
    expect(b).toBeTypeOf("function");
    (b as ReleaseLocks)();
    holder();
    await flushPromises();
    expect(w1.value).toBeTypeOf("function");
    w1.value!();
    await flushPromises();
    w2.value!();
    holdZ();
    expect(locks.size()).toBe(0);
  });
});

describe("AccountLocks: a late deadline timer", () => {
  it("a waiter whose deadline has passed does not take the lock even when its timer has not run yet", async () => {
    const clock = new FakeClock();
    const locks = new AccountLocks(clock);
    const holder = await mustAcquire(locks, ["a"]);
    const late = locks.take(["a"], clock.nowMs() + 10);
    // Time passes without the timer running (as in a starved event loop), then the holder releases.
    clock.nowMs = () => 1_000_000;
    holder();
    expect(await late).toBeNull();
    expect(locks.size()).toBe(0);
  });
});
