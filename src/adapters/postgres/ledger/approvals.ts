/** M-of-N approval in SQL: ApproveMint, RejectMint and the expiry of pending mints, each under the mint's row lock. */
import { fail, ok, type Result } from "../../../domain/result.js";
import { decideApproval, decideRejection, type MintRecord } from "../../../domain/model.js";
import type { Lease } from "../pg-database.js";
import { isoOfWallMs } from "../postgres-idempotency-store.js";
import { approvalResult, withAllowanceRefund, unsealedRecord } from "../../../domain/audit.js";
import type { JournalEntry } from "../../../domain/journal.js";
import { appendJournal } from "../postgres-audit-journal.js";
import type { LedgerTx } from "./tx.js";
import { MINT_COLUMNS, mintFromRow, type MintRow } from "./rows.js";
import { creditSettling } from "./mint.js";
import { checkReserve } from "./reserve.js";
import { freeKey } from "./reconcile.js";
import { refundAllowance } from "./allowances.js";

/**
 * Records an approval in a transaction of its own, under the mint's row
 * lock: racing approvals of one mint queue on it, so exactly one sees the
 * last missing approval and credits the account.
 */
export function approveMint(ledger: LedgerTx, mintId: string, approver: string, wallMs: number, journal: JournalEntry, settle: boolean, deadlineMs: number, signal?: AbortSignal, reserveRequired = false): Promise<Result<MintRecord>> {
  return ledger.ownTx(deadlineMs, signal, "approving a mint", async (lease) => {
    const mint = await lockMint(ledger, lease, mintId);
    if (mint === null) return fail({ code: "MINT_NOT_FOUND", mintId });
    const decided = decideApproval(mint, approver, wallMs);
    if (!decided.ok) return fail(decided.error);
    if (!decided.changed) return ok(decided.next);
    const next = decided.next;
    if (next.status === "COMPLETED") {
      // The completing approval credits, so it is refused (and
      // rolled back with the approval) on a frozen account. Lock order as
      // a mint's: mint row < account row < supply row (checkReserve below).
      const acct = await lease.client.query<{ frozen: boolean }>("SELECT frozen FROM accounts WHERE account_id = $1 FOR NO KEY UPDATE", [next.accountId]);
      if (acct.rows[0]?.frozen === true) return fail({ code: "ACCOUNT_FROZEN", accountId: next.accountId });
    }
    await lease.client.query("UPDATE mints SET status = $2, approval = $3::jsonb WHERE mint_id = $1", [mintId, next.status, JSON.stringify(next.approval)]);
    if (next.status === "COMPLETED") {
      // On a settling chain the credit is pending and the outbox row is written here, as MintUsdc's MINT_PENDING_SQL does.
      if (settle) await creditSettling(ledger, lease.client, next, wallMs);
      else await lease.client.query("UPDATE accounts SET balance = balance + $2::numeric WHERE account_id = $1", [next.accountId, next.amountMicros.toString()]);
      await lease.client.query("INSERT INTO ledger_entries (account_id, amount, kind, ref_id, created_at) VALUES ($1, $2, 'mint', $3, $4)", [
        next.accountId,
        next.amountMicros.toString(),
        mintId,
        isoOfWallMs(wallMs),
      ]);
      // Supply rises now, within the reserve, in this transaction.
      const refused = await checkReserve(ledger, lease.client, next.amountMicros, reserveRequired);
      if (refused !== null) return fail(refused);
    }
    if (ledger.audit !== null) await appendJournal(lease.client, unsealedRecord(journal, approvalResult(next), wallMs, [next.accountId]));
    return ok(next);
  });
}

/** Rejects a pending mint, gives its allowance charge back (while no Set came since) and frees its key, in one transaction. */
export function rejectMint(
  ledger: LedgerTx,
  mintId: string,
  reason: string,
  rejectedBy: string,
  wallMs: number,
  bySweeper: boolean,
  journal: JournalEntry,
  deadlineMs: number,
  signal?: AbortSignal,
): Promise<Result<MintRecord>> {
  return ledger.ownTx(deadlineMs, signal, "rejecting a mint", async (lease) => {
    const mint = await lockMint(ledger, lease, mintId);
    if (mint === null) return fail({ code: "MINT_NOT_FOUND", mintId });
    const decided = decideRejection(mint, reason, rejectedBy, wallMs, bySweeper);
    if (!decided.ok) return fail(decided.error);
    await freeKey(ledger, lease.client, mint);
    const refunded = await refundAllowance(ledger, lease.client, mint);
    await lease.client.query("UPDATE mints SET status = 'REJECTED', approval = $2::jsonb WHERE mint_id = $1", [mintId, JSON.stringify(decided.next.approval)]);
    if (ledger.audit !== null) await appendJournal(lease.client, unsealedRecord(journal, withAllowanceRefund(approvalResult(decided.next), decided.next, refunded), wallMs, [mint.accountId]));
    return ok(decided.next);
  });
}

/** Pending mints past their expiry at `wallMs`, oldest first. */
export async function expiredPending(ledger: LedgerTx, wallMs: number, limit: number): Promise<string[]> {
  const res = await ledger.db.query<{ mint_id: string }>(
    "SELECT mint_id FROM mints WHERE status = 'PENDING_APPROVAL' AND (approval->>'expireWallMs')::float8 <= $1 ORDER BY seq LIMIT $2",
    [wallMs, limit],
    "listing expired pending mints",
  );
  return res.rows.map((r) => r.mint_id);
}

export async function lockMint(ledger: LedgerTx, lease: Lease, mintId: string): Promise<MintRecord | null> {
  const found = await lease.client.query<MintRow>(`SELECT ${MINT_COLUMNS} FROM mints WHERE mint_id = $1 FOR UPDATE`, [mintId]);
  const row = found.rows[0];
  return row === undefined ? null : mintFromRow(row);
}
