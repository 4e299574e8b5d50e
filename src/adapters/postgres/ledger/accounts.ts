/** Account reads in SQL: balance, pending credit and state. */
import type { AccountState } from "../../../domain/model.js";
import type { LedgerTx } from "./tx.js";

const ACCOUNT_STATE_SQL = "SELECT balance::text AS balance, frozen, freeze_reason FROM accounts WHERE account_id = $1";

export async function getAccount(ledger: LedgerTx, accountId: string): Promise<AccountState> {
  const res = await ledger.db.query<{ balance: string; frozen: boolean; freeze_reason: string }>(ACCOUNT_STATE_SQL, [accountId], "reading an account");
  const row = res.rows[0];
  return row === undefined
    ? { accountId, balanceMicros: 0n, frozen: false, freezeReason: "" }
    : { accountId, balanceMicros: BigInt(row.balance), frozen: row.frozen, freezeReason: row.freeze_reason };
}

/** Current balance in micro-USDC; 0 for unknown accounts. Throws UnavailableError when PostgreSQL cannot be reached. */
export async function getBalance(ledger: LedgerTx, accountId: string): Promise<bigint> {
  const res = await ledger.db.query<{ balance: string }>(
    "SELECT balance::text AS balance FROM accounts WHERE account_id = $1",
    [accountId],
    "reading a balance",
  );
  const row = res.rows[0];
  return row === undefined ? 0n : BigInt(row.balance);
}

/** Credit of mints not yet settled on-chain; 0 for unknown accounts. */
export async function getPendingBalance(ledger: LedgerTx, accountId: string): Promise<bigint> {
  const res = await ledger.db.query<{ pending: string }>("SELECT pending::text AS pending FROM accounts WHERE account_id = $1", [accountId], "reading a balance");
  const row = res.rows[0];
  return row === undefined ? 0n : BigInt(row.pending);
}
