/** FreezeAccount and UnfreezeAccount in SQL. */
import { assert } from "../../../domain/errors.js";
import { ok, type Result } from "../../../domain/result.js";
import type { AccountState } from "../../../domain/model.js";
import { freezeResult, unsealedRecord } from "../../../domain/audit.js";
import type { JournalEntry } from "../../../domain/journal.js";
import { journalParams } from "../postgres-audit-journal.js";
import { sql, journaled, type Statement } from "./statement.js";
import type { LedgerTx } from "./tx.js";

/** Freezes or unfreezes an account, creating its row when new (so the row lock orders it against calls in flight). */
const SET_FROZEN: Statement = {
  ctes: [
    `f AS (
  INSERT INTO accounts AS a (account_id, balance, frozen, freeze_reason) VALUES ($1, 0, $2, $3)
  ON CONFLICT (account_id) DO UPDATE SET frozen = EXCLUDED.frozen, freeze_reason = EXCLUDED.freeze_reason
  RETURNING balance
)`,
  ],
  final: "SELECT balance::text AS balance FROM f",
};
const SET_FROZEN_SQL = sql(SET_FROZEN);
const SET_FROZEN_JOURNALED_SQL = sql(journaled(SET_FROZEN, 4));

/**
 * One statement that takes the account row's lock (creating the row for
 * an account not seen yet): it waits for every transaction in flight on
 * the account, so each of them committed before the freeze or sees it.
 */
export async function setFrozen(ledger: LedgerTx, accountId: string, frozen: boolean, reason: string, entry: JournalEntry, _deadlineMs: number): Promise<Result<AccountState>> {
  // The journal's row is inserted by the same statement (it always writes the account row).
  const journal = ledger.audit === null ? [] : journalParams(unsealedRecord(entry, freezeResult(accountId, frozen), ledger.db.clock.wallMs()));
  const res = await ledger.db.query<{ balance: string }>(
    ledger.audit === null ? SET_FROZEN_SQL : SET_FROZEN_JOURNALED_SQL,
    [accountId, frozen, frozen ? reason : "", ...journal],
    frozen ? "freezing an account" : "unfreezing an account",
  );
  const row = res.rows[0];
  assert(row !== undefined, "the account row was written");
  if (journal.length > 0) ledger.audit?.kick();
  return ok({ accountId, balanceMicros: BigInt(row.balance), frozen, freezeReason: frozen ? reason : "" });
}
