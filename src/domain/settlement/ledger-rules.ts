/**
 * What both stores (memory and PostgreSQL) decide the same way about a mint's
 * settlement: ReconcileMint's answer for each settlement state, and the
 * journal entry of a settlement outcome.
 */
import type { Failure } from "../errors.js";
import type { JournalEntry } from "../journal.js";
import type { Settlement } from "./ports.js";

/** What ReconcileMint answers for a settlement found in `state` (null: go on reversing). */
export function settlementRefusal(mintId: string, state: string): Failure | null {
  switch (state) {
    case "SUBMITTED":
      return { code: "MINT_SETTLEMENT_IN_FLIGHT", mintId };
    case "CONFIRMED":
      return { code: "MINT_SETTLED", mintId };
    case "FAILED":
      return { code: "MINT_ALREADY_REVERSED", mintId };
    default:
      // PENDING (cancelled now) or MISSING (never settling): reverse as always.
      return null;
  }
}

/** The journal entry of a settlement outcome, with the worker as actor (a burn names its redemption). */
export function settlementJournal(action: string, s: Settlement): JournalEntry {
  const id: Record<string, string> = s.kind === "burn" ? { redemption_id: s.settlementId } : { mint_id: s.settlementId };
  return {
    actor: "settlement-worker",
    action,
    idempotencyKey: null,
    request: { ...id, blockchain: s.blockchain, amount: s.amountMicros.toString(), tx_hash: s.minedHash, state: s.state },
    accounts: [],
  };
}

/** The journal actions of a burn's outcome (a mint's are SettleMint and FailMintSettlement). */
export const BURN_CONFIRMED_ACTION = "SettleRedemption";
export const BURN_FAILED_ACTION = "FailRedemptionSettlement";
