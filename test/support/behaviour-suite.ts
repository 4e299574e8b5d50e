/**
 * The behaviours of API.md through the real server and the generated client,
 * as one suite that runs against any set of adapters (`behaviourSuite`):
 * concurrency (no deadlock, one effect per key, one reversal), the rate limit
 * and its window, reconciliation, paging, money formatting, idempotency scope
 * and TTL, and the message size cap. Time-based behaviour runs on a FakeClock
 * where the adapters take the injected clock, and on real time where they
 * cannot (the Redis limiter counts on Redis `TIME`).
 *
 * Runs: test/integration/behaviour.test.ts (memory) and
 * test/integration/behaviour-postgres.test.ts (PostgreSQL + Redis).
 */
import { randomBytes } from "node:crypto";
import { status as Code } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Blockchain, MintStatus, type MintUsdcResponse } from "../../gen/usdc/mint/v1/mint.js";
import { FakeClock } from "./fake-clock.js";
import { expectError, type DecodedError, type TestServer } from "./test-server.js";
import { mintWithPadding, rpc, waitFor } from "../integration/helpers.js";

const ETH = Blockchain.BLOCKCHAIN_ETHEREUM;

/** How the suite gets a server; each call must give a server with empty state (a fresh store). */
export interface BehaviourTarget {
  /** Names the top-level describe, e.g. "memory" or "postgres + redis". */
  readonly name: string;
  /**
   * A server on the target's adapters, settings as env-style strings. `clock`
   * drives whatever the adapters take it for (deadlines, record times, key
   * expiry; the in-memory limiter too).
   */
  start(env: Record<string, string>, clock?: FakeClock): Promise<TestServer>;
  /**
   * A server whose rate limiter counts on `clock`, for the tests that step the
   * window on a FakeClock and expect exact RetryInfo delays. Where the
   * target's limiter keeps its own time (Redis), this swaps in the in-memory
   * limiter and keeps the target's stores; the real-time test below covers
   * the target's own limiter.
   */
  startWithClockedLimiter(env: Record<string, string>, clock: FakeClock): Promise<TestServer>;
  /**
   * Holds the accounts so that a call on them stays in flight until the
   * returned release; default: the core's in-process account locks. A store
   * that groups calls takes no such lock (KeyedStore.groupsCalls): its target
   * holds the accounts' rows in the store instead.
   */
  holdAccounts?(s: TestServer, accountIds: string[]): Promise<AccountHold>;
}

/** Accounts held by a test: `blocked` says when a call waits on them, `release` lets it go. */
export interface AccountHold {
  blocked(): Promise<boolean>;
  release(): Promise<void>;
}

type Rpc = ReturnType<typeof rpc>;

/** Defines the whole behaviour suite against `target`. */
export function behaviourSuite(target: BehaviourTarget): void {
  /** BehaviourTarget.holdAccounts, or the core's account locks. */
  async function holdAccounts(s: TestServer, accountIds: string[]): Promise<AccountHold> {
    if (target.holdAccounts !== undefined) return target.holdAccounts(s, accountIds);
    const release = await s.app.core.locks.acquire(accountIds, Infinity);
    // A call waiting for the lock is in flight at the edge (checked there).
    return { blocked: async () => true, release: async () => release?.() };
  }

  /** Runs `fn` against a fresh server and always stops it. */
  async function withServer(env: Record<string, string>, clock: FakeClock | undefined, fn: (s: TestServer, r: Rpc) => Promise<void>): Promise<void> {
    const s = await target.start(env, clock);
    try {
      await fn(s, rpc(s.call));
    } finally {
      await s.stop();
    }
  }

  /** `withServer` with the limiter on the FakeClock. */
  async function withClockedLimiter(env: Record<string, string>, clock: FakeClock, fn: (s: TestServer, r: Rpc) => Promise<void>): Promise<void> {
    const s = await target.startWithClockedLimiter(env, clock);
    try {
      await fn(s, rpc(s.call));
    } finally {
      await s.stop();
    }
  }

  describe(target.name, () => {
    describe("concurrency", () => {
      let s: TestServer;
      let r: ReturnType<typeof rpc>;
      beforeAll(async () => {
        s = await target.start({ MINT_RATE_LIMIT: "1000" });
        r = rpc(s.call);
      });
      afterAll(async () => {
        await s.stop();
      });

      it("200 opposing A<->B transfers at once all finish; money is conserved and balances are exact", async () => {
        await r.mint("opp-A", "1000", "fund-A");
        await r.mint("opp-B", "1000", "fund-B");
        const calls = [];
        for (let i = 0; i < 100; i++) {
          calls.push(r.transfer("opp-A", "opp-B", "1.5", `ab-${i}`));
          calls.push(r.transfer("opp-B", "opp-A", "2.25", `ba-${i}`));
        }
        const results = await Promise.all(calls);
        expect(results.every((x) => x.replayed === false)).toBe(true);
        expect(new Set(results.map((x) => x.transfer?.transferId)).size).toBe(200);
        // A: 1000 - 100*1.5 + 100*2.25 = 1075; B: 1000 + 150 - 225 = 925.
        expect([await r.balance("opp-A"), await r.balance("opp-B")]).toEqual(["1075", "925"]);
        // Every lock was released (idle accounts hold no lock entry).
        expect(s.app.core.locks.size()).toBe(0);
      });

      it("a three-account cycle of concurrent transfers finishes (total order of locks)", async () => {
        for (const a of ["cyc-A", "cyc-B", "cyc-C"]) await r.mint(a, "100", `fund-${a}`);
        const calls = [];
        for (let i = 0; i < 50; i++) {
          calls.push(r.transfer("cyc-A", "cyc-B", "1", `cab-${i}`));
          calls.push(r.transfer("cyc-B", "cyc-C", "1", `cbc-${i}`));
          calls.push(r.transfer("cyc-C", "cyc-A", "1", `cca-${i}`));
        }
        await Promise.all(calls);
        expect([await r.balance("cyc-A"), await r.balance("cyc-B"), await r.balance("cyc-C")]).toEqual(["100", "100", "100"]);
      });

      it("16 concurrent same-key mints produce exactly one mint", async () => {
        const results = await Promise.all(Array.from({ length: 16 }, () => r.mint("same-key", "12.5", "one-key")));
        expect(results.filter((x) => !x.replayed)).toHaveLength(1);
        expect(results.filter((x) => x.replayed)).toHaveLength(15);
        expect(new Set(results.map((x) => x.mint?.mintId)).size).toBe(1);
        expect(await r.balance("same-key")).toBe("12.5");
        expect((await r.list("same-key", 100)).mints).toHaveLength(1);
      });

      it("16 concurrent same-key transfers move the money once", async () => {
        await r.mint("sk-from", "10", "fund-sk");
        const results = await Promise.all(Array.from({ length: 16 }, () => r.transfer("sk-from", "sk-to", "3", "one-xfer-key")));
        expect(results.filter((x) => !x.replayed)).toHaveLength(1);
        expect(new Set(results.map((x) => x.transfer?.transferId)).size).toBe(1);
        expect([await r.balance("sk-from"), await r.balance("sk-to")]).toEqual(["7", "3"]);
      });

      it("a duplicate with no deadline waits for the call in flight and replays its result", async () => {
        await r.mint("wait-a", "10", "fund-wait");
        const hold = await holdAccounts(s, ["wait-a"]);
        const first = r.transfer("wait-a", "wait-b", "2", "wait-key");
        await waitFor(() => s.app.server.edge.callsInFlight === 1, "the first call in flight");
        await waitFor(() => hold.blocked(), "the first call waiting for the held account");
        const second = r.transfer("wait-a", "wait-b", "2", "wait-key");
        await waitFor(() => s.app.server.edge.callsInFlight === 2, "the duplicate in flight");
        await hold.release();
        const [a, b] = await Promise.all([first, second]);
        expect([a.replayed, b.replayed]).toEqual([false, true]);
        expect(b.transfer?.transferId).toBe(a.transfer?.transferId);
        expect([await r.balance("wait-a"), await r.balance("wait-b")]).toEqual(["8", "2"]);
      });

      it("concurrent reconciles of one mint: exactly one OK, the others MINT_ALREADY_REVERSED", async () => {
        const m = await r.mint("conc-rec", "5", "conc-rec-key");
        const id = m.mint?.mintId ?? "";
        const settled = await Promise.allSettled(Array.from({ length: 12 }, (_, i) => r.reconcile(id, `attempt ${i}`)));
        const oks = settled.filter((x) => x.status === "fulfilled");
        expect(oks).toHaveLength(1);
        for (const x of settled) {
          if (x.status === "rejected") {
            const e = await expectError(Promise.reject(x.reason));
            expect([Code[e.code], e.reason]).toEqual(["FAILED_PRECONDITION", "MINT_ALREADY_REVERSED"]);
          }
        }
        expect(await r.balance("conc-rec")).toBe("0");
      });
    });

    describe("rate limit (FakeClock, 10 per 1 s)", () => {
      // The window arithmetic needs a limiter on the injected clock; see BehaviourTarget.startWithClockedLimiter.
      const withServer = withClockedLimiter;
      it("the 11th mint is refused with RetryInfo; after the delay one passes; refused calls do not count; replays are never limited", async () => {
        const clock = new FakeClock();
        await withServer({ MINT_RATE_LIMIT: "10", MINT_RATE_WINDOW: "1s" }, clock, async (_s, r) => {
          const first: MintUsdcResponse[] = [];
          for (let i = 0; i < 10; i++) {
            if (i > 0) await clock.advance(1); // t = 0..9
            first.push(await r.mint("lim", "1", `lim-${i}`));
          }
          // The 11th, at t = 9: delay = 0 + 1000 - 9.
          const e = await expectError(r.mint("lim", "1", "lim-10"));
          expect([Code[e.code], e.reason, e.retryDelayMs]).toEqual(["RESOURCE_EXHAUSTED", "RATE_LIMITED", 991]);

          // Replays are checked before the limiter: all 10 replay while the limit is hit.
          const replays = await Promise.all(first.map((m, i) => r.mint("lim", "1", `lim-${i}`)));
          expect(replays.every((x) => x.replayed)).toBe(true);
          expect(replays.map((x) => x.mint?.mintId)).toEqual(first.map((x) => x.mint?.mintId));

          // More refusals, spread over the window; none of them may count.
          for (let i = 0; i < 5; i++) {
            await clock.advance(100);
            const again = await expectError(r.mint("lim", "1", `refused-${i}`));
            expect(again.retryDelayMs).toBe(1000 - clock.nowMs());
          }
          expect(await r.balance("lim")).toBe("10");

          // At t = 1000 the first mint (t = 0) has left the window: exactly one more passes.
          await clock.advance(1000 - clock.nowMs());
          expect((await r.mint("lim", "1", "lim-10")).replayed).toBe(false);
          // Had the refusals counted, this next one would wait for them; instead it
          // waits only for the mint at t = 1.
          const next = await expectError(r.mint("lim", "1", "lim-11"));
          expect(next.retryDelayMs).toBe(1);
          await clock.advance(next.retryDelayMs ?? 0);
          expect((await r.mint("lim", "1", "lim-11")).replayed).toBe(false);
          expect(await r.balance("lim")).toBe("12");
        });
      });

      it("the window slides: after a full window, 10 more pass and the 11th is refused again", async () => {
        const clock = new FakeClock();
        await withServer({ MINT_RATE_LIMIT: "10", MINT_RATE_WINDOW: "1s" }, clock, async (_s, r) => {
          await Promise.all(Array.from({ length: 10 }, (_, i) => r.mint("slide", "1", `a-${i}`)));
          expect((await expectError(r.mint("slide", "1", "a-10"))).retryDelayMs).toBe(1000);
          await clock.advance(1000);
          await Promise.all(Array.from({ length: 10 }, (_, i) => r.mint("slide", "1", `b-${i}`)));
          expect((await expectError(r.mint("slide", "1", "b-10"))).reason).toBe("RATE_LIMITED");
          expect(await r.balance("slide")).toBe("20");
        });
      });
    });

    describe("rate limit (real time, the target's own limiter, 10 per 3 s)", () => {
      // The window is 3 s, not 1 s: on a busy machine ten concurrent mints can
      // take several hundred milliseconds, and a round is only evidence when they
      // all land within the first 30% of the window.
      const W = 3_000;
      it("10 pass, the 11th gets RetryInfo up to the oldest mint's exit; replays pass; refusals do not count; after a full window 10 more pass", async () => {
        await withServer({ MINT_RATE_LIMIT: "10", MINT_RATE_WINDOW: `${W / 1000}s` }, undefined, async (_s, r) => {
          const sleepUntil = async (t: number): Promise<void> => {
            if (t > Date.now()) await new Promise((res) => setTimeout(res, t - Date.now()));
          };
          /** Expects RATE_LIMITED, unless the call ended past `notAfter`, when the window may have moved on: "late". */
          const refusedUnlessLate = async (p: Promise<unknown>, notAfter: number): Promise<DecodedError | "late"> => {
            const outcome = await p.then(
              () => null,
              (err: unknown) => err,
            );
            if (outcome === null && Date.now() >= notAfter) return "late";
            return expectError(Promise.reject(outcome ?? new Error("expected RATE_LIMITED, the mint succeeded")));
          };

          // On real time a slow machine can stretch a step past the window;
          // such a round proves nothing either way and is run again on a
          // fresh account (a shared limiter also outlives the server) with
          // keys of its own, since the last round's keys still replay.
          const round = async (account: string): Promise<"done" | string> => {
            const t0 = Date.now();
            const first = await Promise.all(Array.from({ length: 10 }, (_, i) => r.mint(account, "1", `${account}-rt-${i}`)));
            const t1 = Date.now(); // every admission happened within [t0, t1]
            expect(first.every((m) => !m.replayed)).toBe(true);
            if (t1 - t0 > 0.3 * W) return `10 mints took ${t1 - t0} ms`;
            const e = await refusedUnlessLate(r.mint(account, "1", `${account}-rt-10`), t0 + W);
            const t2 = Date.now();
            if (e === "late") return "the 11th mint came after the window";
            expect([Code[e.code], e.reason, e.quotaFailure?.violations[0]?.subject]).toEqual(["RESOURCE_EXHAUSTED", "RATE_LIMITED", `account:${account}`]);
            // delay = oldest + W - now, with oldest in [t0, t1] and now in [t1, t2] (±1 ms of rounding).
            expect(e.retryDelayMs).toBeGreaterThanOrEqual(t0 + W - t2 - 1);
            expect(e.retryDelayMs).toBeLessThanOrEqual(W);

            // Replays are checked before the limiter: all 10 replay while the limit is hit.
            const replays = await Promise.all(first.map((_m, i) => r.mint(account, "1", `${account}-rt-${i}`)));
            expect(replays.every((x) => x.replayed)).toBe(true);
            expect(replays.map((x) => x.mint?.mintId)).toEqual(first.map((x) => x.mint?.mintId));

            // Refusals half a window in: had they counted, they would still
            // fill the window (until t0 + 1.5 W at least) once the admissions
            // have left it (by t1 + W < t0 + 1.3 W).
            await sleepUntil(t0 + W / 2);
            for (let i = 0; i < 5; i++) {
              if ((await refusedUnlessLate(r.mint(account, "1", `${account}-rt-refused-${i}`), t0 + W)) === "late") return "a refusal came after the window";
            }
            expect(await r.balance(account)).toBe("10");

            await sleepUntil(t1 + W + 20);
            const t3 = Date.now();
            const second = await Promise.all(Array.from({ length: 10 }, (_, i) => r.mint(account, "1", `${account}-rt-b-${i}`)));
            expect(second.every((m) => !m.replayed)).toBe(true);
            if ((await refusedUnlessLate(r.mint(account, "1", `${account}-rt-b-10`), t3 + W)) === "late") return "the 21st mint came after the window";
            expect(await r.balance(account)).toBe("20");
            return "done";
          };
          const slow: string[] = [];
          while (slow.length < 3) {
            const outcome = await round(`rt-lim-${randomBytes(4).toString("hex")}`);
            if (outcome === "done") return;
            slow.push(outcome);
          }
          throw new Error(`too slow to test a ${W / 1000} s window in real time, 3 rounds: ${slow.join("; ")}`);
        });
      });
    });

    describe("reconciliation", () => {
      it("reverses once (REVERSED, reverse_time, reverse_reason, balance drops) and frees the key for a new mint", async () => {
        const clock = new FakeClock(Date.UTC(2026, 4, 1, 12, 0, 0));
        await withServer({}, clock, async (_s, r) => {
          const m = await r.mint("rec", "40.25", "rec-key", Blockchain.BLOCKCHAIN_SOLANA);
          const id = m.mint?.mintId ?? "";
          await r.mint("rec", "10", "rec-other");
          expect(await r.balance("rec")).toBe("50.25");
          await clock.advance(5_000);
          const rev = await r.reconcile(id, "chain tx failed");
          expect(rev.mint?.status).toBe(MintStatus.MINT_STATUS_REVERSED);
          expect(rev.mint?.reverseTime?.getTime()).toBe(Date.UTC(2026, 4, 1, 12, 0, 5));
          expect(rev.mint?.createTime?.getTime()).toBe(Date.UTC(2026, 4, 1, 12, 0, 0));
          expect(rev.mint?.reverseReason).toBe("chain tx failed");
          expect(rev.mint?.amount).toBe("40.25");
          expect(await r.balance("rec")).toBe("10");
          // GetMint sees the same; nothing was deleted.
          const got = await r.getMint(id);
          expect(got.mint).toEqual(rev.mint);
          expect((await r.list("rec", 10)).mints.map((x) => x.mintId)).toContain(id);
          // A second reconcile changes nothing.
          expect((await expectError(r.reconcile(id, "again"))).reason).toBe("MINT_ALREADY_REVERSED");
          expect(await r.balance("rec")).toBe("10");
          // The key is free: the same request mints anew, with a new id.
          const again = await r.mint("rec", "40.25", "rec-key", Blockchain.BLOCKCHAIN_SOLANA);
          expect(again.replayed).toBe(false);
          expect(again.mint?.mintId).not.toBe(id);
          expect(again.mint?.status).toBe(MintStatus.MINT_STATUS_COMPLETED);
          expect(await r.balance("rec")).toBe("50.25");
          // ...and now replays that new mint.
          const replay = await r.mint("rec", "40.25", "rec-key", Blockchain.BLOCKCHAIN_SOLANA);
          expect([replay.replayed, replay.mint?.mintId]).toEqual([true, again.mint?.mintId]);
          // Reconciling the old mint again still refuses and does not free the new mint's key.
          await expectError(r.reconcile(id, "third"));
          expect((await r.mint("rec", "40.25", "rec-key", Blockchain.BLOCKCHAIN_SOLANA)).replayed).toBe(true);
        });
      });

      it("with too little balance (after a transfer out) refuses INSUFFICIENT_FUNDS and changes nothing", async () => {
        await withServer({}, undefined, async (_s, r) => {
          const m = await r.mint("rec-low", "10", "rec-low-key");
          await r.transfer("rec-low", "rec-sink", "0.000001", "out");
          const e = await expectError(r.reconcile(m.mint?.mintId ?? "", "rollback"));
          expect([Code[e.code], e.reason]).toEqual(["FAILED_PRECONDITION", "INSUFFICIENT_FUNDS"]);
          expect(await r.balance("rec-low")).toBe("9.999999");
          expect((await r.getMint(m.mint?.mintId ?? "")).mint?.status).toBe(MintStatus.MINT_STATUS_COMPLETED);
          // Money back in: now it reverses.
          await r.transfer("rec-sink", "rec-low", "0.000001", "back");
          expect((await r.reconcile(m.mint?.mintId ?? "", "rollback")).mint?.status).toBe(MintStatus.MINT_STATUS_REVERSED);
          expect(await r.balance("rec-low")).toBe("0");
        });
      });
    });

    describe("ListMints", () => {
      let s: TestServer;
      let r: ReturnType<typeof rpc>;
      const ids: { x: string[]; y: string[]; all: string[] } = { x: [], y: [], all: [] };

      beforeAll(async () => {
        s = await target.start({ MINT_RATE_LIMIT: "1000000" });
        r = rpc(s.call);
        // 7 mints over 2 accounts, interleaved, one at a time so the order is known.
        for (let i = 0; i < 7; i++) {
          const account = i % 3 === 2 ? "list-y" : "list-x";
          const m = await r.mint(account, `${i + 1}`, `list-${i}`);
          const id = m.mint?.mintId ?? "";
          ids.all.push(id);
          (account === "list-x" ? ids.x : ids.y).push(id);
        }
      });
      afterAll(async () => {
        await s.stop();
      });

      /** Every page of a listing, following next_page_token. */
      async function pages(accountId: string, pageSize: number): Promise<string[][]> {
        const out: string[][] = [];
        let token = "";
        do {
          const page = await r.list(accountId, pageSize, token);
          out.push(page.mints.map((m) => m.mintId));
          token = page.nextPageToken;
          expect(out.length).toBeLessThan(100);
        } while (token !== "");
        return out;
      }

      it("pages of 3, 3, 1, oldest first; the last page has an empty next_page_token", async () => {
        const all = await pages("", 3);
        expect(all.map((p) => p.length)).toEqual([3, 3, 1]);
        expect(all.flat()).toEqual(ids.all);
        const page1 = await r.list("", 3);
        expect(page1.mints.map((m) => m.amount)).toEqual(["1", "2", "3"]);
      });

      it("filters by account, in order, and the filtered pages are complete", async () => {
        expect(ids.x).toHaveLength(5);
        expect(ids.y).toHaveLength(2);
        expect((await pages("list-x", 2)).map((p) => p.length)).toEqual([2, 2, 1]);
        expect((await pages("list-x", 2)).flat()).toEqual(ids.x);
        expect((await pages("list-y", 3)).flat()).toEqual(ids.y);
        const y = await r.list("list-y", 10);
        expect(y.mints.every((m) => m.accountId === "list-y")).toBe(true);
        expect(y.nextPageToken).toBe("");
        // A page exactly as long as the rest has no token either.
        expect((await r.list("list-y", 2)).nextPageToken).toBe("");
        expect((await r.list("nobody-here", 10)).mints).toEqual([]);
      });

      it("new mints appear on later pages of a listing already begun", async () => {
        const page = await r.list("list-y", 1);
        expect(page.nextPageToken).not.toBe("");
        const extra = await r.mint("list-y", "99", "list-late");
        const rest = await pages("list-y", 1000);
        expect(rest.flat()).toEqual(ids.all.filter((id) => ids.y.includes(id)).concat([extra.mint?.mintId ?? ""]));
        ids.y.push(extra.mint?.mintId ?? "");
        ids.all.push(extra.mint?.mintId ?? "");
      });

      it("page_size 0 means 50 and page_size 5000 is capped at 1000 (with 1001+ mints)", async () => {
        const batch = 200;
        for (let start = 0; start < 1000; start += batch) {
          await Promise.all(Array.from({ length: batch }, (_, i) => r.mint(`bulk-${(start + i) % 7}`, "0.000001", `bulk-${start + i}`)));
        }
        const total = ids.all.length + 1000;
        expect(total).toBeGreaterThan(1001);
        const def = await r.list("", 0);
        expect(def.mints).toHaveLength(50);
        expect(def.nextPageToken).not.toBe("");
        const capped = await r.list("", 5000);
        expect(capped.mints).toHaveLength(1000);
        expect(capped.mints.slice(0, ids.all.length).map((m) => m.mintId)).toEqual(ids.all);
        const rest = await r.list("", 5000, capped.nextPageToken);
        expect(rest.mints).toHaveLength(total - 1000);
        expect(rest.nextPageToken).toBe("");
        expect(new Set([...capped.mints, ...rest.mints].map((m) => m.mintId)).size).toBe(total);
      });
    });

    describe("values and idempotency", () => {
      let s: TestServer;
      let r: ReturnType<typeof rpc>;
      beforeAll(async () => {
        s = await target.start({ MINT_RATE_LIMIT: "1000" });
        r = rpc(s.call);
      });
      afterAll(async () => {
        await s.stop();
      });

      it.each([
        ["7.000000", "7"],
        ["7", "7"],
        ["100.50", "100.5"],
        ["0.000001", "0.000001"],
        ["0.1", "0.1"],
        ["10.010", "10.01"],
        ["9007199254.740993", "9007199254.740993"], // 2^53 + 1 micro-USDC
        ["999999999999.999999", "999999999999.999999"],
        ["1000000000000.000000", "1000000000000"],
      ])("amount %j is answered as %j", async (amount, canonical) => {
        const account = `fmt-${amount}`;
        const m = await r.mint(account, amount, `fmt-${amount}`);
        expect(m.mint?.amount).toBe(canonical);
        expect(await r.balance(account)).toBe(canonical);
        expect((await r.getMint(m.mint?.mintId ?? "")).mint?.amount).toBe(canonical);
      });

      it("a balance past 2^53 micro-USDC after several mints and a transfer is exact", async () => {
        await r.mint("big", "9007199254.740993", "big-1");
        await r.mint("big", "0.000001", "big-2");
        expect(await r.balance("big")).toBe("9007199254.740994");
        for (let i = 0; i < 3; i++) await r.mint("big", "1000000000000", `big-max-${i}`);
        expect(await r.balance("big")).toBe("3009007199254.740994");
        const t = await r.transfer("big", "big-2", "999999999999.999999", "big-xfer");
        expect(t.transfer?.amount).toBe("999999999999.999999");
        expect([await r.balance("big"), await r.balance("big-2")]).toEqual(["2009007199254.740995", "999999999999.999999"]);
      });

      it('"7" and "7.000000" are the same request (a replay, not a mismatch), for mints and transfers', async () => {
        const a = await r.mint("same-amt", "7", "same-amt-key");
        const b = await r.mint("same-amt", "7.000000", "same-amt-key");
        expect([b.replayed, b.mint?.mintId]).toEqual([true, a.mint?.mintId]);
        const c = await r.mint("same-amt", "7.0", "same-amt-key");
        expect(c.replayed).toBe(true);
        const t1 = await r.transfer("same-amt", "same-amt-2", "2.50", "same-amt-xfer");
        const t2 = await r.transfer("same-amt", "same-amt-2", "2.5", "same-amt-xfer");
        expect([t2.replayed, t2.transfer?.transferId]).toEqual([true, t1.transfer?.transferId]);
        expect(await r.balance("same-amt")).toBe("4.5");
      });

      it("mint and transfer keys are scoped: the same key string on both RPCs does not collide", async () => {
        const m = await r.mint("scope-a", "5", "shared-key");
        const t = await r.transfer("scope-a", "scope-b", "2", "shared-key");
        expect([m.replayed, t.replayed]).toEqual([false, false]);
        expect((await r.mint("scope-a", "5", "shared-key")).replayed).toBe(true);
        expect((await r.transfer("scope-a", "scope-b", "2", "shared-key")).replayed).toBe(true);
        expect([await r.balance("scope-a"), await r.balance("scope-b")]).toEqual(["3", "2"]);
      });

      it("keys are not scoped by account: the same key for another account is a mismatch", async () => {
        await r.mint("acct-scope-1", "1", "acct-scope-key");
        const e = await expectError(r.mint("acct-scope-2", "1", "acct-scope-key"));
        expect(e.metadata.differing_fields).toBe("account_id");
      });

      it('GetBalance of an unknown account is "0" and echoes the id', async () => {
        const b = await r.getBalance("never-seen");
        expect(b).toEqual({ accountId: "never-seen", balance: "0", pendingBalance: "0", frozen: false, freezeReason: "" });
      });

      it("GetMint returns every field; reverse_time is unset until reversed", async () => {
        const before = Date.now();
        const m = await r.mint("full", "3.14", "full-key", Blockchain.BLOCKCHAIN_NOBLE);
        const got = (await r.getMint(m.mint?.mintId ?? "")).mint;
        expect(got).toEqual(m.mint);
        expect(got?.mintId).toMatch(/^mint_[0-9A-Z]{26}$/);
        expect(got?.accountId).toBe("full");
        expect(got?.amount).toBe("3.14");
        expect(got?.blockchain).toBe(Blockchain.BLOCKCHAIN_NOBLE);
        expect(got?.status).toBe(MintStatus.MINT_STATUS_COMPLETED);
        expect(got?.idempotencyKey).toBe("full-key");
        expect(got?.createTime).toBeInstanceOf(Date);
        expect(got?.createTime?.getTime()).toBeGreaterThanOrEqual(before - 1000);
        expect(got?.createTime?.getTime()).toBeLessThanOrEqual(Date.now() + 1000);
        expect(got?.reverseTime).toBeUndefined();
        expect(got?.reverseReason).toBe("");
        const t = await r.transfer("full", "full-2", "1", "full-xfer");
        expect(t.transfer).toMatchObject({ fromAccountId: "full", toAccountId: "full-2", amount: "1", idempotencyKey: "full-xfer" });
        expect(t.transfer?.transferId).toMatch(/^xfr_[0-9A-Z]{26}$/);
        expect(t.transfer?.createTime).toBeInstanceOf(Date);
      });

      it("every blockchain value round-trips", async () => {
        const chains = Object.values(Blockchain).filter((v): v is number => typeof v === "number" && v > 0);
        expect(chains.length).toBe(9);
        for (const chain of chains) {
          const m = await r.mint(`chain-${chain}`, "1", `chain-${chain}`, chain);
          expect(m.mint?.blockchain).toBe(chain);
        }
      });
    });

    describe("idempotency TTL (FakeClock, MINT_IDEMPOTENCY_TTL=5s)", () => {
      it("replays at 4.9 s; from 5 s on the same key mints anew", async () => {
        const clock = new FakeClock();
        await withServer({ MINT_IDEMPOTENCY_TTL: "5s" }, clock, async (s, r) => {
          const first = await r.mint("ttl", "1", "ttl-key");
          const xfer = await r.transfer("ttl", "ttl-2", "0.5", "ttl-xfer");
          await clock.advance(4_900);
          const replay = await r.mint("ttl", "1", "ttl-key");
          expect([replay.replayed, replay.mint?.mintId]).toEqual([true, first.mint?.mintId]);
          expect((await r.transfer("ttl", "ttl-2", "0.5", "ttl-xfer")).replayed).toBe(true);
          // A different request is still a mismatch within the TTL.
          expect((await expectError(r.mint("ttl", "2", "ttl-key"))).reason).toBe("IDEMPOTENCY_KEY_REUSED");
          await clock.advance(100);
          const fresh = await r.mint("ttl", "1", "ttl-key");
          expect(fresh.replayed).toBe(false);
          expect(fresh.mint?.mintId).not.toBe(first.mint?.mintId);
          const freshXfer = await r.transfer("ttl", "ttl-2", "0.5", "ttl-xfer");
          expect([freshXfer.replayed, freshXfer.transfer?.transferId === xfer.transfer?.transferId]).toEqual([false, false]);
          expect([await r.balance("ttl"), await r.balance("ttl-2")]).toEqual(["1", "1"]);
          // Expired keys are removed, not only hidden: a sweep deletes them.
          await clock.advance(5_000);
          await s.app.adapters.idempotency.sweepExpired(1000);
          expect(await s.app.adapters.idempotency.size()).toBe(0);
        });
      });

      it("after expiry, the same key may carry a different request", async () => {
        const clock = new FakeClock();
        await withServer({ MINT_IDEMPOTENCY_TTL: "5s" }, clock, async (_s, r) => {
          await r.mint("ttl-b", "1", "k");
          await clock.advance(5_000);
          const m = await r.mint("ttl-b", "2", "k");
          expect([m.replayed, m.mint?.amount]).toEqual([false, "2"]);
          expect(await r.balance("ttl-b")).toBe("3");
        });
      });
    });

    describe("message size cap (MINT_MAX_MESSAGE_BYTES)", () => {
      it("a request larger than the cap is refused RESOURCE_EXHAUSTED before it is decoded and changes nothing", async () => {
        await withServer({ MINT_MAX_MESSAGE_BYTES: "4096" }, undefined, async (s, r) => {
          const req = { accountId: "big-msg", amount: "5", blockchain: ETH, idempotencyKey: "big-msg-key" };
          const err = await mintWithPadding(s.address, req, 8 * 1024).then(
            () => null,
            (e: unknown) => e as { code: number; details: string },
          );
          expect(err).not.toBeNull();
          expect(Code[err?.code ?? 0]).toBe("RESOURCE_EXHAUSTED");
          expect(await r.balance("big-msg")).toBe("0");
          // The key is free, and the same padding under the cap is accepted (the
          // size, not the unknown field, was the reason).
          const ok = await mintWithPadding(s.address, req, 1024);
          expect([ok.replayed, ok.mint?.amount]).toEqual([false, "5"]);
          expect(await r.balance("big-msg")).toBe("5");
          // An over-long reason on ReconcileMint is refused the same way.
          const e2 = await r.reconcile(ok.mint?.mintId ?? "", "r".repeat(8 * 1024)).then(
            () => null,
            (e: unknown) => e as { code: number },
          );
          expect(Code[e2?.code ?? 0]).toBe("RESOURCE_EXHAUSTED");
          expect((await r.getMint(ok.mint?.mintId ?? "")).mint?.status).toBe(MintStatus.MINT_STATUS_COMPLETED);
          expect(await r.balance("big-msg")).toBe("5");
        });
      });
    });
  });
}
