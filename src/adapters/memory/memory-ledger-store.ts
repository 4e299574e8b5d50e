/**
 * The in-process ledger: balances, mints, transfers and an append-only list of
 * ledger entries. Every mutation is synchronous once called, so it is atomic
 * on Node's single thread; the core's account locks order the calls.
 */
import type { Clock } from "../../domain/clock.js";
import { assert } from "../../domain/errors.js";
import type { MintRecord, NewMint, NewTransfer, TransferRecord } from "../../domain/model.js";
import type { LedgerStore, ListMintsQuery } from "../../domain/ports.js";
import { fail, ok, type Result } from "../../domain/result.js";

export type EntryKind = "mint" | "transfer_out" | "transfer_in" | "reversal";

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

export class MemoryLedgerStore implements LedgerStore {
  private readonly balances = new Map<string, bigint>();
  /** Mints by position: seq = index + 1. Replaced (never removed) when reversed. */
  private readonly mints: MintRecord[] = [];
  private readonly mintIndexById = new Map<string, number>();
  /** Per account, the indexes into `mints` in ascending order. */
  private readonly mintIndexesByAccount = new Map<string, number[]>();
  private readonly transfers = new Map<string, TransferRecord>();
  private readonly entries: LedgerEntry[] = [];

  constructor(private readonly opts: { clock: Clock }) {}

  async mint(cmd: NewMint): Promise<Result<MintRecord>> {
    assert(cmd.amountMicros > 0n, "mint amount is positive");
    const index = this.mints.length;
    const record: MintRecord = {
      mintId: cmd.mintId,
      seq: index + 1,
      accountId: cmd.accountId,
      amountMicros: cmd.amountMicros,
      blockchain: cmd.blockchain,
      status: "COMPLETED",
      idempotencyKey: cmd.idempotencyKey,
      createWallMs: cmd.createWallMs,
      reverseWallMs: null,
      reverseReason: "",
    };
    assert(!this.mintIndexById.has(cmd.mintId), "mint ids are unique");
    this.mints.push(record);
    this.mintIndexById.set(cmd.mintId, index);
    let list = this.mintIndexesByAccount.get(cmd.accountId);
    if (list === undefined) this.mintIndexesByAccount.set(cmd.accountId, (list = []));
    list.push(index);
    this.credit(cmd.accountId, cmd.amountMicros, "mint", cmd.mintId, cmd.createWallMs);
    return ok(record);
  }

  async transfer(cmd: NewTransfer): Promise<Result<TransferRecord>> {
    assert(cmd.amountMicros > 0n && cmd.fromAccountId !== cmd.toAccountId, "transfer is positive between two accounts");
    const fromBalance = this.balances.get(cmd.fromAccountId) ?? 0n;
    if (fromBalance < cmd.amountMicros) return fail({ code: "INSUFFICIENT_FUNDS", accountId: cmd.fromAccountId });
    const record: TransferRecord = { ...cmd };
    this.transfers.set(cmd.transferId, record);
    this.credit(cmd.fromAccountId, -cmd.amountMicros, "transfer_out", cmd.transferId, cmd.createWallMs);
    this.credit(cmd.toAccountId, cmd.amountMicros, "transfer_in", cmd.transferId, cmd.createWallMs);
    return ok(record);
  }

  async reverseMint(mintId: string, reason: string, wallMs: number): Promise<Result<MintRecord>> {
    const index = this.mintIndexById.get(mintId);
    if (index === undefined) return fail({ code: "MINT_NOT_FOUND", mintId });
    const mint = this.mints[index] as MintRecord;
    if (mint.status === "REVERSED") return fail({ code: "MINT_ALREADY_REVERSED", mintId });
    if ((this.balances.get(mint.accountId) ?? 0n) < mint.amountMicros) {
      return fail({ code: "INSUFFICIENT_FUNDS", accountId: mint.accountId });
    }
    const reversed: MintRecord = { ...mint, status: "REVERSED", reverseWallMs: wallMs, reverseReason: reason };
    this.mints[index] = reversed;
    this.credit(mint.accountId, -mint.amountMicros, "reversal", mintId, wallMs);
    return ok(reversed);
  }

  async getBalance(accountId: string): Promise<bigint> {
    return this.balances.get(accountId) ?? 0n;
  }

  async getMint(mintId: string): Promise<MintRecord | null> {
    const index = this.mintIndexById.get(mintId);
    return index === undefined ? null : (this.mints[index] as MintRecord);
  }

  async listMints(query: ListMintsQuery): Promise<MintRecord[]> {
    if (query.accountId === null) return this.mints.slice(query.afterSeq, query.afterSeq + query.limit);
    const indexes = this.mintIndexesByAccount.get(query.accountId) ?? [];
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

  /** The ledger's entries, oldest first (a copy); for audits and tests. */
  ledgerEntries(): LedgerEntry[] {
    return [...this.entries];
  }

  /** Every balance (a copy); for tests and invariant checks. */
  allBalances(): Map<string, bigint> {
    return new Map(this.balances);
  }

  private credit(accountId: string, amountMicros: bigint, kind: EntryKind, refId: string, wallMs: number): void {
    const next = (this.balances.get(accountId) ?? 0n) + amountMicros;
    assert(next >= 0n, "balances never go negative");
    this.balances.set(accountId, next);
    this.entries.push({ accountId, amountMicros, kind, refId, wallMs });
  }
}
