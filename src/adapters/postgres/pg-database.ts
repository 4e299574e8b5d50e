/**
 * The pool and the few rules every query of the adapter follows: a checked-out
 * client always goes back (destroyed when its session state is unknown), the
 * caller's deadline becomes `lock_timeout`/`statement_timeout`, and lost
 * connections become `UnavailableError`.
 */
import { silentLogger, type AdapterLogger } from "../../logger.js";
import { STORE_BUSY_RETRY_AFTER_MS } from "../../domain/limits.js";
import pg from "pg";
import { setTimeout as sleepRealMs } from "node:timers/promises";
import type { Clock } from "../../domain/clock.js";
import { noMetrics, type MetricsSink } from "../../domain/ports.js";
import { markNotApplied, type Failure } from "../../domain/errors.js";
import { fail, ok, type Result } from "../../domain/result.js";
import { classifyPgError, pgUnavailableError } from "./pg-errors.js";

/**
 * Key expiry is judged by one clock per store: the database's `now()`, never
 * a replica's wall clock. `$n` is `PgDatabase.nowParam()`: null outside tests.
 */
export function dbNowSql(param: number): string {
  return `COALESCE(to_timestamp($${param}::float8 / 1000), now())`;
}

const DEADLINE_WAITING_FOR_CONNECTION: Failure = {
  code: "DEADLINE_EXCEEDED",
  message: "deadline passed while waiting for a PostgreSQL connection; nothing was applied",
};

const CANCELLED_WAITING_FOR_CONNECTION: Failure = {
  code: "CANCELLED",
  message: "the call was cancelled while it waited for a PostgreSQL connection; nothing was applied",
};

function storeBusy(poolSize: number): Failure {
  return {
    code: "STORE_BUSY",
    retryAfterMs: STORE_BUSY_RETRY_AFTER_MS,
    message: `all ${poolSize} PostgreSQL connections of this replica stayed busy for as long as the call could wait; nothing was applied; retry with the same key`,
  };
}

/** pg-pool's message when a wait for a connection (new or pooled) ran past `connectionTimeoutMillis`. */
function isPoolWaitTimeout(err: unknown): boolean {
  return err instanceof Error && err.message.includes("timeout exceeded when trying to connect");
}

export interface PgDatabaseOptions {
  readonly url: string;
  readonly poolSize: number;
  readonly statementTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly clock: Clock;
  readonly logger: AdapterLogger;
  /**
   * Test only: the wall time (ms) that stands in for the database's `now()`
   * wherever key expiry is judged, so TTL tests move a fake clock instead of
   * waiting. Unset in production: the database's own `now()` is the clock.
   */
  readonly testNowWallMs?: () => number;
  /** Hears transactions that lost a race (40P01/40001), retried or given up. */
  readonly metrics?: MetricsSink;
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
  readonly logger: AdapterLogger;
  readonly statementTimeoutMs: number;
  readonly connectTimeoutMs: number;
  private ended: Promise<void> | null = null;

  readonly metrics: MetricsSink;

  constructor(readonly opts: PgDatabaseOptions) {
    this.metrics = opts.metrics ?? noMetrics;
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
      // A group commit runs in the implicit transaction of its one statement,
      // which cannot say its level: the session's default is pinned instead.
      options: "-c default_transaction_isolation=read\\ committed",
    });
    // Idle clients whose server went away emit 'error' on the pool; the pool
    // drops them and reconnects on demand, so logging is all that is needed.
    this.pool.on("error", (err) => {
      this.logger.warn({ err: err.message }, "idle PostgreSQL connection lost");
    });
  }

  /** The bind value for `dbNowSql`: null in production (the database's now()), the test clock's wall ms in tests. */
  nowParam(): number | null {
    return this.opts.testNowWallMs?.() ?? null;
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
   * Checks a client out. A busy pool is not an outage: while every pooled
   * connection is checked out, the wait is bounded by the call's deadline
   * alone and then answered STORE_BUSY (a call without a deadline waits
   * until a connection frees; the statement timeout bounds how long any
   * connection is held).
   * Failures (nothing was looked at): DEADLINE_EXCEEDED (the deadline passed
   * while a new connection was still being made), STORE_BUSY, CANCELLED
   * (`signal` aborted). Throws UnavailableError (not applied) when the
   * database cannot be reached.
   *
   * pg-pool's `connectionTimeoutMillis` also ends a wait in its queue; when
   * that happens while the pool is full and the deadline is still ahead,
   * the wait simply starts again.
   */
  async checkout(deadlineMs: number, signal?: AbortSignal): Promise<Result<Lease>> {
    let sawBusy = false;
    for (;;) {
      if (signal?.aborted === true) return fail(CANCELLED_WAITING_FOR_CONNECTION);
      const remaining = this.remainingMs(deadlineMs);
      if (remaining <= 0) return fail(sawBusy ? storeBusy(this.opts.poolSize) : DEADLINE_WAITING_FOR_CONNECTION);
      sawBusy ||= this.saturated();
      const connecting = this.pool.connect();
      let stop: (how: "deadline" | "aborted") => void = () => undefined;
      const stopped = new Promise<"deadline" | "aborted">((resolve) => {
        stop = resolve;
      });
      const cancelTimer = remaining === Infinity ? () => undefined : this.clock.setTimer(remaining, () => stop("deadline"));
      const onAbort = (): void => stop("aborted");
      signal?.addEventListener("abort", onAbort, { once: true });
      try {
        const winner = await Promise.race([connecting, stopped]);
        if (winner === "deadline" || winner === "aborted") {
          // The connect still completes later; hand that client straight back.
          connecting.then((c) => c.release(), () => undefined);
          if (winner === "aborted") return fail(CANCELLED_WAITING_FOR_CONNECTION);
          sawBusy ||= this.saturated();
          return fail(sawBusy ? storeBusy(this.opts.poolSize) : DEADLINE_WAITING_FOR_CONNECTION);
        }
        return ok(new Lease(winner));
      } catch (err) {
        // pg-pool's own queue timeout while every connection was busy.
        if (isPoolWaitTimeout(err) && (sawBusy || this.saturated())) {
          sawBusy = true;
          continue;
        }
        throw markNotApplied(this.asUnavailable(err, "connecting"));
      } finally {
        cancelTimer();
        signal?.removeEventListener("abort", onAbort);
      }
    }
  }

  /** True while every connection the pool may open is checked out (new callers queue). */
  private saturated(): boolean {
    return this.pool.totalCount >= this.opts.poolSize && this.pool.idleCount === 0;
  }

  /** Turns a connection-kind error into UnavailableError; returns anything else unchanged (a bug). */
  asUnavailable(err: unknown, doing: string): unknown {
    return classifyPgError(err) === "connection" ? pgUnavailableError(err, doing) : err;
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
      if (classifyPgError(err) !== "other") throw pgUnavailableError(err, doing);
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
  /** Counts a transaction that lost a race (`err` is a 40P01 or 40001), retried or given up. */
  lostRace(err: unknown, gaveUp: boolean): void {
    const code = (err as { code?: unknown } | null)?.code;
    if (code === "40P01" || code === "40001") this.metrics.pgConflict(code, gaveUp);
  }

  stats(): { totalCount: number; idleCount: number; waitingCount: number } {
    return { totalCount: this.pool.totalCount, idleCount: this.pool.idleCount, waitingCount: this.pool.waitingCount };
  }

  /** Ends the pool once; later calls wait for the same end. */
  end(): Promise<void> {
    this.ended ??= this.pool.end();
    return this.ended;
  }
}
