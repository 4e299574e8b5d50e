import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Blockchain } from "../../src/domain/model.js";
import { runMigrations } from "../../src/adapters/postgres/migrations.js";
import { InProcessSenderLock, MemorySettlementOutbox } from "../../src/adapters/memory/settlement-outbox.js";
import { BURN_SETTLEMENT_MIGRATION, GAS_SETTLEMENT_MIGRATION, PgSenderLock, PostgresSettlementOutbox, SETTLEMENT_MIGRATIONS } from "../../src/adapters/postgres/settlement-outbox.js";
import type { SettlementEffects } from "../../src/domain/settlement/ports.js";
import { createTestDatabase, type TestDatabase, testClient, testPool } from "../support/pg-test-database.js";
import { settlementOutboxContract } from "./settlement-outbox.contract.js";

function recordingEffects<Tx>(effects: string[]): SettlementEffects<Tx> {
  return {
    // A burn is marked, so the contract can tell the effect saw its kind.
    confirmed: (_tx, s) => void effects.push(`confirmed:${s.kind === "burn" ? "burn:" : ""}${s.settlementId}`),
    failed: (_tx, s, reason) => void effects.push(`failed:${s.kind === "burn" ? "burn:" : ""}${s.settlementId}:${reason}`),
  };
}

settlementOutboxContract("memory", async () => {
  const effects: string[] = [];
  const table = new Map<Blockchain, object>();
  return { outbox: new MemorySettlementOutbox(recordingEffects(effects)), effects, locks: [new InProcessSenderLock(table), new InProcessSenderLock(table)], close: async () => undefined };
});

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
  const c = testClient({ connectionString: db.url });
  await c.connect();
  try {
    await runMigrations(c, undefined, [...SETTLEMENT_MIGRATIONS, BURN_SETTLEMENT_MIGRATION, GAS_SETTLEMENT_MIGRATION]);
  } finally {
    await c.end();
  }
});
afterAll(async () => {
  await db?.drop();
});

settlementOutboxContract("postgres", async () => {
  await db.query("TRUNCATE settlement_txs, settlements, settlement_waits RESTART IDENTITY");
  const pool = testPool({ connectionString: db.url, max: 4 });
  const effects: string[] = [];
  const connect = async (): Promise<pg.Client> => {
    const c = testClient({ connectionString: db.url });
    await c.connect();
    return c;
  };
  const locks = [new PgSenderLock(connect), new PgSenderLock(connect)] as const;
  return {
    outbox: new PostgresSettlementOutbox(pool, recordingEffects(effects)),
    effects,
    locks: [locks[0], locks[1]],
    async close() {
      await Promise.all(locks.map((l) => l.close()));
      await pool.end();
    },
  };
});

describe("PostgreSQL outbox specifics", () => {
  it("a ledger effect that fails rolls the final state back with it (same transaction)", async () => {
    await db.query("TRUNCATE settlement_txs, settlements, settlement_waits RESTART IDENTITY");
    const pool = testPool({ connectionString: db.url, max: 2 });
    try {
      const outbox = new PostgresSettlementOutbox(pool, {
        confirmed: async (client) => {
          await client.query("SELECT 1");
          throw new Error("ledger refused");
        },
        failed: () => undefined,
      });
      await outbox.enqueue({ settlementId: "x", blockchain: "ETHEREUM", amountMicros: 5n, createWallMs: 0 });
      await outbox.recordSigned("x", { hash: `0x${"ab".repeat(32)}`, raw: "0x02", nonce: 0, maxFeePerGas: 1n, maxPriorityFeePerGas: 1n, signedWallMs: 0 }, 0);
      await expect(outbox.markConfirmed("x", { hash: `0x${"ab".repeat(32)}`, blockNumber: 1n, confirmations: 1 }, 1)).rejects.toThrow(/ledger refused/);
      expect((await outbox.get("x"))?.state).toBe("SUBMITTED");
    } finally {
      await pool.end();
    }
  });

  it("the sender lock is lost with its connection, and another replica can take it", async () => {
    const clients: pg.Client[] = [];
    const connect = async (): Promise<pg.Client> => {
      const c = testClient({ connectionString: db.url });
      await c.connect();
      clients.push(c);
      return c;
    };
    const one = new PgSenderLock(connect);
    const two = new PgSenderLock(connect);
    try {
      expect(await one.tryAcquire("OPTIMISM")).toBe(true);
      expect(await two.tryAcquire("OPTIMISM")).toBe(false);
      const pid = (await (clients[0] as pg.Client).query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]?.pid;
      await db.query("SELECT pg_terminate_backend($1)", [pid]);
      expect(await one.held("OPTIMISM")).toBe(false);
      expect(await two.tryAcquire("OPTIMISM")).toBe(true);
    } finally {
      await one.close();
      await two.close();
    }
  });
});

describe("the gas migration on settlements finished before it", () => {
  it("leaves their cost unknown (null), not zero, and new ones get theirs", async () => {
    const old = await createTestDatabase();
    const c = testClient({ connectionString: old.url });
    await c.connect();
    const pool = testPool({ connectionString: old.url, max: 2 });
    try {
      await runMigrations(c, undefined, [...SETTLEMENT_MIGRATIONS, BURN_SETTLEMENT_MIGRATION]);
      await c.query(
        `INSERT INTO settlements (settlement_id, kind, blockchain, amount, state, nonce, mined_hash, block_number, confirmations, create_time, update_time)
         VALUES ('before', 'mint', 'ETHEREUM', 5, 'CONFIRMED', 0, '0x01', 7, 1, now(), now())`,
      );
      await runMigrations(c, undefined, [...SETTLEMENT_MIGRATIONS, BURN_SETTLEMENT_MIGRATION, GAS_SETTLEMENT_MIGRATION]);
      const outbox = new PostgresSettlementOutbox(pool);
      expect(await outbox.get("before")).toMatchObject({ state: "CONFIRMED", costWei: null, waitReason: "" });
      await outbox.enqueue({ settlementId: "after", blockchain: "ETHEREUM", amountMicros: 6n, createWallMs: Date.now() });
      const hash = `0x${"2".repeat(64)}` as const;
      await outbox.recordSigned("after", { hash, raw: "0x02", nonce: 1, maxFeePerGas: 2n, maxPriorityFeePerGas: 1n, signedWallMs: Date.now() }, Date.now());
      await outbox.markConfirmed("after", { hash, blockNumber: 8n, confirmations: 1, costWei: 42n }, Date.now());
      expect((await outbox.getMany(["before", "after"])).get("after")?.costWei).toBe(42n);
    } finally {
      await pool.end();
      await c.end();
      await old.drop();
    }
  });
});
