/**
 * The audit journal on PostgreSQL, through the real server and
 * the generated client, and through the offline verifier (`npm run audit:verify`) with the server
 * stopped:
 * - every applied change (mint, transfer, reversal) is one record; refused
 *   calls and replays are none; records match the ledger's effects;
 * - ListAuditEvents filters by account, principal and time and pages;
 * - the append-only trigger refuses UPDATE of a sealed record, DELETE and TRUNCATE;
 * - tampering with psql (trigger disabled, as an attacker with table rights
 *   would): edit an amount, delete a record, swap two, insert one; verify
 *   names the first broken sequence number through the RPC and the command;
 * - the sealing bound: a record committed by a replica that died before
 *   sealing it is sealed by another replica's periodic pass within
 *   SEAL_INTERVAL_MS (fake clock).
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { promisify } from "node:util";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { ListAuditEventsRequest, type ListAuditEventsResponse, type VerifyAuditChainResponse } from "../../gen/usdc/mint/v1/mint.js";
import { openPostgresStores, SEAL_INTERVAL_MS, type PostgresAuditJournal } from "../../src/adapters/postgres/index.js";
import { auditVerify } from "../../src/cli/audit-verify.js";
import { expectJournalMatchesLedger, expectSealedWithoutGaps } from "../support/audit-checks.js";
import { FakeClock } from "../support/fake-clock.js";
import { createTestDatabase, type TestDatabase, testClient, testPool } from "../support/pg-test-database.js";
import { expectError, startTestServer, type TestServer } from "../support/test-server.js";
import { rpc, waitFor } from "./helpers.js";

const run = promisify(execFile);
const dbs: TestDatabase[] = [];
const servers: TestServer[] = [];

afterEach(async () => {
  for (const s of servers.splice(0)) await s.stop().catch(() => undefined);
  for (const d of dbs.splice(0)) await d.drop();
});

async function freshDb(): Promise<TestDatabase> {
  const db = await createTestDatabase();
  dbs.push(db);
  return db;
}

async function serve(db: TestDatabase, env: Record<string, string> = {}): Promise<TestServer> {
  const s = await startTestServer({ MINT_STORE: db.url, ...env });
  servers.push(s);
  return s;
}

async function unsealed(db: TestDatabase): Promise<number> {
  return (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM audit_journal WHERE seq IS NULL")).rows[0]!.n;
}

/**
 * Six applied changes (3 mints, 2 transfers, 1 reversal), plus a refused
 * transfer and a replay, which are not journaled. Returns the mint ids.
 */
async function seed(s: TestServer, db: TestDatabase): Promise<string[]> {
  const r = rpc(s.call);
  const m1 = await r.mint("alice", "10", "k-m1");
  const m2 = await r.mint("bob", "5.5", "k-m2");
  const m3 = await r.mint("carol", "1", "k-m3");
  await r.transfer("alice", "bob", "2.25", "k-t1");
  await r.transfer("bob", "carol", "1", "k-t2");
  await r.reconcile(m3.mint!.mintId, "chain reverted");
  expect((await expectError(r.transfer("carol", "alice", "1000", "k-t3"))).reason).toBe("INSUFFICIENT_FUNDS");
  expect((await r.mint("alice", "10", "k-m1")).replayed).toBe(true);
  await waitFor(async () => (await unsealed(db)) === 0, "the journal to be sealed");
  return [m1.mint!.mintId, m2.mint!.mintId, m3.mint!.mintId];
}

const verifyRpc = (s: TestServer, fromSeq = 0, toSeq = 0): Promise<VerifyAuditChainResponse> => s.call("verifyAuditChain", { fromSeq, toSeq });
const list = (s: TestServer, req: Partial<ListAuditEventsRequest>): Promise<ListAuditEventsResponse> => s.call("listAuditEvents", ListAuditEventsRequest.fromPartial(req));

/** Runs SQL as an attacker with table rights would: psql, the journal's triggers disabled first. */
async function psql(db: TestDatabase, sql: string): Promise<void> {
  await run("psql", ["-v", "ON_ERROR_STOP=1", "-q", db.url, "-c", `ALTER TABLE audit_journal DISABLE TRIGGER USER; ${sql}; ALTER TABLE audit_journal ENABLE TRIGGER USER;`]);
}

async function verifyCommand(db: TestDatabase): Promise<{ code: number; text: string }> {
  const lines: string[] = [];
  const code = await auditVerify([db.url], (l) => lines.push(l));
  return { code, text: lines.join("\n") };
}

describe("audit journal on PostgreSQL", () => {
  it("journals every applied change once (not refusals, not replays), sealed 1..n, matching the ledger; verify is whole", async () => {
    const db = await freshDb();
    const s = await serve(db);
    await seed(s, db);
    expect(await expectSealedWithoutGaps(db)).toBe(6);
    expect(await expectJournalMatchesLedger(db)).toBe(6);
    const v = await verifyRpc(s);
    expect({ whole: v.whole, checked: v.checked, firstSeq: v.firstSeq, lastSeq: v.lastSeq, unsealed: v.unsealed }).toEqual({
      whole: true,
      checked: 6,
      firstSeq: 1,
      lastSeq: 6,
      unsealed: 0,
    });
    const page = await list(s, {});
    expect(page.events.map((e) => [e.seq, e.action, e.principal])).toEqual([
      [1, "MintUsdc", "local"],
      [2, "MintUsdc", "local"],
      [3, "MintUsdc", "local"],
      [4, "Transfer", "local"],
      [5, "Transfer", "local"],
      [6, "ReconcileMint", "local"],
    ]);
    expect(v.headHash).toBe(page.events[5]!.hash);
    expect(page.events[0]!.prevHash).toBe("0".repeat(64));
    expect(JSON.parse(page.events[3]!.requestJson)).toEqual({ amount: "2250000", from_account_id: "alice", to_account_id: "bob" });
    expect(page.events[3]!.idempotencyKey).toBe("k-t1");
    expect(page.events[5]!.idempotencyKey).toBe("");
    // A part of the range verifies from the record before it.
    expect((await verifyRpc(s, 3, 5)).checked).toBe(3);
    // The command agrees with the server running too.
    const cmd = await verifyCommand(db);
    expect(cmd.code).toBe(0);
    expect(cmd.text).toContain("records 1..6");
  });

  it("approvals (counted and completing), a rejection and an allowance set are journaled in their transactions, matching the ledger", async () => {
    const db = await freshDb();
    const s = await serve(db, { MINT_APPROVAL_THRESHOLD: "100", MINT_APPROVALS_REQUIRED: "2", MINT_ALLOWANCES: "true", MINT_DEV_PRINCIPAL_HEADER: "true" });
    const as = (principal: string) => ({ metadata: { "x-mint-dev-principal": principal } });
    const mint = (key: string): Promise<{ mint?: { mintId: string } }> =>
      s.call("mintUsdc", { accountId: "dora", amount: "150", blockchain: 1 /* ETHEREUM */, idempotencyKey: key }, as("minter-a"));
    await s.call("setMinterAllowance", { principal: "minter-a", amount: "1000" }, as("reserve"));
    const big = (await mint("k-big")).mint!.mintId;
    await s.call("approveMint", { mintId: big }, as("bob"));
    await s.call("approveMint", { mintId: big }, as("bob")); // counted once, journaled once
    await s.call("approveMint", { mintId: big }, as("carol"));
    const other = (await mint("k-other")).mint!.mintId;
    await s.call("rejectMint", { mintId: other, reason: "no wire" }, as("bob"));
    await waitFor(async () => (await unsealed(db)) === 0, "the journal to be sealed");
    expect(await expectSealedWithoutGaps(db)).toBe(6);
    expect(await expectJournalMatchesLedger(db)).toBe(6);
    const events = (await list(s, {})).events;
    expect(events.map((e) => [e.action, e.principal, JSON.parse(e.resultJson).status ?? null])).toEqual([
      ["SetMinterAllowance", "reserve", null],
      ["MintUsdc", "minter-a", "PENDING_APPROVAL"],
      ["ApproveMint", "bob", "PENDING_APPROVAL"],
      ["ApproveMint", "carol", "COMPLETED"],
      ["MintUsdc", "minter-a", "PENDING_APPROVAL"],
      ["RejectMint", "bob", "REJECTED"],
    ]);
  });

  it("the sweeper's expiry of a pending mint is journaled as ExpireMint by `sweeper`, in its transaction, matching the ledger", async () => {
    const db = await freshDb();
    const clock = new FakeClock();
    const s = await startTestServer({ MINT_STORE: db.url, MINT_APPROVAL_THRESHOLD: "100", MINT_APPROVAL_TTL: "1h" }, clock);
    servers.push(s);
    const pending = (await s.call<object, { mint?: { mintId: string; status: number } }>("mintUsdc", { accountId: "erin", amount: "150", blockchain: 1, idempotencyKey: "k-exp" })).mint!;
    // The sweeper runs every second on the real clock; expiry is judged on the (fake) wall clock.
    await clock.advance(60 * 60 * 1000);
    await waitFor(async () => (await s.call<object, { mint?: { status: number } }>("getMint", { mintId: pending.mintId })).mint?.status === 4 /* REJECTED */, "the sweeper to expire the mint", 20_000);
    await waitFor(async () => (await unsealed(db)) === 0, "the journal to be sealed");
    expect(await expectSealedWithoutGaps(db)).toBe(2);
    expect(await expectJournalMatchesLedger(db)).toBe(2);
    const events = (await list(s, {})).events;
    expect(events.map((e) => [e.action, e.principal, JSON.parse(e.resultJson).status ?? null])).toEqual([
      ["MintUsdc", "local", "PENDING_APPROVAL"],
      ["ExpireMint", "sweeper", "REJECTED"],
    ]);
  });

  it("ListAuditEvents filters by account, principal and time, and pages with a token bound to its filters", async () => {
    const db = await freshDb();
    const s = await serve(db);
    await seed(s, db);
    const seqs = async (req: Partial<ListAuditEventsRequest>): Promise<number[]> => (await list(s, req)).events.map((e) => e.seq);
    expect(await seqs({ accountId: "carol" })).toEqual([3, 5, 6]);
    expect(await seqs({ principal: "local" })).toEqual([1, 2, 3, 4, 5, 6]);
    expect(await seqs({ principal: "mallory" })).toEqual([]);
    const all = (await list(s, {})).events;
    const t4 = all[3]!.time!;
    expect(await seqs({ startTime: t4 })).toEqual(all.filter((e) => e.time!.getTime() >= t4.getTime()).map((e) => e.seq));
    expect(await seqs({ endTime: t4 })).toEqual(all.filter((e) => e.time!.getTime() < t4.getTime()).map((e) => e.seq));
    expect(await seqs({ endTime: new Date(1000) })).toEqual([]);

    const p1 = await list(s, { accountId: "bob", pageSize: 2 });
    expect(p1.events.map((e) => e.seq)).toEqual([2, 4]);
    const p2 = await list(s, { accountId: "bob", pageSize: 2, pageToken: p1.nextPageToken });
    expect(p2.events.map((e) => e.seq)).toEqual([5]);
    expect(p2.nextPageToken).toBe("");

    const wrongFilter = await expectError(list(s, { accountId: "alice", pageSize: 2, pageToken: p1.nextPageToken }));
    expect([wrongFilter.reason, wrongFilter.badRequest?.fieldViolations[0]?.field]).toEqual(["INVALID_PAGE_TOKEN", "page_token"]);
    expect((await expectError(list(s, { accountId: "bad account!" }))).reason).toBe("INVALID_ACCOUNT_ID");
    expect((await expectError(list(s, { pageSize: -1 }))).reason).toBe("INVALID_PAGE_SIZE");
    expect((await expectError(list(s, { principal: "p".repeat(257) }))).reason).toBe("INVALID_PRINCIPAL");
    expect((await expectError(list(s, { startTime: t4, endTime: t4 }))).reason).toBe("INVALID_TIME_RANGE");
    expect((await expectError(verifyRpc(s, 5, 3))).reason).toBe("INVALID_SEQ_RANGE");
    expect((await expectError(verifyRpc(s, -1, 0))).reason).toBe("INVALID_SEQ_RANGE");
  });

  it("the append-only trigger refuses UPDATE of a sealed record, DELETE and TRUNCATE", async () => {
    const db = await freshDb();
    const s = await serve(db);
    await seed(s, db);
    await expect(db.query("UPDATE audit_journal SET actor = 'mallory' WHERE seq = 1")).rejects.toThrow(/append-only/);
    await expect(db.query("UPDATE audit_journal SET seq = 99 WHERE seq = 1")).rejects.toThrow(/append-only/);
    await expect(db.query("DELETE FROM audit_journal WHERE seq = 1")).rejects.toThrow(/append-only/);
    await expect(db.query("TRUNCATE audit_journal")).rejects.toThrow(/append-only/);
    // An unsealed record may be sealed, but not edited on the way (inside
    // one transaction, so no sealer sees the row first).
    const c = testClient({ connectionString: db.url });
    await c.connect();
    try {
      await c.query("BEGIN");
      await c.query("INSERT INTO audit_journal (time_ms, actor, action, request, result, accounts) VALUES (1, 'x', 'y', '{}', '{}', '{}')");
      await expect(c.query("UPDATE audit_journal SET actor = 'z', seq = 1000, prev_hash = 'a', hash = 'b' WHERE seq IS NULL")).rejects.toThrow(/append-only/);
      await c.query("ROLLBACK");
    } finally {
      await c.end();
    }
  });

  /** Each tamper: seed, stop the server, tamper with psql, then verify with the command (stopped) and through the RPC (restarted). */
  const tampers: { name: string; sql: string; brokenSeq: number; reason: RegExp }[] = [
    {
      name: "an amount edited",
      sql: `UPDATE audit_journal SET request = replace(request, '"amount":"2250000"', '"amount":"225000000"') WHERE seq = 4`,
      brokenSeq: 4,
      reason: /does not match its hash/,
    },
    { name: "a record deleted", sql: "DELETE FROM audit_journal WHERE seq = 2", brokenSeq: 2, reason: /missing/ },
    {
      name: "two records swapped",
      sql: "UPDATE audit_journal SET seq = 1000 WHERE seq = 4; UPDATE audit_journal SET seq = 4 WHERE seq = 5; UPDATE audit_journal SET seq = 5 WHERE seq = 1000",
      brokenSeq: 4,
      reason: /does not link/,
    },
  ];

  it.each(tampers)("verify names the first broken record when $name (command with the server stopped, then the RPC)", async (t) => {
    const db = await freshDb();
    const s = await serve(db);
    await seed(s, db);
    await s.stop();
    servers.splice(servers.indexOf(s), 1);
    expect((await verifyCommand(db)).code).toBe(0);
    await psql(db, t.sql);
    const cmd = await verifyCommand(db);
    expect(cmd.code).toBe(1);
    expect(cmd.text).toContain(`BROKEN at seq ${t.brokenSeq}:`);
    expect(cmd.text).toMatch(t.reason);
    const again = await serve(db);
    const v = await verifyRpc(again);
    expect([v.whole, v.brokenSeq]).toEqual([false, t.brokenSeq]);
    expect(v.reason).toMatch(t.reason);
  });

  it("verify names the first broken record when one is inserted, even one hashed correctly by the attacker (its successor breaks)", async () => {
    const db = await freshDb();
    const s = await serve(db);
    await seed(s, db);
    await s.stop();
    servers.splice(servers.indexOf(s), 1);
    // The forged record becomes seq 3, chained to record 2 and hashed by the
    // published algorithm; the records after it move up by one.
    const two = (await db.query<{ hash: string }>("SELECT hash FROM audit_journal WHERE seq = 2")).rows[0]!.hash;
    const forged = {
      accounts: ["mallory"],
      action: "MintUsdc",
      actor: "local",
      idempotencyKey: "k-forged",
      prevHash: two,
      request: { account_id: "mallory", amount: "1000000000", blockchain: "ETHEREUM" },
      result: { mint_id: "mint_FORGED", status: "COMPLETED" },
      seq: 3,
      timeMs: 1_700_000_000_000,
    };
    const canonical =
      `{"accounts":["mallory"],"action":"MintUsdc","actor":"local","idempotencyKey":"k-forged","prevHash":"${two}",` +
      `"request":{"account_id":"mallory","amount":"1000000000","blockchain":"ETHEREUM"},"result":{"mint_id":"mint_FORGED","status":"COMPLETED"},"seq":3,"timeMs":1700000000000}`;
    const hash = createHash("sha256").update(canonical).digest("hex");
    await psql(
      db,
      `UPDATE audit_journal SET seq = seq + 1000000 WHERE seq >= 3; UPDATE audit_journal SET seq = seq - 999999 WHERE seq >= 1000000;
       INSERT INTO audit_journal (seq, time_ms, actor, action, idempotency_key, request, result, accounts, prev_hash, hash)
       VALUES (3, ${forged.timeMs}, 'local', 'MintUsdc', 'k-forged', '${JSON.stringify(forged.request)}', '${JSON.stringify(forged.result)}', '{mallory}', '${two}', '${hash}')`,
    );
    const cmd = await verifyCommand(db);
    expect(cmd.code).toBe(1);
    expect(cmd.text).toContain("BROKEN at seq 4:");
    const again = await serve(db);
    const v = await verifyRpc(again);
    expect([v.whole, v.brokenSeq, v.checked]).toEqual([false, 4, 3]);
    // A forged record with a wrong hash is itself the first broken one.
    await psql(db, "UPDATE audit_journal SET hash = repeat('0', 64) WHERE seq = 3");
    expect((await verifyRpc(again)).brokenSeq).toBe(3);
  });

  // The program behind `npm run audit:verify` (node dist/src/cli/audit-verify.js once built;
  // here from source). scripts/docker-build-check.sh runs the npm script in the production file set.
  it("the offline verifier exits 0 on a whole chain, 1 on a broken one, 2 without a store url", async () => {
    const db = await freshDb();
    const s = await serve(db);
    await seed(s, db);
    await s.stop();
    servers.splice(servers.indexOf(s), 1);
    const npm = (args: string[]) => run(process.execPath, ["--import", "tsx", "src/cli/audit-verify.ts", ...args]).then(
      (r) => ({ code: 0, out: r.stdout }),
      (e: { code: number; stdout: string }) => ({ code: e.code, out: e.stdout }),
    );
    const whole = await npm([db.url]);
    expect(whole.code).toBe(0);
    expect(whole.out).toMatch(/audit chain whole: records 1\.\.6/);
    await psql(db, "DELETE FROM audit_journal WHERE seq = 5");
    const broken = await npm([db.url]);
    expect([broken.code, broken.out.trim()]).toEqual([1, expect.stringContaining("BROKEN at seq 5")]);
    expect((await npm([])).code).toBe(2);
  }, 60_000);

  it(`sealing bound: a record committed by a replica that died before sealing it is sealed by another replica's pass within ${SEAL_INTERVAL_MS} ms`, async () => {
    const db = await freshDb();
    const clock = new FakeClock();
    const stores = await openPostgresStores({
      url: db.url,
      poolSize: 2,
      statementTimeoutMs: 5_000,
      connectTimeoutMs: 5_000,
      idempotencyTtlMs: 60_000,
      clock,
    });
    try {
      const audit = stores.audit as PostgresAuditJournal;
      await audit.settled();
      // What a replica that crashed between COMMIT and its kick leaves behind.
      await db.query(
        `INSERT INTO audit_journal (time_ms, actor, action, idempotency_key, request, result, accounts)
         VALUES (1, 'local', 'MintUsdc', 'k', '{"account_id":"a","amount":"1","blockchain":"ETHEREUM"}', '{"mint_id":"mint_X","status":"COMPLETED"}', '{a}')`,
      );
      await clock.advance(SEAL_INTERVAL_MS - 1);
      await audit.settled();
      expect(await unsealed(db)).toBe(1);
      await clock.advance(1);
      await audit.settled();
      expect(await unsealed(db)).toBe(0);
      expect(await expectSealedWithoutGaps(db)).toBe(1);
    } finally {
      await stores.close();
    }
  });
});

describe("audit journal sealer across replicas", () => {
  it("two sealers on one database never seal the same record twice or leave a gap (one holds the advisory lock at a time)", async () => {
    const db = await freshDb();
    const pools = [testPool({ connectionString: db.url, max: 2 }), testPool({ connectionString: db.url, max: 2 })];
    const clock = new FakeClock();
    const { PostgresAuditJournal: Journal } = await import("../../src/adapters/postgres/postgres-audit-journal.js");
    const stores = await openPostgresStores({ url: db.url, poolSize: 2, statementTimeoutMs: 5_000, connectTimeoutMs: 5_000, idempotencyTtlMs: 60_000, clock });
    await stores.close();
    try {
      const sealers = pools.map((p) => new Journal(p, { clock }));
      const values = Array.from({ length: 300 }, (_, i) => `(${i}, 'local', 'MintUsdc', NULL, '{}', '{}', '{a}')`).join(",");
      for (let round = 0; round < 5; round++) {
        await db.query(`INSERT INTO audit_journal (time_ms, actor, action, idempotency_key, request, result, accounts) VALUES ${values}`);
        await Promise.all(sealers.flatMap((x) => [x.sealOnce(), x.sealOnce()]));
        while ((await unsealed(db)) > 0) await sealers[round % 2]!.sealOnce();
      }
      expect(await expectSealedWithoutGaps(db)).toBe(1500);
      expect((await verifyCommand(db)).code).toBe(0);
    } finally {
      for (const p of pools) await p.end();
    }
  });
});
