/**
 * The ledger's event feed in memory. The memory stores call `append` (through
 * the helpers below) synchronously, in the same stretch as the change, so the
 * append order is the commit order. The epoch is random per process: the
 * memory store starts empty on restart, and a cursor of an earlier process
 * names positions that no longer exist.
 */
import { randomUUID } from "node:crypto";
import type { Clock } from "../../domain/clock.js";
import { FEED_START, type FeedPage, type FeedPosition, type LedgerEvent, type LedgerEventFeed, type NewLedgerEvent } from "../../domain/ledger-events.js";
import type { MintRecord, RedemptionRecord, TransferRecord } from "../../domain/model.js";
import type { Settlement } from "../../domain/settlement/ports.js";

export class MemoryLedgerEventFeed implements LedgerEventFeed {
  readonly epoch: string;
  /**
   * Events in append order, as appended; `events[i]` has position
   * `offset + i + 1`. Position and id follow from that place, so they are
   * made when an event is read, not kept with each one.
   */
  private events: KeptEvent[] = [];
  private offset = 0;
  private readonly listeners: (() => void)[] = [];
  private wakeQueued = false;

  constructor(private readonly clock: Clock, epoch: string = randomUUID()) {
    this.epoch = epoch;
  }

  /** Appends one event (kept as it is: the caller hands it over). */
  append(e: KeptEvent): void {
    this.events.push(e);
    if (!this.wakeQueued && this.listeners.length > 0) {
      // One wake per burst of appends, after the stretch that made them.
      this.wakeQueued = true;
      queueMicrotask(() => {
        this.wakeQueued = false;
        for (const l of this.listeners) l();
      });
    }
  }

  onAppend(listener: () => void): void {
    this.listeners.push(listener);
  }

  async read(after: FeedPosition, limit: number): Promise<FeedPage> {
    const from = Math.max(0, Number(after.a) - this.offset);
    const out: LedgerEvent[] = [];
    for (let i = from; i < this.events.length && out.length < limit; i++) {
      const e = eventOf(this.events[i] as KeptEvent);
      const n = this.offset + i + 1;
      out.push({ kind: e.kind, timeMs: e.timeMs, accounts: e.accounts, data: e.data, position: { a: BigInt(n), b: 0n }, id: `evt_${this.epoch}_${n}` });
    }
    return { events: out, prunedThrough: { a: BigInt(this.offset), b: 0n } };
  }

  async head(): Promise<FeedPosition> {
    const n = this.offset + this.events.length;
    return n === 0 ? FEED_START : { a: BigInt(n), b: 0n };
  }

  async prune(beforeWallMs: number, maxEvents: number): Promise<number> {
    let k = 0;
    while (k < this.events.length && k < maxEvents && timeOf(this.events[k] as KeptEvent) < beforeWallMs) k++;
    if (k > 0) {
      this.events = this.events.slice(k);
      this.offset += k;
    }
    return k;
  }

  get size(): number {
    return this.events.length;
  }

  // The events of each change, built from the records the memory stores hold.

  mintCreated(m: MintRecord): void {
    // Kept as the record they are read from: a mint costs the feed two small objects.
    this.append({ kind: "MINT_CREATED", mint: m });
    this.append({ kind: m.status === "PENDING_APPROVAL" ? "MINT_PENDING_APPROVAL" : "MINT_COMPLETED", mint: m });
  }

  /** An approval counted (and, when it was the last one needed, the completion). */
  mintApproved(m: MintRecord, approver: string, wallMs: number): void {
    this.append({ kind: "MINT_APPROVED", timeMs: wallMs, accounts: [m.accountId], data: mintData(m, approver) });
    if (m.status === "COMPLETED") this.append({ kind: "MINT_COMPLETED", timeMs: wallMs, accounts: [m.accountId], data: mintData(m) });
  }

  mintRejected(m: MintRecord, wallMs: number): void {
    this.append({ kind: "MINT_REJECTED", timeMs: wallMs, accounts: [m.accountId], data: mintData(m, m.approval?.rejectedBy ?? "", m.approval?.rejectReason ?? "") });
  }

  mintReversed(m: MintRecord): void {
    this.append({ kind: "MINT_REVERSED", timeMs: m.reverseWallMs ?? this.clock.wallMs(), accounts: [m.accountId], data: mintData(m, "", m.reverseReason) });
  }

  transfer(t: TransferRecord): void {
    this.append({
      kind: "TRANSFER",
      timeMs: t.createWallMs,
      accounts: [t.fromAccountId, t.toAccountId],
      data: { transfer_id: t.transferId, from_account_id: t.fromAccountId, to_account_id: t.toAccountId, amount: t.amountMicros.toString() },
    });
  }

  redemption(r: RedemptionRecord): void {
    this.append({ kind: "REDEMPTION", timeMs: r.createWallMs, accounts: [r.accountId], data: redemptionData(r) });
  }

  redemptionRecredited(r: RedemptionRecord): void {
    this.append({ kind: "REDEMPTION_RECREDITED", timeMs: r.recreditWallMs ?? this.clock.wallMs(), accounts: [r.accountId], data: redemptionData(r) });
  }

  freeze(accountId: string, frozen: boolean, reason: string): void {
    this.append({ kind: frozen ? "ACCOUNT_FROZEN" : "ACCOUNT_UNFROZEN", timeMs: this.clock.wallMs(), accounts: [accountId], data: { account_id: accountId, frozen: String(frozen), reason: frozen ? reason : "" } });
  }

  reserveSet(reserveMicros: bigint, attestationRef: string): void {
    this.append({ kind: "RESERVE_SET", timeMs: this.clock.wallMs(), accounts: [], data: { reserve: reserveMicros.toString(), attestation_ref: attestationRef } });
  }

  allowanceSet(principal: string, amountMicros: bigint, wallMs: number): void {
    this.append({ kind: "ALLOWANCE_SET", timeMs: wallMs, accounts: [], data: { principal, allowance: amountMicros.toString() } });
  }

  /** A settlement reached SUBMITTED, CONFIRMED or FAILED; `accountId` is its mint's or redemption's account. */
  settlement(s: Settlement, accountId: string): void {
    if (s.state !== "SUBMITTED" && s.state !== "CONFIRMED" && s.state !== "FAILED") return;
    const tx = s.txs[s.txs.length - 1];
    this.append({
      kind: `SETTLEMENT_${s.state}`,
      timeMs: s.updateWallMs,
      accounts: accountId === "" ? [] : [accountId],
      data: {
        settlement_id: s.settlementId,
        settlement_kind: s.kind,
        account_id: accountId,
        blockchain: s.blockchain,
        amount: s.amountMicros.toString(),
        state: s.state,
        nonce: String(tx?.nonce ?? 0),
        tx_hash: s.minedHash ?? tx?.hash ?? "",
        block_number: s.blockNumber === null ? "0" : s.blockNumber.toString(),
        error: s.state === "FAILED" ? s.lastError : "",
      },
    });
  }
}

/**
 * One of a mint's two creation events, kept as the mint's record: the record
 * never changes (a change replaces it), so the event read from it later is
 * the event as it was appended.
 */
interface MintCreatedEvent {
  readonly kind: "MINT_CREATED" | "MINT_COMPLETED" | "MINT_PENDING_APPROVAL";
  readonly mint: MintRecord;
}

/** An event as the feed keeps it. */
type KeptEvent = NewLedgerEvent | MintCreatedEvent;

function eventOf(e: KeptEvent): NewLedgerEvent {
  return "mint" in e ? { kind: e.kind, timeMs: e.mint.createWallMs, accounts: [e.mint.accountId], data: mintData(e.mint) } : e;
}

function timeOf(e: KeptEvent): number {
  return "mint" in e ? e.mint.createWallMs : e.timeMs;
}

function mintData(m: MintRecord, actor = "", reason = ""): Record<string, string> {
  return {
    mint_id: m.mintId,
    account_id: m.accountId,
    amount: m.amountMicros.toString(),
    blockchain: m.blockchain,
    status: m.status,
    approvals: String(m.approval?.approvals.length ?? 0),
    approvals_required: String(m.approval?.required ?? 0),
    actor,
    reason,
  };
}

function redemptionData(r: RedemptionRecord): Record<string, string> {
  return { redemption_id: r.redemptionId, account_id: r.accountId, amount: r.amountMicros.toString(), blockchain: r.blockchain, reason: r.recreditReason ?? "" };
}
