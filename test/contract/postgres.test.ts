/**
 * Runs the port contracts against the PostgreSQL adapter. Every test gets a
 * fresh, empty database (created here, dropped after), so no test sees
 * another's keys, balances or clock.
 */
import { openPostgresStores, type GroupCommitSettings } from "../../src/adapters/postgres/index.js";
import { FakeClock } from "../support/fake-clock.js";
import { createTestDatabase } from "../support/pg-test-database.js";
import { approvalStoreContract } from "./approval-store.contract.js";
import { exactlyOnceStoreContract } from "./exactly-once-store.contract.js";
import { idempotencyStoreContract } from "./idempotency-store.contract.js";
import { ledgerStoreContract } from "./ledger-store.contract.js";
import { reserveStoreContract } from "./reserve-store.contract.js";
import { allowancesContract } from "./allowances.contract.js";
import { expectEveryMoneyRuleCovered } from "./coverage.js";
import { redemptionContract } from "./redemption.contract.js";
import { batchContract } from "./batch.contract.js";
import { CONTRACT_IDEMPOTENCY_TTL_MS, type SettlementStoresUnderTest, type StoresUnderTest } from "./stores-under-test.js";

/**
 * `defaultIsolation` sets the database's default_transaction_isolation: the
 * adapter pins READ COMMITTED on every transaction, so the suites must pass
 * on a database whose default is SERIALIZABLE too.
 */
async function makePostgresStores(defaultIsolation?: "serializable", groupCommit?: GroupCommitSettings): Promise<StoresUnderTest> {
  const db = await createTestDatabase(defaultIsolation === undefined ? {} : { defaultIsolation });
  const clock = new FakeClock();
  try {
    const stores = await openPostgresStores({
      url: db.url,
      poolSize: 4,
      statementTimeoutMs: 5_000,
      connectTimeoutMs: 5_000,
      idempotencyTtlMs: CONTRACT_IDEMPOTENCY_TTL_MS,
      clock,
      // Key expiry runs on the store's clock: here the fake clock, not a real wait.
      testNowWallMs: () => clock.wallMs(),
      ...(groupCommit === undefined ? {} : { groupCommit }),
    });
    return {
      store: stores.store,
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

const serializableDefault = (): Promise<StoresUnderTest> => makePostgresStores("serializable");
/** Mints and transfers through group commit (the service's default), at most 8 per group, 2 groups in flight. */
const grouped = (defaultIsolation?: "serializable"): Promise<StoresUnderTest> => makePostgresStores(defaultIsolation, { maxItems: 8, waitMs: 1, groupsInFlight: 2 });

exactlyOnceStoreContract("postgres", () => makePostgresStores());
approvalStoreContract("postgres", () => makePostgresStores());
ledgerStoreContract("postgres", () => makePostgresStores());
idempotencyStoreContract("postgres", () => makePostgresStores());
exactlyOnceStoreContract("postgres, default isolation SERIALIZABLE", serializableDefault);
ledgerStoreContract("postgres, default isolation SERIALIZABLE", serializableDefault);
idempotencyStoreContract("postgres, default isolation SERIALIZABLE", serializableDefault);
reserveStoreContract("postgres", () => makePostgresStores());
exactlyOnceStoreContract("postgres, group commit", () => grouped());
exactlyOnceStoreContract("postgres, group commit, default isolation SERIALIZABLE", () => grouped("serializable"));
ledgerStoreContract("postgres, group commit", () => grouped());
reserveStoreContract("postgres, group commit", () => grouped());

/** The PostgreSQL stores with their outbox (the service's wiring); journal and entries read from the tables. */
async function makePostgresSettlementStores(groupCommit?: GroupCommitSettings): Promise<SettlementStoresUnderTest> {
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
      testNowWallMs: () => clock.wallMs(),
      ...(groupCommit === undefined ? {} : { groupCommit }),
    });
    return {
      store: stores.store,
      ledger: stores.ledger,
      idempotency: stores.idempotency,
      clock,
      outbox: stores.settlementOutbox(),
      async journaled(action) {
        const res = await db.query<{ actor: string; request: string; result: string }>("SELECT actor, request, result FROM audit_journal WHERE action = $1 ORDER BY record_id", [action]);
        return res.rows.map((r) => ({ actor: r.actor, request: JSON.parse(r.request) as Record<string, unknown>, result: JSON.parse(r.result) as Record<string, unknown> }));
      },
      async entries(refId) {
        const res = await db.query<{ kind: string; amount: string }>("SELECT kind, amount::text AS amount FROM ledger_entries WHERE ref_id = $1 ORDER BY entry_id", [refId]);
        return res.rows.map((r) => `${r.kind} ${r.amount}`);
      },
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
redemptionContract("postgres", () => makePostgresSettlementStores());
allowancesContract("postgres", () => makePostgresSettlementStores());
batchContract("postgres", () => makePostgresSettlementStores());
/** At most 2 items per group, so a batch spans several groups. */
batchContract("postgres, group commit", () => makePostgresSettlementStores({ maxItems: 2, waitMs: 1, groupsInFlight: 2 }));
expectEveryMoneyRuleCovered("postgres");
