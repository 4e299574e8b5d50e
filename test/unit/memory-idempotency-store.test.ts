import { describe, expect, it } from "vitest";
import { MemoryIdempotencyStore } from "../../src/adapters/memory/memory-idempotency-store.js";
import { KEY_IN_USE_RETRY_AFTER_MS, STORE_FULL_RETRY_AFTER_MS } from "../../src/domain/limits.js";
import { storedResultId, type CanonicalRequest, type IdempotencyScope, type MintRecord, type StoredResult } from "../../src/domain/model.js";
import type { BeginOutcome, IdempotencyClaim } from "../../src/domain/ports.js";
import type { Result } from "../../src/domain/result.js";
import { FakeClock, flushPromises } from "../support/fake-clock.js";

const TTL_MS = 24 * 60 * 60 * 1000;

function setup(opts: { ttlMs?: number; maxKeys?: number } = {}) {
  const clock = new FakeClock();
  const store = new MemoryIdempotencyStore({ ttlMs: opts.ttlMs ?? TTL_MS, maxKeys: opts.maxKeys ?? 10_000, clock });
  return { clock, store };
}

function mintRequest(over: Partial<Record<"account_id" | "amount" | "blockchain", string>> = {}): CanonicalRequest {
  return { account_id: "acct-alice", amount: "7000000", blockchain: "ETHEREUM", ...over };
}

function transferRequest(): CanonicalRequest {
  return { from_account_id: "acct-alice", to_account_id: "acct-bob", amount: "2500000" };
}

let seq = 0;
function mintResult(key: string, req: CanonicalRequest, wallMs = Date.UTC(2026, 0, 1)): StoredResult {
  seq++;
  const mint: MintRecord = {
    mintId: `mint_01JH${String(seq).padStart(22, "0")}`,
    seq,
    accountId: req.account_id ?? "acct-alice",
    amountMicros: BigInt(req.amount ?? "7000000"),
    blockchain: "ETHEREUM",
    status: "COMPLETED",
    idempotencyKey: key,
    createWallMs: wallMs,
    reverseWallMs: null,
    reverseReason: "",
  };
  return { scope: "mint", mint };
}

function transferResult(key: string): StoredResult {
  return {
    scope: "transfer",
    transfer: {
      transferId: "xfr_01JH0000000000000000000001",
      fromAccountId: "acct-alice",
      toAccountId: "acct-bob",
      amountMicros: 2_500_000n,
      idempotencyKey: key,
      createWallMs: Date.UTC(2026, 0, 1),
    },
  };
}

function claimOf(r: Result<BeginOutcome>): IdempotencyClaim {
  expect(r.ok).toBe(true);
  if (!r.ok || r.value.kind !== "claimed") throw new Error(`expected a claim, got ${JSON.stringify(r, bigintJson)}`);
  return r.value.claim;
}

function bigintJson(_k: string, v: unknown): unknown {
  return typeof v === "bigint" ? v.toString() : v;
}

/** Starts a begin() and reports whether it has settled yet, without sleeping. */
function track<T>(p: Promise<T>): { readonly done: () => boolean; readonly promise: Promise<T> } {
  let settled = false;
  void p.then(
    () => (settled = true),
    () => (settled = true),
  );
  return { done: () => settled, promise: p };
}

describe("MemoryIdempotencyStore", () => {
  it("claims a free key, and replays the completed result for the same request", async () => {
    const { store } = setup();
    const req = mintRequest();
    const claim = claimOf(await store.begin("mint", "k-1", req, Infinity));
    expect(claim).toMatchObject({ scope: "mint", key: "k-1", request: req });
    const result = mintResult("k-1", req);
    await store.complete(claim, result);

    // Same fields in another key order: the same fingerprint.
    const again = await store.begin("mint", "k-1", { blockchain: "ETHEREUM", amount: "7000000", account_id: "acct-alice" }, Infinity);
    expect(again).toEqual({ ok: true, value: { kind: "replay", result } });
    if (again.ok && again.value.kind === "replay" && again.value.result.scope === "mint") {
      expect(again.value.result.mint.amountMicros).toBe(7_000_000n);
    }
    expect(await store.size()).toBe(1);
  });

  it("keeps scopes apart: a mint key and a transfer key with the same text never collide", async () => {
    const { store } = setup();
    const mintClaim = claimOf(await store.begin("mint", "shared-key", mintRequest(), Infinity));
    const transferClaim = claimOf(await store.begin("transfer", "shared-key", transferRequest(), Infinity));
    await store.complete(mintClaim, mintResult("shared-key", mintRequest()));
    await store.complete(transferClaim, transferResult("shared-key"));

    const m = await store.begin("mint", "shared-key", mintRequest(), Infinity);
    const t = await store.begin("transfer", "shared-key", transferRequest(), Infinity);
    expect(m.ok && m.value.kind === "replay" && m.value.result.scope).toBe("mint");
    expect(t.ok && t.value.kind === "replay" && t.value.result.scope).toBe("transfer");
    expect(await store.size()).toBe(2);
  });

  it("refuses a completed key reused for another request and names the differing fields", async () => {
    const { store } = setup();
    await store.complete(claimOf(await store.begin("mint", "k-1", mintRequest(), Infinity)), mintResult("k-1", mintRequest()));

    expect(await store.begin("mint", "k-1", mintRequest({ amount: "8000000" }), Infinity)).toEqual({
      ok: false,
      error: { code: "IDEMPOTENCY_KEY_REUSED", key: "k-1", fields: ["amount"] },
    });
    expect(await store.begin("mint", "k-1", mintRequest({ amount: "1", account_id: "acct-bob" }), Infinity)).toEqual({
      ok: false,
      error: { code: "IDEMPOTENCY_KEY_REUSED", key: "k-1", fields: ["account_id", "amount"] },
    });
    // A refusal changes nothing: the original still replays.
    const again = await store.begin("mint", "k-1", mintRequest(), Infinity);
    expect(again.ok && again.value.kind).toBe("replay");
  });

  it("leaves the key free after release", async () => {
    const { store } = setup();
    const first = claimOf(await store.begin("mint", "k-1", mintRequest(), Infinity));
    await store.release(first);
    expect(await store.size()).toBe(0);
    // Free for any request, not only the released one.
    const second = claimOf(await store.begin("mint", "k-1", mintRequest({ amount: "9" }), Infinity));
    expect(second).not.toBe(first);
    // The stale claim can neither release nor complete the key someone else now holds.
    await store.release(first);
    expect(await store.size()).toBe(1);
    await expect(store.complete(first, mintResult("k-1", mintRequest()))).rejects.toThrow(/not in flight/);
    await store.complete(second, mintResult("k-1", mintRequest({ amount: "9" })));
    const replay = await store.begin("mint", "k-1", mintRequest({ amount: "9" }), Infinity);
    expect(replay.ok && replay.value.kind).toBe("replay");
  });

  it("a duplicate of an in-flight request waits, then replays the first call's result", async () => {
    const { clock, store } = setup();
    const claim = claimOf(await store.begin("mint", "k-1", mintRequest(), Infinity));
    const dup = track(store.begin("mint", "k-1", mintRequest(), clock.nowMs() + 5000));
    const dup2 = track(store.begin("mint", "k-1", mintRequest(), Infinity));
    await clock.advance(100);
    expect(dup.done()).toBe(false);
    expect(dup2.done()).toBe(false);

    const result = mintResult("k-1", mintRequest());
    await store.complete(claim, result);
    expect(await dup.promise).toEqual({ ok: true, value: { kind: "replay", result } });
    expect(await dup2.promise).toEqual({ ok: true, value: { kind: "replay", result } });
    // The waiter's deadline timer was cancelled when the key settled.
    expect(clock.pendingTimers()).toBe(0);
  });

  it("a duplicate waiting on a released key claims it; other waiters then wait for that one", async () => {
    const { store } = setup();
    const first = claimOf(await store.begin("mint", "k-1", mintRequest(), Infinity));
    const a = track(store.begin("mint", "k-1", mintRequest(), Infinity));
    const b = track(store.begin("mint", "k-1", mintRequest(), Infinity));
    await flushPromises();
    await store.release(first);

    const second = claimOf(await a.promise);
    expect(second).not.toBe(first);
    await flushPromises();
    expect(b.done()).toBe(false); // b now waits for a's claim
    const result = mintResult("k-1", mintRequest());
    await store.complete(second, result);
    expect(await b.promise).toEqual({ ok: true, value: { kind: "replay", result } });
  });

  it("a waiting duplicate gets IDEMPOTENCY_KEY_IN_USE when its deadline passes; the first still completes", async () => {
    const { clock, store } = setup();
    const claim = claimOf(await store.begin("mint", "k-1", mintRequest(), Infinity));
    const dup = track(store.begin("mint", "k-1", mintRequest(), clock.nowMs() + 2000));
    await clock.advance(1999);
    expect(dup.done()).toBe(false);
    await clock.advance(1);
    expect(dup.done()).toBe(true);
    expect(await dup.promise).toEqual({
      ok: false,
      error: { code: "IDEMPOTENCY_KEY_IN_USE", key: "k-1", retryAfterMs: KEY_IN_USE_RETRY_AFTER_MS },
    });
    expect(KEY_IN_USE_RETRY_AFTER_MS).toBeGreaterThan(0);

    const result = mintResult("k-1", mintRequest());
    await store.complete(claim, result);
    expect(await store.begin("mint", "k-1", mintRequest(), Infinity)).toEqual({ ok: true, value: { kind: "replay", result } });
  });

  it("a duplicate whose deadline has already passed gets IN_USE at once, without a timer", async () => {
    const { clock, store } = setup();
    claimOf(await store.begin("mint", "k-1", mintRequest(), Infinity));
    await clock.advance(10);
    const r = await store.begin("mint", "k-1", mintRequest(), clock.nowMs());
    expect(r.ok === false && r.error.code).toBe("IDEMPOTENCY_KEY_IN_USE");
    expect(clock.pendingTimers()).toBe(0);
  });

  it("an in-flight key with a different request is refused at once, naming the fields", async () => {
    const { clock, store } = setup();
    claimOf(await store.begin("mint", "k-1", mintRequest(), Infinity));
    const r = track(store.begin("mint", "k-1", mintRequest({ blockchain: "SOLANA" }), Infinity));
    await flushPromises();
    expect(r.done()).toBe(true); // no waiting, even without a deadline
    expect(await r.promise).toEqual({ ok: false, error: { code: "IDEMPOTENCY_KEY_REUSED", key: "k-1", fields: ["blockchain"] } });
    expect(clock.pendingTimers()).toBe(0);
  });

  it("replays until just before the TTL and treats the key as free (and removes it) at the TTL", async () => {
    const { clock, store } = setup({ ttlMs: 5000 });
    await clock.advance(123);
    await store.complete(claimOf(await store.begin("mint", "k-1", mintRequest(), Infinity)), mintResult("k-1", mintRequest()));
    await clock.advance(4999);
    const before = await store.begin("mint", "k-1", mintRequest(), Infinity);
    expect(before.ok && before.value.kind).toBe("replay");
    await clock.advance(1);
    // Expired: free, even for another request.
    const after = claimOf(await store.begin("mint", "k-1", mintRequest({ amount: "1" }), Infinity));
    expect(after.request).toEqual(mintRequest({ amount: "1" }));
    expect(await store.size()).toBe(1); // the expired entry was replaced, not kept beside
  });

  it("counts the TTL from completion, not from the claim", async () => {
    const { clock, store } = setup({ ttlMs: 1000 });
    const claim = claimOf(await store.begin("mint", "k-1", mintRequest(), Infinity));
    await clock.advance(800);
    await store.complete(claim, mintResult("k-1", mintRequest()));
    await clock.advance(999);
    const r = await store.begin("mint", "k-1", mintRequest(), Infinity);
    expect(r.ok && r.value.kind).toBe("replay");
  });

  it("sweepExpired deletes expired keys oldest first, in batches, stopping at the first live one", async () => {
    const { clock, store } = setup({ ttlMs: 1000 });
    for (let i = 0; i < 5; i++) {
      await store.complete(claimOf(await store.begin("mint", `old-${i}`, mintRequest(), Infinity)), mintResult(`old-${i}`, mintRequest()));
    }
    await clock.advance(500);
    await store.complete(claimOf(await store.begin("mint", "young", mintRequest(), Infinity)), mintResult("young", mintRequest()));
    expect(await store.sweepExpired(100)).toBe(0); // nothing expired yet
    await clock.advance(500); // the five old ones expire now; "young" at 1500

    expect(await store.sweepExpired(2)).toBe(2);
    expect(await store.size()).toBe(4);
    expect(await store.sweepExpired(100)).toBe(3);
    expect(await store.size()).toBe(1);
    const young = await store.begin("mint", "young", mintRequest(), Infinity);
    expect(young.ok && young.value.kind).toBe("replay");
    await clock.advance(500);
    expect(await store.sweepExpired(100)).toBe(1);
    expect(await store.size()).toBe(0);
  });

  it("sweepExpired skips in-flight keys, even at the front, and sweeps what completes later in order", async () => {
    const { clock, store } = setup({ ttlMs: 1000 });
    const slow = claimOf(await store.begin("mint", "slow", mintRequest(), Infinity)); // first in the Map
    await store.complete(claimOf(await store.begin("mint", "a", mintRequest(), Infinity)), mintResult("a", mintRequest()));
    await store.complete(claimOf(await store.begin("mint", "b", mintRequest(), Infinity)), mintResult("b", mintRequest()));
    await clock.advance(2000);
    expect(await store.sweepExpired(100)).toBe(2);
    expect(await store.size()).toBe(1); // "slow" kept

    await store.complete(slow, mintResult("slow", mintRequest()));
    await clock.advance(999);
    expect(await store.sweepExpired(100)).toBe(0);
    await clock.advance(1);
    expect(await store.sweepExpired(100)).toBe(1);
    expect(await store.size()).toBe(0);
  });

  it("sweeps in completion order, not claim order: a key claimed early but completed late does not block", async () => {
    const { clock, store } = setup({ ttlMs: 1000 });
    const early = claimOf(await store.begin("mint", "claimed-first", mintRequest(), Infinity));
    await store.complete(claimOf(await store.begin("mint", "quick", mintRequest(), Infinity)), mintResult("quick", mintRequest()));
    await clock.advance(500);
    await store.complete(early, mintResult("claimed-first", mintRequest())); // expires at 1500
    await clock.advance(500); // t = 1000: "quick" has expired, "claimed-first" has not
    expect(await store.sweepExpired(100)).toBe(1);
    const r = await store.begin("mint", "claimed-first", mintRequest(), Infinity);
    expect(r.ok && r.value.kind).toBe("replay");
  });

  it("sweeps mint and transfer keys together, the one expiring first first", async () => {
    const { clock, store } = setup({ ttlMs: 1000 });
    const order: [IdempotencyScope, string][] = [
      ["transfer", "t-0"],
      ["mint", "m-0"],
      ["mint", "m-1"],
      ["transfer", "t-1"],
      ["mint", "m-2"],
    ];
    const ids = new Map<string, string>();
    for (const [scope, key] of order) {
      const request = scope === "mint" ? mintRequest() : transferRequest();
      const result = scope === "mint" ? mintResult(key, request) : transferResult(key);
      ids.set(key, storedResultId(result));
      await store.complete(claimOf(await store.begin(scope, key, request, Infinity)), result);
      await clock.advance(10);
    }
    await clock.advance(1000 - 50 + 20); // t-0, m-0 and m-1 have expired; t-1 and m-2 have not
    expect(await store.sweepExpired(2)).toBe(2);
    expect(await store.size()).toBe(3);
    // t-0 and m-0 went first; m-1 (expired too, but later) is still held:
    // forget() of a swept key changes nothing, of a held one deletes it.
    await store.forget("transfer", "t-0", ids.get("t-0")!);
    expect(await store.size()).toBe(3);
    await store.forget("mint", "m-1", ids.get("m-1")!);
    expect(await store.size()).toBe(2);
    expect(await store.sweepExpired(100)).toBe(0);
    const t1 = await store.begin("transfer", "t-1", transferRequest(), Infinity);
    expect(t1.ok && t1.value.kind).toBe("replay");
    await clock.advance(20);
    expect(await store.sweepExpired(100)).toBe(2);
    expect(await store.size()).toBe(0);
  });

  it("compares with the claim's own request even when the stored record says otherwise", async () => {
    const { store } = setup();
    // A result whose record does not restate the request (the store must not assume it does).
    const request = mintRequest({ amount: "5000000" });
    const result = mintResult("k-1", mintRequest({ amount: "6000000" }));
    await store.complete(claimOf(await store.begin("mint", "k-1", request, Infinity)), result);
    expect(await store.begin("mint", "k-1", request, Infinity)).toEqual({ ok: true, value: { kind: "replay", result } });
    expect(await store.begin("mint", "k-1", mintRequest({ amount: "6000000" }), Infinity)).toEqual({
      ok: false,
      error: { code: "IDEMPOTENCY_KEY_REUSED", key: "k-1", fields: ["amount"] },
    });
    // And a request with a field more or less is another request.
    expect(await store.begin("mint", "k-1", { ...request, memo: "x" }, Infinity)).toEqual({
      ok: false,
      error: { code: "IDEMPOTENCY_KEY_REUSED", key: "k-1", fields: ["memo"] },
    });
    const { blockchain: _omitted, ...fewer } = request;
    expect(await store.begin("mint", "k-1", fewer, Infinity)).toEqual({
      ok: false,
      error: { code: "IDEMPOTENCY_KEY_REUSED", key: "k-1", fields: ["blockchain"] },
    });
  });

  it("at maxKeys refuses with IDEMPOTENCY_STORE_FULL until a key expires, then claims", async () => {
    const { clock, store } = setup({ ttlMs: 1000, maxKeys: 3 });
    await store.complete(claimOf(await store.begin("mint", "a", mintRequest(), Infinity)), mintResult("a", mintRequest()));
    await clock.advance(300);
    await store.complete(claimOf(await store.begin("mint", "b", mintRequest(), Infinity)), mintResult("b", mintRequest()));
    claimOf(await store.begin("mint", "c", mintRequest(), Infinity)); // in flight
    await clock.advance(100);

    expect(await store.begin("mint", "d", mintRequest(), Infinity)).toEqual({
      ok: false,
      error: { code: "IDEMPOTENCY_STORE_FULL", maxKeys: 3, retryAfterMs: 600 }, // "a" expires at 1000
    });
    // Known keys still replay or wait while full: only new keys are refused.
    const a = await store.begin("mint", "a", mintRequest(), Infinity);
    expect(a.ok && a.value.kind).toBe("replay");

    await clock.advance(600); // "a" expires
    const d = claimOf(await store.begin("mint", "d", mintRequest(), Infinity));
    expect(d.key).toBe("d");
    expect(await store.size()).toBe(3);
  });

  it("STORE_FULL with only in-flight keys suggests the fixed back-off", async () => {
    const { store } = setup({ maxKeys: 1 });
    claimOf(await store.begin("transfer", "t-1", transferRequest(), Infinity));
    expect(await store.begin("transfer", "t-2", transferRequest(), Infinity)).toEqual({
      ok: false,
      error: { code: "IDEMPOTENCY_STORE_FULL", maxKeys: 1, retryAfterMs: STORE_FULL_RETRY_AFTER_MS },
    });
  });

  it("forget frees a completed key; it is a no-op when absent or in flight", async () => {
    const { store } = setup();
    const first = mintResult("k-1", mintRequest());
    await store.complete(claimOf(await store.begin("mint", "k-1", mintRequest(), Infinity)), first);
    await store.forget("transfer", "k-1", idOf(first)); // other scope: untouched
    expect(await store.size()).toBe(1);
    await store.forget("mint", "k-1", "mint_someone_else"); // another result: untouched
    expect(await store.size()).toBe(1);
    await store.forget("mint", "k-1", idOf(first));
    expect(await store.size()).toBe(0);

    // Used again (a new mint after the reconcile), now in flight: forget must not free it.
    const claim = claimOf(await store.begin("mint", "k-1", mintRequest(), Infinity));
    await store.forget("mint", "k-1", idOf(first));
    expect(await store.size()).toBe(1);
    const second = mintResult("k-1", mintRequest());
    await store.complete(claim, second);
    const r = await store.begin("mint", "k-1", mintRequest(), Infinity);
    expect(r).toEqual({ ok: true, value: { kind: "replay", result: second } });
    expect(r.ok && r.value.kind === "replay" && r.value.result).not.toEqual(first);
    // The reconcile of the OLD mint must not free the key that now holds the new one.
    await store.forget("mint", "k-1", idOf(first));
    expect(await store.size()).toBe(1);

    await store.forget("mint", "never-used", "mint_x"); // absent: no throw, nothing changes
    expect(await store.size()).toBe(1);
  });

  it("completing a claim twice is a bug and throws", async () => {
    const { store } = setup();
    const claim = claimOf(await store.begin("mint", "k-1", mintRequest(), Infinity));
    await store.complete(claim, mintResult("k-1", mintRequest()));
    await expect(store.complete(claim, mintResult("k-1", mintRequest()))).rejects.toThrow(/invariant violated/);
    await expect(store.complete(claim, transferResult("k-1"))).rejects.toThrow(/invariant violated/);
  });

  it("close wakes waiters with UnavailableError and refuses later calls", async () => {
    const { store } = setup();
    claimOf(await store.begin("mint", "k-1", mintRequest(), Infinity));
    // Settled into a value at once so the rejection is never unhandled.
    const waiter = store.begin("mint", "k-1", mintRequest(), Infinity).then(
      () => null,
      (e: unknown) => e,
    );
    await flushPromises();
    await store.close();
    expect(await waiter).toMatchObject({ code: "UNAVAILABLE" });
    await expect(store.begin("mint", "k-2", mintRequest(), Infinity)).rejects.toMatchObject({ code: "UNAVAILABLE" });
    expect(await store.size()).toBe(0);
  });

  it("rejects impossible settings", () => {
    const clock = new FakeClock();
    expect(() => new MemoryIdempotencyStore({ ttlMs: 0, maxKeys: 10, clock })).toThrow(/TTL/);
    expect(() => new MemoryIdempotencyStore({ ttlMs: 1000, maxKeys: 0, clock })).toThrow(/maxKeys/);
  });
});

function idOf(result: StoredResult): string {
  return storedResultId(result);
}
