/**
 * Idempotency keys in PostgreSQL, exactly-once across replicas.
 *
 * A claim is a transaction that inserts the key's row: the primary key makes
 * a duplicate (on any replica) block on that row until the first transaction
 * ends. If it commits, the duplicate sees the completed row and replays it (or
 * reports IDEMPOTENCY_KEY_REUSED); if it rolls back, or its replica dies and
 * the server aborts it, the duplicate's insert goes through and it claims the
 * key. The result is written by the ledger method in the same transaction as
 * the ledger change (see `PostgresLedgerStore`), so `complete` has nothing
 * left to do.
 */
import { KEY_IN_USE_RETRY_AFTER_MS, SWEEP_BATCH_KEYS } from "../../domain/limits.js";
import { fail, ok, type Result } from "../../domain/result.js";
import { assert, UnavailableError } from "../../domain/errors.js";
import {
  differingFields,
  fingerprint,
  parseFingerprint,
  type CanonicalRequest,
  type IdempotencyScope,
  type StoredResult,
} from "../../domain/model.js";
import type { BeginOutcome, IdempotencyClaim, IdempotencyStore } from "../../domain/ports.js";
import { asPgClaim, PgClaim } from "./pg-claim.js";
import { beginTransactionSql } from "./pg-transaction.js";
import { dbNowSql, MAX_TX_ATTEMPTS, type Lease, type PgDatabase } from "./pg-database.js";
import { classifyPgError } from "./pg-errors.js";
import { decodeStoredResult } from "./stored-result-codec.js";


/**
 * Claims the key: inserts a 'pending' row, or takes over an expired one (an
 * expired key counts as free). Returns no row when a live completed row holds
 * the key; `ON CONFLICT DO UPDATE` still locks that row, so it cannot vanish
 * before the follow-up SELECT reads it. `xmax = 0` tells an insert from an
 * update.
 */
const CLAIM_SQL = `
INSERT INTO idempotency_keys AS k (scope, key, fingerprint, result, state, expires_at)
VALUES ($1, $2, $3, NULL, 'pending', ${dbNowSql(4)} + make_interval(secs => $5::float8 / 1000))
ON CONFLICT (scope, key) DO UPDATE
  SET fingerprint = EXCLUDED.fingerprint, result = NULL, state = 'pending', expires_at = EXCLUDED.expires_at
  WHERE k.expires_at <= ${dbNowSql(4)}
RETURNING (k.xmax = 0) AS inserted`;

const SWEEP_SQL = `
DELETE FROM idempotency_keys
WHERE ctid IN (
  SELECT ctid FROM idempotency_keys
  WHERE expires_at <= ${dbNowSql(1)}
  ORDER BY expires_at
  LIMIT $2
  FOR UPDATE SKIP LOCKED
) AND expires_at <= ${dbNowSql(1)}`;

type ClaimAttempt = { readonly kind: "done"; readonly result: Result<BeginOutcome> } | { readonly kind: "vanished" };

export function isoOfWallMs(wallMs: number): string {
  return new Date(wallMs).toISOString();
}

export class PostgresIdempotencyStore implements IdempotencyStore {
  /** Claims of this replica still open that inserted a new row: committed rows are counted by the database. */
  private openInsertedClaims = 0;

  constructor(
    private readonly db: PgDatabase,
    /** How long a completed key replays, counted from the ledger commit. */
    private readonly ttlMs: number,
    private readonly onClose: () => Promise<void>,
  ) {}

  /**
   * Claims the key or reports what holds it. Waits for a key in flight on
   * any replica until `deadlineMs` (bounded by the statement timeout), then
   * fails IDEMPOTENCY_KEY_IN_USE. DEADLINE_EXCEEDED when no connection could
   * be had before the deadline (nothing was looked at). Throws
   * UnavailableError when PostgreSQL cannot be reached.
   *
   * A claimed key holds a pooled connection and an open transaction: the
   * caller must end it with the ledger method, or `release`.
   */
  async begin(
    scope: IdempotencyScope,
    key: string,
    request: CanonicalRequest,
    deadlineMs: number,
    signal?: AbortSignal,
  ): Promise<Result<BeginOutcome>> {
    const fp = fingerprint(request);
    for (let attempt = 1; ; attempt++) {
      const leased = await this.db.checkout(deadlineMs, signal);
      if (!leased.ok) return leased;
      const lease = leased.value;
      let outcome: ClaimAttempt;
      try {
        outcome = await this.tryClaim(lease, scope, key, request, fp, deadlineMs);
      } catch (err) {
        await lease.rollbackAndGive();
        const kind = classifyPgError(err);
        // The claim statement waits on nothing but the key's row, so either
        // timeout means the key stayed in flight for as long as we could wait.
        if (kind === "lock-timeout" || kind === "statement-timeout") {
          return fail({ code: "IDEMPOTENCY_KEY_IN_USE", key, retryAfterMs: KEY_IN_USE_RETRY_AFTER_MS });
        }
        if (kind === "retryable" && attempt < MAX_TX_ATTEMPTS) {
          this.db.lostRace(err, false);
          this.db.logger.warn({ scope, attempt, code: (err as { code?: string }).code }, "retrying idempotency claim");
          await this.db.backoff(attempt);
          continue;
        }
        if (kind === "retryable") {
          this.db.lostRace(err, true);
          throw new UnavailableError("idempotency claim kept losing races in PostgreSQL", { cause: err });
        }
        throw this.db.asUnavailable(err, "claiming an idempotency key");
      }
      if (outcome.kind === "done") return outcome.result;
      if (attempt >= MAX_TX_ATTEMPTS) throw new UnavailableError("idempotency key kept changing under the claim");
    }
  }

  /** One claim transaction; the lease is either kept by the returned claim or given back. */
  private async tryClaim(
    lease: Lease,
    scope: IdempotencyScope,
    key: string,
    request: CanonicalRequest,
    fp: string,
    deadlineMs: number,
  ): Promise<ClaimAttempt> {
    const client = lease.client;
    const timeouts = this.db.timeoutsFor(deadlineMs);
    // The transaction stays open while the core works between the claim and
    // the ledger call (rate limiting); if it is abandoned there (a bug, a
    // stuck caller) the server ends it after this long and frees the key.
    const idleMs = this.db.statementTimeoutMs;
    await client.query(beginTransactionSql({ lockMs: timeouts.ms, statementMs: this.db.statementTimeoutMs, idleMs }));
    const claimed = await client.query<{ inserted: boolean }>(CLAIM_SQL, [scope, key, fp, this.db.nowParam(), this.ttlMs]);
    const row = claimed.rows[0];
    if (row !== undefined) {
      if (row.inserted) this.openInsertedClaims++;
      const claim = new PgClaim(scope, key, request, fp, row.inserted, lease, (c) => {
        if (c.insertedRow) this.openInsertedClaims--;
      });
      return { kind: "done", result: ok({ kind: "claimed", claim }) };
    }
    const held = await client.query<{ fingerprint: string; result: unknown; state: string }>(
      "SELECT fingerprint, result, state FROM idempotency_keys WHERE scope = $1 AND key = $2",
      [scope, key],
    );
    await lease.rollbackAndGive();
    const stored = held.rows[0];
    if (stored === undefined) return { kind: "vanished" };
    // Pending rows live only inside uncommitted transactions, so a row this
    // session can read and lock is always completed.
    assert(stored.state === "completed", `idempotency key ${scope}/${key} visible while pending`);
    if (stored.fingerprint === fp) {
      return { kind: "done", result: ok({ kind: "replay", result: decodeStoredResult(stored.result) }) };
    }
    const fields = differingFields(parseFingerprint(stored.fingerprint), request);
    return { kind: "done", result: fail({ code: "IDEMPOTENCY_KEY_REUSED", key, fields }) };
  }

  /**
   * The ledger method already committed the result with the ledger change;
   * this only checks that it did (anything else is a bug in the core).
   */
  async complete(claim: IdempotencyClaim, result: StoredResult): Promise<void> {
    const c = asPgClaim(claim);
    assert(c.state === "committed", `complete() of claim ${c.scope}/${c.key} that the ledger did not commit (${c.state})`);
    assert(result.scope === c.scope, "stored result scope matches the claim");
  }

  /**
   * Rolls the claim's transaction back (the key is free again; a waiting
   * duplicate claims it) and returns its connection. A no-op when the ledger
   * method already ended the transaction, so calling it on every failure
   * path is always right.
   */
  async release(claim: IdempotencyClaim): Promise<void> {
    const c = asPgClaim(claim);
    if (c.state !== "open") return;
    await c.lease.rollbackAndGive();
    c.end("rolled-back");
  }

  /**
   * Deletes the key's row only while it stores the result with id `resultId`
   * (a key that expired and was reused for a newer effect is kept). Harmless
   * when absent. An in-flight claim of the key is waited for (bounded by the
   * statement timeout) and then re-checked, so it is never freed under its
   * holder. Throws UnavailableError when PostgreSQL cannot be reached.
   */
  async forget(scope: IdempotencyScope, key: string, resultId: string): Promise<void> {
    const [field, idField] = scope === "mint" ? ["mint", "mintId"] : scope === "transfer" ? ["transfer", "transferId"] : ["redemption", "redemptionId"];
    await this.db.query(
      `DELETE FROM idempotency_keys
       WHERE scope = $1 AND key = $2 AND state = 'completed' AND result->'${field}'->>'${idField}' = $3`,
      [scope, key, resultId],
      "forgetting an idempotency key",
    );
  }

  /**
   * Deletes up to `maxKeys` (at most SWEEP_BATCH_KEYS) expired keys, the
   * oldest first. Rows another replica's sweep or claim has locked are
   * skipped, so replicas sweeping at once never wait on each other.
   */
  async sweepExpired(maxKeys: number): Promise<number> {
    const limit = Math.min(Math.floor(maxKeys), SWEEP_BATCH_KEYS);
    if (!(limit >= 1)) return 0;
    const res = await this.db.query(SWEEP_SQL, [this.db.nowParam(), limit], "sweeping expired idempotency keys");
    return res.rowCount ?? 0;
  }

  /**
   * Keys stored in the database (expired ones not yet swept included) plus
   * this replica's claims in flight; other replicas' claims in flight are
   * invisible until they commit.
   */
  async size(): Promise<number> {
    const res = await this.db.query<{ n: string }>("SELECT count(*) AS n FROM idempotency_keys", [], "counting idempotency keys");
    return Number(res.rows[0]?.n ?? 0) + this.openInsertedClaims;
  }

  /**
   * PostgreSQL's live-row statistic of the table (kept by the server as rows
   * are inserted and deleted; it may lag commits by seconds) plus this
   * replica's claims in flight. One catalog lookup whatever the table holds,
   * and it never touches the table itself: what a metrics scrape may cost.
   */
  async estimatedSize(): Promise<number> {
    const res = await this.db.query<{ n: string }>(
      "SELECT pg_stat_get_live_tuples('idempotency_keys'::regclass) AS n",
      [],
      "estimating idempotency keys",
    );
    return Number(res.rows[0]?.n ?? 0) + this.openInsertedClaims;
  }

  close(): Promise<void> {
    return this.onClose();
  }
}
