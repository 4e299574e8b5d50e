/**
 * The interfaces the core needs from the outside world. Adapters live in
 * `src/adapters/<kind>/` and are chosen once, at wiring (`src/main.ts`).
 * The core never imports gRPC, SQL, Redis or `process.env`.
 *
 * Deadlines are monotonic milliseconds on the injected `Clock` (`Infinity`
 * for none). Adapters signal an unreachable backing service by throwing
 * `UnavailableError` and a passed deadline by returning DEADLINE_EXCEEDED (or
 * throwing `DeadlineExceededError`); every other outcome is a `Result`.
 */
import type { AuditJournal } from "./audit.js";
import type { Failure } from "./errors.js";
import type { JournalEntry } from "./journal.js";
import type { MaybePromise, Result } from "./result.js";
import type {
  Blockchain,
  AccountState,
  NewRedemption,
  RedemptionRecord,
  SupplyState,
  CanonicalRequest,
  IdempotencyScope,
  MintRecord,
  MintStatus,
  NewMint,
  NewTransfer,
  StoredResult,
  TransferRecord,
} from "./model.js";

export type { Clock } from "./clock.js";

/** A held idempotency key (adapter building block): the caller must end it with `complete` or `release`. */
export interface IdempotencyClaim {
  readonly scope: IdempotencyScope;
  readonly key: string;
  readonly request: CanonicalRequest;
}

export type BeginOutcome =
  /** The key is now held by this call; apply the effect, then complete or release. */
  | { readonly kind: "claimed"; readonly claim: IdempotencyClaim }
  /** The key already holds this request's successful result: replay it. */
  | { readonly kind: "replay"; readonly result: StoredResult };

/**
 * Idempotency keys with a TTL counted from the success. Only successes are
 * stored; a released claim leaves the key free.
 */
export interface IdempotencyStore {
  /**
   * Looks the key up and claims it when free. A key held by a call still in
   * flight is waited for (until `deadlineMs`) and then replayed or claimed.
   * Failures: IDEMPOTENCY_KEY_REUSED (another request; names the differing
   * fields), IDEMPOTENCY_KEY_IN_USE (still in flight at the deadline),
   * IDEMPOTENCY_STORE_FULL (at the cap of stored keys), DEADLINE_EXCEEDED
   * (no store connection was free before the deadline; nothing looked at).
   */
  begin(scope: IdempotencyScope, key: string, request: CanonicalRequest, deadlineMs: number, signal?: AbortSignal): Promise<Result<BeginOutcome>>;
  /** Stores the successful result under the claim; it replays until the TTL passes. */
  complete(claim: IdempotencyClaim, result: StoredResult): Promise<void>;
  /** Gives the key up without storing anything (the call failed); waiters may claim it. */
  release(claim: IdempotencyClaim): Promise<void>;
  /**
   * Frees a completed key so it may be used again (after ReconcileMint), but
   * only while it still stores the result with id `resultId` (a mint or
   * transfer id): a key that expired and was reused for a newer mint is left
   * alone. No-op when absent or in flight.
   */
  forget(scope: IdempotencyScope, key: string, resultId: string): Promise<void>;
  /** Deletes up to `maxKeys` expired keys; returns how many were deleted. */
  sweepExpired(maxKeys: number): Promise<number>;
  /** Number of keys held (in flight or stored), expired ones not yet swept included. */
  size(): Promise<number>;
  /**
   * `size()` for a gauge: an estimate whose cost does not grow with the
   * number of keys (a store whose `size()` is already such, e.g. in memory,
   * leaves it out). The metrics scrape reads this, never `size()`.
   */
  estimatedSize?(): Promise<number>;
  close(): Promise<void>;
}

/**
 * What a keyed call applies, described rather than performed, so each store
 * can write it in its own atomic step (one PostgreSQL transaction, one
 * synchronous stretch in memory) together with the key's stored result.
 * Later effects (an audit record, an outbox row) are more variants or more
 * fields here; the store writes them in the same step.
 */
export type Effect =
  | {
      readonly kind: "mint";
      readonly cmd: NewMint;
      /**
       * Refuse the mint (RESERVE_NOT_SET) while no reserve is set.
       * Whatever this says, a set reserve caps supply, checked in the same
       * atomic step as the mint.
       */
      readonly reserveRequired?: boolean;
    }
  | { readonly kind: "transfer"; readonly cmd: NewTransfer }
  /**
   * Debits the account, lowers supply, records the redemption.
   * With `settle` (the chain settles on-chain) the store also writes
   * the redemption's burn settlement in the outbox in the same atomic step.
   */
  | { readonly kind: "redeem"; readonly cmd: NewRedemption; readonly journal: JournalEntry; readonly settle?: boolean };

/** One keyed call for `ExactlyOnceStore.applyOnce`. */
export interface KeyedCall {
  readonly scope: IdempotencyScope;
  readonly key: string;
  readonly request: CanonicalRequest;
  readonly effect: Effect;
  /**
   * Runs once the key is known to be fresh (not a replay, not reused) and
   * before the effect: the rate limiter. A failure ends the call with
   * nothing applied and the key free.
   */
  readonly admit?: () => MaybePromise<Result<void>>;
  /**
   * Gives back what `admit` took. A store that must admit a call before it
   * knows the key is fresh (it groups calls into one atomic step, see
   * `KeyedStore.groupsCalls`) calls it when the call turns out a replay,
   * since replays never count. Absent: such a store does not group the call.
   */
  readonly unadmit?: () => Promise<void>;
  /**
   * What the audit journal records of the change, appended in the same
   * atomic step as the effect when it applies (never for a replay or a
   * failure). Absent (building-block tests): the store journals the effect
   * as its RPC (`MintUsdc`, `Transfer`) by actor `local` (see `entryOfEffect`).
   */
  readonly journal?: JournalEntry;
}

/** How long a call may wait, and its cancellation. */
export interface Wait {
  /** Monotonic ms on the store's clock; Infinity for none. */
  readonly deadlineMs: number;
  /** Read only when about to wait: the edge makes it on first read (see `isAborted`). */
  readonly signal?: AbortSignal;
  /** Whether the caller went away, without making the signal (the edge's calls have it). */
  readonly aborted?: boolean;
}

/** Whether the waiting caller went away: the cheap flag when there is one, else the signal. */
export function isAborted(wait: Wait): boolean {
  return wait.aborted ?? wait.signal?.aborted === true;
}

/**
 * The one port the core writes money through: exactly-once is this store's
 * guarantee, not choreography in the core.
 *
 * - `applyOnce`: the effect and the key's stored result commit together or
 *   not at all. A key holding this request's result replays it (the effect
 *   is not applied again, `admit` is not called); a key holding another
 *   request's result, or held in flight by another request, is
 *   IDEMPOTENCY_KEY_REUSED. A duplicate in flight is waited for until the
 *   deadline (IDEMPOTENCY_KEY_IN_USE) or the signal (CANCELLED).
 * - `reverseMint`: the reversal and the freeing of the mint's key are one
 *   atomic step: no replay ever answers COMPLETED for a reversed mint.
 * - Expiry of stored results is judged by one clock per store.
 *
 * Returned failures never applied anything. A thrown `UnavailableError`
 * says in `notApplied` whether the outcome is known.
 */
export interface ExactlyOnceStore extends KeyedStore, MintReads, ReconcileStore, AccountReads, ReserveStore, RedemptionReads, FreezeStore, AuditStore {}

// The exactly-once store's parts, one per feature. Reserve, redemption and
// freeze: supply changes in the same atomic step as the mint, reversal or
// redemption that changes it; a set reserve is checked there too (on
// PostgreSQL under the one supply row's lock, so across replicas). Transfers
// never touch supply. A frozen account refuses mints, transfers (either side)
// and redemptions (ACCOUNT_FROZEN) in the same atomic step that would have
// moved its money.

/** Mint, transfer and redemption write through the keyed path. */
export interface KeyedStore {
  /**
   * Failures: IDEMPOTENCY_KEY_REUSED/IN_USE, IDEMPOTENCY_STORE_FULL,
   * whatever `admit` returns, INSUFFICIENT_FUNDS, DEADLINE_EXCEEDED,
   * STORE_BUSY, CANCELLED. A store may answer with a value when it waited
   * for nothing (the memory store's one synchronous stretch).
   */
  applyOnce(call: KeyedCall, wait: Wait): MaybePromise<Result<{ stored: StoredResult; replayed: boolean }>>;
  /**
   * An all-or-none BatchTransfer: transfer effects only, at most
   * MINT_BATCH_MAX_ITEMS, keys distinct, their accounts locked by the caller.
   * In one atomic step every call whose key is fresh applies with its key's
   * result and journal record, or none does. A call whose key already holds
   * this request's result replays (counts as applied, moves nothing); any
   * other outcome of any call (IDEMPOTENCY_KEY_REUSED/IN_USE,
   * INSUFFICIENT_FUNDS, ACCOUNT_FROZEN, IDEMPOTENCY_STORE_FULL) refuses the
   * whole batch: nothing applied, every key free, the first such call (in the
   * order given) named by its index. DEADLINE_EXCEEDED, STORE_BUSY and
   * CANCELLED refuse it the same way with index null (no one call's doing).
   */
  applyAllOrNone(calls: readonly KeyedCall[], wait: Wait): Promise<AllOrNoneOutcome>;
  /**
   * True when the store applies calls with this effect in groups (many
   * calls in one atomic step, a hot account written once per group): it
   * orders the calls on one account itself, so the core takes no
   * in-process account lock for them, which would keep them out of one
   * group. Absent or false: the core locks the call's accounts first.
   */
  groupsCalls?(effect: Effect): boolean;
  /**
   * Applies each call exactly once, as `applyOnce` would, one answer per call
   * in order (a batch of calls); a grouping store puts them in as few atomic
   * steps as it can. Absent: `applyOnce` per call.
   */
  applyMany?(calls: readonly { readonly call: KeyedCall; readonly wait: Wait }[]): Promise<Result<{ stored: StoredResult; replayed: boolean }>[]>;
}

/** What `applyAllOrNone` answers: every call's result in order, or the index of the one that refused and why. */
export type AllOrNoneOutcome =
  | { readonly ok: true; readonly value: readonly { readonly stored: StoredResult; readonly replayed: boolean }[] }
  | { readonly ok: false; readonly index: number | null; readonly error: Failure };

/** Mint: the reads of GetMint and ListMints. */
export interface MintReads {
  getMint(mintId: string): Promise<MintRecord | null>;
  /** Mints oldest first (ascending `seq`). */
  listMints(query: ListMintsQuery): Promise<MintRecord[]>;
}

/** Reconcile: the reversal of a mint. */
export interface ReconcileStore {
  /**
   * Reverses a COMPLETED mint and frees its key (if it still holds this mint).
   * Failures: MINT_NOT_FOUND, MINT_ALREADY_REVERSED, INSUFFICIENT_FUNDS,
   * DEADLINE_EXCEEDED, STORE_BUSY, CANCELLED.
   */
  reverseMint(mintId: string, reason: string, wallMs: number, wait: Wait, journal?: JournalEntry): Promise<Result<MintRecord>>;
}

/** Accounts: balances and state. */
export interface AccountReads {
  /** A value when the store has it at hand (memory). */
  getBalance(accountId: string): MaybePromise<bigint>;
  /** Credit of mints not yet settled on-chain, micro-USDC (0 when the store never settles). */
  getPendingBalance?(accountId: string): MaybePromise<bigint>;
  /** Balance and frozen state; an unknown account is 0 and not frozen. */
  getAccount(accountId: string): Promise<AccountState>;
}

/** Reserve and supply. */
export interface ReserveStore {
  /**
   * Sets the reserve. Failures: RESERVE_EXCEEDED (the reserve would be below
   * supply; nothing changed), DEADLINE_EXCEEDED, STORE_BUSY, CANCELLED.
   */
  setReserve(reserveMicros: bigint, attestationRef: string, journal: JournalEntry, wait: Wait): Promise<Result<SupplyState>>;
  getSupply(): Promise<SupplyState>;
}

/** Redemption: the reads (RedeemUsdc itself goes through `applyOnce`). */
export interface RedemptionReads {
  getRedemption(redemptionId: string): Promise<RedemptionRecord | null>;
  /** Redemptions oldest first, `afterSeq` as for mints (seq is the position, from 1). */
  listRedemptions(query: ListMintsQuery): Promise<{ redemption: RedemptionRecord; seq: number }[]>;
}

/** Freeze. */
export interface FreezeStore {
  /**
   * Freezes (`frozen` true) or unfreezes an account, known or not, atomically
   * against every call in flight on it: such a call has either committed
   * before or is refused after. Failures: DEADLINE_EXCEEDED, STORE_BUSY, CANCELLED.
   */
  setFrozen(accountId: string, frozen: boolean, reason: string, journal: JournalEntry, wait: Wait): Promise<Result<AccountState>>;
}

/** Audit: the journal every change of the parts above is appended to. */
export interface AuditStore {
  readonly audit: AuditJournal;
}

/**
 * Which chains settle mints on-chain. A mint on such a chain is
 * credited to the pending balance (the store writes the settlement's outbox
 * row in the mint's own atomic step) and becomes available once CONFIRMED.
 */
export interface SettlementGate {
  required(blockchain: Blockchain): boolean;
  /** Tells the chain's worker a settlement was just committed. */
  wake(blockchain: Blockchain): void;
}

/**
 * M-of-N approval of large mints and per-minter allowances, on the
 * same store as `ExactlyOnceStore` (its mints and keys). A mint effect whose
 * `cmd.pending` is set is created PENDING_APPROVAL (nothing credited); one
 * whose `cmd.chargeAllowance` is set consumes the requester's allowance in
 * the same atomic step or fails ALLOWANCE_EXCEEDED with nothing changed.
 *
 * Refunds and the manager's word: every `setAllowance` starts a new
 * generation of the principal's allowance, and each charge remembers the
 * generation it was taken from. A charged mint that is rejected, expires, is
 * reversed (ReconcileMint) or whose settlement fails gives its amount back
 * only while its generation is still current; a Set since then is final, and
 * the unapplied refund is written in that same change's journal record
 * (`allowance_not_refunded`, see `withAllowanceRefund`).
 *
 * Each method below is one atomic step; its returned failures changed
 * nothing. The `journal` entry is handed through for the audit journal
 * and appended in the same step.
 */
export interface ApprovalStore extends ApprovalsStore, AllowancesStore {}

/** Approvals: M-of-N approval of pending mints. */
export interface ApprovalsStore {
  /**
   * Records `approver`'s approval; the approval that reaches `required`
   * distinct approvers completes the mint (credit, ledger entry, status) in
   * the same step, exactly once however many race. An approver approving
   * again gets the mint back, counted once. Failures: MINT_NOT_FOUND,
   * APPROVER_IS_REQUESTER, MINT_NOT_PENDING (completed, reversed, rejected or
   * expired: `wallMs` at or past the mint's expiry), DEADLINE_EXCEEDED,
   * STORE_BUSY, CANCELLED. `settle` (the mint's chain settles
   * on-chain): the completing approval credits the pending balance and writes
   * the settlement's outbox row in the same step, as MintUsdc does.
   */
  approveMint(mintId: string, approver: string, wallMs: number, journal: JournalEntry, wait: Wait, settle?: boolean, reserveRequired?: boolean): Promise<Result<MintRecord>>;
  /**
   * Rejects a pending mint, gives its allowance charge back (only while no
   * Set came since the charge, see above) and frees its
   * idempotency key (the same request may be submitted again). `rejectedBy`
   * is `sweeper` for an expiry. Failures: MINT_NOT_FOUND, MINT_NOT_PENDING,
   * DEADLINE_EXCEEDED, STORE_BUSY, CANCELLED.
   */
  rejectMint(mintId: string, reason: string, rejectedBy: string, wallMs: number, journal: JournalEntry, wait: Wait): Promise<Result<MintRecord>>;
  /** Pending mints whose expiry is at or before `wallMs`, oldest first, at most `limit` (for the sweeper). */
  expiredPending(wallMs: number, limit: number): Promise<string[]>;
}

/** Allowances: what each minter may still mint. */
export interface AllowancesStore {
  /** What is left of the principal's allowance, micro-USDC; 0 when never set. */
  getAllowance(principal: string): Promise<bigint>;
  /**
   * Sets what is left of the principal's allowance (not added to it) and
   * starts a new generation of it, journaled at `wallMs` in the same step.
   * With `expectedMicros`, only while what is left is exactly that (a
   * compare-and-set in the same step). Failures: ALLOWANCE_CHANGED (with the
   * value now; nothing changed), STORE_BUSY.
   */
  setAllowance(principal: string, amountMicros: bigint, journal: JournalEntry, wallMs: number, expectedMicros?: bigint): Promise<Result<void>>;
}

export type LimitDecision =
  | { readonly allowed: true }
  /** `retryAfterMs`: exact time until the oldest counted mint leaves the window. */
  | { readonly allowed: false; readonly retryAfterMs: number };

/** A sliding-window limit on mints per account: at most `limit` in any `windowMs`. */
export interface RateLimiter {
  readonly limit: number;
  readonly windowMs: number;
  /** Counts one mint for the account when under the limit; a refusal counts nothing. A value when decided in process (memory). */
  tryAcquire(accountId: string): MaybePromise<LimitDecision>;
  /**
   * Gives back one slot counted for the account (the most recent), for a
   * mint known not to have been applied. A no-op when none is counted.
   */
  giveBack(accountId: string): Promise<void>;
  /** Drops the state of accounts idle for a whole window; returns how many were dropped. */
  sweepIdle(): Promise<number>;
  close(): Promise<void>;
}

export interface ListMintsQuery {
  /** Only this account's mints; null for all. */
  readonly accountId: string | null;
  /** Return mints with `seq` greater than this (0 for the first page). */
  readonly afterSeq: number;
  /** At most this many (1..1001: a page of up to 1000 plus one look-ahead row). */
  readonly limit: number;
  /** Only mints in this status; absent for all. */
  readonly status?: MintStatus;
}

/**
 * Adapter building blocks below: the memory and PostgreSQL exactly-once
 * stores are built from a ledger and a key store each; the core uses only
 * `ExactlyOnceStore`.
 */

/**
 * Balances and the append-only ledger. Mutations are atomic: either every
 * entry of an operation is written or none is. Accounts are locked in the
 * code-unit order of their ids.
 *
 * `claim` ties an effect to its idempotency key: an adapter that keeps keys in
 * the same database as the ledger commits the key's result in the same
 * transaction as the change; the in-memory adapter ignores it. The in-memory
 * adapter answers `mint`, `transfer` and `getBalance` with values (each is
 * one synchronous step), so its callers can keep one stretch.
 */
export interface LedgerStore {
  /**
   * Credits a mint and raises supply. Failures: DEADLINE_EXCEEDED,
   * ACCOUNT_FROZEN, RESERVE_EXCEEDED, RESERVE_NOT_SET (only with
   * `reserveRequired`), all checked in the mint's atomic step.
   */
  mint(cmd: NewMint, claim: IdempotencyClaim, deadlineMs: number, reserveRequired?: boolean): MaybePromise<Result<MintRecord>>;
  /** Moves money between two different accounts. Failures: INSUFFICIENT_FUNDS, DEADLINE_EXCEEDED. */
  transfer(cmd: NewTransfer, claim: IdempotencyClaim, deadlineMs: number): MaybePromise<Result<TransferRecord>>;
  /**
   * Reverses a completed mint with a compensating entry and marks it REVERSED.
   * Failures: MINT_NOT_FOUND, MINT_ALREADY_REVERSED, INSUFFICIENT_FUNDS, DEADLINE_EXCEEDED.
   */
  reverseMint(mintId: string, reason: string, wallMs: number, deadlineMs: number): Promise<Result<MintRecord>>;
  /** Current balance in micro-USDC; 0 for unknown accounts. */
  getBalance(accountId: string): MaybePromise<bigint>;
  getMint(mintId: string): Promise<MintRecord | null>;
  /** Mints oldest first (ascending `seq`). */
  listMints(query: ListMintsQuery): Promise<MintRecord[]>;
  close(): Promise<void>;

  // Reserve, redemption, freeze (the ExactlyOnceStore methods of the same names say what each does).
  /**
   * Debits, lowers supply, records. `settle`: also writes the
   * redemption's burn in the settlement outbox in the same transaction (the
   * PostgreSQL ledger; the memory store queues it itself). Failures:
   * INSUFFICIENT_FUNDS, ACCOUNT_FROZEN, DEADLINE_EXCEEDED.
   */
  redeem(cmd: NewRedemption, claim: IdempotencyClaim, deadlineMs: number, journal: JournalEntry, settle?: boolean): Promise<Result<RedemptionRecord>>;
  setReserve(reserveMicros: bigint, attestationRef: string, journal: JournalEntry, deadlineMs: number): Promise<Result<SupplyState>>;
  getSupply(): Promise<SupplyState>;
  setFrozen(accountId: string, frozen: boolean, reason: string, journal: JournalEntry, deadlineMs: number): Promise<Result<AccountState>>;
  getAccount(accountId: string): Promise<AccountState>;
  getRedemption(redemptionId: string): Promise<RedemptionRecord | null>;
  listRedemptions(query: ListMintsQuery): Promise<{ redemption: RedemptionRecord; seq: number }[]>;
}

/** Reports whether the backing services are reachable (health). */
export interface Probe {
  healthy(): Promise<boolean>;
}

/** An applied effect that moves money, as the metrics count it. */
export type MoneyOperation = "mint" | "transfer" | "reversal";

/** Why a call was refused before it did anything, to keep the serving process healthy. */
export type ShedReason = "shutting_down" | "overloaded" | "account_busy";

/** PostgreSQL's two "lost a race" SQLSTATEs: deadlock detected, serialization failure. */
export type PgConflictState = "40P01" | "40001";

/**
 * What the core, the adapters and the edge report for metrics. The core
 * records through this port, never through a metrics library, so it stays
 * free of one; every method is a plain call that costs a few nanoseconds,
 * never throws and never blocks. Arguments are bounded enumerations (no
 * account ids, keys or free text), so the metrics' label values stay bounded.
 * `noMetrics` is the default where nothing is wired.
 */
export interface MetricsSink {
  /** An effect was applied (not replayed): `amountMicros` of micro-USDC minted, moved or reversed. */
  moneyMoved(operation: MoneyOperation, amountMicros: bigint): void;
  /** A keyed call was answered from its key's stored result. */
  idempotentReplay(scope: IdempotencyScope): void;
  /** A mint was refused by the rate limiter. */
  rateLimited(): void;
  /** A call found another call with the same key in flight and waited for it. */
  duplicateWaited(scope: IdempotencyScope): void;
  /** A call found an account lock taken and waited `waitMs` (monotonic ms); `acquired` false when it gave up. */
  lockWaited(waitMs: number, acquired: boolean): void;
  /** A call was refused before doing anything (draining, too many calls, too many waiters on one account). */
  callShed(reason: ShedReason): void;
  /** A PostgreSQL transaction lost a race (`state`) and was retried (`gaveUp` false) or given up (`gaveUp` true). */
  pgConflict(state: PgConflictState, gaveUp: boolean): void;
  /** A Redis command failed (connection lost, timeout, script error). */
  redisCommandError(): void;
  /** One run of the sweeper (expired keys, idle limiter state); `ok` false when it failed. */
  sweeperRun(ok: boolean): void;
}

/** The sink that records nothing: the default of every component that takes one. */
export const noMetrics: MetricsSink = Object.freeze({
  moneyMoved() {},
  idempotentReplay() {},
  rateLimited() {},
  duplicateWaited() {},
  lockWaited() {},
  callShed() {},
  pgConflict() {},
  redisCommandError() {},
  sweeperRun() {},
});
