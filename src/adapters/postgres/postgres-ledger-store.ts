/**
 * Balances and the append-only ledger in PostgreSQL.
 *
 * `mint` and `transfer` run on the transaction of their idempotency claim and
 * end it: on success they write the key's result and COMMIT, so the key and
 * the ledger change become visible together or not at all; on a failure
 * (INSUFFICIENT_FUNDS, DEADLINE_EXCEEDED, a thrown error) they ROLLBACK at
 * once, which frees the key and, above all, drops the account row locks
 * without waiting for the core to call `release` (which is then a no-op).
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
import { assert, markNotApplied, UnavailableError, type Failure } from "../../domain/errors.js";
import { fail, ok, type Result } from "../../domain/result.js";
import { completedMint, decideApproval, decideRejection, isBlockchain, type AccountState, type MintRecord, type MintStatus, type NewMint, type NewRedemption, type NewTransfer, type RedemptionRecord, type SupplyState, type TransferRecord } from "../../domain/model.js";
import { reserveRefusal, supplyState } from "../../domain/reserve.js";
import type { IdempotencyClaim, LedgerStore, ListMintsQuery } from "../../domain/ports.js";
import type pg from "pg";
import { asPgClaim, setLocalTimeoutsSql, type PgClaim } from "./pg-claim.js";
import { beginTransactionSql } from "./pg-transaction.js";
import { dbNowSql, MAX_TX_ATTEMPTS, type Lease, type PgDatabase, type TxTimeouts } from "./pg-database.js";
import { classifyPgError, pgUnavailableError } from "./pg-errors.js";
import { isoOfWallMs } from "./postgres-idempotency-store.js";
import { approvalFields, mintToJson, redemptionToJson, transferToJson } from "./stored-result-codec.js";
import { BURN_CONFIRMED_ACTION, BURN_FAILED_ACTION, settlementJournal, settlementRefusal } from "../../settlement/ledger-rules.js";
import { cancelSettlement, enqueueSettlement } from "../../settlement/outbox-postgres.js";
import type { Settlement, SettlementEffects } from "../../settlement/ports.js";
import { approvalResult, entryOfEffect, withAllowanceRefund, freezeResult, LOCAL_ACTOR, mintResult, redemptionRecreditResult, redemptionResult, reserveResult, reversalEntry, reversalResult, transferResult, unsealedRecord } from "../../domain/audit.js";
import type { JournalEntry } from "../../domain/journal.js";
import { appendJournal, journalCte, journalCteWhen, journalParams, SEALER_APPLICATION_NAME, type PostgresAuditJournal } from "./postgres-audit-journal.js";
import { recordAllowanceSet } from "./ledger-events.js";

/**
 * `sql` (CTEs then one final SELECT) with the audit journal's CTE added
 * before the final SELECT, its parameters starting at `$first`.
 */
function withJournal(sql: string, first: number): string {
  const at = sql.lastIndexOf("\nSELECT ");
  assert(at > 0, "statement ends with a SELECT");
  return `${sql.slice(0, at)}, ${journalCte(first)}${sql.slice(at)}`;
}

/**
 * ListMints never returns more than this many rows, whatever it is asked: the
 * largest page (1000) plus the one look-ahead row by which the core learns
 * that another page exists (capping at 1000 dropped the next_page_token of a
 * full 1000-mint page).
 */
export const LIST_MINTS_MAX_LIMIT = 1001;

const MINT_COLUMNS = `mint_id, seq::text AS seq, account_id, amount::text AS amount, blockchain, status,
  idempotency_key, create_time, reverse_time, reverse_reason, requester, allowance_charged, approval`;

interface MintRow {
  mint_id: string;
  seq: string;
  account_id: string;
  amount: string;
  blockchain: string;
  status: string;
  idempotency_key: string;
  create_time: Date;
  reverse_time: Date | null;
  reverse_reason: string;
  requester: string | null;
  allowance_charged: boolean;
  approval: unknown;
}

/** A reversal's outcome: the mint, and whether its allowance charge went back (null: it charged none). */
interface ReversedMint {
  readonly mint: MintRecord;
  readonly refunded: boolean | null;
}

function mintFromRow(r: MintRow): MintRecord {
  assert(isBlockchain(r.blockchain), `mint ${r.mint_id} has a known blockchain`);
  assert(
    r.status === "COMPLETED" || r.status === "REVERSED" || r.status === "PENDING_APPROVAL" || r.status === "REJECTED",
    `mint ${r.mint_id} has a known status`,
  );
  const base: MintRecord = {
    mintId: r.mint_id,
    seq: Number(r.seq),
    accountId: r.account_id,
    amountMicros: BigInt(r.amount),
    blockchain: r.blockchain,
    status: r.status,
    idempotencyKey: r.idempotency_key,
    createWallMs: r.create_time.getTime(),
    reverseWallMs: r.reverse_time === null ? null : r.reverse_time.getTime(),
    reverseReason: r.reverse_reason,
  };
  if (r.requester === null) return base;
  return { ...base, ...approvalFields({ requester: r.requester, allowanceCharged: r.allowance_charged, approval: r.approval }) };
}

/**
 * Shared by the three mint statements below: `k` stores the key's result
 * with the mint's `seq` filled in ($5 key, $7 result, $8 now, $9 TTL ms),
 * and the answer's columns (the caller asserts one key and one account).
 */
const MINT_KEY_RESULT_CTE = `k AS (
  UPDATE idempotency_keys AS k
  SET state = 'completed', result = jsonb_set($7::jsonb, '{mint,seq}', to_jsonb(m.seq)),
    expires_at = ${dbNowSql(8)} + make_interval(secs => $9::float8 / 1000)
  FROM m
  WHERE k.scope = 'mint' AND k.key = $5
  RETURNING 1
)`;
const MINT_RESULT_COLUMNS = "SELECT m.seq::text AS seq, (SELECT count(*) FROM k)::int AS keys, (SELECT count(*) FROM acct)::int AS accounts";

/**
 * A mint with issue 11's columns: PENDING_APPROVAL ($10) credits nothing
 * ($13 = 0, no ledger entry), COMPLETED credits like MINT_SQL. $15 is the
 * allowance generation the charge was taken from (0 when none). Only mints
 * with a requester (approvals or allowances on) take this statement; the
 * plain MINT_SQL stays the hot path otherwise.
 */
const TRACKED_MINT_SQL = `
WITH acct AS (
  INSERT INTO accounts AS a (account_id, balance) VALUES ($2, $13::numeric)
  ON CONFLICT (account_id) DO UPDATE SET balance = a.balance + EXCLUDED.balance
  WHERE NOT a.frozen
  RETURNING 1
), m AS (
  INSERT INTO mints (seq, mint_id, account_id, amount, blockchain, status, idempotency_key, create_time, requester, allowance_charged, approval, allowance_generation)
  SELECT b.base + pg_current_xact_id()::text::bigint, $1, $2, $3, $4, $10, $5, $6, $11, $12, $14::jsonb, $15::bigint FROM mint_seq_base AS b CROSS JOIN acct
  RETURNING seq
), e AS (
  INSERT INTO ledger_entries (account_id, amount, kind, ref_id, created_at)
  SELECT $2, $3, 'mint', $1, $6 WHERE $10 = 'COMPLETED'
  RETURNING 1
), ${MINT_KEY_RESULT_CTE}
${MINT_RESULT_COLUMNS} FROM m`;

/**
 * Applies a mint: credits the account (creating it), records the mint and
 * its ledger entry, and stores the key's result with `seq` filled in, all in
 * one statement. Data-modifying CTEs always run to completion.
 */
const MINT_SQL = `
WITH acct AS (
  INSERT INTO accounts AS a (account_id, balance) VALUES ($2, $3)
  ON CONFLICT (account_id) DO UPDATE SET balance = a.balance + EXCLUDED.balance
  WHERE NOT a.frozen
  RETURNING 1
), m AS (
  INSERT INTO mints (seq, mint_id, account_id, amount, blockchain, status, idempotency_key, create_time)
  SELECT b.base + pg_current_xact_id()::text::bigint, $1, $2, $3, $4, 'COMPLETED', $5, $6 FROM mint_seq_base AS b CROSS JOIN acct
  RETURNING seq
), e AS (
  INSERT INTO ledger_entries (account_id, amount, kind, ref_id, created_at)
  SELECT $2, $3, 'mint', $1, $6 FROM acct
  RETURNING 1
), ${MINT_KEY_RESULT_CTE}
${MINT_RESULT_COLUMNS} FROM m`;

/**
 * Issue 15: a mint on a chain that settles on-chain: the credit goes to the
 * account's pending balance and the settlement's outbox row is written in the
 * same statement (so in the same transaction, in commit order).
 */
const MINT_PENDING_SQL = `
WITH acct AS (
  INSERT INTO accounts AS a (account_id, balance, pending) VALUES ($2, 0, $3)
  ON CONFLICT (account_id) DO UPDATE SET pending = a.pending + EXCLUDED.pending
  WHERE NOT a.frozen
  RETURNING 1
), m AS (
  INSERT INTO mints (seq, mint_id, account_id, amount, blockchain, status, idempotency_key, create_time, pending)
  SELECT b.base + pg_current_xact_id()::text::bigint, $1, $2, $3, $4, 'COMPLETED', $5, $6, true FROM mint_seq_base AS b CROSS JOIN acct
  RETURNING seq
), st AS (
  INSERT INTO settlements (settlement_id, kind, blockchain, amount, state, create_time, update_time)
  SELECT $1, 'mint', $4, $3, 'PENDING', $6, $6 FROM acct
  RETURNING 1
), e AS (
  INSERT INTO ledger_entries (account_id, amount, kind, ref_id, created_at)
  SELECT $2, $3, 'mint', $1, $6 FROM acct
  RETURNING 1
), ${MINT_KEY_RESULT_CTE}
${MINT_RESULT_COLUMNS},
  (SELECT count(*) FROM st)::int AS settlements FROM m`;

/**
 * The feed's horizon (see migration 2): `limit_seq` = base + the oldest
 * transaction id that may still commit, i.e. the smallest of the snapshot's
 * next id (xmax) and the ids in progress (xip), leaving out the ids `$3`
 * that were seen running in another database (they cannot write our mints).
 * `$3` is read in an earlier statement (OTHER_DATABASE_XIDS_SQL), before
 * this statement's snapshot: a transaction whose id is below a mint already
 * committed got that id before the poll began, so if it is still running at
 * the snapshot it was already listed. An id in progress that is not listed
 * is kept, which can only delay, never skip. So an idle transaction in
 * another database never holds the feed back; one in this database holds
 * it back while it lives (the service's own are ended by the statement and
 * idle-in-transaction timeouts).
 */
const FEED_HORIZON_CTE = `
WITH s AS (SELECT pg_current_snapshot() AS snap),
h AS (
  SELECT (SELECT base FROM mint_seq_base) + LEAST(
    pg_snapshot_xmax(s.snap)::text::bigint,
    COALESCE((
      SELECT min(x::text::bigint) FROM pg_snapshot_xip(s.snap) AS x
      WHERE NOT (xid(x) = ANY ($3::xid[]))
    ), pg_snapshot_xmax(s.snap)::text::bigint)
  ) AS limit_seq
  FROM s
)`;

/**
 * Transaction ids that can never write a mint: those running in other
 * databases of the cluster, and the audit sealer's (it only seals journal
 * rows; without this, every sealing pass would hold the feed back while it
 * runs). backend_xid is visible to every role.
 */
const OTHER_DATABASE_XIDS_SQL = `
SELECT COALESCE(array_agg(backend_xid::text), '{}') AS xids FROM pg_stat_activity
WHERE backend_xid IS NOT NULL
  AND (datid <> (SELECT oid FROM pg_database WHERE datname = current_database()) OR application_name = '${SEALER_APPLICATION_NAME}')`;

/**
 * Creates the receiving account if it is new (the sender must exist to have
 * money) and locks both accounts, in one statement and one round trip. The
 * SELECT does not see a row the CTE inserts (same snapshot), but that row is
 * this transaction's own uncommitted insert, locked already; only the
 * sender's row needs reading. Locks are taken in code-unit order (COLLATE
 * "C"), whatever the database collation.
 */
const LOCK_ACCOUNTS_SQL = `
WITH new_to AS (
  INSERT INTO accounts (account_id, balance) VALUES ($2, 0) ON CONFLICT (account_id) DO NOTHING
  RETURNING 1
)
SELECT account_id, balance::text AS balance, frozen FROM accounts
WHERE account_id = ANY($1::text[])
ORDER BY account_id COLLATE "C"
FOR NO KEY UPDATE`;

const TRANSFER_SQL = `
WITH upd AS (
  UPDATE accounts AS a SET balance = a.balance + d.delta
  FROM (VALUES ($2::text, -$4::numeric), ($3::text, $4::numeric)) AS d (account_id, delta)
  WHERE a.account_id = d.account_id
  RETURNING 1
), t AS (
  INSERT INTO transfers (transfer_id, from_account_id, to_account_id, amount, idempotency_key, create_time)
  VALUES ($1, $2, $3, $4, $5, $6)
  RETURNING 1
), e AS (
  INSERT INTO ledger_entries (account_id, amount, kind, ref_id, created_at)
  VALUES ($2, -$4::numeric, 'transfer_out', $1, $6), ($3, $4::numeric, 'transfer_in', $1, $6)
  RETURNING 1
), k AS (
  UPDATE idempotency_keys SET state = 'completed', result = $7::jsonb,
    expires_at = ${dbNowSql(8)} + make_interval(secs => $9::float8 / 1000)
  WHERE scope = 'transfer' AND key = $5
  RETURNING 1
)
SELECT (SELECT count(*) FROM upd)::int AS accounts, (SELECT count(*) FROM k)::int AS keys, (SELECT count(*) FROM t)::int AS transfers`;

const MINT_JOURNALED_SQL = withJournal(MINT_SQL, 10);
const MINT_PENDING_JOURNALED_SQL = withJournal(MINT_PENDING_SQL, 10);
const TRANSFER_JOURNALED_SQL = withJournal(TRANSFER_SQL, 10);

const REVERSE_SQL = `
WITH e AS (
  INSERT INTO ledger_entries (account_id, amount, kind, ref_id, created_at)
  VALUES ($2, -$3::numeric, 'reversal', $1, $4)
  RETURNING 1
), s AS (
  -- Issue 12: supply drops with the reversal (the account row is already
  -- locked by the debit, so the supply row comes last in the lock order).
  UPDATE supply SET supply = supply - $3::numeric, updated_at = now() WHERE id = 1
  RETURNING 1
)
UPDATE mints SET status = 'REVERSED', reverse_time = $4, reverse_reason = $5, pending = false
WHERE mint_id = $1
RETURNING ${MINT_COLUMNS}`;

/*
 * Issue 12. A frozen account row refuses the mint's credit (the CTEs above
 * write nothing when \`acct\` returns no row; ON CONFLICT DO UPDATE locks the
 * row even when its WHERE refuses, so the freeze cannot change under us).
 * Supply rises after the account is locked: the lock order is key row <
 * account rows < the supply row, for mints, reversals and redemptions alike
 * (a mint raises it in a statement of its own, after MINT_SQL, since the
 * order in which one statement's CTEs take their locks is not defined; a
 * reversal or redemption, whose account is locked by an earlier statement,
 * lowers it in a CTE of its last statement).
 */

/**
 * Raises supply when the reserve allows it, in one statement evaluated on
 * the latest committed supply (READ COMMITTED re-checks the WHERE after
 * waiting for the row lock). $1 amount, $2 reserve required.
 */
const RAISE_SUPPLY_SQL = `
UPDATE supply SET supply = supply + $1::numeric, updated_at = now()
WHERE id = 1 AND (CASE WHEN reserve IS NULL THEN NOT $2::boolean ELSE supply + $1::numeric <= reserve END)
RETURNING 1`;

const LOCK_SUPPLY_SQL = "SELECT supply::text AS supply, reserve::text AS reserve, attestation_ref FROM supply WHERE id = 1 FOR UPDATE";
// Issue 11 + 12: what waits for approval is reported beside supply (the partial index mints_pending keeps it cheap).
const READ_SUPPLY_SQL = "SELECT supply::text AS supply, reserve::text AS reserve, attestation_ref, (SELECT COALESCE(SUM(amount), 0)::text FROM mints WHERE status = 'PENDING_APPROVAL') AS pending_approval FROM supply WHERE id = 1";

interface SupplyRow {
  supply: string;
  reserve: string | null;
  attestation_ref: string;
  /** Absent where only the reserve check reads the row. */
  pending_approval?: string;
}

function supplyFromRow(r: SupplyRow | undefined): SupplyState {
  assert(r !== undefined, "the supply row exists (migration 1201)");
  return supplyState(BigInt(r.supply), r.reserve === null ? null : BigInt(r.reserve), r.attestation_ref, BigInt(r.pending_approval ?? "0"));
}

const REDEMPTION_COLUMNS = `seq::text AS seq, redemption_id, account_id, amount::text AS amount, blockchain, idempotency_key, actor, create_time, recredit_time, recredit_reason`;

interface RedemptionRow {
  seq: string;
  redemption_id: string;
  account_id: string;
  amount: string;
  blockchain: string;
  idempotency_key: string;
  actor: string;
  create_time: Date;
  recredit_time: Date | null;
  recredit_reason: string;
}

function redemptionFromRow(r: RedemptionRow): RedemptionRecord {
  assert(isBlockchain(r.blockchain), `redemption ${r.redemption_id} has a known blockchain`);
  const out: RedemptionRecord = {
    redemptionId: r.redemption_id,
    accountId: r.account_id,
    amountMicros: BigInt(r.amount),
    blockchain: r.blockchain,
    idempotencyKey: r.idempotency_key,
    actor: r.actor,
    createWallMs: r.create_time.getTime(),
  };
  // Issue 16: re-credited after its burn failed on-chain.
  return r.recredit_time === null ? out : { ...out, recreditWallMs: r.recredit_time.getTime(), recreditReason: r.recredit_reason };
}

/** Debits the (locked, checked) account, records the redemption and its entry, stores the key's result. */
const REDEEM_SQL = `
WITH upd AS (
  UPDATE accounts SET balance = balance - $3::numeric WHERE account_id = $2 RETURNING 1
), r AS (
  INSERT INTO redemptions (redemption_id, account_id, amount, blockchain, idempotency_key, actor, create_time)
  VALUES ($1, $2, $3, $4, $5, $6, $7)
  RETURNING 1
), e AS (
  INSERT INTO ledger_entries (account_id, amount, kind, ref_id, created_at)
  VALUES ($2, -$3::numeric, 'redemption', $1, $7)
  RETURNING 1
), k AS (
  UPDATE idempotency_keys SET state = 'completed', result = $8::jsonb,
    expires_at = ${dbNowSql(9)} + make_interval(secs => $10::float8 / 1000)
  WHERE scope = 'redeem' AND key = $11
  RETURNING 1
), s AS (
  UPDATE supply SET supply = supply - $3::numeric, updated_at = now() WHERE id = 1
  RETURNING 1
)
SELECT (SELECT count(*) FROM upd)::int AS accounts, (SELECT count(*) FROM k)::int AS keys, (SELECT count(*) FROM r)::int AS redemptions,
  (SELECT count(*) FROM s)::int AS supply`;

const REDEEM_JOURNALED_SQL = withJournal(REDEEM_SQL, 12);

/** Sets the reserve while supply is at most it: one statement, under the supply row's lock. */
const SET_RESERVE_SQL = `
WITH u AS (
  UPDATE supply SET reserve = $1::numeric, attestation_ref = $2, updated_at = now() WHERE id = 1 AND supply <= $1::numeric
  RETURNING supply, reserve, attestation_ref
)
SELECT supply::text AS supply, reserve::text AS reserve, attestation_ref, (SELECT COALESCE(SUM(amount), 0)::text FROM mints WHERE status = 'PENDING_APPROVAL') AS pending_approval FROM u`;
const SET_RESERVE_JOURNALED_SQL = `
WITH u AS (
  UPDATE supply SET reserve = $1::numeric, attestation_ref = $2, updated_at = now() WHERE id = 1 AND supply <= $1::numeric
  RETURNING supply, reserve, attestation_ref
), ${journalCteWhen(3, "u")}
SELECT supply::text AS supply, reserve::text AS reserve, attestation_ref, (SELECT COALESCE(SUM(amount), 0)::text FROM mints WHERE status = 'PENDING_APPROVAL') AS pending_approval FROM u`;

/** Freezes or unfreezes an account, creating its row when new (so the row lock orders it against calls in flight). */
const SET_FROZEN_SQL = `
WITH f AS (
  INSERT INTO accounts AS a (account_id, balance, frozen, freeze_reason) VALUES ($1, 0, $2, $3)
  ON CONFLICT (account_id) DO UPDATE SET frozen = EXCLUDED.frozen, freeze_reason = EXCLUDED.freeze_reason
  RETURNING balance
)
SELECT balance::text AS balance FROM f`;
const SET_FROZEN_JOURNALED_SQL = withJournal(SET_FROZEN_SQL, 4);

const ACCOUNT_STATE_SQL = "SELECT balance::text AS balance, frozen, freeze_reason FROM accounts WHERE account_id = $1";

/** What a transaction body decided: commit with a value, or roll back with an expected failure. */
type TxDecision<T> = Result<T>;

function deadlineFailure(): Failure {
  return { code: "DEADLINE_EXCEEDED", message: "deadline passed while waiting for a lock; nothing was applied" };
}

export class PostgresLedgerStore implements LedgerStore {
  constructor(
    private readonly db: PgDatabase,
    /** How long a completed idempotency key replays, counted from this commit. */
    private readonly idempotencyTtlMs: number,
    private readonly onClose: () => Promise<void>,
    /** Where every change is journaled; null only to measure what the journal costs (bench). */
    readonly audit: PostgresAuditJournal | null = null,
  ) {}

  /**
   * Credits a mint on the claim's transaction and commits it with the key's
   * result. Failures: DEADLINE_EXCEEDED (rolled back: nothing applied, key
   * free). Throws UnavailableError when PostgreSQL cannot be reached or the
   * commit's outcome is unknown (a retry with the same key replays or applies).
   */
  async mint(cmd: NewMint, claim: IdempotencyClaim, deadlineMs: number, reserveRequired = false, entry?: JournalEntry): Promise<Result<MintRecord>> {
    const c = asPgClaim(claim);
    assert(c.scope === "mint" && c.key === cmd.idempotencyKey, "mint runs on its own mint-scope claim");
    const record = completedMint(cmd, 0);
    if (cmd.requester !== undefined) return this.trackedMint(cmd, record, c, deadlineMs, reserveRequired, entry);
    return this.onClaim(c, deadlineMs, "minting", async (client) => {
      const journal = this.audit === null ? [] : journalParams(unsealedRecord(entry ?? entryOfEffect({ kind: "mint", cmd }), mintResult(record), cmd.createWallMs));
      const sql = cmd.settle === true ? (this.audit === null ? MINT_PENDING_SQL : MINT_PENDING_JOURNALED_SQL) : this.audit === null ? MINT_SQL : MINT_JOURNALED_SQL;
      const res = await client.query<{ seq: string; keys: number; accounts: number; settlements?: number }>(sql, [
        cmd.mintId,
        cmd.accountId,
        cmd.amountMicros.toString(),
        cmd.blockchain,
        cmd.idempotencyKey,
        isoOfWallMs(cmd.createWallMs),
        JSON.stringify({ scope: "mint", mint: mintToJson(record) }),
        this.db.nowParam(),
        this.idempotencyTtlMs,
        ...journal,
      ]);
      const row = res.rows[0];
      // Issue 12: no row when the account is frozen (its credit refused; the rollback undoes the journal's row too).
      if (row === undefined) return fail({ code: "ACCOUNT_FROZEN", accountId: cmd.accountId });
      assert(row.keys === 1 && row.accounts === 1, "mint wrote one account and its claimed key");
      assert(cmd.settle !== true || row.settlements === 1, "a settling mint wrote its outbox row");
      // Issue 12: every variant raises supply, a settling one too (its
      // pending credit is in circulation until a failed settlement reverses it).
      const refused = await this.checkReserve(client, cmd.amountMicros, reserveRequired);
      if (refused !== null) return fail(refused);
      return ok({ ...record, seq: Number(row.seq) });
    });
  }

  /** A mint with a requester (issue 11): charges the allowance first, then TRACKED_MINT_SQL, on the claim's transaction. */
  private trackedMint(cmd: NewMint, record: MintRecord, c: PgClaim, deadlineMs: number, reserveRequired: boolean, entry: JournalEntry | undefined): Promise<Result<MintRecord>> {
    // Issue 15: a completed mint on a settling chain credits pending (creditSettling), not the balance.
    const settling = cmd.settle === true && record.status === "COMPLETED";
    const requester = cmd.requester as string;
    return this.onClaim(c, deadlineMs, "minting", async (client) => {
      let generation = "0";
      if (cmd.chargeAllowance === true) {
        // Lock order: key row (claimed) < allowance row < account row.
        const taken = await client.query<{ generation: string }>(
          "UPDATE minter_allowances SET remaining = remaining - $2::numeric WHERE principal = $1 AND remaining >= $2::numeric RETURNING generation::text AS generation",
          [requester, cmd.amountMicros.toString()],
        );
        generation = taken.rows[0]?.generation ?? "0";
        if (taken.rowCount !== 1) {
          const left = await client.query<{ remaining: string }>("SELECT remaining::text AS remaining FROM minter_allowances WHERE principal = $1", [requester]);
          return fail({ code: "ALLOWANCE_EXCEEDED", principal: requester, remainingMicros: BigInt(left.rows[0]?.remaining ?? "0"), amountMicros: cmd.amountMicros });
        }
      }
      const res = await client.query<{ seq: string; keys: number; accounts: number }>(TRACKED_MINT_SQL, [
        cmd.mintId,
        cmd.accountId,
        cmd.amountMicros.toString(),
        cmd.blockchain,
        cmd.idempotencyKey,
        isoOfWallMs(cmd.createWallMs),
        JSON.stringify({ scope: "mint", mint: mintToJson(record) }),
        this.db.nowParam(),
        this.idempotencyTtlMs,
        record.status,
        requester,
        cmd.chargeAllowance === true,
        record.status === "COMPLETED" && !settling ? cmd.amountMicros.toString() : "0",
        record.approval === undefined ? null : JSON.stringify(record.approval),
        generation,
      ]);
      const row = res.rows[0];
      // Issue 12: no row when the account is frozen (a pending mint too: the account may not receive); the rollback undoes the allowance.
      if (row === undefined) return fail({ code: "ACCOUNT_FROZEN", accountId: cmd.accountId });
      assert(row.keys === 1 && row.accounts === 1, "mint wrote one account and its claimed key");
      if (settling) await this.creditSettling(client, record, cmd.createWallMs);
      // Issue 12: a completed mint raises supply; a pending one does when its approval completes it.
      if (record.status === "COMPLETED") {
        const refused = await this.checkReserve(client, cmd.amountMicros, reserveRequired);
        if (refused !== null) return fail(refused);
      }
      if (this.audit !== null) await appendJournal(client, unsealedRecord(entry ?? entryOfEffect({ kind: "mint", cmd }), mintResult(record), cmd.createWallMs));
      return ok({ ...record, seq: Number(row.seq) });
    });
  }

  /**
   * Records an approval in a transaction of its own, under the mint's row
   * lock: racing approvals of one mint queue on it, so exactly one sees the
   * last missing approval and credits the account (issue 11).
   */
  approveMint(mintId: string, approver: string, wallMs: number, journal: JournalEntry, settle: boolean, deadlineMs: number, signal?: AbortSignal, reserveRequired = false): Promise<Result<MintRecord>> {
    return this.ownTx(deadlineMs, signal, "approving a mint", async (lease) => {
      const mint = await this.lockMint(lease, mintId);
      if (mint === null) return fail({ code: "MINT_NOT_FOUND", mintId });
      const decided = decideApproval(mint, approver, wallMs);
      if (!decided.ok) return fail(decided.error);
      if (!decided.changed) return ok(decided.next);
      const next = decided.next;
      if (next.status === "COMPLETED") {
        // Issue 12: the completing approval credits, so it is refused (and
        // rolled back with the approval) on a frozen account. Lock order as
        // a mint's: mint row < account row < supply row (checkReserve below).
        const acct = await lease.client.query<{ frozen: boolean }>("SELECT frozen FROM accounts WHERE account_id = $1 FOR NO KEY UPDATE", [next.accountId]);
        if (acct.rows[0]?.frozen === true) return fail({ code: "ACCOUNT_FROZEN", accountId: next.accountId });
      }
      await lease.client.query("UPDATE mints SET status = $2, approval = $3::jsonb WHERE mint_id = $1", [mintId, next.status, JSON.stringify(next.approval)]);
      if (next.status === "COMPLETED") {
        // Issue 15: on a settling chain the credit is pending and the outbox row is written here, as MintUsdc's MINT_PENDING_SQL does.
        if (settle) await this.creditSettling(lease.client, next, wallMs);
        else await lease.client.query("UPDATE accounts SET balance = balance + $2::numeric WHERE account_id = $1", [next.accountId, next.amountMicros.toString()]);
        await lease.client.query("INSERT INTO ledger_entries (account_id, amount, kind, ref_id, created_at) VALUES ($1, $2, 'mint', $3, $4)", [
          next.accountId,
          next.amountMicros.toString(),
          mintId,
          isoOfWallMs(wallMs),
        ]);
        // Issue 12: supply rises now, within the reserve, in this transaction.
        const refused = await this.checkReserve(lease.client, next.amountMicros, reserveRequired);
        if (refused !== null) return fail(refused);
      }
      if (this.audit !== null) await appendJournal(lease.client, unsealedRecord(journal, approvalResult(next), wallMs, [next.accountId]));
      return ok(next);
    });
  }

  /**
   * Issue 15 for a mint completed outside MINT_PENDING_SQL (approval, or a
   * tracked mint): its credit goes to the pending balance, the mint is marked
   * pending and its settlement's outbox row is written, on `client`'s
   * transaction.
   */
  private async creditSettling(client: Lease["client"], m: MintRecord, wallMs: number): Promise<void> {
    const amount = m.amountMicros.toString();
    await client.query(
      `INSERT INTO accounts AS a (account_id, balance, pending) VALUES ($1, 0, $2::numeric)
       ON CONFLICT (account_id) DO UPDATE SET pending = a.pending + EXCLUDED.pending`,
      [m.accountId, amount],
    );
    await client.query("UPDATE mints SET pending = true WHERE mint_id = $1", [m.mintId]);
    await client.query(
      "INSERT INTO settlements (settlement_id, kind, blockchain, amount, state, create_time, update_time) VALUES ($1, 'mint', $2, $3::numeric, 'PENDING', $4, $4)",
      [m.mintId, m.blockchain, amount, isoOfWallMs(wallMs)],
    );
  }

  /** Rejects a pending mint, gives its allowance charge back (while no Set came since) and frees its key, in one transaction. */
  rejectMint(
    mintId: string,
    reason: string,
    rejectedBy: string,
    wallMs: number,
    bySweeper: boolean,
    journal: JournalEntry,
    deadlineMs: number,
    signal?: AbortSignal,
  ): Promise<Result<MintRecord>> {
    return this.ownTx(deadlineMs, signal, "rejecting a mint", async (lease) => {
      const mint = await this.lockMint(lease, mintId);
      if (mint === null) return fail({ code: "MINT_NOT_FOUND", mintId });
      const decided = decideRejection(mint, reason, rejectedBy, wallMs, bySweeper);
      if (!decided.ok) return fail(decided.error);
      await this.freeKey(lease.client, mint);
      const refunded = await this.refundAllowance(lease.client, mint);
      await lease.client.query("UPDATE mints SET status = 'REJECTED', approval = $2::jsonb WHERE mint_id = $1", [mintId, JSON.stringify(decided.next.approval)]);
      if (this.audit !== null) await appendJournal(lease.client, unsealedRecord(journal, withAllowanceRefund(approvalResult(decided.next), decided.next, refunded), wallMs, [mint.accountId]));
      return ok(decided.next);
    });
  }

  /** Pending mints past their expiry at `wallMs`, oldest first. */
  async expiredPending(wallMs: number, limit: number): Promise<string[]> {
    const res = await this.db.query<{ mint_id: string }>(
      "SELECT mint_id FROM mints WHERE status = 'PENDING_APPROVAL' AND (approval->>'expireWallMs')::float8 <= $1 ORDER BY seq LIMIT $2",
      [wallMs, limit],
      "listing expired pending mints",
    );
    return res.rows.map((r) => r.mint_id);
  }

  async getAllowance(principal: string): Promise<bigint> {
    const res = await this.db.query<{ remaining: string }>("SELECT remaining::text AS remaining FROM minter_allowances WHERE principal = $1", [principal], "reading an allowance");
    return BigInt(res.rows[0]?.remaining ?? "0");
  }

  /**
   * Sets the allowance, starts its next generation and journals it in one
   * transaction of its own, under the allowance row's lock (created first
   * when missing, so a compare-and-set on a never-set allowance is exact
   * too). Failures: ALLOWANCE_CHANGED (`expectedMicros` is not what is left).
   */
  async setAllowance(principal: string, amountMicros: bigint, journal: JournalEntry, wallMs: number, deadlineMs: number, expectedMicros?: bigint): Promise<Result<void>> {
    return this.ownTx(deadlineMs, undefined, "setting an allowance", async (lease) => {
      await lease.client.query("INSERT INTO minter_allowances (principal, remaining) VALUES ($1, 0) ON CONFLICT (principal) DO NOTHING", [principal]);
      const locked = await lease.client.query<{ remaining: string }>("SELECT remaining::text AS remaining FROM minter_allowances WHERE principal = $1 FOR UPDATE", [principal]);
      const remainingMicros = BigInt(locked.rows[0]?.remaining ?? "0");
      if (expectedMicros !== undefined && remainingMicros !== expectedMicros) return fail({ code: "ALLOWANCE_CHANGED", principal, remainingMicros, expectedMicros });
      await lease.client.query("UPDATE minter_allowances SET remaining = $2::numeric, generation = generation + 1 WHERE principal = $1", [principal, amountMicros.toString()]);
      if (this.audit !== null) await appendJournal(lease.client, unsealedRecord(journal, { allowance: amountMicros.toString(), principal }, wallMs));
      await recordAllowanceSet(lease.client, principal, amountMicros, wallMs);
      return ok(undefined);
    });
  }

  private async lockMint(lease: Lease, mintId: string): Promise<MintRecord | null> {
    const found = await lease.client.query<MintRow>(`SELECT ${MINT_COLUMNS} FROM mints WHERE mint_id = $1 FOR UPDATE`, [mintId]);
    const row = found.rows[0];
    return row === undefined ? null : mintFromRow(row);
  }

  /**
   * Frees the mint's key, only if it still replays this mint: once expired it
   * may have been claimed again for a new mint, which keeps it.
   */
  private async freeKey(client: Lease["client"], mint: MintRecord): Promise<void> {
    await client.query(
      "DELETE FROM idempotency_keys WHERE scope = 'mint' AND key = $1 AND state = 'completed' AND result->'mint'->>'mintId' = $2",
      [mint.idempotencyKey, mint.mintId],
    );
  }

  /**
   * Gives a rejected or reversed mint's allowance charge back, only while the
   * generation it was taken from is current (no Set since: a Set is final).
   * Null when the mint charged nothing, else whether it was given back.
   */
  private async refundAllowance(client: Lease["client"], mint: MintRecord): Promise<boolean | null> {
    if (mint.allowanceCharged !== true || mint.requester === undefined) return null;
    const given = await client.query(
      `UPDATE minter_allowances AS a SET remaining = a.remaining + $2::numeric
       FROM mints AS m WHERE a.principal = $1 AND m.mint_id = $3 AND a.generation = m.allowance_generation`,
      [mint.requester, mint.amountMicros.toString(), mint.mintId],
    );
    return given.rowCount === 1;
  }

  /**
   * Moves money on the claim's transaction and commits it with the key's
   * result. Failures: INSUFFICIENT_FUNDS, DEADLINE_EXCEEDED (both rolled
   * back: nothing changed, key free). Throws UnavailableError like `mint`.
   */
  async transfer(cmd: NewTransfer, claim: IdempotencyClaim, deadlineMs: number, entry?: JournalEntry): Promise<Result<TransferRecord>> {
    const c = asPgClaim(claim);
    assert(c.scope === "transfer" && c.key === cmd.idempotencyKey, "transfer runs on its own transfer-scope claim");
    assert(cmd.fromAccountId !== cmd.toAccountId, "transfer between two different accounts");
    const record: TransferRecord = { ...cmd };
    return this.onClaim(c, deadlineMs, "transferring", async (client) => {
      const locked = await client.query<{ account_id: string; balance: string; frozen: boolean }>(LOCK_ACCOUNTS_SQL, [
        [cmd.fromAccountId, cmd.toAccountId],
        cmd.toAccountId,
      ]);
      const frozen = locked.rows.find((r) => r.frozen);
      if (frozen !== undefined) return fail({ code: "ACCOUNT_FROZEN", accountId: frozen.account_id });
      const from = locked.rows.find((r) => r.account_id === cmd.fromAccountId);
      if (from === undefined || BigInt(from.balance) < cmd.amountMicros) {
        return fail({ code: "INSUFFICIENT_FUNDS", accountId: cmd.fromAccountId });
      }
      const journal = this.audit === null ? [] : journalParams(unsealedRecord(entry ?? entryOfEffect({ kind: "transfer", cmd }), transferResult(record), cmd.createWallMs));
      const res = await client.query<{ accounts: number; keys: number; transfers: number }>(this.audit === null ? TRANSFER_SQL : TRANSFER_JOURNALED_SQL, [
        cmd.transferId,
        cmd.fromAccountId,
        cmd.toAccountId,
        cmd.amountMicros.toString(),
        cmd.idempotencyKey,
        isoOfWallMs(cmd.createWallMs),
        JSON.stringify({ scope: "transfer", transfer: transferToJson(record) }),
        this.db.nowParam(),
        this.idempotencyTtlMs,
        ...journal,
      ]);
      const row = res.rows[0];
      assert(row !== undefined && row.accounts === 2 && row.keys === 1 && row.transfers === 1, "transfer wrote two accounts and its claimed key");
      return ok(record);
    });
  }

  /**
   * Reverses a completed mint in one transaction of its own: locks the mint,
   * frees its idempotency key (only if the key still holds this mint), debits
   * the account and appends a 'reversal' entry. Failures: MINT_NOT_FOUND,
   * MINT_ALREADY_REVERSED, INSUFFICIENT_FUNDS, DEADLINE_EXCEEDED (nothing
   * changed). Concurrent calls for one mint queue on its row: one reverses,
   * the others see REVERSED.
   */
  reverseMint(mintId: string, reason: string, wallMs: number, deadlineMs: number, signal?: AbortSignal, entry?: JournalEntry): Promise<Result<MintRecord>> {
    return this.ownTx(deadlineMs, signal, "reversing a mint", async (lease) => {
      const decision = await this.reverseBody(lease, mintId, reason, wallMs);
      if (!decision.ok) return decision;
      const { mint: m, refunded } = decision.value;
      if (this.audit !== null) {
        await appendJournal(lease.client, unsealedRecord(entry ?? reversalEntry(LOCAL_ACTOR, mintId, reason), withAllowanceRefund(reversalResult(m), m, refunded), wallMs, [m.accountId]));
      }
      return ok(m);
    });
  }

  /**
   * Runs `body` in a transaction of its own (READ COMMITTED), committing on
   * ok; lost races are retried. The body appends its journal record on the
   * transaction's client, so the sealer is kicked after the commit.
   */
  private async ownTx<T>(deadlineMs: number, signal: AbortSignal | undefined, doing: string, body: (lease: Lease) => Promise<TxDecision<T>>): Promise<Result<T>> {
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

  private async reverseBody(lease: Lease, mintId: string, reason: string, wallMs: number): Promise<TxDecision<ReversedMint>> {
    const client = lease.client;
    // Issue 15: the settlement's state comes with the mint's lock (no extra
    // round trip for a mint that never settles). A PENDING settlement is then
    // deleted, and only while still PENDING: a worker that signed it meanwhile
    // wins and the reversal is refused (rolled back with everything else).
    const found = await client.query<MintRow & { pending: boolean; settlement_state: string | null }>(
      `SELECT ${MINT_COLUMNS}, pending, (SELECT state FROM settlements WHERE settlement_id = $1) AS settlement_state FROM mints WHERE mint_id = $1 FOR UPDATE`,
      [mintId],
    );
    const row = found.rows[0];
    if (row === undefined) return fail({ code: "MINT_NOT_FOUND", mintId });
    const mint = mintFromRow(row);
    if (mint.status === "REVERSED") return fail({ code: "MINT_ALREADY_REVERSED", mintId });
    if (mint.status === "PENDING_APPROVAL") return fail({ code: "MINT_PENDING_APPROVAL", mintId });
    if (mint.status === "REJECTED") return fail({ code: "MINT_NOT_PENDING", mintId, reason: "MINT_REJECTED" });
    let settlementState = row.settlement_state ?? "MISSING";
    if (settlementState === "PENDING") settlementState = await cancelSettlement(client, mintId);
    const refused = settlementRefusal(mintId, settlementState);
    if (refused !== null) return fail(refused);
    return this.reverseLocked(client, mint, row.pending, reason, wallMs);
  }

  /**
   * Reverses `mint` (locked, COMPLETED): frees its key, gives its allowance
   * charge back (while no Set came since), debits the account (pending or
   * available), appends the entry.
   */
  private async reverseLocked(client: Lease["client"], mint: MintRecord, pending: boolean, reason: string, wallMs: number): Promise<TxDecision<ReversedMint>> {
    const mintId = mint.mintId;
    // Freed before the account is locked, to keep the lock order (key row,
    // allowance row, account rows).
    await this.freeKey(client, mint);
    const refunded = await this.refundAllowance(client, mint);
    const debited = await client.query(
      pending
        ? "UPDATE accounts SET pending = pending - $2::numeric WHERE account_id = $1 AND pending >= $2::numeric"
        : "UPDATE accounts SET balance = balance - $2::numeric WHERE account_id = $1 AND balance >= $2::numeric",
      [mint.accountId, mint.amountMicros.toString()],
    );
    if (debited.rowCount !== 1) return fail({ code: "INSUFFICIENT_FUNDS", accountId: mint.accountId });
    const updated = await client.query<MintRow>(REVERSE_SQL, [
      mintId,
      mint.accountId,
      mint.amountMicros.toString(),
      isoOfWallMs(wallMs),
      reason,
    ]);
    const out = updated.rows[0];
    assert(out !== undefined, `reversed mint ${mintId} is still there`);
    return ok({ mint: mintFromRow(out), refunded });
  }

  /**
   * Issue 12: the reserve check of a supply rise, on the caller's open
   * transaction (after its account rows are locked): raises supply by
   * `amountMicros` when the reserve allows it and returns null, else returns
   * the refusal with nothing changed (the caller rolls back). The mint calls
   * it; so must the approval that completes a pending mint (issue 11), in the
   * transaction that credits it. The supply row is the one hot spot: it is
   * locked from here to COMMIT, one round trip.
   */
  async checkReserve(client: pg.ClientBase, amountMicros: bigint, reserveRequired: boolean): Promise<Failure | null> {
    const raised = await client.query(RAISE_SUPPLY_SQL, [amountMicros.toString(), reserveRequired]);
    if (raised.rowCount === 1) return null;
    const locked = await client.query<SupplyRow>(LOCK_SUPPLY_SQL);
    const now = supplyFromRow(locked.rows[0]);
    const refused = reserveRefusal(now.supplyMicros, now.reserveMicros, amountMicros, reserveRequired);
    if (refused !== null) return refused;
    // Supply fell (or the reserve rose) between the two statements; the row is locked now.
    const again = await client.query(RAISE_SUPPLY_SQL, [amountMicros.toString(), reserveRequired]);
    assert(again.rowCount === 1, "supply rises once the reserve allowed it under the row lock");
    return null;
  }

  /**
   * Redeems on the claim's transaction: locks the account, refuses a frozen
   * or short one, debits it, records the redemption, lowers supply and
   * commits with the key's result. Failures: ACCOUNT_FROZEN,
   * INSUFFICIENT_FUNDS, DEADLINE_EXCEEDED (rolled back: nothing changed).
   */
  async redeem(cmd: NewRedemption, claim: IdempotencyClaim, deadlineMs: number, entry: JournalEntry, settle = false): Promise<Result<RedemptionRecord>> {
    const c = asPgClaim(claim);
    assert(c.scope === "redeem", "redeem runs on its own redeem-scope claim");
    const record: RedemptionRecord = { ...cmd };
    return this.onClaim(c, deadlineMs, "redeeming", async (client) => {
      const locked = await client.query<{ balance: string; frozen: boolean }>(
        "SELECT balance::text AS balance, frozen FROM accounts WHERE account_id = $1 FOR NO KEY UPDATE",
        [cmd.accountId],
      );
      const acct = locked.rows[0];
      if (acct?.frozen === true) return fail({ code: "ACCOUNT_FROZEN", accountId: cmd.accountId });
      if (acct === undefined || BigInt(acct.balance) < cmd.amountMicros) return fail({ code: "INSUFFICIENT_FUNDS", accountId: cmd.accountId });
      const journal = this.audit === null ? [] : journalParams(unsealedRecord(entry, redemptionResult(record), cmd.createWallMs));
      const res = await client.query<{ accounts: number; keys: number; redemptions: number; supply: number }>(this.audit === null ? REDEEM_SQL : REDEEM_JOURNALED_SQL, [
        cmd.redemptionId,
        cmd.accountId,
        cmd.amountMicros.toString(),
        cmd.blockchain,
        cmd.idempotencyKey,
        cmd.actor,
        isoOfWallMs(cmd.createWallMs),
        JSON.stringify({ scope: "redeem", redemption: redemptionToJson(record) }),
        this.db.nowParam(),
        this.idempotencyTtlMs,
        c.key,
        ...journal,
      ]);
      const row = res.rows[0];
      assert(row !== undefined && row.accounts === 1 && row.keys === 1 && row.redemptions === 1 && row.supply === 1, "redemption wrote one account, its record, its claimed key and supply");
      // Issue 16: on a settling chain the burn's outbox row commits with the debit (one more statement, same transaction).
      if (settle) await enqueueSettlement(client, { settlementId: cmd.redemptionId, kind: "burn", blockchain: cmd.blockchain, amountMicros: cmd.amountMicros, createWallMs: cmd.createWallMs });
      return ok(record);
    });
  }

  /**
   * One statement: the reserve is set only while supply is at most the new
   * reserve (evaluated under the supply row's lock, so no mint slips past).
   * Failures: RESERVE_EXCEEDED (nothing changed).
   */
  async setReserve(reserveMicros: bigint, attestationRef: string, entry: JournalEntry, _deadlineMs: number): Promise<Result<SupplyState>> {
    // The journal's row is inserted by the same statement, only when the reserve was set.
    const journal = this.audit === null ? [] : journalParams(unsealedRecord(entry, reserveResult(reserveMicros, attestationRef), this.db.clock.wallMs()));
    const res = await this.db.query<SupplyRow>(
      this.audit === null ? SET_RESERVE_SQL : SET_RESERVE_JOURNALED_SQL,
      [reserveMicros.toString(), attestationRef, ...journal],
      "setting the reserve",
    );
    if (res.rows[0] !== undefined) {
      if (journal.length > 0) this.audit?.kick();
      return ok(supplyFromRow(res.rows[0]));
    }
    const now = await this.getSupply();
    return fail({
      code: "RESERVE_EXCEEDED",
      headroomMicros: now.headroomMicros ?? reserveMicros - now.supplyMicros,
      supplyMicros: now.supplyMicros,
      reserveMicros: now.reserveMicros ?? reserveMicros,
      requestedMicros: reserveMicros,
    });
  }

  async getSupply(): Promise<SupplyState> {
    const res = await this.db.query<SupplyRow>(READ_SUPPLY_SQL, [], "reading supply");
    return supplyFromRow(res.rows[0]);
  }

  /**
   * One statement that takes the account row's lock (creating the row for
   * an account not seen yet): it waits for every transaction in flight on
   * the account, so each of them committed before the freeze or sees it.
   */
  async setFrozen(accountId: string, frozen: boolean, reason: string, entry: JournalEntry, _deadlineMs: number): Promise<Result<AccountState>> {
    // The journal's row is inserted by the same statement (it always writes the account row).
    const journal = this.audit === null ? [] : journalParams(unsealedRecord(entry, freezeResult(accountId, frozen), this.db.clock.wallMs()));
    const res = await this.db.query<{ balance: string }>(
      this.audit === null ? SET_FROZEN_SQL : SET_FROZEN_JOURNALED_SQL,
      [accountId, frozen, frozen ? reason : "", ...journal],
      frozen ? "freezing an account" : "unfreezing an account",
    );
    const row = res.rows[0];
    assert(row !== undefined, "the account row was written");
    if (journal.length > 0) this.audit?.kick();
    return ok({ accountId, balanceMicros: BigInt(row.balance), frozen, freezeReason: frozen ? reason : "" });
  }

  async getAccount(accountId: string): Promise<AccountState> {
    const res = await this.db.query<{ balance: string; frozen: boolean; freeze_reason: string }>(ACCOUNT_STATE_SQL, [accountId], "reading an account");
    const row = res.rows[0];
    return row === undefined
      ? { accountId, balanceMicros: 0n, frozen: false, freezeReason: "" }
      : { accountId, balanceMicros: BigInt(row.balance), frozen: row.frozen, freezeReason: row.freeze_reason };
  }

  async getRedemption(redemptionId: string): Promise<RedemptionRecord | null> {
    const res = await this.db.query<RedemptionRow>(`SELECT ${REDEMPTION_COLUMNS} FROM redemptions WHERE redemption_id = $1`, [redemptionId], "reading a redemption");
    const row = res.rows[0];
    return row === undefined ? null : redemptionFromRow(row);
  }

  /** Redemptions by seq (a bigserial: a page may miss one committing late; the list is for reading, not a feed). */
  async listRedemptions(query: ListMintsQuery): Promise<{ redemption: RedemptionRecord; seq: number }[]> {
    const limit = Math.max(0, Math.min(Math.floor(query.limit), LIST_MINTS_MAX_LIMIT));
    const res = await this.db.query<RedemptionRow>(
      `SELECT ${REDEMPTION_COLUMNS} FROM redemptions WHERE seq > $1 AND ($3::text IS NULL OR account_id = $3) ORDER BY redemptions.seq LIMIT $2`,
      [query.afterSeq, limit, query.accountId],
      "listing redemptions",
    );
    return res.rows.map((r) => ({ redemption: redemptionFromRow(r), seq: Number(r.seq) }));
  }

  /** Current balance in micro-USDC; 0 for unknown accounts. Throws UnavailableError when PostgreSQL cannot be reached. */
  async getBalance(accountId: string): Promise<bigint> {
    const res = await this.db.query<{ balance: string }>(
      "SELECT balance::text AS balance FROM accounts WHERE account_id = $1",
      [accountId],
      "reading a balance",
    );
    const row = res.rows[0];
    return row === undefined ? 0n : BigInt(row.balance);
  }

  /** Issue 15: credit of mints not yet settled on-chain; 0 for unknown accounts. */
  async getPendingBalance(accountId: string): Promise<bigint> {
    const res = await this.db.query<{ pending: string }>("SELECT pending::text AS pending FROM accounts WHERE account_id = $1", [accountId], "reading a balance");
    const row = res.rows[0];
    return row === undefined ? 0n : BigInt(row.pending);
  }

  /**
   * Issue 15/16: the ledger's side of a final settlement, run by the
   * PostgreSQL outbox inside the transaction that moves the settlement to
   * its final state. CONFIRMED: the credit moves from pending to available.
   * FAILED: the mint is reversed from the pending balance and its key freed,
   * as ReconcileMint does; a mint already reversed is left alone, so it
   * happens once however often the worker restarts.
   */
  settlementEffects(): SettlementEffects<pg.PoolClient> {
    return {
      // The mint before its settlement, as ReconcileMint locks them (a burn's id names no mint: nothing locked).
      lockFirst: async (client, settlementId) => {
        await client.query("SELECT 1 FROM mints WHERE mint_id = $1 FOR UPDATE", [settlementId]);
      },
      confirmed: async (client, s) => {
        if (s.kind === "burn") return this.burnConfirmed(client, s);
        const moved = await client.query<{ account_id: string }>(
          `WITH m AS (UPDATE mints SET pending = false WHERE mint_id = $1 AND pending RETURNING account_id, amount)
           UPDATE accounts AS a SET pending = a.pending - m.amount, balance = a.balance + m.amount FROM m WHERE a.account_id = m.account_id
           RETURNING a.account_id`,
          [s.settlementId],
        );
        const account = moved.rows[0]?.account_id;
        // Journaled in the outbox's transaction, with the worker as actor (a reversed mint moves nothing and records nothing).
        if (this.audit !== null && account !== undefined) {
          await appendJournal(client, unsealedRecord(settlementJournal("SettleMint", s), { mint_id: s.settlementId, state: "CONFIRMED" }, s.updateWallMs, [account]));
        }
      },
      failed: async (client, s, reason) => {
        if (s.kind === "burn") return this.burnFailed(client, s, reason);
        const found = await client.query<MintRow & { pending: boolean }>(`SELECT ${MINT_COLUMNS}, pending FROM mints WHERE mint_id = $1 FOR UPDATE`, [s.settlementId]);
        const row = found.rows[0];
        if (row === undefined || row.status === "REVERSED") return;
        const r = await this.reverseLocked(client, mintFromRow(row), row.pending, `settlement failed: ${reason}`, s.updateWallMs);
        assert(r.ok, `the failed settlement's mint ${s.settlementId} is reversed from its pending credit`);
        const m = r.value.mint;
        if (this.audit !== null) {
          await appendJournal(client, unsealedRecord(settlementJournal("FailMintSettlement", s), withAllowanceRefund(reversalResult(m), m, r.value.refunded), s.updateWallMs, [m.accountId]));
        }
      },
    };
  }

  /** Issue 16: a redemption's burn CONFIRMED: the debit happened with the redemption; only the journal records it. */
  private async burnConfirmed(client: pg.PoolClient, s: Settlement): Promise<void> {
    if (this.audit === null) return;
    const found = await client.query<{ account_id: string }>("SELECT account_id FROM redemptions WHERE redemption_id = $1", [s.settlementId]);
    const account = found.rows[0]?.account_id;
    if (account !== undefined) await appendJournal(client, unsealedRecord(settlementJournal(BURN_CONFIRMED_ACTION, s), { redemption_id: s.settlementId, state: "CONFIRMED" }, s.updateWallMs, [account]));
  }

  /**
   * Issue 16: a redemption's burn FAILED: on the outbox's transaction, the
   * redemption is marked re-credited (only if it is not yet: once), the
   * amount goes back to the account (frozen or not) with a
   * 'redemption_reversal' entry, supply rises again, and the journal records
   * it with the worker as actor. Lock order as everywhere: the redemption,
   * the account, then the supply row, one statement each.
   */
  private async burnFailed(client: pg.PoolClient, s: Settlement, reason: string): Promise<void> {
    const at = isoOfWallMs(s.updateWallMs);
    const marked = await client.query<RedemptionRow>(
      `UPDATE redemptions SET recredit_time = $2, recredit_reason = $3 WHERE redemption_id = $1 AND recredit_time IS NULL RETURNING ${REDEMPTION_COLUMNS}`,
      [s.settlementId, at, `settlement failed: ${reason}`],
    );
    const row = marked.rows[0];
    if (row === undefined) return;
    const r = redemptionFromRow(row);
    const credited = await client.query(
      `WITH a AS (UPDATE accounts SET balance = balance + $2::numeric WHERE account_id = $1 RETURNING 1)
       INSERT INTO ledger_entries (account_id, amount, kind, ref_id, created_at) SELECT $1, $2::numeric, 'redemption_reversal', $3, $4 FROM a`,
      [r.accountId, r.amountMicros.toString(), r.redemptionId, at],
    );
    assert(credited.rowCount === 1, `the account of redemption ${r.redemptionId} exists and was re-credited`);
    await client.query("UPDATE supply SET supply = supply + $1::numeric, updated_at = now() WHERE id = 1", [r.amountMicros.toString()]);
    if (this.audit !== null) await appendJournal(client, unsealedRecord(settlementJournal(BURN_FAILED_ACTION, s), redemptionRecreditResult(r), s.updateWallMs, [r.accountId]));
  }

  async getMint(mintId: string): Promise<MintRecord | null> {
    const res = await this.db.query<MintRow>(`SELECT ${MINT_COLUMNS} FROM mints WHERE mint_id = $1`, [mintId], "reading a mint");
    const row = res.rows[0];
    return row === undefined ? null : mintFromRow(row);
  }

  /**
   * Mints with `seq > afterSeq`, ascending, at most `limit` (capped at
   * LIST_MINTS_MAX_LIMIT), up to the feed's horizon (FEED_HORIZON_CTE): a
   * cursor never passes a mint that can still commit, so a poller never
   * skips one. Two round trips (the other databases' running ids first).
   * `ORDER BY mints.seq`, not `seq`: the bare name would pick the output
   * column `seq::text AS seq` and sort "10" before "9".
   */
  async listMints(query: ListMintsQuery): Promise<MintRecord[]> {
    const limit = Math.max(0, Math.min(Math.floor(query.limit), LIST_MINTS_MAX_LIMIT));
    if (limit === 0) return [];
    const others = await this.db.query<{ xids: string[] }>(OTHER_DATABASE_XIDS_SQL, [], "listing mints");
    const otherXids = others.rows[0]?.xids ?? [];
    if (query.status !== undefined) return this.listByStatus(query, query.status, limit, otherXids);
    const res =
      query.accountId === null
        ? await this.db.query<MintRow>(
            `${FEED_HORIZON_CTE} SELECT ${MINT_COLUMNS} FROM mints, h WHERE seq > $1 AND seq < h.limit_seq ORDER BY mints.seq LIMIT $2`,
            [query.afterSeq, limit, otherXids],
            "listing mints",
          )
        : await this.db.query<MintRow>(
            `${FEED_HORIZON_CTE} SELECT ${MINT_COLUMNS} FROM mints, h WHERE account_id = $4 AND seq > $1 AND seq < h.limit_seq ORDER BY mints.seq LIMIT $2`,
            [query.afterSeq, limit, otherXids, query.accountId],
            "listing mints",
          );
    return res.rows.map(mintFromRow);
  }

  /** ListMints filtered by status (issue 11), up to the same horizon. */
  private async listByStatus(query: ListMintsQuery, status: MintStatus, limit: number, otherXids: string[]): Promise<MintRecord[]> {
    const res = await this.db.query<MintRow>(
      `${FEED_HORIZON_CTE} SELECT ${MINT_COLUMNS} FROM mints, h WHERE status = $4 AND ($5::text IS NULL OR account_id = $5) AND seq > $1 AND seq < h.limit_seq ORDER BY mints.seq LIMIT $2`,
      [query.afterSeq, limit, otherXids, status, query.accountId],
      "listing mints",
    );
    return res.rows.map(mintFromRow);
  }

  close(): Promise<void> {
    return this.onClose();
  }

  /**
   * Runs `body` on the claim's open transaction under a savepoint, then
   * commits (ok) or rolls the whole transaction back (failure or throw). The
   * claim always ends here and its connection always goes back to the pool.
   */
  private async onClaim<T>(
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
}
