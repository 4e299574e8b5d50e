/**
 * Checks of the audit journal against the ledger, for any test
 * that leaves a PostgreSQL database behind: every journal record matches a
 * ledger effect and every ledger effect has exactly one record.
 */
import { expect } from "vitest";
import type { TestDatabase } from "./pg-test-database.js";

interface JournalRow {
  seq: string | null;
  action: string;
  request: string;
  result: string;
}

/** The ledger effects as (kind, ref id, account, amount), one string each, sorted. */
export async function ledgerEffects(db: TestDatabase): Promise<string[]> {
  const res = await db.query<{ kind: string; ref_id: string; account_id: string; amount: string }>(
    "SELECT kind, ref_id, account_id, amount::text AS amount FROM ledger_entries",
  );
  return res.rows.map((r) => `${r.kind} ${r.ref_id} ${r.account_id} ${r.amount}`).sort();
}

/** The ledger effects the journal's records say happened, in the same form. */
export async function journalEffects(db: TestDatabase): Promise<{ effects: string[]; records: number; unsealed: number }> {
  const res = await db.query<JournalRow>("SELECT seq::text AS seq, action, request, result FROM audit_journal");
  const effects: string[] = [];
  for (const row of res.rows) {
    const req = JSON.parse(row.request) as Record<string, string>;
    const out = JSON.parse(row.result) as Record<string, string>;
    switch (row.action) {
      case "MintUsdc":
        // A mint accepted PENDING_APPROVAL credits nothing until its completing approval.
        if (out.status !== "PENDING_APPROVAL") effects.push(`mint ${out.mint_id} ${req.account_id} ${req.amount}`);
        break;
      case "ApproveMint":
        // Only the approval that completes the mint credits it; the others only count.
        if (out.status === "COMPLETED") effects.push(`mint ${out.mint_id} ${out.account_id} ${out.amount}`);
        break;
      case "RejectMint":
      case "ExpireMint":
      case "SetMinterAllowance":
      case "SettleMint":
        // No ledger entry: a pending mint is rejected before any credit; an allowance is not money; settling moves pending to available.
        break;
      case "FailMintSettlement":
        effects.push(`reversal ${out.mint_id} ${out.account_id} -${out.amount}`);
        break;
      // A redemption's burn confirmed moves nothing; a failed one credits the amount back.
      case "SettleRedemption":
        break;
      case "FailRedemptionSettlement":
        effects.push(`redemption_reversal ${out.redemption_id} ${out.account_id} ${out.amount}`);
        break;
      case "Transfer":
        effects.push(`transfer_out ${out.transfer_id} ${req.from_account_id} -${req.amount}`);
        effects.push(`transfer_in ${out.transfer_id} ${req.to_account_id} ${req.amount}`);
        break;
      case "ReconcileMint":
        effects.push(`reversal ${out.mint_id} ${out.account_id} -${out.amount}`);
        break;
      // A redemption is a ledger effect; reserve changes and freezes are not.
      case "RedeemUsdc":
        effects.push(`redemption ${out.redemption_id} ${req.account_id} -${req.amount}`);
        break;
      case "SetReserve":
      case "FreezeAccount":
      case "UnfreezeAccount":
        break;
      default:
        throw new Error(`unexpected journal action ${row.action}`);
    }
  }
  return { effects: effects.sort(), records: res.rows.length, unsealed: res.rows.filter((r) => r.seq === null).length };
}

/** Every record matches a ledger effect and vice versa; returns the number of records. */
export async function expectJournalMatchesLedger(db: TestDatabase): Promise<number> {
  const [ledger, journal] = await Promise.all([ledgerEffects(db), journalEffects(db)]);
  expect(journal.effects).toEqual(ledger);
  return journal.records;
}

/** Seq numbers 1..n without gaps or duplicates, and nothing left unsealed. */
export async function expectSealedWithoutGaps(db: TestDatabase): Promise<number> {
  const res = await db.query<{ n: number; sealed: number; lo: string | null; hi: string | null; distinct_seq: number }>(
    "SELECT count(*)::int AS n, count(seq)::int AS sealed, min(seq)::text AS lo, max(seq)::text AS hi, count(DISTINCT seq)::int AS distinct_seq FROM audit_journal",
  );
  const r = res.rows[0]!;
  expect({ unsealed: r.n - r.sealed, lo: r.lo, hi: r.hi, distinct: r.distinct_seq }).toEqual({
    unsealed: 0,
    lo: r.n === 0 ? null : "1",
    hi: r.n === 0 ? null : String(r.n),
    distinct: r.n,
  });
  return r.n;
}

/** The ledger effects of a memory ledger's entries, in the form of `ledgerEffects`. */
export function memoryLedgerEffects(entries: readonly { kind: string; refId: string; accountId: string; amountMicros: bigint }[]): string[] {
  return entries.map((e) => `${e.kind} ${e.refId} ${e.accountId} ${e.amountMicros}`).sort();
}

/** The ledger effects a list of journal records says happened. */
export function recordEffects(records: readonly { action: string; request: Readonly<Record<string, unknown>>; result: Readonly<Record<string, unknown>> }[]): string[] {
  const out: string[] = [];
  for (const r of records) {
    const req = r.request as Record<string, string>;
    const res = r.result as Record<string, string>;
    if (r.action === "MintUsdc") out.push(`mint ${res.mint_id} ${req.account_id} ${req.amount}`);
    else if (r.action === "Transfer") out.push(`transfer_out ${res.transfer_id} ${req.from_account_id} -${req.amount}`, `transfer_in ${res.transfer_id} ${req.to_account_id} ${req.amount}`);
    else if (r.action === "ReconcileMint") out.push(`reversal ${res.mint_id} ${res.account_id} -${res.amount}`);
    else if (r.action === "RedeemUsdc") out.push(`redemption ${res.redemption_id} ${req.account_id} -${req.amount}`);
    else if (r.action === "FailRedemptionSettlement") out.push(`redemption_reversal ${res.redemption_id} ${res.account_id} ${res.amount}`);
    else if (r.action === "SetReserve" || r.action === "FreezeAccount" || r.action === "UnfreezeAccount") continue;
    else throw new Error(`unexpected journal action ${r.action}`);
  }
  return out.sort();
}
