/**
 * The PostgreSQL `ExactlyOnceStore`: one database holds the ledger and the
 * idempotency keys, so a key's result commits in the same transaction as its
 * effect and any number of stateless replicas are exactly-once.
 *
 * `applyOnce` is one transaction: the key's row is inserted (and so locked:
 * a duplicate on any replica blocks on it), `admit` runs, the effect's rows
 * and the key's result are written, COMMIT. Any failure before COMMIT rolls
 * the whole transaction back, so the key is free again and nothing applied.
 * A reversal deletes the mint's key row in its own transaction, under the
 * mint's row lock. Expiry is judged by the database's `now()`.
 *
 * With group commit on (`GroupCommitSettings`), mints and transfers go
 * through `PgGroupCommit` instead: many calls, each with its own key, in one
 * transaction of one statement; what a group cannot decide comes back here.
 *
 * More rows in the same atomic step (an audit record, an outbox row): the
 * effect's SQL in `PostgresLedgerStore` runs on the claim's transaction
 * (`PgClaim.lease.client`) before COMMIT; a new effect kind adds its
 * statements there.
 */
import { markNotApplied, type Failure } from "../../domain/errors.js";
import type { AccountState, MintRecord, RedemptionRecord, StoredResult, SupplyState } from "../../domain/model.js";
import type { AuditJournal } from "../../domain/audit.js";
import { UnavailableError } from "../../domain/errors.js";
import type { JournalEntry } from "../../domain/journal.js";
import { isAborted, type AllOrNoneOutcome, type ApprovalStore, type Effect, type ExactlyOnceStore, type KeyedCall, type ListMintsQuery, type Wait } from "../../domain/ports.js";
import { fail, ok, type Result } from "../../domain/result.js";
import type { PostgresIdempotencyStore } from "./postgres-idempotency-store.js";
import type { PostgresLedgerStore } from "./postgres-ledger-store.js";
import { transferAllOrNone } from "./ledger/all-or-none.js";
import { groupable, PgGroupCommit, type GroupCommitSettings } from "./pg-group-commit.js";

const CANCELLED: Failure = { code: "CANCELLED", message: "the call was cancelled while it waited; nothing was applied" };

export class PostgresExactlyOnceStore implements ExactlyOnceStore, ApprovalStore {
  /** Null when grouping is off (at most one call per group). */
  private readonly groups: PgGroupCommit | null;

  constructor(
    private readonly ledger: PostgresLedgerStore,
    private readonly keys: PostgresIdempotencyStore,
    /** The journal's read side (the ledger appends; with the journal off, an empty one). */
    readonly audit: AuditJournal,
    /** Group commit of mints and transfers (pg-group-commit.ts); absent: every call its own transaction. */
    groupCommit?: GroupCommitSettings,
  ) {
    this.groups =
      groupCommit === undefined || groupCommit.maxItems <= 1
        ? null
        : new PgGroupCommit(ledger.db, groupCommit, ledger.idempotencyTtlMs, ledger.audit, (call, wait) => this.applySingle(call, wait));
  }

  groupsCalls(effect: Effect): boolean {
    return this.groups !== null && groupable(effect);
  }

  applyOnce(call: KeyedCall, wait: Wait): Promise<Result<{ stored: StoredResult; replayed: boolean }>> {
    if (this.groups?.accepts(call) === true) return this.groups.apply(call, wait);
    return this.applySingle(call, wait);
  }

  /**
   * Applies each call exactly once, grouped with one another (and with
   * whatever else is queued) when grouping is on; one answer per call, in
   * order. The entry point of a batch of calls.
   */
  applyMany(calls: readonly { call: KeyedCall; wait: Wait }[]): Promise<Result<{ stored: StoredResult; replayed: boolean }>[]> {
    const groups = this.groups;
    if (groups !== null && calls.every((c) => groups.accepts(c.call))) return groups.applyMany(calls);
    return Promise.all(calls.map((c) => this.applyOnce(c.call, c.wait)));
  }

  /** One call, one transaction: the key claimed, `admit`, the effect and the key's result committed together. */
  private async applySingle(call: KeyedCall, wait: Wait): Promise<Result<{ stored: StoredResult; replayed: boolean }>> {
    let begun;
    try {
      begun = await this.keys.begin(call.scope, call.key, call.request, wait.deadlineMs, wait.signal);
    } catch (err) {
      throw markNotApplied(err);
    }
    if (!begun.ok) return begun;
    // A cancellation that arrived while the key's row lock was awaited (a
    // statement in flight is not interrupted) is honoured here, before
    // anything is written; the caller has gone, so not even a replay is due.
    if (begun.value.kind === "replay") return isAborted(wait) ? fail(CANCELLED) : ok({ stored: begun.value.result, replayed: true });
    const claim = begun.value.claim;
    try {
      if (isAborted(wait)) return fail(CANCELLED);
      if (call.admit !== undefined) {
        const admitted = await call.admit();
        if (!admitted.ok) return admitted;
      }
      const effect = call.effect;
      if (effect.kind === "mint") {
        const r = await this.ledger.mint(effect.cmd, claim, wait.deadlineMs, effect.reserveRequired === true, call.journal);
        return r.ok ? ok({ stored: { scope: "mint", mint: r.value }, replayed: false }) : r;
      }
      if (effect.kind === "redeem") {
        const r = await this.ledger.redeem(effect.cmd, claim, wait.deadlineMs, call.journal ?? effect.journal, effect.settle === true);
        return r.ok ? ok({ stored: { scope: "redeem", redemption: r.value }, replayed: false }) : r;
      }
      const r = await this.ledger.transfer(effect.cmd, claim, wait.deadlineMs, call.journal);
      return r.ok ? ok({ stored: { scope: "transfer", transfer: r.value }, replayed: false }) : r;
    } finally {
      // A no-op once the ledger call ended the transaction (commit or rollback).
      await this.keys.release(claim).catch(() => undefined);
    }
  }

  /** One transaction for the whole batch (ledger/all-or-none.ts). */
  applyAllOrNone(calls: readonly KeyedCall[], wait: Wait): Promise<AllOrNoneOutcome> {
    return transferAllOrNone(this.ledger, calls, wait);
  }

  reverseMint(mintId: string, reason: string, wallMs: number, wait: Wait, journal?: JournalEntry): Promise<Result<MintRecord>> {
    return this.ledger.reverseMint(mintId, reason, wallMs, wait.deadlineMs, wait.signal, journal);
  }

  // Each journal entry is appended on the change's own transaction.
  approveMint(mintId: string, approver: string, wallMs: number, journal: JournalEntry, wait: Wait, settle = false, reserveRequired = false): Promise<Result<MintRecord>> {
    return this.ledger.approveMint(mintId, approver, wallMs, journal, settle, wait.deadlineMs, wait.signal, reserveRequired);
  }

  rejectMint(mintId: string, reason: string, rejectedBy: string, wallMs: number, journal: JournalEntry, wait: Wait): Promise<Result<MintRecord>> {
    return this.ledger.rejectMint(mintId, reason, rejectedBy, wallMs, rejectedBy === "sweeper", journal, wait.deadlineMs, wait.signal);
  }

  expiredPending(wallMs: number, limit: number): Promise<string[]> {
    return this.ledger.expiredPending(wallMs, limit);
  }

  getAllowance(principal: string): Promise<bigint> {
    return this.ledger.getAllowance(principal);
  }

  setAllowance(principal: string, amountMicros: bigint, journal: JournalEntry, wallMs: number, expectedMicros?: bigint): Promise<Result<void>> {
    // No caller deadline reaches here (the port's contract).
    return this.ledger.setAllowance(principal, amountMicros, journal, wallMs, Number.POSITIVE_INFINITY, expectedMicros);
  }

  getBalance(accountId: string): Promise<bigint> {
    return this.ledger.getBalance(accountId);
  }

  getPendingBalance(accountId: string): Promise<bigint> {
    return this.ledger.getPendingBalance(accountId);
  }

  getMint(mintId: string): Promise<MintRecord | null> {
    return this.ledger.getMint(mintId);
  }

  listMints(query: ListMintsQuery): Promise<MintRecord[]> {
    return this.ledger.listMints(query);
  }

  // Each is one statement (or, for redemptions, the claim's
  // transaction) that PostgreSQL makes atomic across replicas.
  setReserve(reserveMicros: bigint, attestationRef: string, journal: JournalEntry, wait: Wait): Promise<Result<SupplyState>> {
    return this.ledger.setReserve(reserveMicros, attestationRef, journal, wait.deadlineMs);
  }

  getSupply(): Promise<SupplyState> {
    return this.ledger.getSupply();
  }

  setFrozen(accountId: string, frozen: boolean, reason: string, journal: JournalEntry, wait: Wait): Promise<Result<AccountState>> {
    return this.ledger.setFrozen(accountId, frozen, reason, journal, wait.deadlineMs);
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
}
