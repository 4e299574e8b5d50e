/** Minter allowances in SQL: read, set (final, with its generation) and given back. */
import { fail, ok, type Result } from "../../../domain/result.js";
import type { MintRecord } from "../../../domain/model.js";
import type { Lease } from "../pg-database.js";
import { unsealedRecord } from "../../../domain/audit.js";
import type { JournalEntry } from "../../../domain/journal.js";
import { appendJournal } from "../postgres-audit-journal.js";
import { recordAllowanceSet } from "../ledger-events.js";
import type { LedgerTx } from "./tx.js";

export async function getAllowance(ledger: LedgerTx, principal: string): Promise<bigint> {
  const res = await ledger.db.query<{ remaining: string }>("SELECT remaining::text AS remaining FROM minter_allowances WHERE principal = $1", [principal], "reading an allowance");
  return BigInt(res.rows[0]?.remaining ?? "0");
}

/**
 * Sets the allowance, starts its next generation and journals it in one
 * transaction of its own, under the allowance row's lock (created first
 * when missing, so a compare-and-set on a never-set allowance is exact
 * too). Failures: ALLOWANCE_CHANGED (`expectedMicros` is not what is left).
 */
export async function setAllowance(ledger: LedgerTx, principal: string, amountMicros: bigint, journal: JournalEntry, wallMs: number, deadlineMs: number, expectedMicros?: bigint): Promise<Result<void>> {
  return ledger.ownTx(deadlineMs, undefined, "setting an allowance", async (lease) => {
    await lease.client.query("INSERT INTO minter_allowances (principal, remaining) VALUES ($1, 0) ON CONFLICT (principal) DO NOTHING", [principal]);
    const locked = await lease.client.query<{ remaining: string }>("SELECT remaining::text AS remaining FROM minter_allowances WHERE principal = $1 FOR UPDATE", [principal]);
    const remainingMicros = BigInt(locked.rows[0]?.remaining ?? "0");
    if (expectedMicros !== undefined && remainingMicros !== expectedMicros) return fail({ code: "ALLOWANCE_CHANGED", principal, remainingMicros, expectedMicros });
    await lease.client.query("UPDATE minter_allowances SET remaining = $2::numeric, generation = generation + 1 WHERE principal = $1", [principal, amountMicros.toString()]);
    if (ledger.audit !== null) await appendJournal(lease.client, unsealedRecord(journal, { allowance: amountMicros.toString(), principal }, wallMs));
    await recordAllowanceSet(lease.client, principal, amountMicros, wallMs);
    return ok(undefined);
  });
}

/**
 * Gives a rejected or reversed mint's allowance charge back, only while the
 * generation it was taken from is current (no Set since: a Set is final).
 * Null when the mint charged nothing, else whether it was given back.
 */
export async function refundAllowance(ledger: LedgerTx, client: Lease["client"], mint: MintRecord): Promise<boolean | null> {
  if (mint.allowanceCharged !== true || mint.requester === undefined) return null;
  const given = await client.query(
    `UPDATE minter_allowances AS a SET remaining = a.remaining + $2::numeric
     FROM mints AS m WHERE a.principal = $1 AND m.mint_id = $3 AND a.generation = m.allowance_generation`,
    [mint.requester, mint.amountMicros.toString(), mint.mintId],
  );
  return given.rowCount === 1;
}
