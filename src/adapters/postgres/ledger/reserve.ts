/** Reserve and supply in SQL: the reserve check of a supply rise, SetReserve and GetSupply. */
import { assert, type Failure } from "../../../domain/errors.js";
import { fail, ok, type Result } from "../../../domain/result.js";
import type { SupplyState } from "../../../domain/model.js";
import { reserveRefusal } from "../../../domain/reserve.js";
import { reserveResult, unsealedRecord } from "../../../domain/audit.js";
import type { JournalEntry } from "../../../domain/journal.js";
import { journalParams } from "../postgres-audit-journal.js";
import { sql, journaledWhen, type Statement } from "./statement.js";
import type { LedgerTx } from "./tx.js";
import { supplyFromRow, type SupplyRow } from "./rows.js";
import type pg from "pg";

/*
 * A frozen account row refuses the mint's credit (the mint statements' CTEs
 * write nothing when `acct` returns no row; ON CONFLICT DO UPDATE locks the
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
// What waits for approval is reported beside supply (the partial index mints_pending keeps it cheap).
const READ_SUPPLY_SQL = "SELECT supply::text AS supply, reserve::text AS reserve, attestation_ref, (SELECT COALESCE(SUM(amount), 0)::text FROM mints WHERE status = 'PENDING_APPROVAL') AS pending_approval FROM supply WHERE id = 1";

/** Sets the reserve while supply is at most it: one statement, under the supply row's lock. */
const SET_RESERVE: Statement = {
  ctes: [
    `u AS (
  UPDATE supply SET reserve = $1::numeric, attestation_ref = $2, updated_at = now() WHERE id = 1 AND supply <= $1::numeric
  RETURNING supply, reserve, attestation_ref
)`,
  ],
  final: "SELECT supply::text AS supply, reserve::text AS reserve, attestation_ref, (SELECT COALESCE(SUM(amount), 0)::text FROM mints WHERE status = 'PENDING_APPROVAL') AS pending_approval FROM u",
};
const SET_RESERVE_SQL = sql(SET_RESERVE);
const SET_RESERVE_JOURNALED_SQL = sql(journaledWhen(SET_RESERVE, 3, "u"));

/**
 * The reserve check of a supply rise, on the caller's open
 * transaction (after its account rows are locked): raises supply by
 * `amountMicros` when the reserve allows it and returns null, else returns
 * the refusal with nothing changed (the caller rolls back). The mint calls
 * it; so must the approval that completes a pending mint, in the
 * transaction that credits it. The supply row is the one hot spot: it is
 * locked from here to COMMIT, one round trip.
 */
export async function checkReserve(ledger: LedgerTx, client: pg.ClientBase, amountMicros: bigint, reserveRequired: boolean): Promise<Failure | null> {
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
 * One statement: the reserve is set only while supply is at most the new
 * reserve (evaluated under the supply row's lock, so no mint slips past).
 * Failures: RESERVE_EXCEEDED (nothing changed).
 */
export async function setReserve(ledger: LedgerTx, reserveMicros: bigint, attestationRef: string, entry: JournalEntry, _deadlineMs: number): Promise<Result<SupplyState>> {
  // The journal's row is inserted by the same statement, only when the reserve was set.
  const journal = ledger.audit === null ? [] : journalParams(unsealedRecord(entry, reserveResult(reserveMicros, attestationRef), ledger.db.clock.wallMs()));
  const res = await ledger.db.query<SupplyRow>(
    ledger.audit === null ? SET_RESERVE_SQL : SET_RESERVE_JOURNALED_SQL,
    [reserveMicros.toString(), attestationRef, ...journal],
    "setting the reserve",
  );
  if (res.rows[0] !== undefined) {
    if (journal.length > 0) ledger.audit?.kick();
    return ok(supplyFromRow(res.rows[0]));
  }
  const now = await getSupply(ledger, );
  return fail({
    code: "RESERVE_EXCEEDED",
    headroomMicros: now.headroomMicros ?? reserveMicros - now.supplyMicros,
    supplyMicros: now.supplyMicros,
    reserveMicros: now.reserveMicros ?? reserveMicros,
    requestedMicros: reserveMicros,
  });
}

export async function getSupply(ledger: LedgerTx): Promise<SupplyState> {
  const res = await ledger.db.query<SupplyRow>(READ_SUPPLY_SQL, [], "reading supply");
  return supplyFromRow(res.rows[0]);
}
