/**
 * The service's rules, independent of any transport or store, as one object
 * the transport calls: each method is one RPC, and its rules live in the
 * feature's own module (mint, transfer, reconcile, approvals, allowances,
 * reserve, redemption, freeze, accounts, audit-reads). What every call shares
 * (validation order, account locks, the keyed path to the exactly-once
 * store) is `call-path.ts`.
 */
import type { AccountLocks } from "./account-locks.js";
import { getAccount, getBalance } from "./accounts.js";
import { getMinterAllowance, setMinterAllowance } from "./allowances.js";
import { approveMint, expirePending, rejectMint } from "./approvals.js";
import type { AuditRecord, ChainVerdict } from "./audit.js";
import { listAuditEvents, verifyAuditChain, type ListAuditEventsInput } from "./audit-reads.js";
import { batchMint, batchTransfer, type BatchLimits, type BatchMintInput, type BatchTransferInput, type MintItem, type TransferItem } from "./batch.js";
import { CallPath, type CallContext, type MintCoreDeps } from "./call-path.js";
import { setFrozen } from "./freeze.js";
import { getMint, listMints, mintUsdc, type MintUsdcInput } from "./mint.js";
import type { AccountState, MintRecord, RedemptionRecord, SupplyState, TransferRecord } from "./model.js";
import type { ListMintsInput } from "./paging.js";
import { reconcileMint } from "./reconcile.js";
import { getRedemption, listRedemptions, redeemUsdc, type RedeemUsdcInput } from "./redemption.js";
import { getSupply, setReserve, type SetReserveInput } from "./reserve.js";
import type { MaybePromise, Result } from "./result.js";
import { transfer, type TransferInput } from "./transfer.js";

export { LOCAL_PRINCIPAL, SWEEPER_ACTOR, type ApprovalSettings, type CallContext, type MintCoreDeps } from "./call-path.js";
export { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, type ListMintsInput } from "./paging.js";
export type { ListAuditEventsInput } from "./audit-reads.js";
export type { MintUsdcInput } from "./mint.js";
export type { RedeemUsdcInput } from "./redemption.js";
export type { SetReserveInput } from "./reserve.js";
export type { TransferInput } from "./transfer.js";
export type { BatchLimits, BatchMintInput, BatchTransferInput, ItemFailure, ItemResult, MintItem, TransferItem } from "./batch.js";

export class MintCore {
  readonly locks: AccountLocks;
  private readonly core: CallPath;

  constructor(deps: MintCoreDeps) {
    this.core = new CallPath(deps);
    this.locks = this.core.locks;
  }

  // Mint.
  // The hot calls (MintUsdc, Transfer, GetBalance) answer with a value when
  // nothing waited, so the edge can answer without a promise turn.
  mintUsdc(input: MintUsdcInput, ctx: CallContext): MaybePromise<Result<{ mint: MintRecord; replayed: boolean }>> {
    return mintUsdc(this.core, input, ctx);
  }
  getMint(mintIdText: string, ctx?: Pick<CallContext, "principal">): Promise<Result<MintRecord>> {
    return getMint(this.core, mintIdText, ctx);
  }
  listMints(input: ListMintsInput): Promise<Result<{ mints: MintRecord[]; nextPageToken: string }>> {
    return listMints(this.core, input);
  }

  // Transfer.
  transfer(input: TransferInput, ctx: CallContext): MaybePromise<Result<{ transfer: TransferRecord; replayed: boolean }>> {
    return transfer(this.core, input, ctx);
  }

  // Batches: each item as its unary call.
  batchMint(input: BatchMintInput, limits: BatchLimits, ctx: CallContext): Promise<Result<MintItem[]>> {
    return batchMint(this.core, input, limits, ctx);
  }
  batchTransfer(input: BatchTransferInput, limits: BatchLimits, ctx: CallContext): Promise<Result<{ items: TransferItem[]; refusedItem?: number }>> {
    return batchTransfer(this.core, input, limits, ctx);
  }

  // Reconcile.
  reconcileMint(mintIdText: string, reasonText: string, ctx: CallContext): Promise<Result<MintRecord>> {
    return reconcileMint(this.core, mintIdText, reasonText, ctx);
  }

  // Approvals.
  approveMint(mintIdText: string, ctx: CallContext): Promise<Result<MintRecord>> {
    return approveMint(this.core, mintIdText, ctx);
  }
  rejectMint(mintIdText: string, reasonText: string, ctx: CallContext): Promise<Result<MintRecord>> {
    return rejectMint(this.core, mintIdText, reasonText, ctx);
  }
  expirePending(limit: number): Promise<number> {
    return expirePending(this.core, limit);
  }

  // Allowances.
  getMinterAllowance(principalText: string): Promise<Result<{ principal: string; allowanceMicros: bigint }>> {
    return getMinterAllowance(this.core, principalText);
  }
  setMinterAllowance(principalText: string, amountText: string, ctx: CallContext, expectedText?: string): Promise<Result<{ principal: string; allowanceMicros: bigint }>> {
    return setMinterAllowance(this.core, principalText, amountText, ctx, expectedText);
  }

  // Reserve and supply.
  setReserve(input: SetReserveInput, ctx: CallContext): Promise<Result<SupplyState>> {
    return setReserve(this.core, input, ctx);
  }
  getSupply(): Promise<SupplyState> {
    return getSupply(this.core);
  }

  // Redemption.
  redeemUsdc(input: RedeemUsdcInput, ctx: CallContext): Promise<Result<{ redemption: RedemptionRecord; replayed: boolean }>> {
    return redeemUsdc(this.core, input, ctx);
  }
  getRedemption(redemptionIdText: string, ctx?: Pick<CallContext, "principal">): Promise<Result<RedemptionRecord>> {
    return getRedemption(this.core, redemptionIdText, ctx);
  }
  listRedemptions(input: ListMintsInput): Promise<Result<{ redemptions: RedemptionRecord[]; nextPageToken: string }>> {
    return listRedemptions(this.core, input);
  }

  // Freeze.
  setFrozen(accountIdText: string, frozen: boolean, reasonText: string, ctx: CallContext): Promise<Result<AccountState>> {
    return setFrozen(this.core, accountIdText, frozen, reasonText, ctx);
  }

  // Accounts.
  getAccount(accountIdText: string): Promise<Result<AccountState & { pendingMicros: bigint }>> {
    return getAccount(this.core, accountIdText);
  }
  getBalance(accountIdText: string): MaybePromise<Result<{ accountId: string; balanceMicros: bigint; pendingMicros: bigint }>> {
    return getBalance(this.core, accountIdText);
  }

  // Audit.
  listAuditEvents(input: ListAuditEventsInput): Promise<Result<{ events: AuditRecord[]; nextPageToken: string }>> {
    return listAuditEvents(this.core, input);
  }
  verifyAuditChain(fromSeq: number, toSeq: number): Promise<Result<ChainVerdict>> {
    return verifyAuditChain(this.core, fromSeq, toSeq);
  }
}
