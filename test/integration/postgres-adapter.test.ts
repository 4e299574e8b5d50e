/**
 * The PostgreSQL adapter against a real server, as several replicas see it:
 * migrations, two pools on one database racing for the same keys, rows and
 * mints, outages and recovery, deadlines, and no connection ever leaked.
 * Each test gets a fresh database, dropped afterwards.
 */
import net from "node:net";
import pg from "pg";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MIGRATIONS, openPostgresStores, runMigrations, type PostgresStores } from "../../src/adapters/postgres/index.js";
import { UnavailableError } from "../../src/domain/errors.js";
import type { CanonicalRequest } from "../../src/domain/model.js";
import {
  applyMint,
  applyTransfer,
  claimFree,
  expectReplayOf,
  mintNow,
  mintRequest,
  newKey,
  newMintId,
  NO_DEADLINE,
  realSleep,
  track,
  transferNow,
  transferRequest,
  type StoresUnderTest,
} from "../contract/stores-under-test.js";
import { FakeClock } from "../support/fake-clock.js";
import { PgRelay as Relay } from "../support/pg-relay.js";
import { createTestDatabase, type TestDatabase, testClient } from "../support/pg-test-database.js";

const TTL_MS = 60_000;

interface Replica extends StoresUnderTest {
  readonly pg: PostgresStores;
  readonly warnings: { o: object; m: string }[];
}

interface ReplicaOptions {
  url?: string;
  poolSize?: number;
  statementTimeoutMs?: number;
  connectTimeoutMs?: number;
  clock?: FakeClock;
}

let db: TestDatabase;
const opened: Replica[] = [];

async function openReplica(opts: ReplicaOptions = {}): Promise<Replica> {
  const clock = opts.clock ?? new FakeClock();
  const warnings: { o: object; m: string }[] = [];
  const stores = await openPostgresStores({
    url: opts.url ?? db.url,
    poolSize: opts.poolSize ?? 4,
    statementTimeoutMs: opts.statementTimeoutMs ?? 5_000,
    connectTimeoutMs: opts.connectTimeoutMs ?? 2_000,
    idempotencyTtlMs: TTL_MS,
    // These tests count the pool's clients and sessions of the ledger path; the
    // audit sealer's own checkouts (test/integration/audit-journal.test.ts) would blur them.
    auditJournal: false,
    clock,
    testNowWallMs: () => clock.wallMs(),
    logger: { info() {}, warn: (o, m) => warnings.push({ o, m }), error: (o, m) => warnings.push({ o, m }) },
  });
  const replica: Replica = {
    pg: stores,
    store: stores.store,
    ledger: stores.ledger,
    idempotency: stores.idempotency,
    clock,
    warnings,
    close: () => stores.close(),
  };
  opened.push(replica);
  return replica;
}

/** Clients checked out of the replica's pool right now. */
function checkedOut(r: Replica): number {
  const s = r.pg.poolStats();
  return s.totalCount - s.idleCount;
}

/** A whole MintUsdc as the core runs it: replay, or claim → mint → complete (release on failure). */
async function callMint(r: Replica, key: string, accountId: string, amountMicros: bigint): Promise<string> {
  const begun = await r.idempotency.begin("mint", key, mintRequest(accountId, amountMicros), NO_DEADLINE);
  if (!begun.ok) return begun.error.code;
  if (begun.value.kind === "replay") return "replayed";
  const applied = await applyMint(r, begun.value.claim, { accountId, amountMicros });
  return applied.ok ? "applied" : applied.error.code;
}

async function callTransfer(r: Replica, key: string, from: string, to: string, amountMicros: bigint): Promise<string> {
  const begun = await r.idempotency.begin("transfer", key, transferRequest(from, to, amountMicros), NO_DEADLINE);
  if (!begun.ok) return begun.error.code;
  if (begun.value.kind === "replay") return "replayed";
  const applied = await applyTransfer(r, begun.value.claim, { from, to, amountMicros });
  return applied.ok ? "applied" : applied.error.code;
}

/** A port nothing listens on (bound, then freed). */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await realSleep(20);
  }
}

async function sumOfEntries(accountId: string): Promise<bigint> {
  const res = await db.query<{ s: string | null }>("SELECT sum(amount)::text AS s FROM ledger_entries WHERE account_id = $1", [accountId]);
  return BigInt(res.rows[0]?.s ?? "0");
}

beforeEach(async () => {
  db = await createTestDatabase();
});

afterEach(async () => {
  for (const r of opened.splice(0)) await r.close().catch(() => undefined);
  await db.drop();
});

describe("migrations", () => {
  it("build the schema on an empty database, and running them again is a no-op", async () => {
    const client = testClient({ connectionString: db.url });
    await client.connect();
    try {
      expect(await runMigrations(client)).toEqual(MIGRATIONS.map((m) => m.version));
      const tables = await client.query<{ table_name: string }>(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name",
      );
      expect(tables.rows.map((r) => r.table_name).sort()).toEqual(
        [
          "accounts",
          "audit_journal",
          "idempotency_keys",
          "ledger_entries",
          "ledger_event_feed",
          "ledger_events",
          "mint_seq_base",
          "mint_seq_xact",
          "minter_allowances",
          "mints",
          "redemptions",
          "schema_migrations",
          "settlement_txs",
          "settlement_waits",
          "settlements",
          "supply",
          "transfers",
        ].sort(),
      );
      const money = await client.query<{ table_name: string; column_name: string; data_type: string; numeric_precision: number; numeric_scale: number }>(
        `SELECT table_name, column_name, data_type, numeric_precision, numeric_scale FROM information_schema.columns
         WHERE table_schema = 'public' AND column_name IN ('balance', 'amount', 'pending') AND data_type = 'numeric' ORDER BY table_name`,
      );
      // balance and pending of accounts; amount of mints, transfers, ledger entries, settlements and redemptions.
      expect(money.rows.length).toBe(7);
      const allowance = await client.query<{ data_type: string; numeric_precision: number; numeric_scale: number }>(
        `SELECT data_type, numeric_precision, numeric_scale FROM information_schema.columns WHERE table_name = 'minter_allowances' AND column_name = 'remaining'`,
      );
      expect(allowance.rows.map((c) => [c.data_type, c.numeric_precision, c.numeric_scale])).toEqual([["numeric", 38, 0]]);
      for (const col of money.rows) expect([col.data_type, col.numeric_precision, col.numeric_scale]).toEqual(["numeric", 38, 0]);
      const before = await client.query("SELECT version, applied_at FROM schema_migrations ORDER BY version");

      expect(await runMigrations(client)).toEqual([]);
      const after = await client.query("SELECT version, applied_at FROM schema_migrations ORDER BY version");
      expect(after.rows).toEqual(before.rows);
    } finally {
      await client.end();
    }
  });

  it("allowance generations: charges made before the migration count as made before the next Set", async () => {
    const GENERATIONS = 2101;
    const client = testClient({ connectionString: db.url });
    await client.connect();
    const approval = JSON.stringify({ required: 2, approvals: [], expireWallMs: Date.UTC(2100, 0, 1), rejectReason: "", rejectedBy: "", rejectWallMs: null });
    const [setSince, notSet] = [newMintId(), newMintId()];
    try {
      await runMigrations(client, undefined, MIGRATIONS.filter((m) => m.version < GENERATIONS));
      // Two minters, each with a pending mint of 500 charged to its allowance (1000 - 500 left), as the older schema kept them.
      await client.query("INSERT INTO accounts (account_id, balance) VALUES ('acct-old', 0)");
      await client.query("INSERT INTO minter_allowances (principal, remaining) VALUES ('minter-set', 500), ('minter-kept', 500)");
      await client.query(
        `INSERT INTO mints (seq, mint_id, account_id, amount, blockchain, status, idempotency_key, create_time, requester, allowance_charged, approval)
         VALUES (1, $1, 'acct-old', 500, 'ETHEREUM', 'PENDING_APPROVAL', 'k-1', now(), 'minter-set', true, $3::jsonb),
                (2, $2, 'acct-old', 500, 'ETHEREUM', 'PENDING_APPROVAL', 'k-2', now(), 'minter-kept', true, $3::jsonb)`,
        [setSince, notSet, approval],
      );
      expect(await runMigrations(client)).toEqual(MIGRATIONS.filter((m) => m.version >= GENERATIONS).map((m) => m.version));
    } finally {
      await client.end();
    }
    const r = await openReplica();
    const journal = { actor: "rm", action: "SetMinterAllowance", idempotencyKey: null, request: {}, accounts: [] };
    expect(await r.store.setAllowance("minter-set", 100n, journal, r.clock.wallMs())).toEqual({ ok: true, value: undefined });
    for (const mintId of [setSince, notSet]) {
      const rejected = await r.store.rejectMint(mintId, "no", "bob", r.clock.wallMs(), { ...journal, actor: "bob", action: "RejectMint" }, { deadlineMs: NO_DEADLINE });
      expect(rejected.ok && rejected.value.status).toBe("REJECTED");
    }
    // The Set after the migration is final; the minter never set since gets its charge back.
    expect([await r.store.getAllowance("minter-set"), await r.store.getAllowance("minter-kept")]).toEqual([100n, 1000n]);
  });

  it("make the ledger append-only and refuse negative balances", async () => {
    const r = await openReplica();
    await mintNow(r, "alice", 5n);
    await expect(db.query("UPDATE ledger_entries SET amount = 1")).rejects.toThrow(/append-only/);
    await expect(db.query("DELETE FROM ledger_entries")).rejects.toThrow(/append-only/);
    await expect(db.query("TRUNCATE ledger_entries CASCADE")).rejects.toThrow(/append-only/);
    await expect(db.query("UPDATE accounts SET balance = -1 WHERE account_id = 'alice'")).rejects.toThrow(/check constraint/);
    expect(await sumOfEntries("alice")).toBe(5n);
  });

  it("two replicas opening an empty database at once both succeed and apply each migration once", async () => {
    const [a, b] = await Promise.all([openReplica(), openReplica()]);
    const rows = await db.query<{ version: number }>("SELECT version FROM schema_migrations ORDER BY version");
    expect(rows.rows.map((x) => x.version)).toEqual(MIGRATIONS.map((m) => m.version));
    await mintNow(a, "alice", 3n);
    expect(await b.ledger.getBalance("alice")).toBe(3n);
  });
});

describe("several replicas on one database", () => {
  it("concurrent same-key mints on two replicas: one applies, the other replays", async () => {
    const a = await openReplica();
    const b = await openReplica();
    const outcomes: string[][] = [];
    for (let i = 0; i < 15; i++) {
      const key = newKey();
      outcomes.push((await Promise.all([callMint(a, key, "alice", 1_000_000n), callMint(b, key, "alice", 1_000_000n)])).sort());
    }
    for (const o of outcomes) expect(o).toEqual(["applied", "replayed"]);
    const mints = await db.query<{ n: string }>("SELECT count(*) AS n FROM mints");
    expect(Number(mints.rows[0]!.n)).toBe(15);
    expect(await a.ledger.getBalance("alice")).toBe(15_000_000n);
    expect(await sumOfEntries("alice")).toBe(15_000_000n);
    expect(checkedOut(a) + checkedOut(b)).toBe(0);
  });

  it("200 opposing transfers spread over two replicas conserve the total, deadlock-free", async () => {
    const a = await openReplica({ poolSize: 5 });
    const b = await openReplica({ poolSize: 5 });
    await mintNow(a, "acct-A", 1_000_000n);
    await mintNow(b, "acct-B", 1_000_000n);
    const jobs = Array.from({ length: 200 }, (_, i) => {
      const replica = i % 2 === 0 ? a : b;
      const amount = BigInt(1 + ((i * 7919) % 25_000));
      return i % 4 < 2
        ? callTransfer(replica, newKey(), "acct-A", "acct-B", amount)
        : callTransfer(replica, newKey(), "acct-B", "acct-A", amount);
    });
    const outcomes = await Promise.all(jobs);
    for (const o of outcomes) expect(["applied", "INSUFFICIENT_FUNDS"]).toContain(o);
    expect(outcomes.filter((o) => o === "applied").length).toBeGreaterThan(100);
    const balanceA = await a.ledger.getBalance("acct-A");
    const balanceB = await b.ledger.getBalance("acct-B");
    expect(balanceA + balanceB).toBe(2_000_000n);
    expect(await sumOfEntries("acct-A")).toBe(balanceA);
    expect(await sumOfEntries("acct-B")).toBe(balanceB);
    const transfers = await db.query<{ n: string }>("SELECT count(*) AS n FROM transfers");
    expect(Number(transfers.rows[0]!.n)).toBe(outcomes.filter((o) => o === "applied").length);
    // The lock order makes deadlocks impossible: nothing needed a retry.
    expect([...a.warnings, ...b.warnings].filter((w) => w.m.includes("retrying"))).toEqual([]);
    expect(checkedOut(a) + checkedOut(b)).toBe(0);
  });

  it("concurrent reverseMint on two replicas: one reverses, the other gets MINT_ALREADY_REVERSED", async () => {
    const a = await openReplica();
    const b = await openReplica();
    const key = newKey();
    const mint = await mintNow(a, "alice", 10n, key);
    await mintNow(a, "alice", 5n);
    const results = await Promise.all([
      a.ledger.reverseMint(mint.mintId, "reorg A", a.clock.wallMs(), NO_DEADLINE),
      b.ledger.reverseMint(mint.mintId, "reorg B", b.clock.wallMs(), NO_DEADLINE),
    ]);
    const codes = results.map((r) => (r.ok ? "ok" : r.error.code)).sort();
    expect(codes).toEqual(["MINT_ALREADY_REVERSED", "ok"]);
    expect(await a.ledger.getBalance("alice")).toBe(5n);
    const reversals = await db.query<{ n: string }>("SELECT count(*) AS n FROM ledger_entries WHERE kind = 'reversal'");
    expect(Number(reversals.rows[0]!.n)).toBe(1);
    // reverseMint itself freed the key (no forget needed): it mints again.
    expect(await callMint(b, key, "alice", 10n)).toBe("applied");
  });

  it("reverseMint keeps a key that expired and was reused for a newer mint", async () => {
    const r = await openReplica();
    const key = newKey();
    const old = await mintNow(r, "alice", 4n, key);
    await r.clock.advance(TTL_MS + 1);
    const claim = await claimFree(r, "mint", key, mintRequest("alice", 6n));
    const newer = await applyMint(r, claim, { accountId: "alice", amountMicros: 6n });
    expect(newer.ok).toBe(true);
    if (!newer.ok) return;
    expect((await r.ledger.reverseMint(old.mintId, "late", r.clock.wallMs(), NO_DEADLINE)).ok).toBe(true);
    expectReplayOf(await r.idempotency.begin("mint", key, mintRequest("alice", 6n), NO_DEADLINE), { scope: "mint", mint: newer.mint });
    expect(await r.ledger.getBalance("alice")).toBe(6n);
  });

  it("a replica that dies holding a claim leaves no half-applied state and no stuck key", async () => {
    const a = await openReplica();
    const b = await openReplica();
    const key = newKey();
    const req = mintRequest("alice", 8n);
    const claim = await claimFree(a, "mint", key, req);
    // Kill the session of A's open claim, as if its process had died.
    const killed = await db.query<{ ok: boolean }>(
      "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE datname = $1 AND state = 'idle in transaction'",
      [db.name],
    );
    expect(killed.rows.map((x) => x.ok)).toEqual([true]);
    expect(await callMint(b, key, "alice", 8n)).toBe("applied");
    // A finds out on its next use of the claim: UNAVAILABLE, nothing applied twice, no leak.
    await expect(applyMint(a, claim, { accountId: "alice", amountMicros: 8n })).rejects.toBeInstanceOf(UnavailableError);
    await a.idempotency.release(claim);
    expect(await b.ledger.getBalance("alice")).toBe(8n);
    expect(checkedOut(a)).toBe(0);
    expect(await a.pg.probe.healthy()).toBe(true);
  });

  it("a claim abandoned mid-transaction is ended by the server after the statement timeout", async () => {
    const a = await openReplica({ statementTimeoutMs: 300 });
    const b = await openReplica();
    const key = newKey();
    const claim = await claimFree(a, "mint", key, mintRequest("alice", 1n));
    await realSleep(700);
    expect(await callMint(b, key, "alice", 1n)).toBe("applied");
    await a.idempotency.release(claim);
    expect(checkedOut(a)).toBe(0);
  });
});

describe("deadlines, retries and sweeping", () => {
  it("a transfer whose deadline passes while a row is locked elsewhere is DEADLINE_EXCEEDED and changes nothing", async () => {
    const r = await openReplica();
    await mintNow(r, "alice", 100n);
    const holder = testClient({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query("BEGIN");
      await holder.query("SELECT * FROM accounts WHERE account_id = 'alice' FOR UPDATE");
      const key = newKey();
      const claim = await claimFree(r, "transfer", key, transferRequest("alice", "bob", 10n));
      const started = Date.now();
      const res = await applyTransfer(r, claim, { from: "alice", to: "bob", amountMicros: 10n }, r.clock.nowMs() + 150);
      expect(res).toMatchObject({ ok: false, error: { code: "DEADLINE_EXCEEDED" } });
      expect(Date.now() - started).toBeLessThan(2_000);
      await holder.query("ROLLBACK");
      expect(await r.ledger.getBalance("alice")).toBe(100n);
      expect(await r.ledger.getBalance("bob")).toBe(0n);
      expect(checkedOut(r)).toBe(0);
      // Nothing was stored: the key is free for the retry.
      expect(await callTransfer(r, key, "alice", "bob", 10n)).toBe("applied");
    } finally {
      await holder.end();
    }
  });

  it("a deadline that has already passed is DEADLINE_EXCEEDED before anything is looked at", async () => {
    const r = await openReplica();
    const begun = await r.idempotency.begin("mint", newKey(), mintRequest("alice", 1n), r.clock.nowMs() - 1);
    expect(begun).toMatchObject({ ok: false, error: { code: "DEADLINE_EXCEEDED" } });
    const reversed = await r.ledger.reverseMint(newMintId(), "x", r.clock.wallMs(), r.clock.nowMs());
    expect(reversed).toMatchObject({ ok: false, error: { code: "DEADLINE_EXCEEDED" } });
    expect(checkedOut(r)).toBe(0);
  });

  it("a deadlock with an outside session is retried on the same claim and the result is stored once", async () => {
    const r = await openReplica();
    await mintNow(r, "acct-A", 50n);
    await mintNow(r, "acct-B", 50n);
    const outsider = testClient({ connectionString: db.url });
    await outsider.connect();
    try {
      // The outsider waits longer before checking for deadlocks, so the
      // adapter's transaction is the one PostgreSQL picks as the victim.
      await outsider.query("SET deadlock_timeout = '10s'");
      await outsider.query("BEGIN");
      // Row locks, not updates: an update would also make the transfer's
      // "create the receiver if missing" insert wait, before it holds anything.
      await outsider.query("SELECT 1 FROM accounts WHERE account_id = 'acct-B' FOR UPDATE");
      const key = newKey();
      const transfer = track(callTransfer(r, key, "acct-A", "acct-B", 20n));
      // The transfer now holds acct-A and waits for acct-B; closing the cycle deadlocks.
      await waitFor("the transfer to wait for acct-B", async () => {
        const w = await db.query<{ n: string }>(
          "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
          [db.name],
        );
        return Number(w.rows[0]!.n) === 1;
      });
      const outsiderLock = outsider.query("SELECT 1 FROM accounts WHERE account_id = 'acct-A' FOR UPDATE");
      await waitFor("the deadlock retry", async () => r.warnings.some((w) => w.m.includes("retrying")));
      await outsiderLock;
      await outsider.query("COMMIT");
      expect(await transfer.promise).toBe("applied");
      // Usually one retry; on a busy machine the retry can take acct-A again
      // before the outsider's waiting lock is granted and deadlock once more.
      // Either way every retry was a deadlock and the transfer applied once.
      const retried = r.warnings.filter((w) => w.m.includes("retrying")).map((w) => (w.o as { code?: string }).code);
      expect(retried.length).toBeGreaterThanOrEqual(1);
      expect(new Set(retried)).toEqual(new Set(["40P01"]));
      expect(await r.ledger.getBalance("acct-A")).toBe(30n);
      expect(await r.ledger.getBalance("acct-B")).toBe(70n);
      expect(await callTransfer(r, key, "acct-A", "acct-B", 20n)).toBe("replayed");
      expect(await r.ledger.getBalance("acct-A")).toBe(30n);
    } finally {
      await outsider.end();
    }
  });

  it("sweepExpired deletes expired keys in bounded batches, replicas sweeping side by side", async () => {
    const a = await openReplica();
    const b = await openReplica({ clock: a.clock });
    // Expiry is judged by the store's clock: here the replicas' fake clock.
    const wall = a.clock.wallMs();
    await db.query(
      `INSERT INTO idempotency_keys (scope, key, fingerprint, result, state, expires_at)
       SELECT 'mint', 'old-' || i, '[]', '{}'::jsonb, 'completed', to_timestamp($1::double precision / 1000) - (i || ' ms')::interval
       FROM generate_series(1, 250) AS i`,
      [wall],
    );
    await db.query(
      `INSERT INTO idempotency_keys (scope, key, fingerprint, result, state, expires_at)
       SELECT 'transfer', 'live-' || i, '[]', '{}'::jsonb, 'completed', to_timestamp($1::double precision / 1000) + interval '1 hour'
       FROM generate_series(1, 10) AS i`,
      [wall],
    );
    expect(await a.idempotency.size()).toBe(260);
    expect(await a.idempotency.sweepExpired(100)).toBe(100);
    let total = 100;
    for (;;) {
      const [x, y] = await Promise.all([a.idempotency.sweepExpired(40), b.idempotency.sweepExpired(40)]);
      expect(x).toBeLessThanOrEqual(40);
      expect(y).toBeLessThanOrEqual(40);
      total += x + y;
      if (x + y === 0) break;
    }
    expect(total).toBe(250);
    const left = await db.query<{ key: string }>("SELECT key FROM idempotency_keys ORDER BY key");
    expect(left.rows.map((k) => k.key)).toEqual(Array.from({ length: 10 }, (_, i) => `live-${i + 1}`).sort());
  });
});

describe("outages and connection hygiene", () => {
  it("opening against a closed port rejects with UnavailableError", async () => {
    const port = await closedPort();
    await expect(
      openPostgresStores({
        url: `postgres://postgres@127.0.0.1:${port}/${db.name}`,
        poolSize: 2,
        statementTimeoutMs: 1_000,
        connectTimeoutMs: 500,
        idempotencyTtlMs: TTL_MS,
        clock: new FakeClock(),
      }),
    ).rejects.toBeInstanceOf(UnavailableError);
  });

  it("with the database gone calls throw UnavailableError and the probe fails; both recover when it returns", async () => {
    const relay = new Relay();
    await relay.start();
    try {
      const r = await openReplica({ url: relay.url(db.name), connectTimeoutMs: 500, statementTimeoutMs: 2_000 });
      await mintNow(r, "alice", 5n);
      expect(await r.pg.probe.healthy()).toBe(true);
      const inFlight = await claimFree(r, "mint", newKey(), mintRequest("alice", 1n));

      await relay.stop();
      // Idle clients die with their sockets: the pool's 'error' event must not crash the process.
      await realSleep(50);
      expect(await r.pg.probe.healthy()).toBe(false);
      await expect(r.ledger.getBalance("alice")).rejects.toBeInstanceOf(UnavailableError);
      await expect(r.idempotency.begin("mint", newKey(), mintRequest("alice", 1n), NO_DEADLINE)).rejects.toBeInstanceOf(UnavailableError);
      await expect(r.ledger.reverseMint(newMintId(), "x", r.clock.wallMs(), NO_DEADLINE)).rejects.toBeInstanceOf(UnavailableError);
      await expect(applyMint(r, inFlight, { accountId: "alice", amountMicros: 1n })).rejects.toBeInstanceOf(UnavailableError);
      await r.idempotency.release(inFlight);
      expect(checkedOut(r)).toBe(0);

      await relay.start(relay.port);
      await waitFor("the probe to pass again", () => r.pg.probe.healthy());
      expect(await r.ledger.getBalance("alice")).toBe(5n);
      await mintNow(r, "alice", 2n);
      expect(await r.ledger.getBalance("alice")).toBe(7n);
      expect(checkedOut(r)).toBe(0);
    } finally {
      await relay.stop();
    }
  });

  it("no client leaks after failures of every kind", async () => {
    const r = await openReplica({ poolSize: 2 });
    await mintNow(r, "alice", 10n);

    // Expected failures: insufficient funds, key reused, key in use at the deadline, not found, already reversed.
    expect((await transferNow(r, "alice", "bob", 11n)).ok).toBe(false);
    const key = newKey();
    await mintNow(r, "alice", 1n, key);
    expect(await callMint(r, key, "alice", 2n)).toBe("IDEMPOTENCY_KEY_REUSED");
    expect(await callMint(r, key, "alice", 1n)).toBe("replayed");
    const held = await claimFree(r, "mint", "held-key", mintRequest("alice", 1n));
    const dup = r.idempotency.begin("mint", "held-key", mintRequest("alice", 1n), r.clock.nowMs() + 100);
    expect(await dup).toMatchObject({ ok: false, error: { code: "IDEMPOTENCY_KEY_IN_USE" } });
    await r.idempotency.release(held);
    await r.idempotency.release(held);
    expect((await r.ledger.reverseMint(newMintId(), "x", r.clock.wallMs(), NO_DEADLINE)).ok).toBe(false);
    const m = await mintNow(r, "carol", 3n);
    expect((await r.ledger.reverseMint(m.mintId, "x", r.clock.wallMs(), NO_DEADLINE)).ok).toBe(true);
    expect((await r.ledger.reverseMint(m.mintId, "x", r.clock.wallMs(), NO_DEADLINE)).ok).toBe(false);
    expect(checkedOut(r)).toBe(0);

    // A bug (a duplicate mint id) throws, rolls back and still returns the client.
    const claim = await claimFree(r, "mint", newKey(), mintRequest("alice", 1n));
    const dupMint = r.ledger.mint(
      { mintId: m.mintId, accountId: "alice", amountMicros: 1n, blockchain: "ETHEREUM", idempotencyKey: claim.key, createWallMs: r.clock.wallMs() },
      claim,
      NO_DEADLINE,
    );
    await expect(dupMint).rejects.toThrow(/mints_mint_id_key/);
    await r.idempotency.release(claim);
    expect(checkedOut(r)).toBe(0);
    await expect(r.idempotency.complete(claim, { scope: "mint", mint: m })).rejects.toThrow(/invariant/);

    // A claim from elsewhere is a wiring bug, refused before any connection is used.
    const foreign = { scope: "mint" as const, key: "k", request: {} as CanonicalRequest };
    await expect(r.ledger.mint({ ...m, idempotencyKey: "k" }, foreign, NO_DEADLINE)).rejects.toThrow(/invariant/);
    expect(checkedOut(r)).toBe(0);

    // The pool of two still serves many calls in a row.
    for (let i = 0; i < 6; i++) await mintNow(r, "dave", 1n);
    expect(await r.ledger.getBalance("dave")).toBe(6n);
    expect(checkedOut(r)).toBe(0);
    expect(r.pg.poolStats().totalCount).toBeLessThanOrEqual(2);
  });

  it("a busy pool is not an outage: the wait is bounded by the caller's deadline and answered STORE_BUSY", async () => {
    const r = await openReplica({ poolSize: 1, connectTimeoutMs: 200 });
    const held = await claimFree(r, "mint", newKey(), mintRequest("alice", 1n));
    // Longer than pg-pool's connect timeout, with no deadline: it waits, it is not UNAVAILABLE.
    const patient = r.idempotency.begin("mint", newKey(), mintRequest("carol", 1n), NO_DEADLINE);
    const impatient = r.idempotency.begin("mint", newKey(), mintRequest("bob", 1n), r.clock.nowMs() + 50);
    await r.clock.advance(60);
    expect(await impatient).toMatchObject({ ok: false, error: { code: "STORE_BUSY", retryAfterMs: expect.any(Number) } });
    await realSleep(400);
    await r.idempotency.release(held);
    const claimed = await patient;
    expect(claimed).toMatchObject({ ok: true, value: { kind: "claimed" } });
    if (claimed.ok && claimed.value.kind === "claimed") await r.idempotency.release(claimed.value.claim);
    await realSleep(20);
    expect(checkedOut(r)).toBe(0);
    expect(await callMint(r, newKey(), "bob", 1n)).toBe("applied");
  });

  it("a cancelled call waiting for a pooled connection gives up CANCELLED with nothing looked at", async () => {
    const r = await openReplica({ poolSize: 1, connectTimeoutMs: 5_000 });
    const held = await claimFree(r, "mint", newKey(), mintRequest("alice", 1n));
    const controller = new AbortController();
    const waiting = r.idempotency.begin("mint", newKey(), mintRequest("bob", 1n), NO_DEADLINE, controller.signal);
    await realSleep(20);
    controller.abort();
    expect(await waiting).toMatchObject({ ok: false, error: { code: "CANCELLED" } });
    await r.idempotency.release(held);
    await realSleep(20);
    expect(checkedOut(r)).toBe(0);
    expect(await r.ledger.getBalance("bob")).toBe(0n);
  });
;
});
