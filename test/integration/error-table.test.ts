/**
 * Every row of API.md's error table, through the real server and the
 * generated client: the gRPC code, ErrorInfo reason and domain, the extra
 * details the row promises — and that a refused call changes nothing and
 * leaves its idempotency key free.
 */
import { status as Code } from "@grpc/grpc-js";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Blockchain, MintStatus } from "../../gen/usdc/mint/v1/mint.js";
import { UnavailableError } from "../../src/domain/errors.js";
import { ERROR_DOMAIN, INTERNAL_MESSAGE } from "../../src/transport/grpc/status.js";
import { FakeClock } from "../support/fake-clock.js";
import { decodeError, expectError, startTestServer, type DecodedError, type TestServer } from "../support/test-server.js";
import { FaultyLedger, rpc, startCustomServer, waitFor, type CustomServer } from "./helpers.js";

const ETH = Blockchain.BLOCKCHAIN_ETHEREUM;

/** Asserts the common shape of every error: code, reason, and our one domain. */
function expectStatus(e: DecodedError, code: Code, reason: string): void {
  expect({ code: Code[e.code], reason: e.reason, domain: e.domain }).toEqual({ code: Code[code], reason, domain: ERROR_DOMAIN });
  expect(e.detailTypes[0]).toBe("type.googleapis.com/google.rpc.ErrorInfo");
}

/** INVALID_ARGUMENT naming `field` in both ErrorInfo metadata and BadRequest. */
function expectInvalid(e: DecodedError, field: string, reason: string): void {
  expectStatus(e, Code.INVALID_ARGUMENT, reason);
  expect(e.badRequest?.fieldViolations.map((v) => v.field)).toEqual([field]);
  expect(e.badRequest?.fieldViolations[0]?.description).not.toBe("");
  expect(e.metadata.field).toBe(field);
}

// Every malformed amount API.md lists, with the reason it must give.
const BAD_AMOUNTS: [string, string][] = [
  ["", "INVALID_AMOUNT"],
  ["0", "INVALID_AMOUNT"],
  ["0.0", "INVALID_AMOUNT"],
  ["0.000000", "INVALID_AMOUNT"],
  ["-1", "INVALID_AMOUNT"],
  ["+1", "INVALID_AMOUNT"],
  ["1e3", "INVALID_AMOUNT"],
  ["01", "INVALID_AMOUNT"],
  ["1.", "INVALID_AMOUNT"],
  [".5", "INVALID_AMOUNT"],
  ["1.0000001", "INVALID_AMOUNT"],
  [" 1", "INVALID_AMOUNT"],
  ["1 ", "INVALID_AMOUNT"],
  ["1,5", "INVALID_AMOUNT"],
  ["0x10", "INVALID_AMOUNT"],
  ["\uff11", "INVALID_AMOUNT"], // full-width digit one
  ["NaN", "INVALID_AMOUNT"],
  ["Infinity", "INVALID_AMOUNT"],
  ["9".repeat(100), "AMOUNT_TOO_LARGE"],
  ["1000000000000.000001", "AMOUNT_TOO_LARGE"], // default MINT_MAX_AMOUNT + 1 micro
  ["1000000000001", "AMOUNT_TOO_LARGE"],
];

const BAD_ACCOUNT_IDS: string[] = ["", "-a", ".a", "a b", "a".repeat(129), "\u00e9", "a/b", "a\u00e9", "a\n"];

const BAD_KEYS: string[] = ["", "k".repeat(256), "\n", "a\tb", "\u043a\u043b\u044e\u0447", "caf\u00e9", "\u0000"];

const UNKNOWN_MINT_ID = "mint_0000000000AAAAAAAAAAAAAAAA";

describe("INVALID_ARGUMENT: BadRequest names the field; nothing changes; the key stays free", () => {
  let s: TestServer;
  let r: ReturnType<typeof rpc>;
  let n = 0;
  const unique = (p: string): string => `${p}-${++n}`;

  beforeAll(async () => {
    // A high limit: these tests mint many times into their own accounts.
    s = await startTestServer({ MINT_RATE_LIMIT: "1000000" });
    r = rpc(s.call);
  });
  afterAll(async () => {
    await s.stop();
  });

  describe("MintUsdc", () => {
    it.each(BAD_AMOUNTS)("amount %j -> %s", async (amount, reason) => {
      const account = unique("m-amt");
      const key = unique("key");
      expectInvalid(await expectError(r.mint(account, amount, key)), "amount", reason);
      expect(await r.balance(account)).toBe("0");
      const ok = await r.mint(account, "1", key);
      expect(ok.replayed).toBe(false);
      expect(await r.balance(account)).toBe("1");
    });

    it.each(BAD_ACCOUNT_IDS)("account_id %j", async (accountId) => {
      const key = unique("key");
      expectInvalid(await expectError(r.mint(accountId, "1", key)), "account_id", "INVALID_ACCOUNT_ID");
      const list = await r.list("", 1000);
      expect(list.mints.some((m) => m.idempotencyKey === key)).toBe(false);
      const account = unique("m-acct");
      expect((await r.mint(account, "1", key)).replayed).toBe(false);
    });

    it.each(BAD_KEYS)("idempotency_key %j", async (key) => {
      const account = unique("m-key");
      expectInvalid(await expectError(r.mint(account, "1", key)), "idempotency_key", "INVALID_IDEMPOTENCY_KEY");
      expect(await r.balance(account)).toBe("0");
    });

    it.each([
      ["UNSPECIFIED", Blockchain.BLOCKCHAIN_UNSPECIFIED],
      ["unknown number 99", 99],
      ["negative -1", -1],
    ])("blockchain %s", async (_name, blockchain) => {
      const account = unique("m-chain");
      const key = unique("key");
      expectInvalid(await expectError(r.mint(account, "1", key, blockchain)), "blockchain", "INVALID_BLOCKCHAIN");
      expect(await r.balance(account)).toBe("0");
      expect((await r.mint(account, "1", key, Blockchain.BLOCKCHAIN_SOLANA)).replayed).toBe(false);
    });

    it("the limits themselves are accepted: 128-char account, 255-char key, the maximum amount", async () => {
      const account = "a".repeat(128);
      const res = await r.mint(account, "1000000000000", "k".repeat(255));
      expect(res.mint?.accountId).toBe(account);
      expect(res.mint?.amount).toBe("1000000000000");
      expect(await r.balance(account)).toBe("1000000000000");
    });
  });

  describe("Transfer", () => {
    /** A funded source account and an empty destination. */
    async function funded(): Promise<{ from: string; to: string }> {
      const from = unique("t-from");
      await r.mint(from, "10", unique("fund"));
      return { from, to: unique("t-to") };
    }
    async function expectUnchanged(from: string, to: string): Promise<void> {
      expect([await r.balance(from), await r.balance(to)]).toEqual(["10", "0"]);
    }

    it.each(BAD_AMOUNTS)("amount %j -> %s", async (amount, reason) => {
      const { from, to } = await funded();
      const key = unique("key");
      expectInvalid(await expectError(r.transfer(from, to, amount, key)), "amount", reason);
      await expectUnchanged(from, to);
      expect((await r.transfer(from, to, "1", key)).replayed).toBe(false);
      expect([await r.balance(from), await r.balance(to)]).toEqual(["9", "1"]);
    });

    it.each(BAD_ACCOUNT_IDS)("from_account_id %j", async (bad) => {
      const { from, to } = await funded();
      const key = unique("key");
      expectInvalid(await expectError(r.transfer(bad, to, "1", key)), "from_account_id", "INVALID_ACCOUNT_ID");
      await expectUnchanged(from, to);
      expect((await r.transfer(from, to, "1", key)).replayed).toBe(false);
    });

    it.each(BAD_ACCOUNT_IDS)("to_account_id %j", async (bad) => {
      const { from, to } = await funded();
      const key = unique("key");
      expectInvalid(await expectError(r.transfer(from, bad, "1", key)), "to_account_id", "INVALID_ACCOUNT_ID");
      await expectUnchanged(from, to);
      expect((await r.transfer(from, to, "1", key)).replayed).toBe(false);
    });

    it.each(BAD_KEYS)("idempotency_key %j", async (key) => {
      const { from, to } = await funded();
      expectInvalid(await expectError(r.transfer(from, to, "1", key)), "idempotency_key", "INVALID_IDEMPOTENCY_KEY");
      await expectUnchanged(from, to);
    });

    it("from == to", async () => {
      const { from, to } = await funded();
      const key = unique("key");
      const e = await expectError(r.transfer(from, from, "1", key));
      expectInvalid(e, "to_account_id", "SAME_ACCOUNT");
      await expectUnchanged(from, to);
      expect((await r.transfer(from, to, "1", key)).replayed).toBe(false);
    });
  });

  describe("GetBalance", () => {
    it.each(BAD_ACCOUNT_IDS)("account_id %j", async (bad) => {
      expectInvalid(await expectError(r.getBalance(bad)), "account_id", "INVALID_ACCOUNT_ID");
    });
  });

  describe("GetMint", () => {
    // Without the `mint_` prefix ("xyz", a transfer id) it is no mint id at all: INVALID_ARGUMENT, not NOT_FOUND.
    it.each(["", "mint-1", "a b", "m".repeat(65), "mint_\u00e9", "../mint_x", "xyz", "m", "xfr_0000000000AAAAAAAAAAAAAAAA"])("mint_id %j", async (bad) => {
      expectInvalid(await expectError(r.getMint(bad)), "mint_id", "INVALID_MINT_ID");
    });
  });

  describe("ListMints", () => {
    it.each(BAD_ACCOUNT_IDS.filter((a) => a !== ""))("account_id %j", async (bad) => {
      expectInvalid(await expectError(r.list(bad, 10)), "account_id", "INVALID_ACCOUNT_ID");
    });

    it.each([-1, -1000, -2147483648])("page_size %d", async (size) => {
      expectInvalid(await expectError(r.list("", size)), "page_size", "INVALID_PAGE_SIZE");
    });

    it.each(["garbage", "!!!", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "x".repeat(600), "MToxOg"])("page_token %j (not issued by us)", async (token) => {
      expectInvalid(await expectError(r.list("", 10, token)), "page_token", "INVALID_PAGE_TOKEN");
    });

    it("a page_token issued for another account_id (or for all accounts)", async () => {
      const a = unique("pt-a");
      await r.mint(a, "1", unique("key"));
      await r.mint(a, "1", unique("key"));
      const page = await r.list(a, 1);
      expect(page.mints).toHaveLength(1);
      expect(page.nextPageToken).not.toBe("");
      // The token works for the account it was issued for...
      expect((await r.list(a, 1, page.nextPageToken)).mints).toHaveLength(1);
      // ...and for nothing else.
      expectInvalid(await expectError(r.list(unique("pt-b"), 1, page.nextPageToken)), "page_token", "INVALID_PAGE_TOKEN");
      expectInvalid(await expectError(r.list("", 1, page.nextPageToken)), "page_token", "INVALID_PAGE_TOKEN");
      const all = await r.list("", 1);
      expectInvalid(await expectError(r.list(a, 1, all.nextPageToken)), "page_token", "INVALID_PAGE_TOKEN");
      // A tampered token (one character changed) is refused too.
      const t = page.nextPageToken;
      const tampered = t.slice(0, -1) + (t.endsWith("A") ? "B" : "A");
      expectInvalid(await expectError(r.list(a, 1, tampered)), "page_token", "INVALID_PAGE_TOKEN");
    });
  });

  describe("ReconcileMint", () => {
    it.each(["", "mint-1", "a b", "m".repeat(65), "mint_\u00e9", "xyz"])("mint_id %j", async (bad) => {
      expectInvalid(await expectError(r.reconcile(bad, "oops")), "mint_id", "INVALID_MINT_ID");
    });

    it.each([
      ["too long (1025 chars)", "r".repeat(1025)],
      ["a control character", "bad\u0007reason"],
      ["a line break (API.md: no control characters)", "chain\ntx failed"],
      ["a tab", "chain\ttx failed"],
    ])("reason %s: the mint stays COMPLETED", async (_name, reason) => {
      const account = unique("rc");
      const minted = await r.mint(account, "3", unique("key"));
      const mintId = minted.mint?.mintId ?? "";
      expectInvalid(await expectError(r.reconcile(mintId, reason)), "reason", "INVALID_REASON");
      expect((await r.getMint(mintId)).mint?.status).toBe(MintStatus.MINT_STATUS_COMPLETED);
      expect(await r.balance(account)).toBe("3");
    });
  });
});

describe("RESOURCE_EXHAUSTED RATE_LIMITED", () => {
  it("carries the exact RetryInfo (oldest + window - now) and a QuotaFailure naming the account; the key stays free", async () => {
    const clock = new FakeClock();
    const s = await startTestServer({ MINT_RATE_LIMIT: "10", MINT_RATE_WINDOW: "1s" }, clock);
    try {
      const r = rpc(s.call);
      for (let i = 0; i < 10; i++) {
        if (i > 0) await clock.advance(1); // mints at t = 0, 1, ..., 9 ms
        expect((await r.mint("rl", "1", `k${i}`)).replayed).toBe(false);
      }
      await clock.advance(100); // now = 109 ms
      const e = await expectError(r.mint("rl", "1", "k10"));
      expectStatus(e, Code.RESOURCE_EXHAUSTED, "RATE_LIMITED");
      expect(e.retryDelayMs).toBe(0 + 1000 - 109);
      expect(e.quotaFailure?.violations).toHaveLength(1);
      expect(e.quotaFailure?.violations[0]?.subject).toContain("rl");
      expect(e.metadata.account_id).toBe("rl");
      expect(e.detailTypes).toEqual([
        "type.googleapis.com/google.rpc.ErrorInfo",
        "type.googleapis.com/google.rpc.RetryInfo",
        "type.googleapis.com/google.rpc.QuotaFailure",
      ]);
      expect(await r.balance("rl")).toBe("10");
      // Another account is not limited by this one.
      expect((await r.mint("rl-other", "1", "other-k10")).replayed).toBe(false);
      // One ms before the delay it is still refused, with the exact remainder.
      await clock.advance(890);
      expect((await expectError(r.mint("rl", "1", "k10"))).retryDelayMs).toBe(1);
      // At the delay the oldest mint has left: the same (still free) key mints.
      await clock.advance(1);
      expect((await r.mint("rl", "1", "k10")).replayed).toBe(false);
      expect(await r.balance("rl")).toBe("11");
    } finally {
      await s.stop();
    }
  });
});

describe("ALREADY_EXISTS IDEMPOTENCY_KEY_REUSED", () => {
  let s: TestServer;
  let r: ReturnType<typeof rpc>;
  beforeAll(async () => {
    s = await startTestServer({ MINT_RATE_LIMIT: "1000" });
    r = rpc(s.call);
  });
  afterAll(async () => {
    await s.stop();
  });

  it.each([
    ["amount", () => r.mint("reuse-a", "2", "reuse-1"), "amount"],
    ["account and amount", () => r.mint("reuse-b", "2", "reuse-1"), "account_id,amount"],
    ["blockchain", () => r.mint("reuse-a", "1", "reuse-1", Blockchain.BLOCKCHAIN_NOBLE), "blockchain"],
    ["all three", () => r.mint("reuse-b", "2", "reuse-1", Blockchain.BLOCKCHAIN_BASE), "account_id,amount,blockchain"],
  ])("MintUsdc: differing %s", async (_name, again, fields) => {
    const first = await r.mint("reuse-a", "1", "reuse-1");
    const e = await expectError(again());
    expectStatus(e, Code.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED");
    expect(e.metadata.differing_fields).toBe(fields);
    // Nothing changed: the balances are the first mint's, and the key still replays it.
    expect(await r.balance("reuse-a")).toBe("1");
    expect(await r.balance("reuse-b")).toBe("0");
    const replay = await r.mint("reuse-a", "1", "reuse-1");
    expect(replay.replayed).toBe(true);
    expect(replay.mint?.mintId).toBe(first.mint?.mintId);
  });

  it("Transfer: differing to_account_id, then amount", async () => {
    await r.mint("reuse-src", "10", "fund-src");
    await r.transfer("reuse-src", "reuse-dst", "1", "xfer-1");
    const e = await expectError(r.transfer("reuse-src", "reuse-other", "1", "xfer-1"));
    expectStatus(e, Code.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED");
    expect(e.metadata.differing_fields).toBe("to_account_id");
    const e2 = await expectError(r.transfer("reuse-src", "reuse-dst", "1.5", "xfer-1"));
    expect(e2.metadata.differing_fields).toBe("amount");
    expect([await r.balance("reuse-src"), await r.balance("reuse-dst"), await r.balance("reuse-other")]).toEqual(["9", "1", "0"]);
  });
});

describe("ABORTED IDEMPOTENCY_KEY_IN_USE", () => {
  it("a duplicate whose deadline passes while the first call is in flight gets ABORTED with RetryInfo; the first completes", async () => {
    // The fake clock decides when the server-side deadline passes, so the
    // server's answer (not the client's own deadline timer) is what we see.
    const clock = new FakeClock();
    const s = await startTestServer({}, clock);
    try {
      const r = rpc(s.call);
      await r.mint("busy-a", "10", "fund");
      const release = await s.app.core.locks.acquire(["busy-a"], Infinity);
      expect(release).not.toBeNull();
      const first = r.transfer("busy-a", "busy-b", "4", "same-key");
      await waitFor(() => s.app.server.edge.callsInFlight === 1, "the first transfer to be in flight");
      const duplicate = expectError(r.transfer("busy-a", "busy-b", "4", "same-key", 30_000));
      await waitFor(() => s.app.server.edge.callsInFlight === 2, "the duplicate to be in flight");
      await clock.advance(30_000);
      const e = await duplicate;
      expectStatus(e, Code.ABORTED, "IDEMPOTENCY_KEY_IN_USE");
      expect(e.retryDelayMs).toBeGreaterThan(0);
      expect(e.detailTypes).toContain("type.googleapis.com/google.rpc.RetryInfo");
      // Still nothing applied while the lock is held.
      expect(await r.balance("busy-b")).toBe("0");
      release?.();
      const done = await first;
      expect(done.replayed).toBe(false);
      expect([await r.balance("busy-a"), await r.balance("busy-b")]).toEqual(["6", "4"]);
      const again = await r.transfer("busy-a", "busy-b", "4", "same-key");
      expect(again.replayed).toBe(true);
      expect(again.transfer?.transferId).toBe(done.transfer?.transferId);
    } finally {
      await s.stop();
    }
  });
});

describe("FAILED_PRECONDITION", () => {
  let s: TestServer;
  let r: ReturnType<typeof rpc>;
  beforeAll(async () => {
    s = await startTestServer();
    r = rpc(s.call);
  });
  afterAll(async () => {
    await s.stop();
  });

  it("INSUFFICIENT_FUNDS on Transfer: nothing changes and the key stays free", async () => {
    await r.mint("poor", "5", "fund-poor");
    const e = await expectError(r.transfer("poor", "rich", "5.000001", "xfer-poor"));
    expectStatus(e, Code.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS");
    expect(e.metadata.account_id).toBe("poor");
    expect([await r.balance("poor"), await r.balance("rich")]).toEqual(["5", "0"]);
    // From an unknown (empty) account as well.
    expectStatus(await expectError(r.transfer("nobody", "rich", "1", "xfer-nobody")), Code.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS");
    // Once the money is there, the same key and request go through.
    await r.mint("poor", "0.000001", "fund-poor-2");
    const ok = await r.transfer("poor", "rich", "5.000001", "xfer-poor");
    expect(ok.replayed).toBe(false);
    expect([await r.balance("poor"), await r.balance("rich")]).toEqual(["0", "5.000001"]);
  });

  it("INSUFFICIENT_FUNDS on ReconcileMint: the mint stays COMPLETED and the balance unchanged", async () => {
    const m = await r.mint("spent", "10", "fund-spent");
    await r.transfer("spent", "elsewhere", "4", "xfer-spent");
    const e = await expectError(r.reconcile(m.mint?.mintId ?? "", "chain rollback"));
    expectStatus(e, Code.FAILED_PRECONDITION, "INSUFFICIENT_FUNDS");
    expect(await r.balance("spent")).toBe("6");
    const after = await r.getMint(m.mint?.mintId ?? "");
    expect(after.mint?.status).toBe(MintStatus.MINT_STATUS_COMPLETED);
    expect(after.mint?.reverseTime).toBeUndefined();
    // The key is still taken by the mint (not freed by the failed reconcile).
    expect((await r.mint("spent", "10", "fund-spent")).replayed).toBe(true);
  });

  it("MINT_ALREADY_REVERSED", async () => {
    const m = await r.mint("rev", "2", "fund-rev");
    const mintId = m.mint?.mintId ?? "";
    await r.reconcile(mintId, "first");
    const e = await expectError(r.reconcile(mintId, "second"));
    expectStatus(e, Code.FAILED_PRECONDITION, "MINT_ALREADY_REVERSED");
    expect(e.metadata.mint_id).toBe(mintId);
    const after = await r.getMint(mintId);
    expect(after.mint?.reverseReason).toBe("first");
    expect(await r.balance("rev")).toBe("0");
  });
});

describe("NOT_FOUND MINT_NOT_FOUND", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer();
  });
  afterAll(async () => {
    await s.stop();
  });

  it("GetMint and ReconcileMint of a well-formed unknown id", async () => {
    const r = rpc(s.call);
    const e1 = await expectError(r.getMint(UNKNOWN_MINT_ID));
    expectStatus(e1, Code.NOT_FOUND, "MINT_NOT_FOUND");
    expect(e1.metadata.mint_id).toBe(UNKNOWN_MINT_ID);
    expectStatus(await expectError(r.reconcile(UNKNOWN_MINT_ID, "x")), Code.NOT_FOUND, "MINT_NOT_FOUND");
  });
});

describe("DEADLINE_EXCEEDED while waiting for a lock", () => {
  it("answered by the server (fake clock): nothing applied, the key stays free", async () => {
    const clock = new FakeClock();
    const s = await startTestServer({}, clock);
    try {
      const r = rpc(s.call);
      await r.mint("dl-a", "10", "fund");
      const release = await s.app.core.locks.acquire(["dl-a"], Infinity);
      const mint = expectError(r.mint("dl-a", "1", "dl-mint", ETH, 30_000));
      const transfer = expectError(r.transfer("dl-b", "dl-a", "1", "dl-xfer", 30_000));
      const xferOut = expectError(r.transfer("dl-a", "dl-b", "1", "dl-xfer-out", 30_000));
      await waitFor(() => s.app.server.edge.callsInFlight === 3, "three calls waiting on the lock");
      await clock.advance(30_000);
      for (const p of [mint, transfer, xferOut]) expectStatus(await p, Code.DEADLINE_EXCEEDED, "DEADLINE_EXCEEDED");
      release?.();
      expect([await r.balance("dl-a"), await r.balance("dl-b")]).toEqual(["10", "0"]);
      // The keys are free: the same requests now succeed as first uses.
      expect((await r.mint("dl-a", "1", "dl-mint")).replayed).toBe(false);
      expect((await r.transfer("dl-a", "dl-b", "1", "dl-xfer-out")).replayed).toBe(false);
      expect([await r.balance("dl-a"), await r.balance("dl-b")]).toEqual(["10", "1"]);
    } finally {
      await s.stop();
    }
  });

  it("with a real 200 ms deadline (client or server may report it): nothing applied, the key stays free", async () => {
    const s = await startTestServer();
    try {
      const r = rpc(s.call);
      await r.mint("rdl-a", "10", "fund");
      const release = await s.app.core.locks.acquire(["rdl-a"], Infinity);
      const started = Date.now();
      const err = await r.transfer("rdl-a", "rdl-b", "3", "rdl-key", 200).then(
        () => {
          throw new Error("expected DEADLINE_EXCEEDED");
        },
        (e: unknown) => e as { code: number },
      );
      expect(Code[err.code]).toBe("DEADLINE_EXCEEDED");
      expect(Date.now() - started).toBeGreaterThanOrEqual(150);
      // When the server answered first, its answer carries our ErrorInfo.
      try {
        const d = decodeError(err);
        expect(d.reason).toBe("DEADLINE_EXCEEDED");
      } catch {
        // The client's own deadline timer won: no details to check.
      }
      // The server side must give up too before the lock is released, or the
      // transfer would be applied after the caller was told it failed.
      await waitFor(() => s.app.server.edge.callsInFlight === 0, "the server to abandon the call", 2_000);
      release?.();
      expect([await r.balance("rdl-a"), await r.balance("rdl-b")]).toEqual(["10", "0"]);
      expect((await r.transfer("rdl-a", "rdl-b", "3", "rdl-key")).replayed).toBe(false);
      expect([await r.balance("rdl-a"), await r.balance("rdl-b")]).toEqual(["7", "3"]);
    } finally {
      await s.stop();
    }
  });
});

describe("UNAVAILABLE", () => {
  it("while shutting down: new calls are refused with ErrorInfo, in-flight ones finish", async () => {
    const s = await startTestServer();
    const r = rpc(s.call);
    await r.mint("sd", "1", "before");
    s.app.server.edge.startDraining();
    const e = await expectError(r.mint("sd", "1", "during"));
    expect(Code[e.code]).toBe("UNAVAILABLE");
    expect(e.domain).toBe(ERROR_DOMAIN);
    expect(e.reason).toBe("SHUTTING_DOWN");
    expect(Code[(await expectError(r.getBalance("sd"))).code]).toBe("UNAVAILABLE");
    expect(await s.app.adapters.ledger.getBalance("sd")).toBe(1_000_000n);
    await s.stop();
  });

  describe("a store that cannot be reached (UnavailableError)", () => {
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

    it("GetBalance -> UNAVAILABLE", async () => {
      ledger.faults.getBalance = () => new UnavailableError("connection refused to 10.0.0.7:5432");
      const e = await expectError(rpc(c.call).getBalance("u-a"));
      expect(Code[e.code]).toBe("UNAVAILABLE");
      expect(e.domain).toBe(ERROR_DOMAIN);
      expect(e.reason).toBe("STORE_UNAVAILABLE");
      expect(e.message).not.toContain("10.0.0.7");
    });

    it("MintUsdc -> UNAVAILABLE, nothing applied, the key stays free", async () => {
      const r = rpc(c.call);
      ledger.faults.mint = () => new UnavailableError("store down");
      const e = await expectError(r.mint("u-b", "5", "u-key"));
      expect(Code[e.code]).toBe("UNAVAILABLE");
      expect(e.reason).toBe("STORE_UNAVAILABLE");
      ledger.faults = {};
      expect(await r.balance("u-b")).toBe("0");
      expect((await r.mint("u-b", "5", "u-key")).replayed).toBe(false);
      expect(await r.balance("u-b")).toBe("5");
    });
  });
});

describe("INTERNAL: a bug", () => {
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

  it("leaves with the fixed message and reason INTERNAL; the stack goes to the log only", async () => {
    ledger.faults.getBalance = () => new Error("boom at line 42");
    let raw: { code: number; details: string; message: string; metadata: { getMap(): Record<string, unknown> } } | undefined;
    try {
      await rpc(c.call).getBalance("i-a");
    } catch (err) {
      raw = err as typeof raw;
    }
    expect(raw).toBeDefined();
    const e = decodeError(raw);
    expectStatus(e, Code.INTERNAL, "INTERNAL");
    expect(e.message).toBe(INTERNAL_MESSAGE);
    // Nothing of the exception reaches the caller, in any header or trailer.
    const everything = JSON.stringify(raw?.metadata.getMap()) + raw?.details + raw?.message;
    expect(everything).not.toContain("boom");
    expect(everything).not.toMatch(/\bat .*\.ts:\d+/);
    // ...but the log has it, with the stack.
    await waitFor(() => c.logLines().some((l) => l.includes("boom at line 42")), "the error to be logged", 2_000);
    const line = JSON.parse(c.logLines().find((l) => l.includes("boom at line 42")) ?? "{}") as { err?: { stack?: string }; requestId?: string };
    expect(line.err?.stack).toMatch(/boom at line 42\n\s+at /);
    // The caller's error names the request id the stack was logged under.
    expect(e.requestId).toBeDefined();
    expect(line.requestId).toBe(e.requestId);
  });

  it("a bug during a mint: INTERNAL, nothing applied, the key stays free", async () => {
    const r = rpc(c.call);
    ledger.faults.mint = () => new TypeError("cannot read properties of undefined (reading 'x')");
    const e = await expectError(r.mint("i-b", "5", "i-key"));
    expectStatus(e, Code.INTERNAL, "INTERNAL");
    expect(e.message).toBe(INTERNAL_MESSAGE);
    ledger.faults = {};
    expect(await r.balance("i-b")).toBe("0");
    expect((await r.mint("i-b", "5", "i-key")).replayed).toBe(false);
  });

  it("a non-Error thrown value is INTERNAL too", async () => {
    ledger.faults.getMint = () => ({ weird: true }) as unknown as Error;
    const e = await expectError(rpc(c.call).getMint(UNKNOWN_MINT_ID));
    expectStatus(e, Code.INTERNAL, "INTERNAL");
    expect(e.message).toBe(INTERNAL_MESSAGE);
  });
});

describe("SetMinterAllowance rows", () => {
  let s: TestServer;
  beforeAll(async () => {
    s = await startTestServer({ MINT_ALLOWANCES: "true" });
  });
  afterAll(async () => {
    await s.stop();
  });

  it("expected_amount not what is left: FAILED_PRECONDITION ALLOWANCE_CHANGED with principal, remaining, expected; nothing changed", async () => {
    await s.call("setMinterAllowance", { principal: "m-row", amount: "2.5" });
    const e = await expectError(s.call("setMinterAllowance", { principal: "m-row", amount: "9", expectedAmount: "2" }));
    expectStatus(e, Code.FAILED_PRECONDITION, "ALLOWANCE_CHANGED");
    expect(e.metadata).toEqual({ principal: "m-row", remaining: "2.5", expected: "2" });
    expect(await s.call<object, { allowance: string }>("getMinterAllowance", { principal: "m-row" })).toMatchObject({ allowance: "2.5" });
  });

  it.each([
    ["amount", { amount: "-1" }, "INVALID_AMOUNT"],
    ["expected_amount", { amount: "1", expectedAmount: "01" }, "INVALID_AMOUNT"],
    ["expected_amount", { amount: "1", expectedAmount: "1".repeat(40) }, "AMOUNT_TOO_LARGE"],
  ])("bad %s: INVALID_ARGUMENT naming it; nothing changed", async (field, req, reason) => {
    expectInvalid(await expectError(s.call("setMinterAllowance", { principal: "m-bad", ...req })), field, reason);
    expect(await s.call<object, { allowance: string }>("getMinterAllowance", { principal: "m-bad" })).toMatchObject({ allowance: "0" });
  });
});
