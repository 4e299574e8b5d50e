/**
 * WatchLedger on PostgreSQL, through real servers (in-process, each with its
 * own pool and its own hub) and the generated client: the events of every
 * kind of change, including a settlement's SUBMITTED step (written by the
 * outbox the worker uses); a cursor resumes across a restart and on another
 * replica with every later event exactly once, in order; an event whose
 * transaction commits after a later-numbered one is never skipped; the audit
 * journal switched off changes nothing.
 */
import * as grpc from "@grpc/grpc-js";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Blockchain, type LedgerEvent, type MintUsdcResponse } from "../../gen/usdc/mint/v1/mint.js";
import { createTestDatabase, type TestDatabase } from "../support/pg-test-database.js";
import { PgRelay } from "../support/pg-relay.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { kindName, watch } from "../support/watch-stream.js";

let db: TestDatabase;
let n = 0;
const key = (): string => `pgwatch-${process.pid}-${++n}`;

function env(extra: Record<string, string> = {}): Record<string, string> {
  return { MINT_STORE: db.url, MINT_WATCH_POLL_INTERVAL: "20ms", MINT_RATE_LIMIT: "100000", MINT_PG_POOL_SIZE: "4", ...extra };
}

async function mint(s: TestServer, accountId: string, amount = "10", principal?: string): Promise<MintUsdcResponse> {
  return s.call("mintUsdc", { accountId, amount, blockchain: Blockchain.BLOCKCHAIN_BASE, idempotencyKey: key() }, principal === undefined ? {} : { metadata: { "x-mint-dev-principal": principal } });
}

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.drop();
});

describe("WatchLedger (PostgreSQL)", () => {
  it("streams every kind of change, the settlement's SUBMITTED step included, whatever MINT_AUDIT_JOURNAL says", async () => {
    const s = await startTestServer(env({ MINT_AUDIT_JOURNAL: "off", MINT_APPROVAL_THRESHOLD: "1000", MINT_APPROVALS_REQUIRED: "1", MINT_DEV_PRINCIPAL_HEADER: "true" }));
    try {
      const w = watch(s.client, { accountIds: [] });
      await w.started;
      const m1 = await mint(s, "pk-alice", "50");
      await s.call("transfer", { fromAccountId: "pk-alice", toAccountId: "pk-bob", amount: "5", idempotencyKey: key() });
      await s.call("redeemUsdc", { accountId: "pk-alice", amount: "1", blockchain: Blockchain.BLOCKCHAIN_BASE, idempotencyKey: key() });
      await s.call("reconcileMint", { mintId: (await mint(s, "pk-carol", "2")).mint?.mintId, reason: "wrong account" });
      await s.call("freezeAccount", { accountId: "pk-dave", reason: "court order" });
      await s.call("unfreezeAccount", { accountId: "pk-dave", reason: "lifted" });
      await s.call("setReserve", { amount: "1000000", attestationRef: "att-1" });
      await s.call("setMinterAllowance", { principal: "minter-x", amount: "7" });
      const big = await mint(s, "pk-erin", "1000", "requester-1");
      await s.call("approveMint", { mintId: big.mint?.mintId }, { metadata: { "x-mint-dev-principal": "approver-1" } });
      const big2 = await mint(s, "pk-erin", "2000", "requester-1");
      await s.call("rejectMint", { mintId: big2.mint?.mintId, reason: "no" }, { metadata: { "x-mint-dev-principal": "approver-1" } });
      // The settlement worker's steps, through the PostgreSQL outbox it writes with.
      const settled = await mint(s, "pk-frank", "3");
      const outbox = s.app.adapters.settlementOutbox?.();
      if (outbox === undefined) throw new Error("a PostgreSQL store has an outbox");
      const id = settled.mint?.mintId as string;
      await outbox.enqueue({ settlementId: id, blockchain: "BASE", amountMicros: 3_000_000n, createWallMs: Date.now() });
      const hash = `0x${"ab".repeat(32)}` as const;
      const signed = await outbox.recordSigned(id, { hash, raw: "0x01", nonce: 7, maxFeePerGas: 1n, maxPriorityFeePerGas: 1n, signedWallMs: Date.now() }, Date.now());
      expect(signed.ok).toBe(true);
      await outbox.markFailed(id, { hash, blockNumber: 12n, confirmations: 1 }, "reverted", Date.now());

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
        "MINT_CREATED",
        "MINT_COMPLETED",
        "SETTLEMENT_SUBMITTED",
      ];
      const got = await w.waitFor(kinds.length + 2);
      expect(got.map((e) => kindName(e.kind))).toEqual([...kinds, ...(kindName(got[kinds.length]?.kind as number) === "SETTLEMENT_FAILED" ? ["SETTLEMENT_FAILED", "MINT_REVERSED"] : ["MINT_REVERSED", "SETTLEMENT_FAILED"])]);
      expect(got[0]?.mint).toMatchObject({ mintId: m1.mint?.mintId, accountId: "pk-alice", amount: "50" });
      expect(got[2]?.transfer).toMatchObject({ fromAccountId: "pk-alice", toAccountId: "pk-bob", amount: "5" });
      expect(got[9]?.reserve).toEqual({ reserve: "1000000", attestationRef: "att-1" });
      expect(got[10]?.allowance).toEqual({ principal: "minter-x", allowance: "7" });
      expect(got[13]?.mint).toMatchObject({ actor: "approver-1", approvals: 1 });
      expect(got[17]?.mint).toMatchObject({ actor: "approver-1", reason: "no" });
      expect(got[20]?.settlement).toMatchObject({ settlementId: id, accountId: "pk-frank", nonce: 7, txHash: hash, amount: "3" });
      expect(got[20]?.accountIds).toEqual(["pk-frank"]);
      w.cancel();
    } finally {
      await s.stop();
    }
  });

  it("resumes from a cursor across a restart: every later event exactly once, in order", async () => {
    let s = await startTestServer(env());
    const w = watch(s.client, { accountIds: ["rs-a", "rs-b"] });
    await w.started;
    for (let i = 0; i < 5; i++) await mint(s, i % 2 === 0 ? "rs-a" : "rs-b", "1");
    const before = await w.waitFor(10);
    w.cancel();
    await s.stop();
    s = await startTestServer(env());
    try {
      for (let i = 0; i < 3; i++) await mint(s, "rs-a", "2");
      const r = watch(s.client, { fromCursor: before[3]?.cursor, accountIds: ["rs-a", "rs-b"] });
      const after = await r.waitFor(6 + 6);
      r.cancel();
      expect(after.slice(0, 6).map((e) => e.eventId)).toEqual(before.slice(4).map((e) => e.eventId));
      expect(after.slice(6).map((e) => [kindName(e.kind), e.mint?.amount])).toEqual([
        ["MINT_CREATED", "2"],
        ["MINT_COMPLETED", "2"],
        ["MINT_CREATED", "2"],
        ["MINT_COMPLETED", "2"],
        ["MINT_CREATED", "2"],
        ["MINT_COMPLETED", "2"],
      ]);
      expect(new Set(after.map((e) => e.eventId)).size).toBe(after.length);
    } finally {
      await s.stop();
    }
  });

  it("two replicas feed one consumer that switches replica mid-stream, with mints landing on both", async () => {
    const a = await startTestServer(env());
    const b = await startTestServer(env());
    try {
      const acct = (i: number): string => `two-${i % 3}`;
      const accounts = [0, 1, 2].map(acct);
      const first = watch(a.client, { accountIds: accounts });
      const start = await first.started;
      const writes: Promise<unknown>[] = [];
      for (let i = 0; i < 60; i++) writes.push(mint(i % 2 === 0 ? a : b, acct(i), "1"));
      const part = await first.waitFor(40);
      first.cancel();
      const cursor = part[part.length - 1]?.cursor as string;
      const received: LedgerEvent[] = [...first.events];
      // The consumer moves to replica b with the last cursor it saw, while more mints land on both.
      const second = watch(b.client, { fromCursor: cursor, accountIds: accounts });
      for (let i = 60; i < 100; i++) writes.push(mint(i % 2 === 0 ? a : b, acct(i), "1"));
      await Promise.all(writes);
      const rest = await second.waitFor(200 - received.length);
      second.cancel();
      const all = [...received, ...rest];
      // The whole sequence, read afresh from the start on replica a.
      const whole = watch(a.client, { fromCursor: start, accountIds: accounts });
      const full = await whole.waitFor(200);
      whole.cancel();
      expect(all.map((e) => e.eventId)).toEqual(full.map((e) => e.eventId));
      expect(new Set(all.map((e) => e.eventId)).size).toBe(200);
      // Each mint's CREATED comes right before its COMPLETED (one transaction).
      for (let i = 0; i < 200; i += 2) expect([kindName(all[i]?.kind as number), all[i]?.mint?.mintId]).toEqual(["MINT_CREATED", all[i + 1]?.mint?.mintId]);
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it("never skips an event whose transaction commits after a later-numbered one", async () => {
    // One transaction per call: the hold below is a statement of the single-call mint.
    const s = await startTestServer(env({ MINT_PG_GROUP_MAX: "1" }));
    let release: () => void = () => undefined;
    const released = new Promise<void>((r) => (release = r));
    let reachedCommit: () => void = () => undefined;
    const atCommit = new Promise<void>((r) => (reachedCommit = r));
    const original = pg.Client.prototype.query;
    let armed = true;
    // Hold the first mint after its rows (and events) are written, before it raises supply and commits.
    const spy = vi.spyOn(pg.Client.prototype, "query").mockImplementation(function (this: pg.Client, ...args: unknown[]) {
      if (armed && typeof args[0] === "string" && args[0].includes("UPDATE supply SET supply = supply +")) {
        armed = false;
        reachedCommit();
        return released.then(() => (original as (...a: unknown[]) => Promise<unknown>).apply(this, args));
      }
      return (original as (...a: unknown[]) => unknown).apply(this, args);
    } as never);
    try {
      const w = watch(s.client, { accountIds: ["race-x", "race-y"] });
      const start = await w.started;
      const firstCall = mint(s, "race-x", "1");
      await atCommit;
      const second = await mint(s, "race-y", "1");
      // While the first is open, the feed shows nothing past it (not even the committed second).
      const feed = s.app.adapters.ledgerEvents;
      const { decodeCursor } = await import("../../src/domain/ledger-events.js");
      const decoded = decodeCursor(start);
      if (!decoded.ok) throw new Error("the start cursor decodes");
      expect((await feed.read(decoded.position, 100)).events).toEqual([]);
      release();
      const first = await firstCall;
      const got = await w.waitFor(4);
      expect(got.map((e) => [kindName(e.kind), e.mint?.mintId])).toEqual([
        ["MINT_CREATED", first.mint?.mintId],
        ["MINT_COMPLETED", first.mint?.mintId],
        ["MINT_CREATED", second.mint?.mintId],
        ["MINT_COMPLETED", second.mint?.mintId],
      ]);
      w.cancel();
    } finally {
      spy.mockRestore();
      release();
      await s.stop();
    }
  });

  it("with group commit too: a group still open holds back the events of a later one", async () => {
    const s = await startTestServer(env());
    const holder = new pg.Client({ connectionString: db.url });
    holder.on("error", () => undefined);
    await holder.connect();
    try {
      // The first mint's account exists (written directly: no event) so a test session can hold its row.
      await holder.query("INSERT INTO accounts (account_id, balance) VALUES ('gc-race-x', 0)");
      const w = watch(s.client, { accountIds: ["gc-race-x", "gc-race-y"] });
      const start = await w.started;
      // The first mint's group claims its key (its transaction id is taken), then waits for the held account row.
      await holder.query("BEGIN");
      await holder.query("SELECT 1 FROM accounts WHERE account_id = 'gc-race-x' FOR UPDATE");
      const firstCall = mint(s, "gc-race-x", "1");
      for (let i = 0; ; i++) {
        const waiting = await holder.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'");
        if ((waiting.rows[0]?.n ?? 0) > 0) break;
        if (i > 250) throw new Error("the first mint never waited for the held row");
        await new Promise((r) => setTimeout(r, 20));
      }
      const second = await mint(s, "gc-race-y", "1");
      const { decodeCursor } = await import("../../src/domain/ledger-events.js");
      const decoded = decodeCursor(start);
      if (!decoded.ok) throw new Error("the start cursor decodes");
      expect((await s.app.adapters.ledgerEvents.read(decoded.position, 100)).events).toEqual([]);
      await holder.query("ROLLBACK");
      const first = await firstCall;
      const got = await w.waitFor(4);
      expect(got.map((e) => [kindName(e.kind), e.mint?.mintId])).toEqual([
        ["MINT_CREATED", first.mint?.mintId],
        ["MINT_COMPLETED", first.mint?.mintId],
        ["MINT_CREATED", second.mint?.mintId],
        ["MINT_COMPLETED", second.mint?.mintId],
      ]);
      w.cancel();
    } finally {
      await holder.end().catch(() => undefined);
      await s.stop();
    }
  });

  it("a cursor older than the retention is FAILED_PRECONDITION with the oldest cursor, on every replica", async () => {
    const a = await startTestServer(env());
    const b = await startTestServer(env());
    try {
      const w = watch(a.client, { accountIds: ["ret-pg"] });
      await w.started;
      await mint(a, "ret-pg");
      const old = await w.waitFor(2);
      w.cancel();
      // Retention as the hub runs it, with "now" far enough ahead that every event is past it.
      expect(await a.app.adapters.ledgerEvents.prune(Date.now() + 60_000, 100_000)).toBeGreaterThanOrEqual(2);
      await mint(a, "ret-pg");
      for (const s of [a, b]) {
        const e = await watch(s.client, { fromCursor: old[0]?.cursor, accountIds: ["ret-pg"] }).ended;
        expect(e).toMatchObject({ code: grpc.status.FAILED_PRECONDITION, reason: "CURSOR_EXPIRED" });
        const oldest = typeof e === "string" ? "" : (e.metadata.oldest_cursor as string);
        const r = watch(s.client, { fromCursor: oldest, accountIds: ["ret-pg"] });
        const kept = await r.waitFor(2);
        r.cancel();
        expect(kept.map((k) => kindName(k.kind))).toEqual(["MINT_CREATED", "MINT_COMPLETED"]);
        expect(kept[0]?.eventId).not.toBe(old[0]?.eventId);
      }
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  it("a replica whose PostgreSQL goes away keeps its streams open and goes on where it stopped once it is back", async () => {
    const relay = new PgRelay();
    await relay.start(0);
    const a = await startTestServer(env({ MINT_STORE: relay.url(db.name), MINT_PG_CONNECT_TIMEOUT: "1s" }));
    const b = await startTestServer(env());
    try {
      const w = watch(a.client, { accountIds: ["outage-w"] });
      await w.started;
      await mint(b, "outage-w");
      const before = await w.waitFor(2);
      await relay.stop();
      await mint(b, "outage-w");
      await mint(b, "outage-w");
      // A new stream cannot read the feed now: UNAVAILABLE, nothing sent.
      const refused = await watch(a.client, { fromCursor: before[1]?.cursor, accountIds: ["outage-w"] }).ended;
      expect(refused).toMatchObject({ code: grpc.status.UNAVAILABLE, reason: "STORE_UNAVAILABLE" });
      await relay.start(relay.port);
      // The open stream carries on: the events committed meanwhile, once each, in order.
      const all = await w.waitFor(6, 20_000);
      w.cancel();
      expect(all.map((e) => kindName(e.kind))).toEqual(["MINT_CREATED", "MINT_COMPLETED", "MINT_CREATED", "MINT_COMPLETED", "MINT_CREATED", "MINT_COMPLETED"]);
      expect(new Set(all.map((e) => e.eventId)).size).toBe(6);
    } finally {
      await relay.stop();
      await a.stop();
      await b.stop();
    }
  });
});

