/**
 * Balances and the append-only ledger in PostgreSQL: the `LedgerStore` port,
 * one SQL module per feature under `ledger/` (mint, feed, transfer,
 * reconcile, approvals, allowances, reserve, redemption, freeze, accounts,
 * settlement-effects), on the transaction machinery of `ledger/tx.ts`.
 *
 * `mint`, `transfer` and `redeem` run on the transaction of their
 * idempotency claim and end it: on success they write the key's result and
 * COMMIT, so the key and the ledger change become visible together or not at
 * all; on a failure (INSUFFICIENT_FUNDS, DEADLINE_EXCEEDED, a thrown error)
 * they ROLLBACK at once, which frees the key and, above all, drops the
 * account row locks without waiting for the core to call `release` (which is
 * then a no-op). The lock order is documented in `ledger/tx.ts`.
 */
import type { Failure } from "../../domain/errors.js";
import type { JournalEntry } from "../../domain/journal.js";
import type { AccountState, MintRecord, NewMint, NewRedemption, NewTransfer, RedemptionRecord, SupplyState, TransferRecord } from "../../domain/model.js";
import type { IdempotencyClaim, LedgerStore, ListMintsQuery } from "../../domain/ports.js";
import type { Result } from "../../domain/result.js";
import type { SettlementEffects } from "../../domain/settlement/ports.js";
import type pg from "pg";
import { getAccount, getBalance, getPendingBalance } from "./ledger/accounts.js";
import { getAllowance, setAllowance } from "./ledger/allowances.js";
import { approveMint, expiredPending, rejectMint } from "./ledger/approvals.js";
import { listMints } from "./ledger/feed.js";
import { setFrozen } from "./ledger/freeze.js";
import { getMint, mint } from "./ledger/mint.js";
import { reverseMint } from "./ledger/reconcile.js";
import { getRedemption, listRedemptions, redeem } from "./ledger/redemption.js";
import { checkReserve, getSupply, setReserve } from "./ledger/reserve.js";
import { settlementEffects } from "./ledger/settlement-effects.js";
import { transfer } from "./ledger/transfer.js";
import { LedgerTx } from "./ledger/tx.js";

export { LIST_MINTS_MAX_LIMIT } from "./ledger/rows.js";

export class PostgresLedgerStore extends LedgerTx implements LedgerStore {
  // Mint.
  mint(cmd: NewMint, claim: IdempotencyClaim, deadlineMs: number, reserveRequired = false, entry?: JournalEntry): Promise<Result<MintRecord>> {
    return mint(this, cmd, claim, deadlineMs, reserveRequired, entry);
  }
  getMint(mintId: string): Promise<MintRecord | null> {
    return getMint(this, mintId);
  }
  listMints(query: ListMintsQuery): Promise<MintRecord[]> {
    return listMints(this, query);
  }

  // Transfer.
  transfer(cmd: NewTransfer, claim: IdempotencyClaim, deadlineMs: number, entry?: JournalEntry): Promise<Result<TransferRecord>> {
    return transfer(this, cmd, claim, deadlineMs, entry);
  }

  // Reconcile.
  reverseMint(mintId: string, reason: string, wallMs: number, deadlineMs: number, signal?: AbortSignal, entry?: JournalEntry): Promise<Result<MintRecord>> {
    return reverseMint(this, mintId, reason, wallMs, deadlineMs, signal, entry);
  }

  // Approvals.
  approveMint(mintId: string, approver: string, wallMs: number, journal: JournalEntry, settle: boolean, deadlineMs: number, signal?: AbortSignal, reserveRequired = false): Promise<Result<MintRecord>> {
    return approveMint(this, mintId, approver, wallMs, journal, settle, deadlineMs, signal, reserveRequired);
  }
  rejectMint(mintId: string, reason: string, rejectedBy: string, wallMs: number, bySweeper: boolean, journal: JournalEntry, deadlineMs: number, signal?: AbortSignal): Promise<Result<MintRecord>> {
    return rejectMint(this, mintId, reason, rejectedBy, wallMs, bySweeper, journal, deadlineMs, signal);
  }
  expiredPending(wallMs: number, limit: number): Promise<string[]> {
    return expiredPending(this, wallMs, limit);
  }

  // Allowances.
  getAllowance(principal: string): Promise<bigint> {
    return getAllowance(this, principal);
  }
  setAllowance(principal: string, amountMicros: bigint, journal: JournalEntry, wallMs: number, deadlineMs: number, expectedMicros?: bigint): Promise<Result<void>> {
    return setAllowance(this, principal, amountMicros, journal, wallMs, deadlineMs, expectedMicros);
  }

  // Reserve and supply.
  checkReserve(client: pg.ClientBase, amountMicros: bigint, reserveRequired: boolean): Promise<Failure | null> {
    return checkReserve(this, client, amountMicros, reserveRequired);
  }
  setReserve(reserveMicros: bigint, attestationRef: string, entry: JournalEntry, deadlineMs: number): Promise<Result<SupplyState>> {
    return setReserve(this, reserveMicros, attestationRef, entry, deadlineMs);
  }
  getSupply(): Promise<SupplyState> {
    return getSupply(this);
  }

  // Redemption.
  redeem(cmd: NewRedemption, claim: IdempotencyClaim, deadlineMs: number, entry: JournalEntry, settle = false): Promise<Result<RedemptionRecord>> {
    return redeem(this, cmd, claim, deadlineMs, entry, settle);
  }
  getRedemption(redemptionId: string): Promise<RedemptionRecord | null> {
    return getRedemption(this, redemptionId);
  }
  listRedemptions(query: ListMintsQuery): Promise<{ redemption: RedemptionRecord; seq: number }[]> {
    return listRedemptions(this, query);
  }

  // Freeze.
  setFrozen(accountId: string, frozen: boolean, reason: string, entry: JournalEntry, deadlineMs: number): Promise<Result<AccountState>> {
    return setFrozen(this, accountId, frozen, reason, entry, deadlineMs);
  }

  // Accounts.
  getAccount(accountId: string): Promise<AccountState> {
    return getAccount(this, accountId);
  }
  getBalance(accountId: string): Promise<bigint> {
    return getBalance(this, accountId);
  }
  getPendingBalance(accountId: string): Promise<bigint> {
    return getPendingBalance(this, accountId);
  }

  // Settlement effects.
  settlementEffects(): SettlementEffects<pg.PoolClient> {
    return settlementEffects(this);
  }
}
