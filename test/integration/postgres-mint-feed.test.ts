/**
 * ListMints on PostgreSQL as a feed a settlement worker or an auditor polls
 * with a cursor: it never skips a mint whose transaction
 * commits after a later-numbered one, and an idle transaction in another
 * database does not hold it back.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { openPostgresStores, type PostgresStores } from "../../src/adapters/postgres/index.js";
import type { MintRecord } from "../../src/domain/model.js";
import type { KeyedCall } from "../../src/domain/ports.js";
import { FakeClock } from "../support/fake-clock.js";
import { createTestDatabase, type TestDatabase, testClient } from "../support/pg-test-database.js";

const NO_DEADLINE = { deadlineMs: Infinity };

let db: TestDatabase;
let other: TestDatabase;
let stores: PostgresStores;
let clock: FakeClock;
let n = 0;

beforeAll(async () => {
  db = await createTestDatabase();
  other = await createTestDatabase();
  clock = new FakeClock();
  stores = await openPostgresStores({ url: db.url, poolSize: 4, statementTimeoutMs: 5_000, connectTimeoutMs: 5_000, idempotencyTtlMs: 60_000, clock });
});

afterAll(async () => {
  await stores.close();
  await db.drop();
  await other.drop();
});

function mintCall(accountId: string): KeyedCall {
  const key = `feed-${++n}`;
  const mintId = `mint_${String(n).padStart(26, "0")}`;
  return {
    scope: "mint",
    key,
    request: { account_id: accountId, amount: "1", blockchain: "ETHEREUM" },
    effect: { kind: "mint", cmd: { mintId, accountId, amountMicros: 1n, blockchain: "ETHEREUM", idempotencyKey: key, createWallMs: clock.wallMs() } },
  };
}

async function mint(accountId: string): Promise<MintRecord> {
  const r = await stores.store.applyOnce(mintCall(accountId), NO_DEADLINE);
  if (!r.ok || r.value.stored.scope !== "mint") throw new Error("mint failed");
  return r.value.stored.mint;
}

/** Reads the feed from `afterSeq` to its current end, as a poller would. */
async function poll(afterSeq: number): Promise<MintRecord[]> {
  return stores.store.listMints({ accountId: null, afterSeq, limit: 1001 });
}

describe("ListMints on PostgreSQL as a feed", () => {
  it("never skips a mint that commits after a later-numbered one", async () => {
    // Hold the first mint after its rows are written, until the second has
    // committed. Every mint raises supply on one row just
    // before COMMIT, so the first is held at that statement (holding its
    // COMMIT would hold the supply row, and the second could not commit).
    let release: () => void = () => undefined;
    const released = new Promise<void>((r) => (release = r));
    let reachedCommit: () => void = () => undefined;
    const atCommit = new Promise<void>((r) => (reachedCommit = r));
    const original = pg.Client.prototype.query;
    let armed = true;
    const spy = vi.spyOn(pg.Client.prototype, "query").mockImplementation(function (this: pg.Client, ...args: unknown[]) {
      if (armed && typeof args[0] === "string" && args[0].includes("UPDATE supply SET supply = supply +")) {
        armed = false;
        reachedCommit();
        return released.then(() => (original as (...a: unknown[]) => Promise<unknown>).apply(this, args));
      }
      return (original as (...a: unknown[]) => unknown).apply(this, args);
    } as never);
    try {
      const start = (await poll(0)).at(-1)?.seq ?? 0;
      const first = stores.store.applyOnce(mintCall("feed-x"), NO_DEADLINE);
      await atCommit;
      const second = await mint("feed-y");
      // The poller reads while the first is still uncommitted.
      const early = await poll(start);
      const cursor = early.at(-1)?.seq ?? start;
      release();
      const firstResult = await first;
      if (!firstResult.ok || firstResult.value.stored.scope !== "mint") throw new Error("first mint failed");
      const firstMint = firstResult.value.stored.mint;
      const late = await poll(cursor);
      const seen = [...early, ...late].map((m) => m.mintId);
      expect(seen).toContain(firstMint.mintId);
      expect(seen).toContain(second.mintId);
      expect(firstMint.seq).toBeLessThan(second.seq);
      // In order, each once.
      expect(seen).toEqual([firstMint.mintId, second.mintId]);
    } finally {
      spy.mockRestore();
    }
  });

  it("an idle transaction in another database does not hold the feed back", async () => {
    const idle = testClient({ connectionString: other.url });
    await idle.connect();
    try {
      await idle.query("BEGIN");
      // Taking a transaction id is what could hold back a cluster-wide horizon.
      await idle.query("SELECT pg_current_xact_id()");
      const before = (await poll(0)).at(-1)?.seq ?? 0;
      const m = await mint("feed-z");
      expect((await poll(before)).map((r) => r.mintId)).toEqual([m.mintId]);
    } finally {
      await idle.query("ROLLBACK").catch(() => undefined);
      await idle.end();
    }
  });

  it("an open transaction in this database holds the feed back only while it lives", async () => {
    const open = testClient({ connectionString: db.url });
    await open.connect();
    try {
      await open.query("BEGIN");
      await open.query("SELECT pg_current_xact_id()");
      const before = (await poll(0)).at(-1)?.seq ?? 0;
      const m = await mint("feed-w");
      expect(await poll(before)).toEqual([]);
      await open.query("ROLLBACK");
      expect((await poll(before)).map((r) => r.mintId)).toEqual([m.mintId]);
    } finally {
      await open.end();
    }
  });
});
