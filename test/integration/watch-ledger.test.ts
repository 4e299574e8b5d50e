/**
 * WatchLedger on the memory store, through the real server and the generated
 * client: every kind of change becomes its events in commit order; a cursor
 * resumes exactly after its event; cursors of another epoch, expired cursors
 * and bad requests are refused; filters; a consumer that stops reading is cut
 * off at the bound with a cursor that resumes without a gap; the watcher
 * limit; shutdown ends every stream at once with its resume cursor.
 */
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Blockchain, LedgerEventKind, type MintUsdcResponse } from "../../gen/usdc/mint/v1/mint.js";
import { makeAuthFixture } from "../support/auth-fixtures.js";
import { FakeClock } from "../support/fake-clock.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { kindName, watch } from "../support/watch-stream.js";

let server: TestServer;
let n = 0;
const key = (): string => `watch-${process.pid}-${++n}`;

async function mint(s: TestServer, accountId: string, amount = "10", principal?: string): Promise<MintUsdcResponse> {
  return s.call("mintUsdc", { accountId, amount, blockchain: Blockchain.BLOCKCHAIN_BASE, idempotencyKey: key() }, principal === undefined ? {} : { metadata: { "x-mint-dev-principal": principal } });
}

beforeAll(async () => {
  server = await startTestServer({ MINT_APPROVAL_THRESHOLD: "1000", MINT_APPROVALS_REQUIRED: "1", MINT_DEV_PRINCIPAL_HEADER: "true", MINT_RATE_LIMIT: "100000" });
});

afterAll(async () => {
  await server?.stop();
});

describe("WatchLedger (memory)", () => {
  it("streams every kind of change in commit order, and resumes exactly after any cursor", async () => {
    const s = watch(server.client);
    const start = await s.started;
    expect(start).not.toBe("");
    const m1 = await mint(server, "w-alice", "50");
    await server.call("transfer", { fromAccountId: "w-alice", toAccountId: "w-bob", amount: "5", idempotencyKey: key() });
    await server.call("redeemUsdc", { accountId: "w-alice", amount: "1", blockchain: Blockchain.BLOCKCHAIN_BASE, idempotencyKey: key() });
    await server.call("reconcileMint", { mintId: (await mint(server, "w-carol", "2")).mint?.mintId, reason: "wrong account" });
    await server.call("freezeAccount", { accountId: "w-dave", reason: "court order" });
    await server.call("unfreezeAccount", { accountId: "w-dave", reason: "lifted" });
    await server.call("setReserve", { amount: "1000000", attestationRef: "att-1" });
    await server.call("setMinterAllowance", { principal: "minter-x", amount: "7" });
    const big = await mint(server, "w-erin", "1000", "requester-1");
    expect(big.mint?.status).toBeDefined();
    await server.call("approveMint", { mintId: big.mint?.mintId }, { metadata: { "x-mint-dev-principal": "approver-1" } });
    const big2 = await mint(server, "w-erin", "2000", "requester-1");
    await server.call("rejectMint", { mintId: big2.mint?.mintId, reason: "no" }, { metadata: { "x-mint-dev-principal": "approver-1" } });

    const kinds = [
      "MINT_CREATED",
      "MINT_COMPLETED",
      "TRANSFER",
      "REDEMPTION",
      "MINT_CREATED",
      "MINT_COMPLETED",
      "MINT_REVERSED",
      "ACCOUNT_FROZEN",
      "ACCOUNT_UNFROZEN",
      "RESERVE_SET",
      "ALLOWANCE_SET",
      "MINT_CREATED",
      "MINT_PENDING_APPROVAL",
      "MINT_APPROVED",
      "MINT_COMPLETED",
      "MINT_CREATED",
      "MINT_PENDING_APPROVAL",
      "MINT_REJECTED",
    ];
    const got = await s.waitFor(kinds.length);
    expect(got.map((e) => kindName(e.kind))).toEqual(kinds);
    expect(got[0]?.mint).toMatchObject({ mintId: m1.mint?.mintId, accountId: "w-alice", amount: "50", blockchain: Blockchain.BLOCKCHAIN_BASE });
    expect(got[2]?.transfer).toMatchObject({ fromAccountId: "w-alice", toAccountId: "w-bob", amount: "5" });
    expect(got[2]?.accountIds).toEqual(["w-alice", "w-bob"]);
    expect(got[6]?.mint?.reason).toBe("wrong account");
    expect(got[7]?.freeze).toEqual({ accountId: "w-dave", frozen: true, reason: "court order" });
    expect(got[9]?.reserve).toEqual({ reserve: "1000000", attestationRef: "att-1" });
    expect(got[9]?.accountIds).toEqual([]);
    expect(got[10]?.allowance).toEqual({ principal: "minter-x", allowance: "7" });
    expect(got[13]?.mint).toMatchObject({ actor: "approver-1", approvals: 1, approvalsRequired: 1 });
    expect(got[17]?.mint).toMatchObject({ actor: "approver-1", reason: "no" });
    expect(new Set(got.map((e) => e.eventId)).size).toBe(got.length);
    s.cancel();

    // From the start cursor and from every cursor: exactly the events after it.
    for (const i of [-1, 0, 5, 16]) {
      const from = i < 0 ? start : (got[i]?.cursor as string);
      const r = watch(server.client, { fromCursor: from });
      const again = await r.waitFor(got.length - (i + 1));
      expect(again.map((e) => e.eventId)).toEqual(got.slice(i + 1).map((e) => e.eventId));
      // Nothing more arrives (no duplicate): a new change's events are the next ones.
      await mint(server, "w-zed", "1");
      const next = await r.waitFor(again.length + 2);
      expect(next.slice(again.length).map((e) => kindName(e.kind))).toEqual(["MINT_CREATED", "MINT_COMPLETED"]);
      r.cancel();
      got.push(...next.slice(again.length));
    }
  });

  it("filters by account and by kind", async () => {
    const s = watch(server.client, { accountIds: ["f-alice"], kinds: [LedgerEventKind.LEDGER_EVENT_KIND_MINT_COMPLETED, LedgerEventKind.LEDGER_EVENT_KIND_TRANSFER] });
    await s.started;
    await mint(server, "f-bob", "3");
    await mint(server, "f-alice", "4");
    await server.call("transfer", { fromAccountId: "f-bob", toAccountId: "f-alice", amount: "1", idempotencyKey: key() });
    await server.call("setReserve", { amount: "2000000", attestationRef: "att-f" });
    await mint(server, "f-alice", "6");
    const got = await s.waitFor(3);
    expect(got.map((e) => [kindName(e.kind), e.mint?.amount ?? e.transfer?.amount])).toEqual([
      ["MINT_COMPLETED", "4"],
      ["TRANSFER", "1"],
      ["MINT_COMPLETED", "6"],
    ]);
    s.cancel();
  });

  it("refuses a cursor it never gave out, a cursor of another epoch (a restarted memory store) and bad filters", async () => {
    const bad = await watch(server.client, { fromCursor: "not-a-cursor" }).ended;
    expect(bad).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, reason: "INVALID_CURSOR" });
    const other = await startTestServer();
    try {
      const s = watch(other.client);
      const foreign = await s.started;
      s.cancel();
      const e = await watch(server.client, { fromCursor: foreign }).ended;
      expect(e).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, reason: "CURSOR_FROM_OTHER_EPOCH" });
    } finally {
      await other.stop();
    }
    expect(await watch(server.client, { kinds: [LedgerEventKind.LEDGER_EVENT_KIND_UNSPECIFIED] }).ended).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, reason: "INVALID_EVENT_KIND" });
    expect(await watch(server.client, { accountIds: ["bad account!"] }).ended).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, reason: "INVALID_ACCOUNT_ID" });
  });

  it("a consumer that stops reading is cut off at the bound with a cursor that resumes without a gap", async () => {
    const s2 = await startTestServer({ MINT_WATCH_BUFFER: "5", MINT_RATE_LIMIT: "100000" });
    try {
      const slow = watch(s2.client, { accountIds: ["bp-acct"] });
      const start = await slow.started;
      slow.call.pause();
      const total = 1500;
      for (let i = 0; i < total; i += 100) await Promise.all(Array.from({ length: 100 }, () => mint(s2, "bp-acct", "1")));
      const end = await slow.ended;
      expect(end).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED, reason: "CONSUMER_TOO_SLOW", metadata: { buffer_events: "5" } });
      const resume = typeof end === "string" ? "" : (end.metadata.resume_cursor as string);
      // The whole sequence, read again from the start by a consumer that keeps up.
      const whole = watch(s2.client, { fromCursor: start, accountIds: ["bp-acct"] });
      const full = await whole.waitFor(total * 2);
      whole.cancel();
      expect(new Set(full.map((e) => e.eventId)).size).toBe(total * 2);
      // The resume cursor is an event's cursor; what follows it is exactly the rest of the sequence.
      const k = full.findIndex((e) => e.cursor === resume);
      expect(k).toBeGreaterThanOrEqual(0);
      expect(k).toBeLessThan(total * 2 - 1);
      const rest = watch(s2.client, { fromCursor: resume, accountIds: ["bp-acct"] });
      const more = await rest.waitFor(total * 2 - (k + 1));
      rest.cancel();
      expect(more.map((e) => e.eventId)).toEqual(full.slice(k + 1).map((e) => e.eventId));
      // What reached the slow consumer is a prefix of the sequence up to the resume cursor.
      expect(slow.events.length).toBeLessThanOrEqual(k + 1);
      expect(slow.events.map((e) => e.eventId)).toEqual(full.slice(0, slow.events.length).map((e) => e.eventId));
    } finally {
      await s2.stop();
    }
  });

  it("caps watchers apart from calls in flight", async () => {
    const s3 = await startTestServer({ MINT_WATCH_MAX_WATCHERS: "2", MINT_MAX_CALLS_IN_FLIGHT: "1" });
    try {
      const a = watch(s3.client);
      const b = watch(s3.client);
      await Promise.all([a.started, b.started]);
      // Two open streams do not take the one call slot.
      await expect(mint(s3, "cap-acct")).resolves.toBeDefined();
      const c = await watch(s3.client).ended;
      expect(c).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED, reason: "WATCHERS_LIMIT", metadata: { max_watchers: "2" } });
      a.cancel();
      b.cancel();
    } finally {
      await s3.stop();
    }
  });

  it("expires cursors older than the retention, naming the oldest cursor", async () => {
    const clock = new FakeClock();
    const s4 = await startTestServer({ MINT_WATCH_RETENTION: "1h" }, clock);
    try {
      const w = watch(s4.client);
      await w.started;
      await mint(s4, "ret-a");
      const old = await w.waitFor(2);
      await clock.advance(2 * 3_600_000);
      await mint(s4, "ret-b");
      await w.waitFor(4);
      w.cancel();
      // The hub's ring still holds these events: the retention is checked on the feed all the same.
      expect(await s4.app.adapters.ledgerEvents.prune(clock.wallMs() - 3_600_000, 1000)).toBe(2);
      const e = await watch(s4.client, { fromCursor: old[0]?.cursor }).ended;
      expect(e).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, reason: "CURSOR_EXPIRED" });
      const oldest = typeof e === "string" ? "" : (e.metadata.oldest_cursor as string);
      const r = watch(s4.client, { fromCursor: oldest });
      const kept = await r.waitFor(2);
      expect(kept.map((x) => x.mint?.accountId)).toEqual(["ret-b", "ret-b"]);
      r.cancel();
    } finally {
      await s4.stop();
    }
  });

  it("on shutdown every stream ends at once with its resume cursor", async () => {
    const s5 = await startTestServer({ MINT_SHUTDOWN_GRACE: "30s" });
    const streams = [watch(s5.client), watch(s5.client, { accountIds: ["sd-a"] }), watch(s5.client, { fromOldest: true })];
    await Promise.all(streams.map((s) => s.started));
    await mint(s5, "sd-a");
    await streams[0]?.waitFor(2);
    const t0 = Date.now();
    await s5.stop();
    expect(Date.now() - t0).toBeLessThan(10_000);
    for (const s of streams) {
      const e = await s.ended;
      expect(e).toMatchObject({ code: grpc.status.UNAVAILABLE, reason: "SHUTTING_DOWN" });
      expect(typeof e === "string" ? "" : e.metadata.resume_cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    }
  });
});

describe("WatchLedger scopes", () => {
  it("a scoped reader sees its accounts' events only; events of no account need scope *", async () => {
    const fx = makeAuthFixture();
    const s = await startTestServer({ ...fx.env, MINT_RATE_LIMIT: "100000" });
    try {
      const admin = fx.client(s.address, { token: fx.adminToken });
      const treasury = fx.client(s.address, { cert: fx.treasuryCert });
      const everything = fx.client(s.address, { token: fx.roleTokens.reader });
      const call = <Res>(c: typeof admin, method: string, req: unknown): Promise<Res> =>
        new Promise((resolve, reject) =>
          (c as unknown as Record<string, (r: unknown, cb: (e: Error | null, r: Res) => void) => void>)[method]?.call(c, req, (e, r) => (e ? reject(e) : resolve(r))),
        );
      const scoped = watch(treasury);
      const all = watch(everything);
      await Promise.all([scoped.started, all.started]);
      const m = (accountId: string): Promise<unknown> => call(admin, "mintUsdc", { accountId, amount: "5", blockchain: Blockchain.BLOCKCHAIN_BASE, idempotencyKey: key() });
      await m("other-1");
      await m("treasury:ops");
      await call(admin, "transfer", { fromAccountId: "treasury:ops", toAccountId: "other-2", amount: "1", idempotencyKey: key() });
      await call(fx.client(s.address, { token: fx.roleTokens["reserve-manager"] }), "setReserve", { amount: "1000", attestationRef: "att-s" });
      await m("other-3");
      await m("treasury:ops");
      const seen = await all.waitFor(10);
      expect(seen.map((e) => kindName(e.kind))).toContain("RESERVE_SET");
      // Everything the scoped reader may see arrived before the last mint's events.
      const mine = await scoped.waitFor(5);
      expect(mine.map((e) => [kindName(e.kind), e.accountIds.join(",")])).toEqual([
        ["MINT_CREATED", "treasury:ops"],
        ["MINT_COMPLETED", "treasury:ops"],
        ["TRANSFER", "treasury:ops,other-2"],
        ["MINT_CREATED", "treasury:ops"],
        ["MINT_COMPLETED", "treasury:ops"],
      ]);
      expect(scoped.events.length).toBe(5);
      // Filtering on an account the scopes do not cover is refused before anything is sent.
      const refused = await watch(treasury, { accountIds: ["other-1"] }).ended;
      expect(refused).toMatchObject({ code: grpc.status.PERMISSION_DENIED, reason: "ACCOUNT_NOT_IN_SCOPE" });
      // A principal without the reader role is refused too.
      expect(await watch(fx.client(s.address, { token: fx.roleTokens.minter })).ended).toMatchObject({ code: grpc.status.PERMISSION_DENIED, reason: "MISSING_ROLE" });
      expect(await watch(fx.client(s.address)).ended).toMatchObject({ code: grpc.status.UNAUTHENTICATED });
      scoped.cancel();
      all.cancel();
      for (const c of [admin, treasury, everything]) c.close();
    } finally {
      await s.stop();
      fx.remove();
    }
  });
});
