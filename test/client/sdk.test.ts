/**
 * The SDK against the real server (in-process, 127.0.0.1:0): plain typed
 * results, every producible row of the error table as a typed
 * MintServiceError, retries that honour RetryInfo and reuse the key, auth
 * metadata, and replicas skipped while NOT_SERVING or gone.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createMintClient, MintServiceError, toMicros, type MintClient, type RetryEvent } from "../../packages/client/src/index.js";
import { UnavailableError } from "../../src/domain/errors.js";
import { FakeClock } from "../support/fake-clock.js";
import { startStubMintServer } from "../support/stub-mint-server.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { FaultyLedger, startCustomServer, waitFor, type CustomServer } from "../integration/helpers.js";

const DOMAIN = "mint.usdc.example";
const UNKNOWN_MINT_ID = "mint_0000000000AAAAAAAAAAAAAAAA";

/** Awaits a call expected to fail with a MintServiceError and returns it. */
async function failure(p: Promise<unknown>): Promise<MintServiceError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof MintServiceError) return err;
    throw err;
  }
  throw new Error("expected the call to fail, it succeeded");
}

function expectInvalid(e: MintServiceError, field: string, reason: string): void {
  expect({ code: e.code, reason: e.reason, domain: e.domain, attempts: e.attempts }).toEqual({ code: "INVALID_ARGUMENT", reason, domain: DOMAIN, attempts: 1 });
  expect(e.fieldViolations.map((v) => v.field)).toEqual([field]);
  expect(e.fieldViolations[0]?.description).not.toBe("");
}

describe("SDK on one server", () => {
  let s: TestServer;
  let client: MintClient;
  let n = 0;
  const unique = (p: string): string => `${p}-${++n}`;

  beforeAll(async () => {
    s = await startTestServer({ MINT_RATE_LIMIT: "1000000" });
    client = createMintClient({ addresses: s.address, defaultDeadlineMs: 5_000 });
  });
  afterAll(async () => {
    client.close();
    await s.stop();
  });

  it("reserve, supply, redemption (replayed by its key, listed, read back) and freeze as plain objects; refusals are typed", async () => {
    const carol = unique("carol");
    await client.mintUsdc({ accountId: carol, amount: "20", blockchain: "BASE" });
    const before = await client.getSupply();
    const r = await client.redeemUsdc({ accountId: carol, amount: "5.5", blockchain: "BASE", idempotencyKey: unique("rdm") });
    expect(r.replayed).toBe(false);
    expect(r.redemption).toMatchObject({ accountId: carol, amount: "5.5", blockchain: "BASE", idempotencyKey: r.idempotencyKey, settlement: { state: "NOT_REQUIRED" } });
    expect(r.redemption.redemptionId).toMatch(/^rdm_/);
    expect((await client.redeemUsdc({ accountId: carol, amount: "5.5", blockchain: "BASE", idempotencyKey: r.idempotencyKey })).replayed).toBe(true);
    expect(await client.getRedemption(r.redemption.redemptionId)).toEqual(r.redemption);
    const page = await client.listRedemptions({ accountId: carol });
    expect(page).toEqual({ redemptions: [r.redemption], nextPageToken: "" });
    expect(toMicros((await client.getSupply()).supply)).toBe(toMicros(before.supply) - 5_500_000n);
    expect((await client.getBalance(carol)).balance).toBe("14.5");

    const frozen = await client.freezeAccount({ accountId: carol, reason: "court order" });
    expect(frozen).toMatchObject({ accountId: carol, frozen: true });
    const refused = await client.redeemUsdc({ accountId: carol, amount: "1", blockchain: "BASE" }).then(
      () => null,
      (err: unknown) => err,
    );
    expect(refused).toBeInstanceOf(MintServiceError);
    expect([(refused as MintServiceError).code, (refused as MintServiceError).reason]).toEqual(["FAILED_PRECONDITION", "ACCOUNT_FROZEN"]);
    expect(await client.getBalance(carol)).toEqual({ accountId: carol, balance: "14.5", pendingBalance: "0", frozen: true, freezeReason: "court order" });
    expect(await client.unfreezeAccount({ accountId: carol })).toMatchObject({ frozen: false });

    const supply = await client.getSupply();
    const set = await client.setReserve({ amount: supply.supply, attestationRef: "sdk-attestation" });
    expect(set).toMatchObject({ supply: supply.supply, reserve: supply.supply, headroom: "0", attestationRef: "sdk-attestation", pendingApproval: "0" });
    const over = await client.mintUsdc({ accountId: carol, amount: "0.000001", blockchain: "BASE" }).then(
      () => null,
      (err: unknown) => err,
    );
    expect([(over as MintServiceError).code, (over as MintServiceError).reason]).toEqual(["FAILED_PRECONDITION", "RESERVE_EXCEEDED"]);
    // Lift the cap again for the other tests on this server.
    await client.setReserve({ amount: "1000000000000", attestationRef: "sdk-attestation-2" });
  });

  it("mint, transfer, balance, get, list and reconcile return plain camelCase objects", async () => {
    const alice = unique("alice");
    const bob = unique("bob");
    const m = await client.mintUsdc({ accountId: alice, amount: "100.50", blockchain: "ETHEREUM" });
    expect(m.replayed).toBe(false);
    expect(m.idempotencyKey).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7/);
    expect(m.mint).toMatchObject({ accountId: alice, amount: "100.5", blockchain: "ETHEREUM", status: "COMPLETED", idempotencyKey: m.idempotencyKey, reverseReason: "" });
    expect(m.mint.createTime).toBeInstanceOf(Date);
    expect(m.mint.reverseTime).toBeUndefined();

    const again = await client.mintUsdc({ accountId: alice, amount: "100.5", blockchain: "ethereum", idempotencyKey: m.idempotencyKey });
    expect(again.replayed).toBe(true);
    expect(again.mint.mintId).toBe(m.mint.mintId);

    const t = await client.transfer({ fromAccountId: alice, toAccountId: bob, amount: "0.5", idempotencyKey: unique("t") });
    expect(t.transfer).toMatchObject({ fromAccountId: alice, toAccountId: bob, amount: "0.5" });
    expect(t.transfer.transferId).toMatch(/^xfr_/);
    expect(await client.getBalance(alice)).toEqual({ accountId: alice, balance: "100", pendingBalance: "0", frozen: false, freezeReason: "" });
    expect(toMicros((await client.getBalance(bob)).balance)).toBe(500_000n);

    expect(await client.getMint(m.mint.mintId)).toEqual(m.mint);
    const other = await client.mintUsdc({ accountId: unique("carol"), amount: "3", blockchain: "POLYGON" });
    const reversed = await client.reconcileMint({ mintId: other.mint.mintId, reason: "chain tx failed" });
    expect(reversed).toMatchObject({ status: "REVERSED", reverseReason: "chain tx failed" });
    expect(reversed.reverseTime).toBeInstanceOf(Date);
  });

  it("a dns: target (one channel, round_robin over what the name resolves to) works too", async () => {
    const port = s.address.slice(s.address.lastIndexOf(":") + 1);
    const viaDns = createMintClient({ addresses: `dns:localhost:${port}`, token: "loopback-is-fine" });
    try {
      expect(await viaDns.getBalance("nobody")).toEqual({ accountId: "nobody", balance: "0", pendingBalance: "0", frozen: false, freezeReason: "" });
      expect((await viaDns.waitForHealth()).map((e) => [e.address, e.status])).toEqual([[`dns:localhost:${port}`, "SERVING"]]);
    } finally {
      viaDns.close();
    }
  });

  it("listMints pages; listAllMints walks every page", async () => {
    const acct = unique("lister");
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) ids.push((await client.mintUsdc({ accountId: acct, amount: `${i + 1}`, blockchain: "BASE" })).mint.mintId);
    const first = await client.listMints({ accountId: acct, pageSize: 3 });
    expect(first.mints).toHaveLength(3);
    expect(first.nextPageToken).not.toBe("");
    const all: string[] = [];
    const { listAllMints } = client; // methods work unbound
    for await (const m of listAllMints({ accountId: acct, pageSize: 3 })) all.push(m.mintId);
    expect(all.sort()).toEqual([...ids].sort());
  });

  describe("INVALID_ARGUMENT rows: typed, field named, never retried", () => {
    it.each([
      ["", "INVALID_AMOUNT"],
      ["1.0000001", "INVALID_AMOUNT"],
      ["-1", "INVALID_AMOUNT"],
      ["1000000000001", "AMOUNT_TOO_LARGE"],
    ])("amount %j -> %s", async (amount, reason) => {
      expectInvalid(await failure(client.mintUsdc({ accountId: unique("a"), amount, blockchain: "BASE" })), "amount", reason);
    });
    it("account ids, same account, key, chain", async () => {
      expectInvalid(await failure(client.mintUsdc({ accountId: "a b", amount: "1", blockchain: "BASE" })), "account_id", "INVALID_ACCOUNT_ID");
      expectInvalid(await failure(client.transfer({ fromAccountId: "-x", toAccountId: "y", amount: "1" })), "from_account_id", "INVALID_ACCOUNT_ID");
      expectInvalid(await failure(client.transfer({ fromAccountId: "x", toAccountId: "x", amount: "1" })), "to_account_id", "SAME_ACCOUNT");
      expectInvalid(await failure(client.mintUsdc({ accountId: "a", amount: "1", blockchain: "BASE", idempotencyKey: "" })), "idempotency_key", "INVALID_IDEMPOTENCY_KEY");
      expectInvalid(await failure(client.mintUsdc({ accountId: "a", amount: "1", blockchain: "DOGE" })), "blockchain", "INVALID_BLOCKCHAIN");
    });
    it("page size, page token, mint id, reason", async () => {
      expectInvalid(await failure(client.listMints({ pageSize: -1 })), "page_size", "INVALID_PAGE_SIZE");
      expectInvalid(await failure(client.listMints({ pageToken: "not-a-token" })), "page_token", "INVALID_PAGE_TOKEN");
      expectInvalid(await failure(client.getMint("a b")), "mint_id", "INVALID_MINT_ID");
      const m = await client.mintUsdc({ accountId: unique("rsn"), amount: "1", blockchain: "BASE" });
      expectInvalid(await failure(client.reconcileMint({ mintId: m.mint.mintId, reason: "bad\u0001reason" })), "reason", "INVALID_REASON");
    });
  });

  it("ALREADY_EXISTS IDEMPOTENCY_KEY_REUSED names the differing fields", async () => {
    const key = unique("reuse");
    await client.mintUsdc({ accountId: unique("r"), amount: "1", blockchain: "SOLANA", idempotencyKey: key });
    const e = await failure(client.mintUsdc({ accountId: unique("r2"), amount: "2", blockchain: "SOLANA", idempotencyKey: key }));
    expect([e.code, e.reason, e.attempts]).toEqual(["ALREADY_EXISTS", "IDEMPOTENCY_KEY_REUSED", 1]);
    expect(e.differingFields).toEqual(["account_id", "amount"]);
    // The server names the call's request id in every error (a UUID when the caller sent none).
    expect(e.requestId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  });

  it("FAILED_PRECONDITION: INSUFFICIENT_FUNDS and MINT_ALREADY_REVERSED; NOT_FOUND MINT_NOT_FOUND", async () => {
    const poor = unique("poor");
    const e1 = await failure(client.transfer({ fromAccountId: poor, toAccountId: unique("rich"), amount: "1" }));
    expect([e1.code, e1.reason, e1.metadata.account_id, e1.attempts]).toEqual(["FAILED_PRECONDITION", "INSUFFICIENT_FUNDS", poor, 1]);
    const m = await client.mintUsdc({ accountId: unique("rev"), amount: "1", blockchain: "NOBLE" });
    await client.reconcileMint({ mintId: m.mint.mintId, reason: "first" });
    const e2 = await failure(client.reconcileMint({ mintId: m.mint.mintId, reason: "second" }));
    expect([e2.code, e2.reason]).toEqual(["FAILED_PRECONDITION", "MINT_ALREADY_REVERSED"]);
    const e3 = await failure(client.getMint(UNKNOWN_MINT_ID));
    expect([e3.code, e3.reason, e3.metadata.mint_id]).toEqual(["NOT_FOUND", "MINT_NOT_FOUND", UNKNOWN_MINT_ID]);
  });

  it("RESOURCE_EXHAUSTED for a request above the message limit is not retried: MESSAGE_TOO_LARGE above MintUsdc's cap, grpc-js's (no details) above the transport's", async () => {
    const e = await failure(client.mintUsdc({ accountId: "a".repeat(5000), amount: "1", blockchain: "BASE" }));
    expect([e.code, e.reason, e.hasErrorInfo, e.attempts]).toEqual(["RESOURCE_EXHAUSTED", "MESSAGE_TOO_LARGE", true, 1]);
    const huge = await failure(client.mintUsdc({ accountId: "a".repeat(2 * 1024 * 1024), amount: "1", blockchain: "BASE" }));
    expect([huge.code, huge.reason, huge.hasErrorInfo, huge.attempts]).toEqual(["RESOURCE_EXHAUSTED", "", false, 1]);
  });

  it("UNAVAILABLE SHUTTING_DOWN while draining (retries off shows the first answer)", async () => {
    const d = await startTestServer();
    const c = createMintClient({ addresses: d.address, retry: false });
    try {
      d.app.server.edge.startDraining();
      const e = await failure(c.getBalance("x"));
      expect([e.code, e.reason, e.hasErrorInfo, e.address]).toEqual(["UNAVAILABLE", "SHUTTING_DOWN", true, d.address]);
    } finally {
      c.close();
      await d.stop();
    }
  });
});

describe("RetryInfo", () => {
  let s: TestServer;
  afterEach(async () => {
    await s.stop();
  });

  it("15 mints to one account (limit 10/s) all complete, each refused one waiting exactly the RetryInfo delay, each applied once", async () => {
    s = await startTestServer({ MINT_RATE_LIMIT: "10", MINT_RATE_WINDOW: "1s" });
    const retries: RetryEvent[] = [];
    const client = createMintClient({ addresses: s.address, onRetry: (e) => retries.push(e) });
    try {
      const started = Date.now();
      const results = await Promise.all(Array.from({ length: 15 }, (_, i) => client.mintUsdc({ accountId: "hot", amount: "1", blockchain: "BASE", idempotencyKey: `hot-${i}` })));
      expect(results.every((r) => !r.replayed)).toBe(true);
      expect(new Set(results.map((r) => r.mint.mintId)).size).toBe(15);
      expect((await client.getBalance("hot")).balance).toBe("15");
      expect(retries.length).toBeGreaterThanOrEqual(5);
      for (const r of retries) {
        expect([r.error.code, r.error.reason, r.fromRetryInfo]).toEqual(["RESOURCE_EXHAUSTED", "RATE_LIMITED", true]);
        expect(r.delayMs).toBe(r.error.retryAfterMs);
        expect(r.error.quotaViolations[0]?.subject).toBe("account:hot");
      }
      // The refused five had to wait for the window to move.
      const shortest = Math.min(...retries.map((r) => r.delayMs));
      expect(Date.now() - started).toBeGreaterThanOrEqual(shortest);
    } finally {
      client.close();
    }
  });

  it("retries off: the 11th mint fails RATE_LIMITED with retryAfterMs and QuotaFailure", async () => {
    s = await startTestServer({ MINT_RATE_LIMIT: "10", MINT_RATE_WINDOW: "1s" });
    const client = createMintClient({ addresses: s.address, retry: false });
    try {
      for (let i = 0; i < 10; i++) await client.mintUsdc({ accountId: "cap", amount: "1", blockchain: "BASE" });
      const e = await failure(client.mintUsdc({ accountId: "cap", amount: "1", blockchain: "BASE" }));
      expect([e.code, e.reason]).toEqual(["RESOURCE_EXHAUSTED", "RATE_LIMITED"]);
      expect(e.retryAfterMs).toBeGreaterThan(0);
      expect(e.retryAfterMs).toBeLessThanOrEqual(1000);
      expect(e.quotaViolations).toEqual([{ subject: "account:cap", description: expect.any(String) }]);
    } finally {
      client.close();
    }
  });

  it("a RetryInfo delay longer than the budget fails at once instead of waiting", async () => {
    s = await startTestServer({ MINT_RATE_LIMIT: "1", MINT_RATE_WINDOW: "1m" });
    const client = createMintClient({ addresses: s.address, retry: { budgetMs: 2_000 } });
    try {
      await client.mintUsdc({ accountId: "slow", amount: "1", blockchain: "BASE" });
      const started = Date.now();
      const e = await failure(client.mintUsdc({ accountId: "slow", amount: "1", blockchain: "BASE" }));
      expect([e.reason, e.attempts]).toEqual(["RATE_LIMITED", 1]);
      expect(e.retryAfterMs).toBeGreaterThan(50_000);
      expect(Date.now() - started).toBeLessThan(1_500);
    } finally {
      client.close();
    }
  });

  it("IDEMPOTENCY_STORE_FULL carries RetryInfo", async () => {
    s = await startTestServer({ MINT_IDEMPOTENCY_MAX_KEYS: "1" });
    const client = createMintClient({ addresses: s.address, retry: false });
    try {
      await client.mintUsdc({ accountId: "full", amount: "1", blockchain: "BASE" });
      const e = await failure(client.mintUsdc({ accountId: "full", amount: "1", blockchain: "BASE" }));
      expect([e.code, e.reason]).toEqual(["RESOURCE_EXHAUSTED", "IDEMPOTENCY_STORE_FULL"]);
      expect(e.retryAfterMs).toBeGreaterThanOrEqual(0);
    } finally {
      client.close();
    }
  });
});

describe("held locks (fake server clock): IDEMPOTENCY_KEY_IN_USE and DEADLINE_EXCEEDED", () => {
  const LONG = { deadlineMs: 600_000, retry: { budgetMs: 600_000 } };
  let s: TestServer;
  let clock: FakeClock;
  beforeAll(async () => {
    clock = new FakeClock();
    s = await startTestServer({}, clock);
  });
  afterAll(async () => {
    await s.stop();
  });

  it("a duplicate in flight gets ABORTED IDEMPOTENCY_KEY_IN_USE; the SDK waits its RetryInfo and then replays the first call's result", async () => {
    const retries: RetryEvent[] = [];
    const client = createMintClient({ addresses: s.address, defaultDeadlineMs: 30_000, onRetry: (e) => retries.push(e) });
    try {
      await client.mintUsdc({ accountId: "busy-a", amount: "10", blockchain: "BASE" });
      const release = await s.app.core.locks.acquire(["busy-a"], Infinity);
      // The first call's deadline lies beyond the clock jump, so only the duplicate's passes.
      const first = client.transfer({ fromAccountId: "busy-a", toAccountId: "busy-b", amount: "4", idempotencyKey: "same" }, LONG);
      await waitFor(() => s.app.server.edge.callsInFlight === 1, "the first transfer in flight");
      const duplicate = client.transfer({ fromAccountId: "busy-a", toAccountId: "busy-b", amount: "4", idempotencyKey: "same" });
      await waitFor(() => s.app.server.edge.callsInFlight === 2, "the duplicate in flight");
      await clock.advance(30_000);
      await waitFor(() => retries.length === 1, "the duplicate's retry");
      expect([retries[0]?.error.code, retries[0]?.error.reason, retries[0]?.fromRetryInfo]).toEqual(["ABORTED", "IDEMPOTENCY_KEY_IN_USE", true]);
      expect(retries[0]?.delayMs).toBe(retries[0]?.error.retryAfterMs);
      await waitFor(() => s.app.server.edge.callsInFlight === 2, "the retry in flight");
      release?.();
      const [a, b] = await Promise.all([first, duplicate]);
      expect([a.replayed, b.replayed]).toEqual([false, true]);
      expect(b.transfer.transferId).toBe(a.transfer.transferId);
      expect((await client.getBalance("busy-b")).balance).toBe("4");
    } finally {
      client.close();
    }
  });

  it("retries off: ABORTED IDEMPOTENCY_KEY_IN_USE and DEADLINE_EXCEEDED are typed", async () => {
    const client = createMintClient({ addresses: s.address, defaultDeadlineMs: 30_000, retry: false });
    try {
      await client.mintUsdc({ accountId: "dl-a", amount: "10", blockchain: "BASE" });
      const release = await s.app.core.locks.acquire(["dl-a"], Infinity);
      const first = client.transfer({ fromAccountId: "dl-a", toAccountId: "dl-b", amount: "1", idempotencyKey: "k1" }, LONG);
      await waitFor(() => s.app.server.edge.callsInFlight === 1, "the first in flight");
      const dup = failure(client.transfer({ fromAccountId: "dl-a", toAccountId: "dl-b", amount: "1", idempotencyKey: "k1" }));
      const other = failure(client.mintUsdc({ accountId: "dl-a", amount: "1", blockchain: "BASE", idempotencyKey: "k2" }));
      await waitFor(() => s.app.server.edge.callsInFlight === 3, "three calls in flight");
      await clock.advance(30_000);
      const [e1, e2] = await Promise.all([dup, other]);
      expect([e1.code, e1.reason]).toEqual(["ABORTED", "IDEMPOTENCY_KEY_IN_USE"]);
      expect(e1.retryAfterMs).toBeGreaterThan(0);
      expect([e2.code, e2.reason, e2.hasErrorInfo]).toEqual(["DEADLINE_EXCEEDED", "DEADLINE_EXCEEDED", true]);
      release?.();
      await first;
    } finally {
      client.close();
    }
  });
});

describe("a store that fails: STORE_UNAVAILABLE retried with the same key, INTERNAL never", () => {
  let c: CustomServer;
  let ledger: FaultyLedger;
  beforeAll(async () => {
    ledger = new FaultyLedger();
    c = await startCustomServer(ledger);
  });
  afterAll(async () => {
    await c.stop();
  });
  afterEach(() => {
    ledger.faults = {};
  });

  it("UNAVAILABLE STORE_UNAVAILABLE on the first attempt: the retry applies it once", async () => {
    // Fails once, then clears itself so the retry goes through.
    ledger.faults.mint = () => {
      ledger.faults = {};
      return new UnavailableError("store down");
    };
    const retries: RetryEvent[] = [];
    const client = createMintClient({ addresses: c.server.address, onRetry: (e) => retries.push(e) });
    try {
      const r = await client.mintUsdc({ accountId: "flaky", amount: "5", blockchain: "BASE" });
      expect(r.replayed).toBe(false);
      expect(retries.map((e) => [e.error.code, e.error.reason, e.fromRetryInfo])).toEqual([["UNAVAILABLE", "STORE_UNAVAILABLE", false]]);
      expect((await client.getBalance("flaky")).balance).toBe("5");
    } finally {
      client.close();
    }
  });

  it("retries off: STORE_UNAVAILABLE is typed; INTERNAL is not retried even with retries on", async () => {
    const off = createMintClient({ addresses: c.server.address, retry: false });
    const on = createMintClient({ addresses: c.server.address });
    try {
      ledger.faults.getBalance = () => new UnavailableError("down");
      const e1 = await failure(off.getBalance("x"));
      expect([e1.code, e1.reason]).toEqual(["UNAVAILABLE", "STORE_UNAVAILABLE"]);
      ledger.faults.getBalance = () => new Error("a bug");
      const e2 = await failure(on.getBalance("x"));
      expect([e2.code, e2.reason, e2.attempts]).toEqual(["INTERNAL", "INTERNAL", 1]);
      expect(e2.message).not.toContain("a bug");
    } finally {
      off.close();
      on.close();
    }
  });
});

describe("ReconcileMint after a lost reply", () => {
  /** Applies the reversal, then reports the store unreachable once: the reply is lost after the commit. */
  class LostReplyLedger extends FaultyLedger {
    loseNextReverseReply = false;
    override async reverseMint(...args: Parameters<FaultyLedger["reverseMint"]>): ReturnType<FaultyLedger["reverseMint"]> {
      const result = await super.reverseMint(...args);
      if (this.loseNextReverseReply) {
        this.loseNextReverseReply = false;
        throw new UnavailableError("connection lost after commit");
      }
      return result;
    }
  }

  it("the retry meets MINT_ALREADY_REVERSED; the SDK answers with the mint reversed by this operation's reason", async () => {
    const ledger = new LostReplyLedger();
    const c = await startCustomServer(ledger);
    const retries: RetryEvent[] = [];
    const client = createMintClient({ addresses: c.server.address, onRetry: (e) => retries.push(e) });
    try {
      const m = await client.mintUsdc({ accountId: "lost", amount: "2", blockchain: "BASE" });
      ledger.loseNextReverseReply = true;
      const reversed = await client.reconcileMint({ mintId: m.mint.mintId, reason: "chain tx failed" });
      expect(reversed).toMatchObject({ mintId: m.mint.mintId, status: "REVERSED", reverseReason: "chain tx failed" });
      expect(retries.map((r) => r.error.reason)).toEqual(["STORE_UNAVAILABLE"]);
      expect((await client.getBalance("lost")).balance).toBe("0");
      // Another operation's reconcile of the same mint is still refused.
      const e = await failure(client.reconcileMint({ mintId: m.mint.mintId, reason: "chain tx failed" }));
      expect([e.code, e.reason, e.attempts]).toEqual(["FAILED_PRECONDITION", "MINT_ALREADY_REVERSED", 1]);
    } finally {
      client.close();
      await c.stop();
    }
  });
});

describe("auth metadata", () => {
  it("token is sent as authorization: Bearer on calls", async () => {
    const stub = await startStubMintServer();
    const client = createMintClient({ addresses: stub.address, token: "s3cret" });
    try {
      expect(await client.getBalance("a")).toEqual({ accountId: "a", balance: "1.5", pendingBalance: "0", frozen: false, freezeReason: "" });
      expect(stub.authorizations).toEqual(["Bearer s3cret"]);
      // No health service there: the address is taken as serving, not skipped.
      await waitFor(() => client.endpoints()[0]?.status === "SERVING", "the endpoint to count as serving");
    } finally {
      client.close();
      stub.stop();
    }
    expect(() => createMintClient({ addresses: "127.0.0.1:1", token: "a\nb" })).toThrow(/one line/);
  });
});

describe("two replicas: one NOT_SERVING (drained) or gone is skipped", () => {
  let a: TestServer;
  let b: TestServer;
  beforeAll(async () => {
    a = await startTestServer();
    b = await startTestServer();
  });
  afterAll(async () => {
    await a.stop().catch(() => undefined);
    await b.stop().catch(() => undefined);
  });

  async function balanceOn(s: TestServer, account: string): Promise<bigint> {
    return s.app.adapters.ledger.getBalance(account);
  }

  it("round-robins over both; skips one that says NOT_SERVING (a drain's first step); returns to it when it serves; skips one that is gone", async () => {
    const client = createMintClient({ addresses: [a.address, b.address] });
    try {
      expect((await client.waitForHealth()).map((e) => e.status)).toEqual(["SERVING", "SERVING"]);
      for (let i = 0; i < 10; i++) await client.mintUsdc({ accountId: "spread", amount: "1", blockchain: "BASE" });
      expect([await balanceOn(a, "spread"), await balanceOn(b, "spread")]).toEqual([5_000_000n, 5_000_000n]);

      // a still answers calls, so only the client's skipping keeps them off it.
      a.app.server.health.setAll("NOT_SERVING");
      await waitFor(() => client.endpoints()[0]?.status === "NOT_SERVING", "the client to see a NOT_SERVING");
      for (let i = 0; i < 10; i++) await client.mintUsdc({ accountId: "drain", amount: "1", blockchain: "BASE" }, { retry: false });
      expect([await balanceOn(a, "drain"), await balanceOn(b, "drain")]).toEqual([0n, 10_000_000n]);

      a.app.server.health.setAll("SERVING");
      await waitFor(() => client.endpoints()[0]?.status === "SERVING", "the client to see a serving again");
      for (let i = 0; i < 10; i++) await client.mintUsdc({ accountId: "back", amount: "1", blockchain: "BASE" }, { retry: false });
      expect([await balanceOn(a, "back"), await balanceOn(b, "back")]).toEqual([5_000_000n, 5_000_000n]);

      await b.stop();
      await waitFor(() => client.endpoints()[1]?.status === "GONE", "the client to see b gone");
      for (let i = 0; i < 6; i++) await client.mintUsdc({ accountId: "alone", amount: "1", blockchain: "BASE" }, { retry: false });
      expect(await balanceOn(a, "alone")).toBe(6_000_000n);
    } finally {
      client.close();
    }
  });

  it("every replica NOT_SERVING: the call fails UNAVAILABLE NO_SERVING_ADDRESS without being sent", async () => {
    const c = await startTestServer();
    const client = createMintClient({ addresses: c.address, retry: { budgetMs: 300 } });
    try {
      await client.waitForHealth();
      c.app.server.health.setAll("NOT_SERVING");
      await waitFor(() => client.endpoints()[0]?.status === "NOT_SERVING", "the client to see it");
      const e = await failure(client.mintUsdc({ accountId: "none", amount: "1", blockchain: "BASE" }));
      expect([e.code, e.reason, e.sent]).toEqual(["UNAVAILABLE", "NO_SERVING_ADDRESS", false]);
      expect(e.attempts).toBeGreaterThan(1);
      expect(await c.app.adapters.ledger.getBalance("none")).toBe(0n);
    } finally {
      client.close();
      await c.stop();
    }
  });
});
