/** MintUsdc in SQL: the plain, settling and tracked (approval, allowance) mint statements, and GetMint. */
import { assert } from "../../../domain/errors.js";
import { fail, ok, type Result } from "../../../domain/result.js";
import { completedMint, type MintRecord, type NewMint } from "../../../domain/model.js";
import type { IdempotencyClaim } from "../../../domain/ports.js";
import { asPgClaim, type PgClaim } from "../pg-claim.js";
import { dbNowSql, type Lease } from "../pg-database.js";
import { isoOfWallMs } from "../postgres-idempotency-store.js";
import { mintToJson } from "../stored-result-codec.js";
import { entryOfEffect, mintResult, unsealedRecord } from "../../../domain/audit.js";
import type { JournalEntry } from "../../../domain/journal.js";
import { appendJournal, journalParams } from "../postgres-audit-journal.js";
import { sql, journaled, type Statement } from "./statement.js";
import type { LedgerTx } from "./tx.js";
import { MINT_COLUMNS, mintFromRow, type MintRow } from "./rows.js";
import { checkReserve } from "./reserve.js";

/**
 * The key-result CTE shared by the three mint statements below: `k` stores
 * the key's result with the mint's `seq` filled in ($5 key, $7 result, $8
 * now, $9 TTL ms).
 */
const MINT_KEY_RESULT_CTE = `k AS (
  UPDATE idempotency_keys AS k
  SET state = 'completed', result = jsonb_set($7::jsonb, '{mint,seq}', to_jsonb(m.seq)),
    expires_at = ${dbNowSql(8)} + make_interval(secs => $9::float8 / 1000)
  FROM m
  WHERE k.scope = 'mint' AND k.key = $5
  RETURNING 1
)`;
/** The answer's columns (the caller asserts one key and one account). */
const MINT_RESULT_COLUMNS = "SELECT m.seq::text AS seq, (SELECT count(*) FROM k)::int AS keys, (SELECT count(*) FROM acct)::int AS accounts";

/** The account's credit (creating the account); a frozen account returns no row, so nothing below writes. */
const CREDIT_CTE = `acct AS (
  INSERT INTO accounts AS a (account_id, balance) VALUES ($2, $3)
  ON CONFLICT (account_id) DO UPDATE SET balance = a.balance + EXCLUDED.balance
  WHERE NOT a.frozen
  RETURNING 1
)`;

/** The mint's ledger entry, written when the account was credited. */
const MINT_ENTRY_CTE = `e AS (
  INSERT INTO ledger_entries (account_id, amount, kind, ref_id, created_at)
  SELECT $2, $3, 'mint', $1, $6 FROM acct
  RETURNING 1
)`;

/**
 * A mint with the approval and allowance columns: PENDING_APPROVAL ($10) credits nothing
 * ($13 = 0, no ledger entry), COMPLETED credits like MINT. $15 is the
 * allowance generation the charge was taken from (0 when none). Only mints
 * with a requester (approvals or allowances on) take this statement; the
 * plain MINT stays the hot path otherwise.
 */
const TRACKED_MINT: Statement = {
  ctes: [
    `acct AS (
  INSERT INTO accounts AS a (account_id, balance) VALUES ($2, $13::numeric)
  ON CONFLICT (account_id) DO UPDATE SET balance = a.balance + EXCLUDED.balance
  WHERE NOT a.frozen
  RETURNING 1
)`,
    `m AS (
  INSERT INTO mints (mint_id, account_id, amount, blockchain, status, idempotency_key, create_time, requester, allowance_charged, approval, allowance_generation)
  SELECT $1, $2, $3, $4, $10, $5, $6, $11, $12, $14::jsonb, $15::bigint FROM acct
  RETURNING seq
)`,
    `e AS (
  INSERT INTO ledger_entries (account_id, amount, kind, ref_id, created_at)
  SELECT $2, $3, 'mint', $1, $6 WHERE $10 = 'COMPLETED'
  RETURNING 1
)`,
    MINT_KEY_RESULT_CTE,
  ],
  final: `${MINT_RESULT_COLUMNS} FROM m`,
};
const TRACKED_MINT_SQL = sql(TRACKED_MINT);

/**
 * Applies a mint: credits the account (creating it), records the mint and
 * its ledger entry, and stores the key's result with `seq` filled in, all in
 * one statement. Data-modifying CTEs always run to completion.
 */
const MINT: Statement = {
  ctes: [
    CREDIT_CTE,
    `m AS (
  INSERT INTO mints (mint_id, account_id, amount, blockchain, status, idempotency_key, create_time)
  SELECT $1, $2, $3, $4, 'COMPLETED', $5, $6 FROM acct
  RETURNING seq
)`,
    MINT_ENTRY_CTE,
    MINT_KEY_RESULT_CTE,
  ],
  final: `${MINT_RESULT_COLUMNS} FROM m`,
};

/**
 * A mint on a chain that settles on-chain: the credit goes to the
 * account's pending balance and the settlement's outbox row is written in the
 * same statement (so in the same transaction, in commit order).
 */
const MINT_PENDING: Statement = {
  ctes: [
    `acct AS (
  INSERT INTO accounts AS a (account_id, balance, pending) VALUES ($2, 0, $3)
  ON CONFLICT (account_id) DO UPDATE SET pending = a.pending + EXCLUDED.pending
  WHERE NOT a.frozen
  RETURNING 1
)`,
    `m AS (
  INSERT INTO mints (mint_id, account_id, amount, blockchain, status, idempotency_key, create_time, pending)
  SELECT $1, $2, $3, $4, 'COMPLETED', $5, $6, true FROM acct
  RETURNING seq
)`,
    `st AS (
  INSERT INTO settlements (settlement_id, kind, blockchain, amount, state, create_time, update_time)
  SELECT $1, 'mint', $4, $3, 'PENDING', $6, $6 FROM acct
  RETURNING 1
)`,
    MINT_ENTRY_CTE,
    MINT_KEY_RESULT_CTE,
  ],
  final: `${MINT_RESULT_COLUMNS},
  (SELECT count(*) FROM st)::int AS settlements FROM m`,
};

const MINT_SQL = sql(MINT);
const MINT_JOURNALED_SQL = sql(journaled(MINT, 10));
const MINT_PENDING_SQL = sql(MINT_PENDING);
const MINT_PENDING_JOURNALED_SQL = sql(journaled(MINT_PENDING, 10));

/**
 * Credits a mint on the claim's transaction and commits it with the key's
 * result. Failures: DEADLINE_EXCEEDED (rolled back: nothing applied, key
 * free). Throws UnavailableError when PostgreSQL cannot be reached or the
 * commit's outcome is unknown (a retry with the same key replays or applies).
 */
export async function mint(ledger: LedgerTx, cmd: NewMint, claim: IdempotencyClaim, deadlineMs: number, reserveRequired = false, entry?: JournalEntry): Promise<Result<MintRecord>> {
  const c = asPgClaim(claim);
  assert(c.scope === "mint" && c.key === cmd.idempotencyKey, "mint runs on its own mint-scope claim");
  const record = completedMint(cmd, 0);
  if (cmd.requester !== undefined) return trackedMint(ledger, cmd, record, c, deadlineMs, reserveRequired, entry);
  return ledger.onClaim(c, deadlineMs, "minting", async (client) => {
    const journal = ledger.audit === null ? [] : journalParams(unsealedRecord(entry ?? entryOfEffect({ kind: "mint", cmd }), mintResult(record), cmd.createWallMs));
    const statement = cmd.settle === true ? (ledger.audit === null ? MINT_PENDING_SQL : MINT_PENDING_JOURNALED_SQL) : ledger.audit === null ? MINT_SQL : MINT_JOURNALED_SQL;
    const res = await client.query<{ seq: string; keys: number; accounts: number; settlements?: number }>(statement, [
      cmd.mintId,
      cmd.accountId,
      cmd.amountMicros.toString(),
      cmd.blockchain,
      cmd.idempotencyKey,
      isoOfWallMs(cmd.createWallMs),
      JSON.stringify({ scope: "mint", mint: mintToJson(record) }),
      ledger.db.nowParam(),
      ledger.idempotencyTtlMs,
      ...journal,
    ]);
    const row = res.rows[0];
    // No row when the account is frozen (its credit refused; the rollback undoes the journal's row too).
    if (row === undefined) return fail({ code: "ACCOUNT_FROZEN", accountId: cmd.accountId });
    assert(row.keys === 1 && row.accounts === 1, "mint wrote one account and its claimed key");
    assert(cmd.settle !== true || row.settlements === 1, "a settling mint wrote its outbox row");
    // Every variant raises supply, a settling one too (its
    // pending credit is in circulation until a failed settlement reverses it).
    const refused = await checkReserve(ledger, client, cmd.amountMicros, reserveRequired);
    if (refused !== null) return fail(refused);
    return ok({ ...record, seq: Number(row.seq) });
  });
}

/** A mint with a requester: charges the allowance first, then TRACKED_MINT_SQL, on the claim's transaction. */
export function trackedMint(ledger: LedgerTx, cmd: NewMint, record: MintRecord, c: PgClaim, deadlineMs: number, reserveRequired: boolean, entry: JournalEntry | undefined): Promise<Result<MintRecord>> {
  // A completed mint on a settling chain credits pending (creditSettling), not the balance.
  const settling = cmd.settle === true && record.status === "COMPLETED";
  const requester = cmd.requester as string;
  return ledger.onClaim(c, deadlineMs, "minting", async (client) => {
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
      ledger.db.nowParam(),
      ledger.idempotencyTtlMs,
      record.status,
      requester,
      cmd.chargeAllowance === true,
      record.status === "COMPLETED" && !settling ? cmd.amountMicros.toString() : "0",
      record.approval === undefined ? null : JSON.stringify(record.approval),
      generation,
    ]);
    const row = res.rows[0];
    // No row when the account is frozen (a pending mint too: the account may not receive); the rollback undoes the allowance.
    if (row === undefined) return fail({ code: "ACCOUNT_FROZEN", accountId: cmd.accountId });
    assert(row.keys === 1 && row.accounts === 1, "mint wrote one account and its claimed key");
    if (settling) await creditSettling(ledger, client, record, cmd.createWallMs);
    // A completed mint raises supply; a pending one does when its approval completes it.
    if (record.status === "COMPLETED") {
      const refused = await checkReserve(ledger, client, cmd.amountMicros, reserveRequired);
      if (refused !== null) return fail(refused);
    }
    if (ledger.audit !== null) await appendJournal(client, unsealedRecord(entry ?? entryOfEffect({ kind: "mint", cmd }), mintResult(record), cmd.createWallMs));
    return ok({ ...record, seq: Number(row.seq) });
  });
}

/**
 * On-chain settlement of a mint completed outside MINT_PENDING_SQL (approval, or a
 * tracked mint): its credit goes to the pending balance, the mint is marked
 * pending and its settlement's outbox row is written, on `client`'s
 * transaction.
 */
export async function creditSettling(ledger: LedgerTx, client: Lease["client"], m: MintRecord, wallMs: number): Promise<void> {
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

export async function getMint(ledger: LedgerTx, mintId: string): Promise<MintRecord | null> {
  const res = await ledger.db.query<MintRow>(`SELECT ${MINT_COLUMNS} FROM mints WHERE mint_id = $1`, [mintId], "reading a mint");
  const row = res.rows[0];
  return row === undefined ? null : mintFromRow(row);
}
