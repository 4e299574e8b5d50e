/**
 * The in-process ledger: balances, mints, transfers and an append-only list of
 * ledger entries. Every mutation is synchronous once called, so it is atomic
 * on Node's single thread; the core's account locks order the calls. The
 * hot ones (mint, transfer, balance) answer with values, not promises, so
 * the memory exactly-once store keeps a call in one stretch.
 */
import type { Clock } from "../../domain/clock.js";
import { assert } from "../../domain/errors.js";
import { completedMint, type AccountState, type MintRecord, type MintStatus, type NewMint, type NewRedemption, type NewTransfer, type RedemptionRecord, type SupplyState, type TransferRecord } from "../../domain/model.js";
import type { Failure } from "../../domain/errors.js";
import type { JournalEntry } from "../../domain/journal.js";
import { reserveRefusal, supplyState } from "../../domain/reserve.js";
import type { LedgerStore, ListMintsQuery } from "../../domain/ports.js";
import { fail, ok, type MaybePromise, type Result } from "../../domain/result.js";

export type EntryKind = "mint" | "transfer_out" | "transfer_in" | "reversal" | "redemption" | "redemption_reversal";

/** One line of the ledger. Entries are only ever appended. */
export interface LedgerEntry {
  readonly accountId: string;
  /** Signed micro-USDC: credits positive, debits negative. */
  readonly amountMicros: bigint;
  readonly kind: EntryKind;
  /** The mint or transfer id this entry belongs to. */
  readonly refId: string;
  readonly wallMs: number;
}

/**
 * A journal line as kept: the record itself, which holds everything its
 * ledger entries say. A COMPLETED MintRecord is a "mint" entry, a REVERSED
 * one (the record that replaced it) a "reversal" entry, and a TransferRecord
 * its "transfer_out" and "transfer_in" entries. Keeping the records (shared
 * with `mints` and the idempotency store) instead of one more object per
 * entry keeps the ledger's memory, and the garbage collector's work, small.
 */
type JournalLine = MintRecord | TransferRecord | RedemptionRecord;

/** One account: its balance and (when it has any) the indexes of its mints. */
class Account {
  balanceMicros = 0n;
  /** Credit of mints not yet settled on-chain (not spendable). */
  pendingMicros = 0n;
  /** Indexes into `mints`, ascending; null until the first mint. */
  mintIndexes: number[] | null = null;
  /** A frozen account neither receives nor sends. */
  frozen = false;
  freezeReason = "";
}

export class MemoryLedgerStore implements LedgerStore {
  private readonly accounts = new Map<string, Account>();
  /** Mints by position: seq = index + 1. Replaced (never removed) when reversed. */
  private readonly mints: MintRecord[] = [];
  private readonly mintIndexById = new Map<string, number>();
  /** Indexes of the mints still PENDING_APPROVAL, oldest first (insertion order), so the expiry sweep never scans every mint. */
  private readonly pendingIndexes = new Set<number>();
  /** The append-only ledger, oldest first (see JournalLine). */
  private readonly journal: JournalLine[] = [];
  /** Mints whose credit is still pending (settlement not CONFIRMED). */
  private readonly pendingMints = new Set<string>();

  /** Completed mints − reversals − redemptions (+ redemptions re-credited). */
  private supplyMicros = 0n;
  private reserveMicros: bigint | null = null;
  private attestationRef = "";
  private readonly redemptions: RedemptionRecord[] = [];
  private readonly redemptionIndexById = new Map<string, number>();

  constructor(private readonly opts: { clock: Clock }) {}

  /**
   * Every check and write below is synchronous, so on Node's one thread the
   * frozen check, the reserve check and the credit are one atomic step: no
   * freeze, reserve change or other mint can come between them.
   */
  mint(cmd: NewMint, _claim?: unknown, _deadlineMs?: number, reserveRequired = false): MaybePromise<Result<MintRecord>> {
    assert(cmd.amountMicros > 0n, "mint amount is positive");
    assert(!this.mintIndexById.has(cmd.mintId), "mint ids are unique");
    if (this.accounts.get(cmd.accountId)?.frozen === true) return fail({ code: "ACCOUNT_FROZEN", accountId: cmd.accountId });
    const index = this.mints.length;
    const record = completedMint(cmd, index + 1);
    // Supply rises (and the reserve is checked) when the mint is credited: a
    // mint awaiting approval is checked by the approval that completes it.
    if (record.status === "COMPLETED") {
      const refused = this.checkReserve(cmd.amountMicros, reserveRequired);
      if (refused !== null) return fail(refused);
      this.supplyMicros += cmd.amountMicros;
    }
    const account = this.account(cmd.accountId);
    this.mints.push(record);
    this.mintIndexById.set(cmd.mintId, index);
    if (account.mintIndexes === null) account.mintIndexes = [index];
    else account.mintIndexes.push(index);
    // A mint awaiting approval credits nothing until it completes (replacePending).
    if (record.status === "COMPLETED") this.credit(record, cmd.settle === true);
    else this.pendingIndexes.add(index);
    return ok(record);
  }

  /**
   * The mint's settlement is CONFIRMED: its credit moves from the
   * pending to the available balance. A no-op (false) for a mint whose credit
   * is not pending (settled already, reversed, or never settling).
   */
  async settleConfirmed(mintId: string): Promise<boolean> {
    if (!this.pendingMints.delete(mintId)) return false;
    const mint = this.mints[this.mintIndexById.get(mintId) as number] as MintRecord;
    const account = this.account(mint.accountId);
    account.pendingMicros -= mint.amountMicros;
    account.balanceMicros += mint.amountMicros;
    return true;
  }

  getPendingBalance(accountId: string): MaybePromise<bigint> {
    return this.accounts.get(accountId)?.pendingMicros ?? 0n;
  }

  /**
   * A completed mint's credit: to the pending balance while its on-chain
   * settlement is not CONFIRMED, else available at once.
   */
  private credit(record: MintRecord, settle: boolean): void {
    const account = this.account(record.accountId);
    if (settle) {
      account.pendingMicros += record.amountMicros;
      this.pendingMints.add(record.mintId);
    } else {
      account.balanceMicros += record.amountMicros;
    }
    this.journal.push(record);
  }

  /**
   * Replaces a PENDING_APPROVAL mint with its next state (one more approval,
   * COMPLETED with its credit, pending when `settle`, or REJECTED), synchronously: the caller checks
   * (approvals, frozen account, reserve: `checkCompletion`) and replaces in one stretch.
   */
  replacePending(next: MintRecord, settle = false): void {
    const index = this.mintIndexById.get(next.mintId);
    assert(index !== undefined && this.mints[index]?.status === "PENDING_APPROVAL", "only a pending mint is replaced");
    this.mints[index] = next;
    if (next.status !== "PENDING_APPROVAL") this.pendingIndexes.delete(index);
    if (next.status === "COMPLETED") {
      this.supplyMicros += next.amountMicros;
      this.credit(next, settle);
    }
  }

  /** Mint ids still PENDING_APPROVAL whose expiry is at or before `wallMs`, oldest first. */
  expiredPending(wallMs: number, limit: number): string[] {
    const out: string[] = [];
    for (const index of this.pendingIndexes) {
      if (out.length >= limit) break;
      const m = this.mints[index] as MintRecord;
      if (m.approval !== undefined && m.approval.expireWallMs <= wallMs) out.push(m.mintId);
    }
    return out;
  }

  transfer(cmd: NewTransfer): MaybePromise<Result<TransferRecord>> {
    assert(cmd.amountMicros > 0n && cmd.fromAccountId !== cmd.toAccountId, "transfer is positive between two accounts");
    const from = this.accounts.get(cmd.fromAccountId);
    if (from?.frozen === true) return fail({ code: "ACCOUNT_FROZEN", accountId: cmd.fromAccountId });
    if (this.accounts.get(cmd.toAccountId)?.frozen === true) return fail({ code: "ACCOUNT_FROZEN", accountId: cmd.toAccountId });
    if (from === undefined || from.balanceMicros < cmd.amountMicros) return fail({ code: "INSUFFICIENT_FUNDS", accountId: cmd.fromAccountId });
    const record: TransferRecord = {
      transferId: cmd.transferId,
      fromAccountId: cmd.fromAccountId,
      toAccountId: cmd.toAccountId,
      amountMicros: cmd.amountMicros,
      idempotencyKey: cmd.idempotencyKey,
      createWallMs: cmd.createWallMs,
    };
    const to = this.account(cmd.toAccountId);
    from.balanceMicros -= cmd.amountMicros;
    to.balanceMicros += cmd.amountMicros;
    this.journal.push(record);
    return ok(record);
  }

  async reverseMint(mintId: string, reason: string, wallMs: number): Promise<Result<MintRecord>> {
    const index = this.mintIndexById.get(mintId);
    if (index === undefined) return fail({ code: "MINT_NOT_FOUND", mintId });
    const mint = this.mints[index] as MintRecord;
    if (mint.status === "REVERSED") return fail({ code: "MINT_ALREADY_REVERSED", mintId });
    if (mint.status === "PENDING_APPROVAL") return fail({ code: "MINT_PENDING_APPROVAL", mintId });
    if (mint.status === "REJECTED") return fail({ code: "MINT_NOT_PENDING", mintId, reason: "MINT_REJECTED" });
    const account = this.accounts.get(mint.accountId);
    // A pending credit (settlement not CONFIRMED) is reversed from the pending balance, which nothing else spends.
    const pending = this.pendingMints.has(mintId);
    if (account === undefined || (!pending && account.balanceMicros < mint.amountMicros)) {
      return fail({ code: "INSUFFICIENT_FUNDS", accountId: mint.accountId });
    }
    const reversed: MintRecord = { ...mint, status: "REVERSED", reverseWallMs: wallMs, reverseReason: reason };
    this.mints[index] = reversed;
    if (pending) {
      this.pendingMints.delete(mintId);
      account.pendingMicros -= mint.amountMicros;
    } else {
      account.balanceMicros -= mint.amountMicros;
    }
    // A pending credit counted in supply when minted, so its reversal lowers it too.
    this.supplyMicros -= mint.amountMicros;
    this.journal.push(reversed);
    return ok(reversed);
  }

  getBalance(accountId: string): MaybePromise<bigint> {
    return this.accounts.get(accountId)?.balanceMicros ?? 0n;
  }

  async getMint(mintId: string): Promise<MintRecord | null> {
    return this.peekMint(mintId);
  }

  peekMint(mintId: string): MintRecord | null {
    const index = this.mintIndexById.get(mintId);
    return index === undefined ? null : (this.mints[index] as MintRecord);
  }

  async listMints(query: ListMintsQuery): Promise<MintRecord[]> {
    if (query.status !== undefined) return this.listByStatus(query, query.status);
    if (query.accountId === null) return this.mints.slice(query.afterSeq, query.afterSeq + query.limit);
    const indexes = this.accounts.get(query.accountId)?.mintIndexes ?? [];
    // First position whose seq (index + 1) is above afterSeq.
    let lo = 0;
    let hi = indexes.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((indexes[mid] as number) + 1 <= query.afterSeq) lo = mid + 1;
      else hi = mid;
    }
    return indexes.slice(lo, lo + query.limit).map((i) => this.mints[i] as MintRecord);
  }

  async close(): Promise<void> {}

  /** ListMints filtered by status: a scan from `afterSeq` (memory is for development and tests). */
  private listByStatus(query: ListMintsQuery, status: MintStatus): MintRecord[] {
    const out: MintRecord[] = [];
    for (let i = query.afterSeq; i < this.mints.length && out.length < query.limit; i++) {
      const m = this.mints[i] as MintRecord;
      if (m.status === status && (query.accountId === null || m.accountId === query.accountId)) out.push(m);
    }
    return out;
  }

  /**
   * The reserve check of a supply rise, for the mint here and for
   * the approval that completes a pending mint, which must call it
   * in the same synchronous stretch as its credit. Null when allowed.
   */
  checkReserve(amountMicros: bigint, reserveRequired: boolean): Failure | null {
    return reserveRefusal(this.supplyMicros, this.reserveMicros, amountMicros, reserveRequired);
  }

  /** Why the approval completing `mint` may not credit it now (frozen account, reserve), or null. */
  checkCompletion(mint: MintRecord, reserveRequired: boolean): Failure | null {
    if (this.accounts.get(mint.accountId)?.frozen === true) return { code: "ACCOUNT_FROZEN", accountId: mint.accountId };
    return this.checkReserve(mint.amountMicros, reserveRequired);
  }

  async redeem(cmd: NewRedemption, _claim?: unknown, _deadlineMs?: number, _journal?: JournalEntry): Promise<Result<RedemptionRecord>> {
    return this.redeemNow(cmd);
  }

  /**
   * The redemption, synchronously (so the caller can queue its burn
   * in the same stretch). Failures: ACCOUNT_FROZEN, INSUFFICIENT_FUNDS.
   */
  redeemNow(cmd: NewRedemption): Result<RedemptionRecord> {
    assert(cmd.amountMicros > 0n, "redemption amount is positive");
    assert(!this.redemptionIndexById.has(cmd.redemptionId), "redemption ids are unique");
    const account = this.accounts.get(cmd.accountId);
    if (account?.frozen === true) return fail({ code: "ACCOUNT_FROZEN", accountId: cmd.accountId });
    if (account === undefined || account.balanceMicros < cmd.amountMicros) return fail({ code: "INSUFFICIENT_FUNDS", accountId: cmd.accountId });
    const record: RedemptionRecord = { ...cmd };
    account.balanceMicros -= cmd.amountMicros;
    this.supplyMicros -= cmd.amountMicros;
    this.redemptionIndexById.set(cmd.redemptionId, this.redemptions.length);
    this.redemptions.push(record);
    this.journal.push(record);
    return ok(record);
  }

  /** The redemption as it is now, read synchronously. */
  peekRedemption(redemptionId: string): RedemptionRecord | null {
    const i = this.redemptionIndexById.get(redemptionId);
    return i === undefined ? null : (this.redemptions[i] as RedemptionRecord);
  }

  /**
   * The redemption's burn FAILED on-chain: the amount goes back to
   * the account (frozen or not: it is the account's own money coming back)
   * and into supply, and the redemption is marked re-credited, synchronously.
   * Null (nothing done) for an unknown redemption or one re-credited already,
   * so it happens once. Supply may then exceed a reserve set meanwhile: the
   * money was in circulation when the reserve was last checked.
   */
  recreditRedemption(redemptionId: string, reason: string, wallMs: number): RedemptionRecord | null {
    const i = this.redemptionIndexById.get(redemptionId);
    if (i === undefined) return null;
    const r = this.redemptions[i] as RedemptionRecord;
    if (r.recreditWallMs !== undefined) return null;
    const next: RedemptionRecord = { ...r, recreditWallMs: wallMs, recreditReason: reason };
    this.redemptions[i] = next;
    this.account(r.accountId).balanceMicros += r.amountMicros;
    this.supplyMicros += r.amountMicros;
    this.journal.push(next);
    return next;
  }

  async setReserve(reserveMicros: bigint, attestationRef: string, _journal?: JournalEntry): Promise<Result<SupplyState>> {
    assert(reserveMicros >= 0n, "reserve is not negative");
    if (reserveMicros < this.supplyMicros) {
      return fail({
        code: "RESERVE_EXCEEDED",
        headroomMicros: (this.reserveMicros ?? reserveMicros) - this.supplyMicros,
        supplyMicros: this.supplyMicros,
        reserveMicros: this.reserveMicros ?? reserveMicros,
        requestedMicros: reserveMicros,
      });
    }
    this.reserveMicros = reserveMicros;
    this.attestationRef = attestationRef;
    return ok(await this.getSupply());
  }

  async getSupply(): Promise<SupplyState> {
    let pendingApproval = 0n;
    for (const index of this.pendingIndexes) pendingApproval += (this.mints[index] as MintRecord).amountMicros;
    return supplyState(this.supplyMicros, this.reserveMicros, this.attestationRef, pendingApproval);
  }

  async setFrozen(accountId: string, frozen: boolean, reason: string, _journal?: JournalEntry): Promise<Result<AccountState>> {
    const account = this.account(accountId);
    account.frozen = frozen;
    account.freezeReason = frozen ? reason : "";
    return ok(await this.getAccount(accountId));
  }

  async getAccount(accountId: string): Promise<AccountState> {
    return this.peekAccount(accountId);
  }

  peekAccount(accountId: string): AccountState {
    const a = this.accounts.get(accountId);
    return { accountId, balanceMicros: a?.balanceMicros ?? 0n, frozen: a?.frozen ?? false, freezeReason: a?.freezeReason ?? "" };
  }

  async getRedemption(redemptionId: string): Promise<RedemptionRecord | null> {
    const i = this.redemptionIndexById.get(redemptionId);
    return i === undefined ? null : (this.redemptions[i] as RedemptionRecord);
  }

  async listRedemptions(query: ListMintsQuery): Promise<{ redemption: RedemptionRecord; seq: number }[]> {
    const out: { redemption: RedemptionRecord; seq: number }[] = [];
    for (let i = 0; i < this.redemptions.length && out.length < query.limit; i++) {
      const r = this.redemptions[i] as RedemptionRecord;
      if (i + 1 <= query.afterSeq || (query.accountId !== null && r.accountId !== query.accountId)) continue;
      out.push({ redemption: r, seq: i + 1 });
    }
    return out;
  }

  /** The ledger's entries, oldest first (a copy); for audits and tests. */
  ledgerEntries(): LedgerEntry[] {
    const out: LedgerEntry[] = [];
    for (const line of this.journal) {
      if ("redemptionId" in line) {
        if (line.recreditWallMs !== undefined) out.push({ accountId: line.accountId, amountMicros: line.amountMicros, kind: "redemption_reversal", refId: line.redemptionId, wallMs: line.recreditWallMs });
        else out.push({ accountId: line.accountId, amountMicros: -line.amountMicros, kind: "redemption", refId: line.redemptionId, wallMs: line.createWallMs });
      } else if ("transferId" in line) {
        out.push({ accountId: line.fromAccountId, amountMicros: -line.amountMicros, kind: "transfer_out", refId: line.transferId, wallMs: line.createWallMs });
        out.push({ accountId: line.toAccountId, amountMicros: line.amountMicros, kind: "transfer_in", refId: line.transferId, wallMs: line.createWallMs });
      } else if (line.status === "COMPLETED") {
        out.push({ accountId: line.accountId, amountMicros: line.amountMicros, kind: "mint", refId: line.mintId, wallMs: line.createWallMs });
      } else {
        assert(line.reverseWallMs !== null, "a reversed mint has a reverse time");
        out.push({ accountId: line.accountId, amountMicros: -line.amountMicros, kind: "reversal", refId: line.mintId, wallMs: line.reverseWallMs });
      }
    }
    return out;
  }

  /** Every balance (a copy); for tests and invariant checks. */
  allBalances(): Map<string, bigint> {
    const out = new Map<string, bigint>();
    for (const [id, account] of this.accounts) out.set(id, account.balanceMicros);
    return out;
  }

  /** The account's state, created (balance 0) on first use. */
  private account(accountId: string): Account {
    let account = this.accounts.get(accountId);
    if (account === undefined) {
      account = new Account();
      this.accounts.set(accountId, account);
    }
    return account;
  }
}
