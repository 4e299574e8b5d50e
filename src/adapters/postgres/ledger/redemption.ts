/** RedeemUsdc in SQL, and the redemption reads. */
import { assert } from "../../../domain/errors.js";
import { fail, ok, type Result } from "../../../domain/result.js";
import type { NewRedemption, RedemptionRecord } from "../../../domain/model.js";
import type { IdempotencyClaim, ListMintsQuery } from "../../../domain/ports.js";
import { asPgClaim } from "../pg-claim.js";
import { dbNowSql } from "../pg-database.js";
import { isoOfWallMs } from "../postgres-idempotency-store.js";
import { redemptionToJson } from "../stored-result-codec.js";
import { enqueueSettlement } from "../settlement-outbox.js";
import { redemptionResult, unsealedRecord } from "../../../domain/audit.js";
import type { JournalEntry } from "../../../domain/journal.js";
import { journalParams } from "../postgres-audit-journal.js";
import { sql, journaled, type Statement } from "./statement.js";
import type { LedgerTx } from "./tx.js";
import { LIST_MINTS_MAX_LIMIT, REDEMPTION_COLUMNS, redemptionFromRow, type RedemptionRow } from "./rows.js";

/** Debits the (locked, checked) account, records the redemption and its entry, stores the key's result. */
const REDEEM: Statement = {
  ctes: [
    `upd AS (
  UPDATE accounts SET balance = balance - $3::numeric WHERE account_id = $2 RETURNING 1
)`,
    `r AS (
  INSERT INTO redemptions (redemption_id, account_id, amount, blockchain, idempotency_key, actor, create_time)
  VALUES ($1, $2, $3, $4, $5, $6, $7)
  RETURNING 1
)`,
    `e AS (
  INSERT INTO ledger_entries (account_id, amount, kind, ref_id, created_at)
  VALUES ($2, -$3::numeric, 'redemption', $1, $7)
  RETURNING 1
)`,
    // The key-result CTE: $8 result, $9 now, $10 TTL ms, $11 the caller-scoped key.
    `k AS (
  UPDATE idempotency_keys SET state = 'completed', result = $8::jsonb,
    expires_at = ${dbNowSql(9)} + make_interval(secs => $10::float8 / 1000)
  WHERE scope = 'redeem' AND key = $11
  RETURNING 1
)`,
    `s AS (
  UPDATE supply SET supply = supply - $3::numeric, updated_at = now() WHERE id = 1
  RETURNING 1
)`,
  ],
  final: `SELECT (SELECT count(*) FROM upd)::int AS accounts, (SELECT count(*) FROM k)::int AS keys, (SELECT count(*) FROM r)::int AS redemptions,
  (SELECT count(*) FROM s)::int AS supply`,
};
const REDEEM_SQL = sql(REDEEM);
const REDEEM_JOURNALED_SQL = sql(journaled(REDEEM, 12));

/**
 * Redeems on the claim's transaction: locks the account, refuses a frozen
 * or short one, debits it, records the redemption, lowers supply and
 * commits with the key's result. Failures: ACCOUNT_FROZEN,
 * INSUFFICIENT_FUNDS, DEADLINE_EXCEEDED (rolled back: nothing changed).
 */
export async function redeem(ledger: LedgerTx, cmd: NewRedemption, claim: IdempotencyClaim, deadlineMs: number, entry: JournalEntry, settle = false): Promise<Result<RedemptionRecord>> {
  const c = asPgClaim(claim);
  assert(c.scope === "redeem", "redeem runs on its own redeem-scope claim");
  const record: RedemptionRecord = { ...cmd };
  return ledger.onClaim(c, deadlineMs, "redeeming", async (client) => {
    const locked = await client.query<{ balance: string; frozen: boolean }>(
      "SELECT balance::text AS balance, frozen FROM accounts WHERE account_id = $1 FOR NO KEY UPDATE",
      [cmd.accountId],
    );
    const acct = locked.rows[0];
    if (acct?.frozen === true) return fail({ code: "ACCOUNT_FROZEN", accountId: cmd.accountId });
    if (acct === undefined || BigInt(acct.balance) < cmd.amountMicros) return fail({ code: "INSUFFICIENT_FUNDS", accountId: cmd.accountId });
    const journal = ledger.audit === null ? [] : journalParams(unsealedRecord(entry, redemptionResult(record), cmd.createWallMs));
    const res = await client.query<{ accounts: number; keys: number; redemptions: number; supply: number }>(ledger.audit === null ? REDEEM_SQL : REDEEM_JOURNALED_SQL, [
      cmd.redemptionId,
      cmd.accountId,
      cmd.amountMicros.toString(),
      cmd.blockchain,
      cmd.idempotencyKey,
      cmd.actor,
      isoOfWallMs(cmd.createWallMs),
      JSON.stringify({ scope: "redeem", redemption: redemptionToJson(record) }),
      ledger.db.nowParam(),
      ledger.idempotencyTtlMs,
      c.key,
      ...journal,
    ]);
    const row = res.rows[0];
    assert(row !== undefined && row.accounts === 1 && row.keys === 1 && row.redemptions === 1 && row.supply === 1, "redemption wrote one account, its record, its claimed key and supply");
    // On a settling chain the burn's outbox row commits with the debit (one more statement, same transaction).
    if (settle) await enqueueSettlement(client, { settlementId: cmd.redemptionId, kind: "burn", blockchain: cmd.blockchain, amountMicros: cmd.amountMicros, createWallMs: cmd.createWallMs });
    return ok(record);
  });
}

export async function getRedemption(ledger: LedgerTx, redemptionId: string): Promise<RedemptionRecord | null> {
  const res = await ledger.db.query<RedemptionRow>(`SELECT ${REDEMPTION_COLUMNS} FROM redemptions WHERE redemption_id = $1`, [redemptionId], "reading a redemption");
  const row = res.rows[0];
  return row === undefined ? null : redemptionFromRow(row);
}

/** Redemptions by seq (a bigserial: a page may miss one committing late; the list is for reading, not a feed). */
export async function listRedemptions(ledger: LedgerTx, query: ListMintsQuery): Promise<{ redemption: RedemptionRecord; seq: number }[]> {
  const limit = Math.max(0, Math.min(Math.floor(query.limit), LIST_MINTS_MAX_LIMIT));
  const res = await ledger.db.query<RedemptionRow>(
    `SELECT ${REDEMPTION_COLUMNS} FROM redemptions WHERE seq > $1 AND ($3::text IS NULL OR account_id = $3) ORDER BY redemptions.seq LIMIT $2`,
    [query.afterSeq, limit, query.accountId],
    "listing redemptions",
  );
  return res.rows.map((r) => ({ redemption: redemptionFromRow(r), seq: Number(r.seq) }));
}
