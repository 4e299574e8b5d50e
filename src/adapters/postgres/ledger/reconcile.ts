/** ReconcileMint in SQL: the reversal of a mint, shared with a failed settlement. */
import { assert } from "../../../domain/errors.js";
import { fail, ok, type Result } from "../../../domain/result.js";
import type { MintRecord } from "../../../domain/model.js";
import type { Lease } from "../pg-database.js";
import { isoOfWallMs } from "../postgres-idempotency-store.js";
import { settlementRefusal } from "../../../domain/settlement/ledger-rules.js";
import { cancelSettlement } from "../settlement-outbox.js";
import { withAllowanceRefund, LOCAL_ACTOR, reversalEntry, reversalResult, unsealedRecord } from "../../../domain/audit.js";
import type { JournalEntry } from "../../../domain/journal.js";
import { appendJournal } from "../postgres-audit-journal.js";
import type { LedgerTx, TxDecision } from "./tx.js";
import { MINT_COLUMNS, mintFromRow, type MintRow } from "./rows.js";
import { refundAllowance } from "./allowances.js";

/** A reversal's outcome: the mint, and whether its allowance charge went back (null: it charged none). */
export interface ReversedMint {
  readonly mint: MintRecord;
  readonly refunded: boolean | null;
}

const REVERSE_SQL = `
WITH e AS (
  INSERT INTO ledger_entries (account_id, amount, kind, ref_id, created_at)
  VALUES ($2, -$3::numeric, 'reversal', $1, $4)
  RETURNING 1
), s AS (
  -- Supply drops with the reversal (the account row is already
  -- locked by the debit, so the supply row comes last in the lock order).
  UPDATE supply SET supply = supply - $3::numeric, updated_at = now() WHERE id = 1
  RETURNING 1
)
UPDATE mints SET status = 'REVERSED', reverse_time = $4, reverse_reason = $5, pending = false
WHERE mint_id = $1
RETURNING ${MINT_COLUMNS}`;

/**
 * Reverses a completed mint in one transaction of its own: locks the mint,
 * frees its idempotency key (only if the key still holds this mint), debits
 * the account and appends a 'reversal' entry. Failures: MINT_NOT_FOUND,
 * MINT_ALREADY_REVERSED, INSUFFICIENT_FUNDS, DEADLINE_EXCEEDED (nothing
 * changed). Concurrent calls for one mint queue on its row: one reverses,
 * the others see REVERSED.
 */
export function reverseMint(ledger: LedgerTx, mintId: string, reason: string, wallMs: number, deadlineMs: number, signal?: AbortSignal, entry?: JournalEntry): Promise<Result<MintRecord>> {
  return ledger.ownTx(deadlineMs, signal, "reversing a mint", async (lease) => {
    const decision = await reverseBody(ledger, lease, mintId, reason, wallMs);
    if (!decision.ok) return decision;
    const { mint: m, refunded } = decision.value;
    if (ledger.audit !== null) {
      await appendJournal(lease.client, unsealedRecord(entry ?? reversalEntry(LOCAL_ACTOR, mintId, reason), withAllowanceRefund(reversalResult(m), m, refunded), wallMs, [m.accountId]));
    }
    return ok(m);
  });
}

export async function reverseBody(ledger: LedgerTx, lease: Lease, mintId: string, reason: string, wallMs: number): Promise<TxDecision<ReversedMint>> {
  const client = lease.client;
  // The settlement's state comes with the mint's lock (no extra
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
  return reverseLocked(ledger, client, mint, row.pending, reason, wallMs);
}

/**
 * Reverses `mint` (locked, COMPLETED): frees its key, gives its allowance
 * charge back (while no Set came since), debits the account (pending or
 * available), appends the entry.
 */
export async function reverseLocked(ledger: LedgerTx, client: Lease["client"], mint: MintRecord, pending: boolean, reason: string, wallMs: number): Promise<TxDecision<ReversedMint>> {
  const mintId = mint.mintId;
  // Freed before the account is locked, to keep the lock order (key row,
  // allowance row, account rows).
  await freeKey(ledger, client, mint);
  const refunded = await refundAllowance(ledger, client, mint);
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
 * Frees the mint's key, only if it still replays this mint: once expired it
 * may have been claimed again for a new mint, which keeps it.
 */
export async function freeKey(ledger: LedgerTx, client: Lease["client"], mint: MintRecord): Promise<void> {
  await client.query(
    "DELETE FROM idempotency_keys WHERE scope = 'mint' AND key = $1 AND state = 'completed' AND result->'mint'->>'mintId' = $2",
    [mint.idempotencyKey, mint.mintId],
  );
}
