/** Transfer in SQL: both accounts locked in one statement, then one statement that moves the money. */
import { assert } from "../../../domain/errors.js";
import { fail, ok, type Result } from "../../../domain/result.js";
import type { NewTransfer, TransferRecord } from "../../../domain/model.js";
import type { IdempotencyClaim } from "../../../domain/ports.js";
import { asPgClaim } from "../pg-claim.js";
import { dbNowSql } from "../pg-database.js";
import { isoOfWallMs } from "../postgres-idempotency-store.js";
import { transferToJson } from "../stored-result-codec.js";
import { entryOfEffect, transferResult, unsealedRecord } from "../../../domain/audit.js";
import type { JournalEntry } from "../../../domain/journal.js";
import { journalParams } from "../postgres-audit-journal.js";
import { sql, journaled, type Statement } from "./statement.js";
import type { LedgerTx } from "./tx.js";

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

/** Debits the sender, credits the receiver (both locked), records the transfer and its entries. */
const TRANSFER_CTES = [
  `upd AS (
  UPDATE accounts AS a SET balance = a.balance + d.delta
  FROM (VALUES ($2::text, -$4::numeric), ($3::text, $4::numeric)) AS d (account_id, delta)
  WHERE a.account_id = d.account_id
  RETURNING 1
)`,
  `t AS (
  INSERT INTO transfers (transfer_id, from_account_id, to_account_id, amount, idempotency_key, create_time)
  VALUES ($1, $2, $3, $4, $5, $6)
  RETURNING 1
)`,
  `e AS (
  INSERT INTO ledger_entries (account_id, amount, kind, ref_id, created_at)
  VALUES ($2, -$4::numeric, 'transfer_out', $1, $6), ($3, $4::numeric, 'transfer_in', $1, $6)
  RETURNING 1
)`,
];

/** The key-result CTE of a transfer: `k` stores the key's result ($5 key, $7 result, $8 now, $9 TTL ms). */
const TRANSFER_KEY_RESULT_CTE = `k AS (
  UPDATE idempotency_keys SET state = 'completed', result = $7::jsonb,
    expires_at = ${dbNowSql(8)} + make_interval(secs => $9::float8 / 1000)
  WHERE scope = 'transfer' AND key = $5
  RETURNING 1
)`;

const TRANSFER: Statement = {
  ctes: [...TRANSFER_CTES, TRANSFER_KEY_RESULT_CTE],
  final: "SELECT (SELECT count(*) FROM upd)::int AS accounts, (SELECT count(*) FROM k)::int AS keys, (SELECT count(*) FROM t)::int AS transfers",
};
const TRANSFER_SQL = sql(TRANSFER);
const TRANSFER_JOURNALED_SQL = sql(journaled(TRANSFER, 10));

/**
 * Moves money on the claim's transaction and commits it with the key's
 * result. Failures: INSUFFICIENT_FUNDS, DEADLINE_EXCEEDED (both rolled
 * back: nothing changed, key free). Throws UnavailableError like `mint`.
 */
export async function transfer(ledger: LedgerTx, cmd: NewTransfer, claim: IdempotencyClaim, deadlineMs: number, entry?: JournalEntry): Promise<Result<TransferRecord>> {
  const c = asPgClaim(claim);
  assert(c.scope === "transfer" && c.key === cmd.idempotencyKey, "transfer runs on its own transfer-scope claim");
  assert(cmd.fromAccountId !== cmd.toAccountId, "transfer between two different accounts");
  const record: TransferRecord = { ...cmd };
  return ledger.onClaim(c, deadlineMs, "transferring", async (client) => {
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
    const journal = ledger.audit === null ? [] : journalParams(unsealedRecord(entry ?? entryOfEffect({ kind: "transfer", cmd }), transferResult(record), cmd.createWallMs));
    const res = await client.query<{ accounts: number; keys: number; transfers: number }>(ledger.audit === null ? TRANSFER_SQL : TRANSFER_JOURNALED_SQL, [
      cmd.transferId,
      cmd.fromAccountId,
      cmd.toAccountId,
      cmd.amountMicros.toString(),
      cmd.idempotencyKey,
      isoOfWallMs(cmd.createWallMs),
      JSON.stringify({ scope: "transfer", transfer: transferToJson(record) }),
      ledger.db.nowParam(),
      ledger.idempotencyTtlMs,
      ...journal,
    ]);
    const row = res.rows[0];
    assert(row !== undefined && row.accounts === 2 && row.keys === 1 && row.transfers === 1, "transfer wrote two accounts and its claimed key");
    return ok(record);
  });
}
