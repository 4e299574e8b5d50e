/**
 * The pool and the few rules every query of the adapter follows: a checked-out
 * client always goes back (destroyed when its session state is unknown), the
 * caller's deadline becomes `lock_timeout`/`statement_timeout`, and lost
 * connections become `UnavailableError`.
 */
import pg from "pg";
import { setTimeout as sleepRealMs } from "node:timers/promises";
import type { Clock } from "../../domain/clock.js";
import { classifyPgError, unavailable } from "./pg-errors.js";

export interface PgLogger {
  info(o: object, m: string): void;
  warn(o: object, m: string): void;
  error(o: object, m: string): void;
}

export const silentLogger: PgLogger = { info() {}, warn() {}, error() {} };

export interface PgDatabaseOptions {
  readonly url: string;
  readonly poolSize: number;
  readonly statementTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly clock: Clock;
  readonly logger: PgLogger;
}

/** How many times a transaction that hit 40001/40P01 is tried in all before UNAVAILABLE. */
export const MAX_TX_ATTEMPTS = 5;
/** First backoff after a lost race; doubles per attempt, with full jitter. */
const RETRY_BASE_MS = 5;

/**
 * A server that stops answering (a partition rather than a refusal) would
 * leave a query waiting forever, since `statement_timeout` runs on the server;
 * this client-side limit catches that case. It is longer than any server-side
 * timeout we set, so it never fires for a merely slow statement.
 */
const QUERY_READ_SLACK_MS = 2_000;

/** A checked-out client with an `error` listener attached for as long as it is out. */
export class Lease {
  /** Set when the socket failed while the client was checked out. */
  broken: unknown = undefined;
  private returned = false;
  private readonly onError = (err: unknown): void => {
    this.broken = err;
  };

  constructor(readonly client: pg.PoolClient) {
    // pg-pool listens for errors only on idle clients; without a listener a
    // socket error on a checked-out client (say, idle in a claim's
    // transaction) would be an unhandled 'error' event and crash the process.
    client.on("error", this.onError);
  }

  /** Returns the client; `destroy` when its session state is unknown (mid-transaction, broken). */
  give(destroy: boolean): void {
    if (this.returned) return;
    this.returned = true;
    this.client.removeListener("error", this.onError);
    const err = destroy || this.broken !== undefined ? new Error("session state unknown; discarding connection") : undefined;
    this.client.release(err);
  }

  /** Rolls back whatever transaction is open and returns the client; never throws. */
  async rollbackAndGive(): Promise<void> {
    if (this.returned) return;
    if (this.broken !== undefined) return this.give(true);
    try {
      await this.client.query("ROLLBACK");
      this.give(false);
    } catch {
      this.give(true);
    }
  }
}

/** Per-transaction timeouts derived from the caller's deadline. */
export interface TxTimeouts {
  /** Whole milliseconds, at least 1. */
  readonly ms: number;
  /** True when the deadline (not the configured statement timeout) set `ms`: a timeout then means DEADLINE_EXCEEDED. */
  readonly deadlineBound: boolean;
}

export class PgDatabase {
  readonly pool: pg.Pool;
  readonly clock: Clock;
  readonly logger: PgLogger;
  readonly statementTimeoutMs: number;
  readonly connectTimeoutMs: number;
  private ended: Promise<void> | null = null;

  constructor(readonly opts: PgDatabaseOptions) {
    this.clock = opts.clock;
    this.logger = opts.logger;
    this.statementTimeoutMs = opts.statementTimeoutMs;
    this.connectTimeoutMs = opts.connectTimeoutMs;
    this.pool = new pg.Pool({
      connectionString: opts.url,
      max: opts.poolSize,
      connectionTimeoutMillis: opts.connectTimeoutMs,
      statement_timeout: opts.statementTimeoutMs,
      query_timeout: opts.statementTimeoutMs + QUERY_READ_SLACK_MS,
      idleTimeoutMillis: 30_000,
      keepAlive: true,
      application_name: "usdc-mint-service",
    });
    // Idle clients whose server went away emit 'error' on the pool; the pool
    // drops them and reconnects on demand, so logging is all that is needed.
    this.pool.on("error", (err) => {
      this.logger.warn({ err: err.message }, "idle PostgreSQL connection lost");
    });
  }

  /** Milliseconds left before `deadlineMs` on the injected monotonic clock. */
  remainingMs(deadlineMs: number): number {
    return deadlineMs - this.clock.nowMs();
  }

  /** The timeouts of a statement that must end by `deadlineMs`, bounded by the configured statement timeout. */
  timeoutsFor(deadlineMs: number): TxTimeouts {
    const remaining = this.remainingMs(deadlineMs);
    if (!(remaining < this.statementTimeoutMs)) return { ms: this.statementTimeoutMs, deadlineBound: false };
    return { ms: Math.max(1, Math.ceil(remaining)), deadlineBound: true };
  }

  /**
   * Checks a client out, giving up at `deadlineMs` (returns null: nothing was
   * looked at) or after the pool's connect timeout (throws UnavailableError:
   * the database is unreachable or every connection is busy).
   */
  async checkout(deadlineMs: number): Promise<Lease | null> {
    const remaining = this.remainingMs(deadlineMs);
    if (remaining <= 0) return null;
    const connecting = this.pool.connect();
    if (remaining >= this.connectTimeoutMs) {
      try {
        return new Lease(await connecting);
      } catch (err) {
        throw this.asUnavailable(err, "connecting");
      }
    }
    let cancelTimer: () => void = () => undefined;
    const timedOut = new Promise<"deadline">((resolve) => {
      cancelTimer = this.clock.setTimer(remaining, () => resolve("deadline"));
    });
    try {
      const winner = await Promise.race([connecting, timedOut]);
      if (winner === "deadline") {
        // The connect still completes later; hand that client straight back.
        connecting.then((c) => c.release(), () => undefined);
        return null;
      }
      return new Lease(winner);
    } catch (err) {
      throw this.asUnavailable(err, "connecting");
    } finally {
      cancelTimer();
    }
  }

  /** Turns a connection-kind error into UnavailableError; returns anything else unchanged (a bug). */
  asUnavailable(err: unknown, doing: string): unknown {
    return classifyPgError(err) === "connection" ? unavailable(err, doing) : err;
  }

  /**
   * Runs one statement on a pooled client outside any transaction (reads,
   * forget, sweep). These have no caller deadline, so a timeout, a lost race
   * or a lost connection all mean the database cannot answer now: they throw
   * UnavailableError. Anything else is a bug and is rethrown.
   */
  async query<R extends pg.QueryResultRow>(text: string, values: unknown[], doing: string): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(text, values);
    } catch (err) {
      if (classifyPgError(err) !== "other") throw unavailable(err, doing);
      throw err;
    }
  }

  /**
   * Waits before retry `attempt` (1-based) of a transaction that lost a race.
   * Real time, not the injected clock: it paces retries against a real
   * database, like pg's own connect timeout, and must pass under a fake clock.
   */
  async backoff(attempt: number): Promise<void> {
    const capMs = RETRY_BASE_MS * 2 ** (attempt - 1);
    await sleepRealMs(Math.random() * capMs);
  }

  /** Pool occupancy, for tests and metrics. */
  stats(): { totalCount: number; idleCount: number; waitingCount: number } {
    return { totalCount: this.pool.totalCount, idleCount: this.pool.idleCount, waitingCount: this.pool.waitingCount };
  }

  /** Ends the pool once; later calls wait for the same end. */
  end(): Promise<void> {
    this.ended ??= this.pool.end();
    return this.ended;
  }
}
