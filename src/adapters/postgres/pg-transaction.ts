/**
 * The one way the adapter opens a transaction. Every transaction pins READ
 * COMMITTED (never the database's default; see `BEGIN_READ_COMMITTED`) and
 * sets, for itself only and in BEGIN's own round trip, how long it may wait
 * for a row lock (`lock_timeout`), run one statement (`statement_timeout`)
 * and sit idle between statements (`idle_in_transaction_session_timeout`).
 *
 * Transactions with a caller's deadline (mints, transfers, claims, reversals)
 * derive the bounds from it (`PgDatabase.timeoutsFor`); background steps
 * without one (the settlement worker's outbox steps, the audit sealer) use
 * `backgroundBounds`: the configured statement timeout for all three.
 *
 * Lock order, for every transaction that touches more than one of these
 * rows: the mint, then its settlement, then the idempotency key, the minter's
 * allowance, the accounts (in code-unit order of their ids), the supply row.
 * A settlement's final step (CONFIRMED or FAILED) therefore locks the mint
 * before the settlement row, as ReconcileMint does.
 */
import type pg from "pg";
import { BEGIN_READ_COMMITTED, setLocalTimeoutsSql } from "./pg-claim.js";
import { Lease } from "./pg-database.js";

/** How long one transaction may wait for a lock, run a statement, and stay idle in between (ms, each at least 1). */
export interface TxBounds {
  readonly lockMs: number;
  readonly statementMs: number;
  readonly idleMs: number;
}

/** BEGIN with the level pinned and the bounds set locally: one statement string, one round trip. */
export function beginTransactionSql(bounds: TxBounds, alsoSql?: string): string {
  return `${BEGIN_READ_COMMITTED}; ${setLocalTimeoutsSql(bounds)}${alsoSql === undefined ? "" : `; ${alsoSql}`}`;
}

/** The bounds of a transaction with no caller deadline: the configured statement timeout bounds the lock wait, each statement and idleness. */
export function backgroundBounds(statementTimeoutMs: number): TxBounds {
  return { lockMs: statementTimeoutMs, statementMs: statementTimeoutMs, idleMs: statementTimeoutMs };
}

/** Something that hands out pooled clients (a `pg.Pool`). */
export interface ClientSource {
  connect(): Promise<pg.PoolClient>;
}

/**
 * Runs `fn` in one transaction on a pooled client opened by
 * `beginTransactionSql(bounds, alsoSql)`; commits when `fn` returns, rolls
 * back when it throws. The client carries an error listener while it is out
 * and is destroyed when its session state is unknown (a failed rollback or a
 * lost socket). `alsoSql` runs in BEGIN's round trip (e.g. `SET LOCAL
 * application_name`).
 */
export async function inTransaction<T>(pool: ClientSource, bounds: TxBounds, fn: (client: pg.PoolClient) => Promise<T>, alsoSql?: string): Promise<T> {
  const lease = new Lease(await pool.connect());
  let destroy = false;
  try {
    await lease.client.query(beginTransactionSql(bounds, alsoSql));
    const out = await fn(lease.client);
    await lease.client.query("COMMIT");
    return out;
  } catch (err) {
    await lease.client.query("ROLLBACK").catch(() => {
      destroy = true;
    });
    throw err;
  } finally {
    lease.give(destroy);
  }
}
