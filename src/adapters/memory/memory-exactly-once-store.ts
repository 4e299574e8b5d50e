/**
 * The in-process `ExactlyOnceStore`, built from the memory ledger and the
 * memory key store. Atomicity comes from a gate per idempotency key: a keyed
 * call holds its key's gate from the look-up to the stored result, and a
 * reversal holds the mint's key gate from the reversal to freeing the key, so
 * nothing (a same-key retry, a reconcile) ever sees the ledger and the key
 * disagree. Calls queued on a gate wait holding nothing else.
 */
import { approvalResult, entryOfEffect, withAllowanceRefund, freezeResult, LOCAL_ACTOR, redemptionRecreditResult, redemptionResult, reserveResult, reversalEntry, reversalResult, transferResult, unsealedRecord } from "../../domain/audit.js";
import type { Clock } from "../../domain/clock.js";
import { assert, markNotApplied, type Failure } from "../../domain/errors.js";
import type { JournalEntry } from "../../domain/journal.js";
import { decideApproval, decideRejection, differingFields, sameRequest, type AccountState, type CanonicalRequest, type IdempotencyScope, type MintRecord, type NewRedemption, type RedemptionRecord, type StoredResult, type SupplyState, type TransferRecord } from "../../domain/model.js";
import { isAborted, type AllOrNoneOutcome, type ApprovalStore, type Effect, type ExactlyOnceStore, type BeginOutcome, type IdempotencyClaim, type IdempotencyStore, type KeyedCall, type LedgerStore, type ListMintsQuery, type Wait } from "../../domain/ports.js";
import { fail, isPromise, ok, type MaybePromise, type Result } from "../../domain/result.js";
import { KEY_IN_USE_RETRY_AFTER_MS } from "../../domain/limits.js";
import { BURN_CONFIRMED_ACTION, BURN_FAILED_ACTION, settlementJournal, settlementRefusal } from "../../domain/settlement/ledger-rules.js";
import type { Settlement, SettlementEffects, SettlementOutbox } from "../../domain/settlement/ports.js";
import { MemoryAuditJournal } from "./memory-audit-journal.js";
import { KEY_BUSY, MemoryIdempotencyStore } from "./memory-idempotency-store.js";
import { MemoryAllowances } from "./memory-allowances.js";
import { applyAllOrNone } from "./memory-all-or-none.js";
import { MemoryLedgerEventFeed } from "./memory-ledger-events.js";

/** Who holds a key's gate, and who waits behind it. */
interface Gate {
  /** The holder's request; null for a reversal (which never conflicts with a retry of its own mint). */
  readonly request: CanonicalRequest | null;
  /** Woken when the holder leaves (each then tries again); null until someone waits, so the uncontended path allocates no promise. */
  waiters: (() => void)[] | null;
}

/** One minter's allowance: what is left, and how many Sets made it (a refund applies only within its charge's generation). */
const EMPTY_JOURNAL = new MemoryAuditJournal();

function reversalEntryOf(mintId: string, reason: string): JournalEntry {
  return reversalEntry(LOCAL_ACTOR, mintId, reason);
}
/** Rethrows a store step's error marked as applying nothing (the memory ledger is atomic per call). */
function notApplied(err: unknown): never {
  throw markNotApplied(err);
}

/** The actor name of expiry rejections (the core's SWEEPER_ACTOR). */
const SWEEPER = "sweeper";

export const CANCELLED_WHILE_WAITING: Failure = { code: "CANCELLED", message: "the call was cancelled while it waited; nothing was applied" };

/**
 * What this store needs of its ledger: the `LedgerStore` port plus the
 * synchronous steps that let a check and its change share one stretch
 * (approvals, settling redemptions, settlement effects). The memory ledger
 * implements it.
 */
export interface MemoryLedger extends LedgerStore {
  /** The mint as it is now, read synchronously (so check and replace share one stretch). */
  peekMint(mintId: string): MintRecord | null;
  replacePending(next: MintRecord, settle?: boolean): void;
  /** Why crediting this mint now is refused (frozen account, reserve), or null. */
  checkCompletion(mint: MintRecord, reserveRequired: boolean): Failure | null;
  expiredPending(wallMs: number, limit: number): string[];
  getPendingBalance(accountId: string): MaybePromise<bigint>;
  settleConfirmed(mintId: string): Promise<boolean>;
  redeemNow(cmd: NewRedemption): Result<RedemptionRecord>;
  peekRedemption(redemptionId: string): RedemptionRecord | null;
  recreditRedemption(redemptionId: string, reason: string, wallMs: number): RedemptionRecord | null;
  /** The account as it is now, read synchronously (an all-or-none batch checks and applies in one stretch). */
  peekAccount(accountId: string): AccountState;
}

export class MemoryExactlyOnceStore implements ExactlyOnceStore, ApprovalStore {
  private readonly gates = new Map<string, Gate>();
  /** Null only to measure what the journal costs (bench); the service always journals. */
  private readonly journal: MemoryAuditJournal | null;
  /** The ledger's event feed (WatchLedger): written in the same stretch as each change, whatever the journal. */
  readonly events: MemoryLedgerEventFeed;

  /** Where settlements are queued; set with `attachOutbox` when settlement is configured. */
  private outbox: SettlementOutbox | null = null;
  /** Minter allowances: what is left of each, its generation, and what each charged mint took. */
  private readonly allowances = new MemoryAllowances();

  constructor(
    readonly ledger: MemoryLedger,
    readonly keys: IdempotencyStore,
    private readonly clock: Clock,
    opts: { journal?: MemoryAuditJournal | null; events?: MemoryLedgerEventFeed } = {},
  ) {
    this.journal = opts.journal === undefined ? new MemoryAuditJournal() : opts.journal;
    this.events = opts.events ?? new MemoryLedgerEventFeed(clock);
  }

  /** The journal (a disabled one reads as empty). */
  get audit(): MemoryAuditJournal {
    return this.journal ?? EMPTY_JOURNAL;
  }

  /**
   * Mints marked `settle` are queued in `outbox` in the same
   * synchronous stretch as their credit, and ReconcileMint consults it. The
   * outbox is built with `settlementEffects()`, hence the late attachment.
   */
  attachOutbox(outbox: SettlementOutbox): void {
    this.outbox = outbox;
  }

  /** What the memory outbox calls when a settlement changes state (WatchLedger's SETTLEMENT_* events). */
  settlementObserver(): (s: Settlement) => void {
    const ledger = this.ledger;
    return (s) => {
      const accountId = s.kind === "burn" ? (ledger.peekRedemption(s.settlementId)?.accountId ?? "") : (ledger.peekMint(s.settlementId)?.accountId ?? "");
      this.events.settlement(s, accountId);
    };
  }

  /**
   * The ledger's side of a final settlement (run by the memory outbox in the
   * same step as its state change). CONFIRMED: pending → available. FAILED:
   * the mint is reversed from the pending balance and its key freed, exactly
   * as ReconcileMint does, once (a mint already reversed is left alone).
   */
  settlementEffects(): SettlementEffects {
    const ledger = this.ledger;
    return {
      confirmed: async (_tx, s) => {
        // A burn's debit happened with the redemption; only the journal records it.
        if (s.kind === "burn") {
          const r = ledger.peekRedemption(s.settlementId);
          if (r !== null) this.journal?.append(unsealedRecord(settlementJournal(BURN_CONFIRMED_ACTION, s), { redemption_id: s.settlementId, state: "CONFIRMED" }, s.updateWallMs, [r.accountId]));
          return;
        }
        await this.settleConfirmed(ledger, s, settlementJournal("SettleMint", s));
      },
      failed: async (_tx, s, reason) => {
        if (s.kind === "burn") {
          // Re-credited and journaled in one synchronous stretch; a second call finds it re-credited and does nothing.
          const r = ledger.recreditRedemption(s.settlementId, `settlement failed: ${reason}`, s.updateWallMs);
          if (r !== null) this.journal?.append(unsealedRecord(settlementJournal(BURN_FAILED_ACTION, s), redemptionRecreditResult(r), s.updateWallMs, [r.accountId]));
          if (r !== null) this.events.redemptionRecredited(r);
          return;
        }
        await this.settleFailed(s, reason, settlementJournal("FailMintSettlement", s));
      },
    };
  }

  /** The credit becomes available, journaled with the worker as actor right after (no other call runs between). */
  private async settleConfirmed(ledger: MemoryLedger, s: Settlement, journal: JournalEntry): Promise<void> {
    const moved = await ledger.settleConfirmed(s.settlementId);
    const mint = moved ? await ledger.getMint(s.settlementId) : null;
    if (mint !== null) {
      this.journal?.append(unsealedRecord(journal, { mint_id: s.settlementId, state: "CONFIRMED" }, s.updateWallMs, [mint.accountId]));
    }
  }

  /**
   * A failed settlement reverses the mint exactly as ReconcileMint does: under
   * the mint's key gate from the reversal to the freeing of its key (so no
   * same-key call replays COMPLETED for the reversed mint), with the
   * allowance refund and its journal record in the same stretch.
   */
  private async settleFailed(s: Settlement, reason: string, journal: JournalEntry): Promise<void> {
    const mint = await this.ledger.getMint(s.settlementId);
    if (mint === null || mint.status === "REVERSED") return;
    const entered = await this.enter("mint", mint.idempotencyKey, null, { deadlineMs: Infinity });
    if (!entered.ok) return;
    try {
      const reversed = await this.ledger.reverseMint(s.settlementId, `settlement failed: ${reason}`, s.updateWallMs, Infinity);
      if (!reversed.ok) return;
      const refunded = this.allowances.refund(reversed.value);
      this.journal?.append(unsealedRecord(journal, withAllowanceRefund(reversalResult(reversed.value), reversed.value, refunded), s.updateWallMs, [reversed.value.accountId]));
      this.events.mintReversed(reversed.value);
      await this.keys.forget("mint", reversed.value.idempotencyKey, reversed.value.mintId);
    } finally {
      entered.value();
    }
  }

  /**
   * One synchronous stretch when nothing waits: the key's one look-up
   * (`claimNow`), the limiter, the ledger change, the journal record and the
   * stored result, answered as a value; no gate and no in-flight entry is
   * made, since no other call can run before the stretch ends. The call takes
   * its key's gate and enters its claim in flight only when it is about to
   * wait: for a gate or a key held by another call, or for a step that answers
   * later (a shared limiter, a ledger that is not this process's).
   */
  applyOnce(call: KeyedCall, wait: Wait): MaybePromise<Result<{ stored: StoredResult; replayed: boolean }>> {
    const keys = this.keys;
    // A caller already gone is told so by the waiting path (CANCELLED, nothing applied); `isAborted` reads the edge's flag, never makes a signal.
    if (!(keys instanceof MemoryIdempotencyStore) || this.gates.size !== 0 || isAborted(wait)) return this.applyOnceWaiting(call, wait);
    const found = keys.claimNow(call.scope, call.key, call.request);
    if (found === KEY_BUSY) return this.applyOnceWaiting(call, wait);
    if (!found.ok) return found;
    if (found.value.kind === "replay") return ok({ stored: found.value.result, replayed: true });
    const claim = found.value.claim;
    const applied = this.admitThenApply(call, claim, wait);
    if (isPromise(applied)) {
      // About to wait: the gate and the claim are taken now, still inside the stretch.
      const entered = this.tryTake(call.scope, call.key, call.request) as Result<() => void>;
      keys.hold(claim);
      return this.settle(entered, claim, applied);
    }
    if (!applied.ok) return applied;
    keys.storeNow(claim, applied.value);
    return ok({ stored: applied.value, replayed: false });
  }

  /** `applyOnce` for a call that may wait: behind the key's gate, then through the key store's port. */
  private async applyOnceWaiting(call: KeyedCall, wait: Wait): Promise<Result<{ stored: StoredResult; replayed: boolean }>> {
    // The uncontended path takes the gate without a promise turn.
    const entered = (!isAborted(wait) ? this.tryTake(call.scope, call.key, call.request) : null) ?? (await this.enter(call.scope, call.key, call.request, wait));
    if (!entered.ok) return entered;
    let begun: Result<BeginOutcome>;
    try {
      begun = await this.keys.begin(call.scope, call.key, call.request, wait.deadlineMs);
    } catch (err) {
      entered.value();
      throw err;
    }
    if (!begun.ok || begun.value.kind === "replay") {
      entered.value();
      return begun.ok && begun.value.kind === "replay" ? ok({ stored: begun.value.result, replayed: true }) : (begun as Result<never>);
    }
    const claim = begun.value.claim;
    if (isAborted(wait)) return this.settle(entered, claim, fail(CANCELLED_WHILE_WAITING));
    let applied: MaybePromise<Result<StoredResult>>;
    try {
      applied = this.admitThenApply(call, claim, wait);
    } catch (err) {
      applied = Promise.reject(err);
    }
    return this.settle(entered, claim, applied);
  }

  /** Completes the claim with what `applied` stored, or releases it; then leaves the key's gate. */
  private async settle(entered: Result<() => void>, claim: IdempotencyClaim, applied: MaybePromise<Result<StoredResult>>): Promise<Result<{ stored: StoredResult; replayed: boolean }>> {
    let stored: StoredResult | null = null;
    try {
      const r = await applied;
      if (!r.ok) return r;
      stored = r.value;
      await this.keys.complete(claim, stored);
      return ok({ stored, replayed: false });
    } finally {
      if (stored === null) await this.keys.release(claim);
      if (entered.ok) entered.value();
    }
  }

  /** The limiter (`admit`), then the effect: a value when neither waited. */
  private admitThenApply(call: KeyedCall, claim: IdempotencyClaim, wait: Wait): MaybePromise<Result<StoredResult>> {
    if (call.admit === undefined) return this.apply(call.effect, claim, wait.deadlineMs, call.journal);
    const admitted = call.admit();
    if (isPromise(admitted)) return admitted.then((a) => (a.ok ? this.apply(call.effect, claim, wait.deadlineMs, call.journal) : a));
    return admitted.ok ? this.apply(call.effect, claim, wait.deadlineMs, call.journal) : admitted;
  }

  /** All or none, in one synchronous stretch (memory-all-or-none.ts). */
  applyAllOrNone(calls: readonly KeyedCall[], wait: Wait): Promise<AllOrNoneOutcome> {
    return applyAllOrNone({ ledger: this.ledger, keys: this.keys, journal: this.journal, events: this.events }, calls, wait);
  }

  async reverseMint(mintId: string, reason: string, wallMs: number, wait: Wait, journal?: JournalEntry): Promise<Result<MintRecord>> {
    const mint = await this.ledger.getMint(mintId);
    if (mint === null) return fail({ code: "MINT_NOT_FOUND", mintId });
    const entered = await this.enter("mint", mint.idempotencyKey, null, wait);
    if (!entered.ok) return entered;
    try {
      const refused = await this.cancelSettlement(mintId);
      if (refused !== null) return fail(refused);
      const reversed = await this.ledger.reverseMint(mintId, reason, wallMs, wait.deadlineMs);
      if (reversed.ok) {
        // Refunded and journaled in the same synchronous stretch as the ledger's answer.
        const refunded = this.allowances.refund(reversed.value);
        this.journal?.append(unsealedRecord(journal ?? reversalEntryOf(mintId, reason), withAllowanceRefund(reversalResult(reversed.value), reversed.value, refunded), wallMs, [reversed.value.accountId]));
        this.events.mintReversed(reversed.value);
        await this.keys.forget("mint", reversed.value.idempotencyKey, reversed.value.mintId);
      }
      return reversed;
    } finally {
      entered.value();
    }
  }

  getBalance(accountId: string): MaybePromise<bigint> {
    return this.ledger.getBalance(accountId);
  }

  getPendingBalance(accountId: string): MaybePromise<bigint> {
    return this.ledger.getPendingBalance(accountId);
  }

  /**
   * ReconcileMint's settlement half: a PENDING settlement is cancelled (the
   * reversal goes on); one signed or settled refuses the reversal. Null when
   * the reversal may go ahead.
   */
  private async cancelSettlement(mintId: string): Promise<Failure | null> {
    if (this.outbox === null) return null;
    const current = await this.ledger.getMint(mintId);
    if (current === null || current.status === "REVERSED") return null; // the ledger answers
    const state = await this.outbox.cancel(mintId);
    return settlementRefusal(mintId, state);
  }

  /**
   * Check and replacement run in one synchronous stretch after the read, so
   * racing approvals of one mint are serialised by Node's single thread:
   * exactly one of them sees the last missing approval and completes it.
   */
  async approveMint(mintId: string, approver: string, wallMs: number, journal: JournalEntry, wait: Wait, settle = false, reserveRequired = false): Promise<Result<MintRecord>> {
    if (isAborted(wait)) return fail(CANCELLED_WHILE_WAITING);
    const ledger = this.ledger;
    const mint = ledger.peekMint(mintId);
    if (mint === null) return fail({ code: "MINT_NOT_FOUND", mintId });
    const decided = decideApproval(mint, approver, wallMs);
    if (!decided.ok) return fail(decided.error);
    if (!decided.changed) return ok(decided.next);
    const next = decided.next;
    if (next.status === "COMPLETED") {
      // The completing approval credits, so it is refused (nothing
      // recorded) on a frozen account or past the reserve, in this same stretch.
      const refused = ledger.checkCompletion(next, reserveRequired);
      if (refused !== null) return fail(refused);
    }
    // Completing a mint on a settling chain credits pending and queues its settlement, as MintUsdc does.
    const settling = settle && next.status === "COMPLETED";
    if (settling && this.outbox === null) throw new Error("invariant violated: a settling mint without an outbox");
    ledger.replacePending(next, settling);
    // Journaled in the same synchronous stretch as the replacement.
    this.journal?.append(unsealedRecord(journal, approvalResult(next), wallMs, [next.accountId]));
    this.events.mintApproved(next, approver, wallMs);
    if (settling) {
      // The memory outbox's enqueue completes synchronously: same step as the credit.
      await this.outbox?.enqueue({ settlementId: next.mintId, blockchain: next.blockchain, amountMicros: next.amountMicros, createWallMs: wallMs });
    }
    return ok(next);
  }

  async rejectMint(mintId: string, reason: string, rejectedBy: string, wallMs: number, journal: JournalEntry, wait: Wait): Promise<Result<MintRecord>> {
    if (isAborted(wait)) return fail(CANCELLED_WHILE_WAITING);
    const found = await this.ledger.getMint(mintId);
    if (found === null) return fail({ code: "MINT_NOT_FOUND", mintId });
    // Holds the mint's key gate while the key is freed, as a reversal does.
    const entered = await this.enter("mint", found.idempotencyKey, null, wait);
    if (!entered.ok) return entered;
    try {
      const mint = this.ledger.peekMint(mintId);
      assert(mint !== null, "a mint never disappears");
      const decided = decideRejection(mint, reason, rejectedBy, wallMs, rejectedBy === SWEEPER);
      if (!decided.ok) return fail(decided.error);
      const next = decided.next;
      this.ledger.replacePending(next);
      const refunded = this.allowances.refund(mint);
      this.journal?.append(unsealedRecord(journal, withAllowanceRefund(approvalResult(next), next, refunded), wallMs, [next.accountId]));
      this.events.mintRejected(next, wallMs);
      await this.keys.forget("mint", mint.idempotencyKey, mint.mintId);
      return ok(next);
    } finally {
      entered.value();
    }
  }

  async expiredPending(wallMs: number, limit: number): Promise<string[]> {
    return this.ledger.expiredPending(wallMs, limit);
  }

  async getAllowance(principal: string): Promise<bigint> {
    return this.allowances.remaining(principal);
  }

  /** Compare, set, new generation and journal in one synchronous stretch. */
  async setAllowance(principal: string, amountMicros: bigint, journal: JournalEntry, wallMs: number, expectedMicros?: bigint): Promise<Result<void>> {
    const set = this.allowances.set(principal, amountMicros, expectedMicros);
    if (!set.ok) return set;
    this.journal?.append(unsealedRecord(journal, { allowance: amountMicros.toString(), principal }, wallMs));
    this.events.allowanceSet(principal, amountMicros, wallMs);
    return ok(undefined);
  }



  getMint(mintId: string): Promise<MintRecord | null> {
    return this.ledger.getMint(mintId);
  }

  listMints(query: ListMintsQuery): Promise<MintRecord[]> {
    return this.ledger.listMints(query);
  }

  // The memory ledger applies each of these synchronously, so each
  // is atomic against every mint, transfer and redemption in flight; the
  // journal record is appended in the same stretch as the ledger's answer.
  async setReserve(reserveMicros: bigint, attestationRef: string, journal: JournalEntry, wait: Wait): Promise<Result<SupplyState>> {
    const before = await this.ledger.getSupply();
    const r = await this.ledger.setReserve(reserveMicros, attestationRef, journal, wait.deadlineMs);
    if (r.ok) this.journal?.append(unsealedRecord(journal, reserveResult(reserveMicros, attestationRef), this.clock.wallMs()));
    // An event for a change only, as on PostgreSQL.
    if (r.ok && (before.reserveMicros !== reserveMicros || before.attestationRef !== attestationRef)) this.events.reserveSet(reserveMicros, attestationRef);
    return r;
  }

  getSupply(): Promise<SupplyState> {
    return this.ledger.getSupply();
  }

  async setFrozen(accountId: string, frozen: boolean, reason: string, journal: JournalEntry, wait: Wait): Promise<Result<AccountState>> {
    const before = await this.ledger.getAccount(accountId);
    const r = await this.ledger.setFrozen(accountId, frozen, reason, journal, wait.deadlineMs);
    if (r.ok) this.journal?.append(unsealedRecord(journal, freezeResult(accountId, frozen), this.clock.wallMs()));
    // An event for a change only, as on PostgreSQL.
    if (r.ok && (before.frozen !== frozen || (frozen && before.freezeReason !== r.value.freezeReason))) this.events.freeze(accountId, frozen, r.value.freezeReason);
    return r;
  }

  getAccount(accountId: string): Promise<AccountState> {
    return this.ledger.getAccount(accountId);
  }

  getRedemption(redemptionId: string): Promise<RedemptionRecord | null> {
    return this.ledger.getRedemption(redemptionId);
  }

  listRedemptions(query: ListMintsQuery): Promise<{ redemption: RedemptionRecord; seq: number }[]> {
    return this.ledger.listRedemptions(query);
  }

  /**
   * The memory ledger is atomic per call: when it throws, nothing was
   * applied. The journal record is appended in the same synchronous stretch
   * as the ledger's answer (nothing can run between them). A value when the
   * ledger answered with one (the memory ledger does, for mints and transfers).
   */
  private apply(effect: Effect, claim: IdempotencyClaim, deadlineMs: number, entry: JournalEntry | undefined): MaybePromise<Result<StoredResult>> {
    try {
      if (effect.kind === "mint") return this.applyMint(effect, claim, deadlineMs, entry);
      if (effect.kind === "redeem") return this.applyRedeem(effect, claim, deadlineMs, entry).catch(notApplied);
      const r = this.ledger.transfer(effect.cmd, claim, deadlineMs);
      return isPromise(r) ? r.then((t) => this.transferred(effect, t, entry), notApplied) : this.transferred(effect, r, entry);
    } catch (err) {
      throw markNotApplied(err);
    }
  }

  private transferred(effect: Extract<Effect, { kind: "transfer" }>, r: Result<TransferRecord>, entry: JournalEntry | undefined): Result<StoredResult> {
    if (!r.ok) return r;
    this.journal?.record(entry ?? entryOfEffect(effect), transferResult(r.value), effect.cmd.createWallMs);
    this.events.transfer(r.value);
    return ok({ scope: "transfer", transfer: r.value });
  }

  /** The allowance charge, the ledger's mint and what goes with it (journal, events, settlement) in the ledger's stretch. */
  private applyMint(effect: Extract<Effect, { kind: "mint" }>, claim: IdempotencyClaim, deadlineMs: number, entry: JournalEntry | undefined): MaybePromise<Result<StoredResult>> {
    const charged = this.allowances.charge(effect.cmd);
    if (!charged.ok) return charged;
    const generation = charged.value;
    let r: MaybePromise<Result<MintRecord>>;
    try {
      r = this.ledger.mint(effect.cmd, claim, deadlineMs, effect.reserveRequired === true);
    } catch (err) {
      if (generation !== null) this.allowances.giveBack(effect.cmd.requester ?? "", effect.cmd.amountMicros, generation);
      throw err;
    }
    if (!isPromise(r)) return this.minted(effect, r, generation, entry);
    return r.then(
      (m) => this.minted(effect, m, generation, entry),
      (err: unknown) => {
        if (generation !== null) this.allowances.giveBack(effect.cmd.requester ?? "", effect.cmd.amountMicros, generation);
        return notApplied(err);
      },
    );
  }

  /** A mint's ledger answer, in the same stretch: the allowance's bookkeeping, the journal, the events and the settlement's queueing. */
  private minted(effect: Extract<Effect, { kind: "mint" }>, r: Result<MintRecord>, generation: number | null, entry: JournalEntry | undefined): MaybePromise<Result<StoredResult>> {
    if (generation !== null) {
      if (r.ok) this.allowances.charged(r.value.mintId, generation);
      else this.allowances.giveBack(effect.cmd.requester ?? "", effect.cmd.amountMicros, generation);
    }
    if (!r.ok) return r;
    const mint = r.value;
    this.journal?.recordMint(entry ?? entryOfEffect(effect), mint, effect.cmd.createWallMs);
    this.events.mintCreated(mint);
    const stored: Result<StoredResult> = ok({ scope: "mint", mint });
    // A mint awaiting approval is queued for settlement when it completes (approveMint).
    if (effect.cmd.settle !== true || mint.status !== "COMPLETED") return stored;
    if (this.outbox === null) throw new Error("invariant violated: a settling mint without an outbox");
    // The memory outbox's enqueue completes synchronously: same step as the credit.
    return this.outbox.enqueue({ settlementId: mint.mintId, blockchain: mint.blockchain, amountMicros: mint.amountMicros, createWallMs: mint.createWallMs }).then(() => stored, notApplied);
  }

  private async applyRedeem(effect: Extract<Effect, { kind: "redeem" }>, claim: IdempotencyClaim, deadlineMs: number, entry: JournalEntry | undefined): Promise<Result<StoredResult>> {
    const journal = entry ?? effect.journal;
    if (effect.settle === true) {
      // On a settling chain the debit, its journal record and the
      // burn's outbox row are written in one synchronous stretch (the
      // memory outbox's enqueue completes without awaiting).
      const outbox = this.outbox;
      if (outbox === null) throw new Error("invariant violated: a settling redemption without an outbox");
      const r = this.ledger.redeemNow(effect.cmd);
      if (!r.ok) return r;
      this.journal?.append(unsealedRecord(journal, redemptionResult(r.value), effect.cmd.createWallMs));
      this.events.redemption(r.value);
      const queued = outbox.enqueue({ settlementId: r.value.redemptionId, kind: "burn", blockchain: r.value.blockchain, amountMicros: r.value.amountMicros, createWallMs: r.value.createWallMs });
      await queued;
      return ok({ scope: "redeem", redemption: r.value });
    }
    const r = await this.ledger.redeem(effect.cmd, claim, deadlineMs, journal);
    if (r.ok) this.journal?.append(unsealedRecord(journal, redemptionResult(r.value), effect.cmd.createWallMs));
    if (r.ok) this.events.redemption(r.value);
    return r.ok ? ok({ scope: "redeem", redemption: r.value }) : r;
  }

  /**
   * Takes the key's gate, waiting behind its holder until the deadline
   * (IDEMPOTENCY_KEY_IN_USE) or the signal (CANCELLED). A different request
   * holding the key is IDEMPOTENCY_KEY_REUSED at once. Returns the leave
   * function.
   */
  /** Takes the key's gate when it is free; null when it is held. */
  private tryTake(scope: IdempotencyScope, key: string, request: CanonicalRequest | null): Result<() => void> | null {
    const gateKey = `${scope}\u0000${key}`;
    if (this.gates.has(gateKey)) return null;
    const gate: Gate = { request, waiters: null };
    this.gates.set(gateKey, gate);
    return ok(() => {
      this.gates.delete(gateKey);
      if (gate.waiters !== null) for (const wake of gate.waiters) wake();
    });
  }

  private async enter(scope: IdempotencyScope, key: string, request: CanonicalRequest | null, wait: Wait): Promise<Result<() => void>> {
    const gateKey = `${scope}\u0000${key}`;
    for (;;) {
      if (isAborted(wait)) return fail(CANCELLED_WHILE_WAITING);
      const held = this.gates.get(gateKey);
      if (held === undefined) return this.tryTake(scope, key, request) as Result<() => void>;
      if (request !== null && held.request !== null && !sameRequest(held.request, request)) {
        return fail({ code: "IDEMPOTENCY_KEY_REUSED", key, fields: differingFields(held.request, request) });
      }
      const outcome = await this.waitFor(held, wait);
      if (outcome === "deadline") return fail({ code: "IDEMPOTENCY_KEY_IN_USE", key, retryAfterMs: KEY_IN_USE_RETRY_AFTER_MS });
      if (outcome === "aborted") return fail(CANCELLED_WHILE_WAITING);
    }
  }

  private waitFor(gate: Gate, wait: Wait): Promise<"left" | "deadline" | "aborted"> {
    const delayMs = wait.deadlineMs - this.clock.nowMs();
    if (delayMs <= 0) return Promise.resolve("deadline");
    return new Promise((resolve) => {
      let settled = false;
      const cancelTimer = delayMs === Infinity ? () => undefined : this.clock.setTimer(delayMs, () => done("deadline"));
      const onAbort = (): void => done("aborted");
      wait.signal?.addEventListener("abort", onAbort, { once: true });
      function done(how: "left" | "deadline" | "aborted"): void {
        if (settled) return;
        settled = true;
        cancelTimer();
        wait.signal?.removeEventListener("abort", onAbort);
        resolve(how);
      }
      (gate.waiters ??= []).push(() => done("left"));
    });
  }
}

