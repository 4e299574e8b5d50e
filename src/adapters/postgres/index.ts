/**
 * The PostgreSQL adapter: one database holds the ledger and the idempotency
 * keys, so a key's result commits in the same transaction as its ledger
 * change and any number of stateless replicas are exactly-once.
 *
 * The core uses `store` (PostgresExactlyOnceStore). Its duty with the building blocks:
 * every successful `idempotency.begin` that returned `claimed` holds a pooled connection and an open transaction
 * until `ledger.mint`/`ledger.transfer` (which always end it) or
 * `idempotency.release` (a no-op once the ledger ended it). So call
 * `release` on every path after a claim that does not reach the ledger call
 * (rate limited, shutting down, a thrown error); calling it after the ledger
 * call too is harmless. The server kills a claim left idle longer than the
 * statement timeout, which frees the key, but holds the connection until then.
 */
import pg from "pg";
import type { Clock } from "../../domain/clock.js";
import type { ApprovalStore, ExactlyOnceStore, IdempotencyStore, LedgerStore, MetricsSink, Probe } from "../../domain/ports.js";
import { runMigrations } from "./migrations.js";
import { PgDatabase } from "./pg-database.js";
import { silentLogger, type AdapterLogger } from "../../logger.js";
import { classifyPgError, pgUnavailableError } from "./pg-errors.js";
import { PostgresSettlementOutbox } from "./settlement-outbox.js";
import { PostgresIdempotencyStore } from "./postgres-idempotency-store.js";
import { PostgresExactlyOnceStore } from "./postgres-exactly-once-store.js";
import { PostgresLedgerStore } from "./postgres-ledger-store.js";
import { PostgresAuditJournal } from "./postgres-audit-journal.js";
import type { GroupCommitSettings } from "./pg-group-commit.js";

export { MIGRATIONS, runMigrations, type Migration } from "./migrations.js";
export { PostgresAuditJournal, SEAL_BATCH, SEAL_INTERVAL_MS, appendJournal, journalCte, journalParams } from "./postgres-audit-journal.js";
export { LIST_MINTS_MAX_LIMIT } from "./postgres-ledger-store.js";
export { MAX_GROUP_ITEMS, type GroupCommitSettings } from "./pg-group-commit.js";

export interface PostgresStoresOptions {
  /** postgres://user[:password]@host:port/db */
  readonly url: string;
  /** Connections in this replica's pool; each claim in flight holds one. */
  readonly poolSize: number;
  /** Upper bound of any statement and of any lock wait, in ms. */
  readonly statementTimeoutMs: number;
  /** How long to wait for a connection (new or from a busy pool) before UNAVAILABLE, in ms. */
  readonly connectTimeoutMs: number;
  /** How long a completed idempotency key replays, counted from its commit, in ms. */
  readonly idempotencyTtlMs: number;
  /** Deadlines (monotonic) and record times (wall). Key expiry runs on the database's now(). */
  readonly clock: Clock;
  readonly logger?: AdapterLogger;
  /** Hears PostgreSQL lost races (40P01/40001), retried or given up. */
  readonly metrics?: MetricsSink;
  /** Journal every change (default true); false only to measure what the journal costs (bench). */
  readonly auditJournal?: boolean;
  /** Sealing pass period in ms (default SEAL_INTERVAL_MS); tests with a fake clock drive it. */
  readonly sealIntervalMs?: number;
  /** Group commit of mints and transfers (default: off, every call its own transaction). */
  readonly groupCommit?: GroupCommitSettings;
  /** Test only: the wall ms standing in for the database's now() where key expiry is judged (see PgDatabase). */
  readonly testNowWallMs?: () => number;
}

export interface PostgresStores {
  /** The port the core uses; `ledger` and `idempotency` are its building blocks (reads, sweeps, tests). */
  readonly store: ExactlyOnceStore & ApprovalStore;
  readonly ledger: LedgerStore;
  readonly idempotency: IdempotencyStore;
  /** The audit journal and its sealer (kicked after every journaled commit, and on a timer). */
  readonly audit: PostgresAuditJournal;
  /** `SELECT 1` within PROBE_TIMEOUT_MS (or the connect timeout, if shorter). */
  readonly probe: Probe;
  /** Pool occupancy: `totalCount - idleCount` clients are checked out. For tests and metrics. */
  poolStats(): { totalCount: number; idleCount: number; waitingCount: number };
  /** Ends the pool (waits for checked-out clients). Idempotent. */
  close(): Promise<void>;
  /** The settlement outbox on this database, whose final steps apply the ledger's effects in the same transaction. */
  settlementOutbox(): PostgresSettlementOutbox;
}

/** Longest a health probe waits for `SELECT 1`, in ms. */
export const PROBE_TIMEOUT_MS = 1_000;

/** Migrations may rewrite tables, so they get far longer than a request's statement timeout. */
const MIGRATION_STATEMENT_TIMEOUT_MS = 120_000;

/**
 * Opens the pool, applies pending migrations (under an advisory lock, so
 * replicas starting together are safe) and returns the stores. Rejects with
 * UnavailableError when PostgreSQL cannot be reached.
 */
export async function openPostgresStores(opts: PostgresStoresOptions): Promise<PostgresStores> {
  const logger = opts.logger ?? silentLogger;
  await migrate(opts, logger);
  const db = new PgDatabase({
    url: opts.url,
    poolSize: opts.poolSize,
    statementTimeoutMs: opts.statementTimeoutMs,
    connectTimeoutMs: opts.connectTimeoutMs,
    clock: opts.clock,
    logger,
    ...(opts.testNowWallMs === undefined ? {} : { testNowWallMs: opts.testNowWallMs }),
    ...(opts.metrics === undefined ? {} : { metrics: opts.metrics }),
  });
  const audit = new PostgresAuditJournal(db.pool, {
    clock: opts.clock,
    logger,
    statementTimeoutMs: opts.statementTimeoutMs,
    ...(opts.sealIntervalMs === undefined ? {} : { sealIntervalMs: opts.sealIntervalMs }),
  });
  const journaling = opts.auditJournal !== false;
  if (journaling) audit.start();
  // The pool ends when both stores are closed, or at `close()`.
  let ledgerOpen = true;
  let idempotencyOpen = true;
  const closeIfBothClosed = async (): Promise<void> => {
    if (!ledgerOpen && !idempotencyOpen) await db.end();
  };
  const ledger = new PostgresLedgerStore(
    db,
    opts.idempotencyTtlMs,
    async () => {
      ledgerOpen = false;
      if (journaling) await audit.close();
      await closeIfBothClosed();
    },
    journaling ? audit : null,
  );
  const idempotency = new PostgresIdempotencyStore(db, opts.idempotencyTtlMs, async () => {
    idempotencyOpen = false;
    await closeIfBothClosed();
  });
  const probeTimeoutMs = Math.min(PROBE_TIMEOUT_MS, opts.connectTimeoutMs);
  const probe: Probe = {
    async healthy() {
      // The race bounds the probe even while the pool waits for a connection
      // to a silent host (up to the connect timeout); a late client still
      // goes back to the pool through pool.query.
      let cancel: () => void = () => undefined;
      const timedOut = new Promise<false>((resolve) => {
        const t = setTimeout(() => resolve(false), probeTimeoutMs);
        t.unref();
        cancel = () => clearTimeout(t);
      });
      const answered = db.pool.query({ text: "SELECT 1", query_timeout: probeTimeoutMs } as pg.QueryConfig).then(
        () => true,
        (err: unknown) => {
          logger.warn({ err: err instanceof Error ? err.message : String(err) }, "PostgreSQL health probe failed");
          return false;
        },
      );
      try {
        return await Promise.race([answered, timedOut]);
      } finally {
        cancel();
      }
    },
  };
  return {
    store: new PostgresExactlyOnceStore(ledger, idempotency, audit, opts.groupCommit),
    audit,
    ledger,
    idempotency,
    probe,
    poolStats: () => db.stats(),
    settlementOutbox: () => new PostgresSettlementOutbox(db.pool, ledger.settlementEffects(), { statementTimeoutMs: opts.statementTimeoutMs }),
    close: async () => {
      if (journaling) await audit.close();
      await db.end();
    },
  };
}

/** Runs the migrations on a dedicated session, so the advisory lock and the long timeout stay off the pool. */
async function migrate(opts: PostgresStoresOptions, logger: AdapterLogger): Promise<void> {
  const client = new pg.Client({
    connectionString: opts.url,
    connectionTimeoutMillis: opts.connectTimeoutMs,
    statement_timeout: MIGRATION_STATEMENT_TIMEOUT_MS,
    application_name: "usdc-mint-service migrations",
  });
  // A socket error after connect is also reported by the failing query;
  // without a listener it would crash the process instead.
  client.on("error", (err) => logger.warn({ err: err.message }, "migration connection lost"));
  try {
    await client.connect();
    const applied = await runMigrations(client, logger);
    logger.info({ applied }, applied.length === 0 ? "database schema is current" : "database schema migrated");
  } catch (err) {
    throw classifyPgError(err) === "connection" ? pgUnavailableError(err, "migrating the schema") : err;
  } finally {
    await client.end().catch(() => undefined);
  }
}
