/** The ledger's side of a final settlement in SQL, run on the outbox's transaction. */
import { assert } from "../../../domain/errors.js";
import { isoOfWallMs } from "../postgres-idempotency-store.js";
import { BURN_CONFIRMED_ACTION, BURN_FAILED_ACTION, settlementJournal } from "../../../domain/settlement/ledger-rules.js";
import type { Settlement, SettlementEffects } from "../../../domain/settlement/ports.js";
import { withAllowanceRefund, redemptionRecreditResult, reversalResult, unsealedRecord } from "../../../domain/audit.js";
import { appendJournal } from "../postgres-audit-journal.js";
import type { LedgerTx } from "./tx.js";
import { MINT_COLUMNS, mintFromRow, REDEMPTION_COLUMNS, redemptionFromRow, type MintRow, type RedemptionRow } from "./rows.js";
import { reverseLocked } from "./reconcile.js";
import type pg from "pg";

/**
 * The ledger's side of a final settlement, run by the
 * PostgreSQL outbox inside the transaction that moves the settlement to
 * its final state. CONFIRMED: the credit moves from pending to available.
 * FAILED: the mint is reversed from the pending balance and its key freed,
 * as ReconcileMint does; a mint already reversed is left alone, so it
 * happens once however often the worker restarts.
 */
export function settlementEffects(ledger: LedgerTx): SettlementEffects<pg.PoolClient> {
  return {
    // The mint before its settlement, as ReconcileMint locks them (a burn's id names no mint: nothing locked).
    lockFirst: async (client, settlementId) => {
      await client.query("SELECT 1 FROM mints WHERE mint_id = $1 FOR UPDATE", [settlementId]);
    },
    confirmed: async (client, s) => {
      if (s.kind === "burn") return burnConfirmed(ledger, client, s);
      const moved = await client.query<{ account_id: string }>(
        `WITH m AS (UPDATE mints SET pending = false WHERE mint_id = $1 AND pending RETURNING account_id, amount)
         UPDATE accounts AS a SET pending = a.pending - m.amount, balance = a.balance + m.amount FROM m WHERE a.account_id = m.account_id
         RETURNING a.account_id`,
        [s.settlementId],
      );
      const account = moved.rows[0]?.account_id;
      // Journaled in the outbox's transaction, with the worker as actor (a reversed mint moves nothing and records nothing).
      if (ledger.audit !== null && account !== undefined) {
        await appendJournal(client, unsealedRecord(settlementJournal("SettleMint", s), { mint_id: s.settlementId, state: "CONFIRMED" }, s.updateWallMs, [account]));
      }
    },
    failed: async (client, s, reason) => {
      if (s.kind === "burn") return burnFailed(ledger, client, s, reason);
      const found = await client.query<MintRow & { pending: boolean }>(`SELECT ${MINT_COLUMNS}, pending FROM mints WHERE mint_id = $1 FOR UPDATE`, [s.settlementId]);
      const row = found.rows[0];
      if (row === undefined || row.status === "REVERSED") return;
      const r = await reverseLocked(ledger, client, mintFromRow(row), row.pending, `settlement failed: ${reason}`, s.updateWallMs);
      assert(r.ok, `the failed settlement's mint ${s.settlementId} is reversed from its pending credit`);
      const m = r.value.mint;
      if (ledger.audit !== null) {
        await appendJournal(client, unsealedRecord(settlementJournal("FailMintSettlement", s), withAllowanceRefund(reversalResult(m), m, r.value.refunded), s.updateWallMs, [m.accountId]));
      }
    },
  };
}

/** A redemption's burn CONFIRMED: the debit happened with the redemption; only the journal records it. */
export async function burnConfirmed(ledger: LedgerTx, client: pg.PoolClient, s: Settlement): Promise<void> {
  if (ledger.audit === null) return;
  const found = await client.query<{ account_id: string }>("SELECT account_id FROM redemptions WHERE redemption_id = $1", [s.settlementId]);
  const account = found.rows[0]?.account_id;
  if (account !== undefined) await appendJournal(client, unsealedRecord(settlementJournal(BURN_CONFIRMED_ACTION, s), { redemption_id: s.settlementId, state: "CONFIRMED" }, s.updateWallMs, [account]));
}

/**
 * A redemption's burn FAILED: on the outbox's transaction, the
 * redemption is marked re-credited (only if it is not yet: once), the
 * amount goes back to the account (frozen or not) with a
 * 'redemption_reversal' entry, supply rises again, and the journal records
 * it with the worker as actor. Lock order as everywhere: the redemption,
 * the account, then the supply row, one statement each.
 */
export async function burnFailed(ledger: LedgerTx, client: pg.PoolClient, s: Settlement, reason: string): Promise<void> {
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
  if (ledger.audit !== null) await appendJournal(client, unsealedRecord(settlementJournal(BURN_FAILED_ACTION, s), redemptionRecreditResult(r), s.updateWallMs, [r.accountId]));
}
