/**
 * Runs the port contracts against the PostgreSQL adapter. Every test gets a
 * fresh, empty database (created here, dropped after), so no test sees
 * another's keys, balances or clock.
 */
import { openPostgresStores } from "../../src/adapters/postgres/index.js";
import { FakeClock } from "../support/fake-clock.js";
import { createTestDatabase } from "../support/pg-test-database.js";
import { idempotencyStoreContract } from "./idempotency-store.contract.js";
import { ledgerStoreContract } from "./ledger-store.contract.js";
import { CONTRACT_IDEMPOTENCY_TTL_MS, type StoresUnderTest } from "./stores-under-test.js";

async function makePostgresStores(): Promise<StoresUnderTest> {
  const db = await createTestDatabase();
  const clock = new FakeClock();
  try {
    const stores = await openPostgresStores({
      url: db.url,
      poolSize: 4,
      statementTimeoutMs: 5_000,
      connectTimeoutMs: 5_000,
      idempotencyTtlMs: CONTRACT_IDEMPOTENCY_TTL_MS,
      clock,
    });
    return {
      ledger: stores.ledger,
      idempotency: stores.idempotency,
      clock,
      async close() {
        await stores.close();
        await db.drop();
      },
    };
  } catch (err) {
    await db.drop();
    throw err;
  }
}

ledgerStoreContract("postgres", makePostgresStores);
idempotencyStoreContract("postgres", makePostgresStores);
