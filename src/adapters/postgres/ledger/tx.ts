/**
 * The PostgreSQL ledger's transaction machinery, shared by every feature
 * module beside it: a change runs either on its idempotency claim's open
 * transaction (`onClaim`: mint, transfer, redemption) or in a transaction of
 * its own (`ownTx`: reversal, approvals, allowances), commits with the
 * journal's record and kicks the sealer after the commit.
 *
 * Lock order, which is why these transactions cannot deadlock one another:
 * a mint row (reverseMint only) < an idempotency key row < account rows in
 * code-unit order of their ids, taken in one statement. A new account row is
 * inserted before any account lock is taken. Deadlocks (40P01) and
 * serialization failures (40001) are retried anyway, as a safety net against
 * outside sessions: the ledger work runs under a SAVEPOINT taken after the
 * claim, so a retry rolls back to it and redoes the work while the key's row
 * stays claimed.
 */
import { markNotApplied, UnavailableError, assert, type Failure } from "../../../domain/errors.js";
import { fail, type Result } from "../../../domain/result.js";
import { setLocalTimeoutsSql, type PgClaim } from "../pg-claim.js";
import { beginTransactionSql } from "../pg-transaction.js";
import { MAX_TX_ATTEMPTS, type Lease, type PgDatabase, type TxTimeouts } from "../pg-database.js";
import { classifyPgError, pgUnavailableError } from "../pg-errors.js";
import type { PostgresAuditJournal } from "../postgres-audit-journal.js";

/** What a transaction body decided: commit with a value, or roll back with an expected failure. */
export type TxDecision<T> = Result<T>;

function deadlineFailure(): Failure {
  return { code: "DEADLINE_EXCEEDED", message: "deadline passed while waiting for a lock; nothing was applied" };
}

export class LedgerTx {
  constructor(
    readonly db: PgDatabase,
    /** How long a completed idempotency key replays, counted from this commit. */
    readonly idempotencyTtlMs: number,
    private readonly onClose: () => Promise<void>,
    /** Where every change is journaled; null only to measure what the journal costs (bench). */
    readonly audit: PostgresAuditJournal | null = null,
  ) {}

  /**
   * Runs `body` in a transaction of its own (READ COMMITTED), committing on
   * ok; lost races are retried. The body appends its journal record on the
   * transaction's client, so the sealer is kicked after the commit.
   */
  async ownTx<T>(deadlineMs: number, signal: AbortSignal | undefined, doing: string, body: (lease: Lease) => Promise<TxDecision<T>>): Promise<Result<T>> {
    for (let attempt = 1; ; attempt++) {
      const leased = await this.db.checkout(deadlineMs, signal);
      if (!leased.ok) return leased;
      const lease = leased.value;
      const timeouts = this.db.timeoutsFor(deadlineMs);
      try {
        await lease.client.query(beginTransactionSql({ lockMs: timeouts.ms, statementMs: timeouts.ms, idleMs: this.db.statementTimeoutMs }));
        const decision = await body(lease);
        if (!decision.ok) {
          await lease.rollbackAndGive();
          return decision;
        }
        await this.commit(lease, doing);
        this.audit?.kick();
        return decision;
      } catch (err) {
        await lease.rollbackAndGive();
        if (err instanceof UnavailableError) throw err;
        if (classifyPgError(err) === "retryable" && attempt < MAX_TX_ATTEMPTS) {
          this.logRetry(doing, attempt, err);
          await this.db.backoff(attempt);
          continue;
        }
        return this.mapTxError(err, timeouts, doing);
      }
    }
  }

  /**
   * Runs `body` on the claim's open transaction under a savepoint, then
   * commits (ok) or rolls the whole transaction back (failure or throw). The
   * claim always ends here and its connection always goes back to the pool.
   */
  async onClaim<T>(
    claim: PgClaim,
    deadlineMs: number,
    doing: string,
    body: (client: Lease["client"]) => Promise<TxDecision<T>>,
  ): Promise<Result<T>> {
    assert(claim.state === "open", `ledger call on claim ${claim.scope}/${claim.key} that already ended (${claim.state})`);
    const lease = claim.lease;
    const rollBack = async (): Promise<void> => {
      await lease.rollbackAndGive();
      claim.end("rolled-back");
    };
    let timeouts = this.db.timeoutsFor(deadlineMs);
    try {
      for (let attempt = 1; ; attempt++) {
        if (this.db.remainingMs(deadlineMs) <= 0) {
          await rollBack();
          return fail(deadlineFailure());
        }
        timeouts = this.db.timeoutsFor(deadlineMs);
        // SET LOCAL made inside a rolled-back savepoint is undone, so the
        // timeouts are set again on every attempt.
        const start = attempt === 1 ? "SAVEPOINT ledger_op" : "ROLLBACK TO SAVEPOINT ledger_op";
        await lease.client.query(`${start}; ${setLocalTimeoutsSql({ lockMs: timeouts.ms, statementMs: timeouts.ms })}`);
        let decision: TxDecision<T>;
        try {
          decision = await body(lease.client);
        } catch (err) {
          if (classifyPgError(err) === "retryable" && attempt < MAX_TX_ATTEMPTS) {
            this.logRetry(doing, attempt, err);
            await this.db.backoff(attempt);
            continue;
          }
          throw err;
        }
        if (!decision.ok) {
          await rollBack();
          return decision;
        }
        try {
          await this.commit(lease, doing);
        } catch (err) {
          // Outcome unknown; the claim is over either way (its connection is gone).
          claim.end("rolled-back");
          throw err;
        }
        claim.end("committed");
        this.audit?.kick();
        return decision;
      }
    } catch (err) {
      if (claim.state === "open") await rollBack();
      if (err instanceof UnavailableError) throw err;
      return this.mapTxError(err, timeouts, doing);
    }
  }

  /**
   * Commits and returns the connection. A failed COMMIT leaves the outcome
   * unknown to us, so it is reported as UNAVAILABLE, never as a failure that
   * would claim nothing happened: the caller retries with the same key and
   * gets either the replay or a fresh claim.
   */
  private async commit(lease: Lease, doing: string): Promise<void> {
    try {
      await lease.client.query("COMMIT");
      lease.give(false);
    } catch (err) {
      lease.give(true);
      throw pgUnavailableError(err, `${doing} (commit outcome unknown)`);
    }
  }

  /** Maps what ended a rolled-back transaction: our deadline → DEADLINE_EXCEEDED; the database → UnavailableError; else a bug. */
  private mapTxError<T>(err: unknown, timeouts: TxTimeouts, doing: string): Result<T> {
    const kind = classifyPgError(err);
    // Every path here rolled back before COMMIT was sent: nothing was applied.
    if (kind === "lock-timeout" || kind === "statement-timeout") {
      if (timeouts.deadlineBound) return fail(deadlineFailure());
      throw new UnavailableError(`PostgreSQL did not finish ${doing} within ${timeouts.ms} ms`, { cause: err, notApplied: true });
    }
    if (kind === "retryable") {
      this.db.lostRace(err, true);
      throw new UnavailableError(`${doing} kept losing races in PostgreSQL; retry`, { cause: err, notApplied: true });
    }
    throw markNotApplied(this.db.asUnavailable(err, doing));
  }

  private logRetry(doing: string, attempt: number, err: unknown): void {
    this.db.lostRace(err, false);
    this.db.logger.warn({ attempt, code: (err as { code?: string }).code, doing }, "retrying PostgreSQL transaction after a lost race");
  }

  close(): Promise<void> {
    return this.onClose();
  }
}
