/**
 * What every feature's calls share: the core's dependencies, the per-call
 * context, and the path a keyed (mutating) call takes.
 *
 * Order of a mutating call, and why:
 *  1. Validate everything (a bad request touches nothing, not even a key).
 *     A call whose key is in flight in this process for a different request
 *     is IDEMPOTENCY_KEY_REUSED at once.
 *  2. Lock the accounts in code-unit order, within the call's deadline.
 *     Locks come before the store because the store may hold a resource
 *     for the call (a PostgreSQL connection with an open transaction):
 *     calls queued on a busy account must wait holding nothing, or a hot
 *     account could take every pooled connection and starve the others.
 *     A duplicate of a call in flight in this process queues here behind it;
 *     if its deadline passes first it gets IDEMPOTENCY_KEY_IN_USE.
 *     A call the store groups with others (KeyedStore.groupsCalls) takes no
 *     lock: the store orders the calls on one account itself.
 *  3. `store.applyOnce`: the store looks the key up (replay, reuse, a
 *     duplicate in flight on another replica), runs `admit` (the limiter,
 *     for mints: replays never count), and commits the effect with the
 *     key's result, or nothing.
 *  4. A limiter slot is given back when the mint is known not applied (any
 *     returned failure, or a store error marked `notApplied`); when the
 *     outcome is unknown (a lost commit reply) it is kept.
 */
import type { Principal } from "./authorization.js";
import { AccountLocks, type LockRefusal, type ReleaseLocks } from "./account-locks.js";
import { LOCAL_ACTOR } from "./audit.js";
import type { JournalEntry } from "./journal.js";
import type { Clock } from "./clock.js";
import type { Failure } from "./errors.js";
import { createIdGenerator, type IdGenerator } from "./ids.js";
import { differingFields, sameRequest, type Blockchain, type CanonicalRequest, type IdempotencyScope, type StoredResult } from "./model.js";
import { KEY_IN_USE_RETRY_AFTER_MS } from "./limits.js";
import { parseAmount } from "./money.js";
import { noMetrics, type ApprovalStore, type Effect, type ExactlyOnceStore, type KeyedCall, type MetricsSink, type RateLimiter, type SettlementGate } from "./ports.js";
import { fail, isPromise, ok, type MaybePromise, type Result } from "./result.js";
import * as v from "./validate.js";

export interface MintCoreDeps {
  /** Where money is written, exactly once per idempotency key. */
  readonly store: ExactlyOnceStore;
  readonly limiter: RateLimiter;
  readonly clock: Clock;
  /** Largest amount one call may move, in micro-USDC. */
  readonly maxAmountMicros: bigint;
  readonly ids?: IdGenerator;
  /** Most calls waiting for one account's lock; beyond it ACCOUNT_BUSY (default: no bound). */
  readonly maxLockWaiters?: number;
  /** M-of-N approval and minter allowances; absent: neither (every mint completes at once, uncapped). */
  readonly approvals?: ApprovalSettings;
  /** Refuse mints (RESERVE_NOT_SET) until a reserve is set (MINT_RESERVE_REQUIRED; default false). */
  readonly reserveRequired?: boolean;
  /** Hears money moved, replays, rate-limit refusals, duplicates and lock waits (default: nothing records). */
  readonly metrics?: MetricsSink;
  /** Chains whose mints settle on-chain (default: none, every credit available at once). */
  readonly settlement?: SettlementGate;
}

/** The approval and allowance settings and the store that keeps approvals and allowances (the same store as `store`). */
export interface ApprovalSettings {
  readonly store: ApprovalStore;
  /** Mints at or above this wait for approval; null for none. */
  readonly thresholdMicros: bigint | null;
  /** Distinct approvers needed (the requester never counts). */
  readonly required: number;
  /** A pending mint expires this long after it was accepted. */
  readonly ttlMs: number;
  /** Whether every mint consumes its requester's allowance. */
  readonly allowances: boolean;
  /**
   * Whether a principal may set its own allowance. Only a service without an
   * auth file turns this on: every caller there is the development `local`
   * principal (or a name the development header lends it), which holds every
   * role by design. Absent or false: SELF_ALLOWANCE.
   */
  readonly selfAllowance?: boolean;
}

/** The principal that names calls without one (no authentication configured). */
export const LOCAL_PRINCIPAL = "local";
/** The actor of rejections made by the expiry sweeper. */
export const SWEEPER_ACTOR = "sweeper";

/**
 * Per-call context. `deadlineMs` is monotonic on the core's clock; Infinity
 * for none. `signal` aborts when the caller cancels or goes away: a call still
 * waiting for a lock then gives up with nothing applied (CANCELLED). It is
 * read only when a call must wait (the edge makes one on first read).
 */
export interface CallContext {
  readonly deadlineMs: number;
  readonly signal?: AbortSignal;
  /** Whether the caller went away, read without making `signal` (the edge's calls have it). */
  readonly aborted?: boolean;
  /**
   * Who is calling, as the edge's auth link decided (absent for the service's
   * own calls and in tests of the core alone). It scopes idempotency keys and
   * the account checks the core makes once it has looked a mint up; redemptions and
   * journal entries take their actor from it (`local` when absent).
   */
  readonly principal?: Principal;
}

/** One keyed call: its idempotency scope and key, canonical request, locked accounts and journal entry. */
export interface KeyedOp {
  readonly scope: IdempotencyScope;
  readonly key: string;
  readonly request: CanonicalRequest;
  readonly accounts: readonly string[];
  readonly journal: JournalEntry;
  /** Gives back what `admit` took, for a store that admits before it knows the key (KeyedCall.unadmit). */
  readonly unadmit?: () => Promise<void>;
}

/** The release of a call that took no account lock. */
const unlocked = (): void => undefined;

/** Calls in flight in this process for one key: the request of the first, and how many. */
interface InFlightKey {
  readonly request: CanonicalRequest;
  count: number;
}

/** Adds one in-flight use of `op.key` (the caller knows none is there with another request). */
function enter(scope: Map<string, InFlightKey>, op: KeyedOp): void {
  const entry = scope.get(op.key);
  if (entry === undefined) scope.set(op.key, { request: op.request, count: 1 });
  else entry.count++;
}

/** The store's call of a keyed op (no spread of `op`: it is on the hot path). */
function keyedCall(op: KeyedOp, effect: Effect, admit: (() => MaybePromise<Result<void>>) | undefined): KeyedCall {
  if (op.unadmit !== undefined) return admit === undefined ? { ...op, effect } : { ...op, effect, admit };
  return admit === undefined
    ? { scope: op.scope, key: op.key, request: op.request, effect, journal: op.journal }
    : { scope: op.scope, key: op.key, request: op.request, effect, journal: op.journal, admit };
}

/** Drops one in-flight use of `key`. */
function leave(scope: Map<string, InFlightKey>, key: string): void {
  const entry = scope.get(key);
  if (entry === undefined) return;
  if (entry.count <= 1) scope.delete(key);
  else entry.count--;
}

const deadlinePassed: Failure = { code: "DEADLINE_EXCEEDED", message: "deadline exceeded while waiting for an account lock; nothing was applied" };

/** The journal entry of a keyed call (the store appends it with the result when the effect applies). */
export function journalEntry(ctx: CallContext, action: string, key: string, request: CanonicalRequest, accounts: readonly string[]): JournalEntry {
  return { actor: ctx.principal?.name ?? LOCAL_ACTOR, action, idempotencyKey: key, request, accounts };
}

/** A journal entry of an unkeyed call (approvals, allowances). */
export function journalOf(actor: string, action: string, request: Record<string, string>, accounts: readonly string[]): JournalEntry {
  return { actor, action, idempotencyKey: null, request, accounts };
}

/** The fields every money-moving keyed call into one account shares, validated in the order the error table documents. */
export function moneyCallInput(
  input: { readonly accountId: string; readonly amount: string; readonly blockchain: string; readonly idempotencyKey: string },
  maxAmountMicros: bigint,
): Result<{ accountId: string; amountMicros: bigint; blockchain: Blockchain; key: string }> {
  const accountId = v.accountId(input.accountId);
  if (!accountId.ok) return accountId;
  const amount = parseAmount(input.amount, maxAmountMicros);
  if (!amount.ok) return amount;
  const blockchain = v.blockchain(input.blockchain);
  if (!blockchain.ok) return blockchain;
  const key = v.idempotencyKey(input.idempotencyKey);
  if (!key.ok) return key;
  return ok({ accountId: accountId.value, amountMicros: amount.value, blockchain: blockchain.value, key: key.value });
}

/**
 * The core's state every feature module works with: its dependencies, the
 * account locks, ids, metrics, and the keyed path (steps 1–3 above).
 */
export class CallPath {
  readonly locks: AccountLocks;
  readonly ids: IdGenerator;
  readonly metrics: MetricsSink;
  /** Calls in flight in this process per idempotency key and scope (bounded by calls in flight). */
  private readonly inFlight = { mint: new Map<string, InFlightKey>(), transfer: new Map<string, InFlightKey>(), redeem: new Map<string, InFlightKey>() };

  constructor(readonly deps: MintCoreDeps) {
    this.metrics = deps.metrics ?? noMetrics;
    this.locks = new AccountLocks(deps.clock, deps.maxLockWaiters, this.metrics);
    this.ids = deps.ids ?? createIdGenerator(deps.clock);
  }

  /**
   * The path every keyed (mutating) call takes, steps 1–3 of the order at the
   * top of this file. When no lock is taken and the store answers at once (the
   * memory store, when nothing waits), the whole path is one synchronous
   * stretch and the answer comes back as a value: no other call can run in
   * between, so such a call never needs an in-flight entry. A call enters
   * `inFlight` only when it is about to wait (a busy lock, a store that
   * answers later), before it yields, so every call another one can meet is
   * there.
   */
  keyed(op: KeyedOp, ctx: CallContext, effect: Effect, admit?: () => MaybePromise<Result<void>>): MaybePromise<Result<{ stored: StoredResult; replayed: boolean }>> {
    const inFlight = this.inFlight[op.scope];
    if (inFlight.size !== 0 && inFlight.has(op.key)) return this.keyedAfterWait(op, ctx, effect, admit, null);
    const locked = this.lockFor(op, ctx, effect);
    if (typeof locked !== "function") return this.keyedAfterWait(op, ctx, effect, admit, locked);
    let answer: MaybePromise<Result<{ stored: StoredResult; replayed: boolean }>>;
    try {
      answer = this.deps.store.applyOnce(keyedCall(op, effect, admit), ctx);
    } catch (err) {
      locked();
      throw err;
    }
    if (!isPromise(answer)) {
      locked();
      return answer;
    }
    enter(inFlight, op);
    return this.settled(answer, locked, inFlight, op.key);
  }

  /**
   * A keyed call that must wait: for a call with the same key in flight here
   * (`locked` null: no lock asked for yet), or for a busy account lock
   * (`locked`, asked for when no call with its key was in flight).
   */
  private async keyedAfterWait(
    op: KeyedOp,
    ctx: CallContext,
    effect: Effect,
    admit: (() => MaybePromise<Result<void>>) | undefined,
    locked: Promise<ReleaseLocks | LockRefusal | null> | null,
  ): Promise<Result<{ stored: StoredResult; replayed: boolean }>> {
    const inFlight = this.inFlight[op.scope];
    const first = inFlight.get(op.key);
    if (first !== undefined) {
      if (!sameRequest(first.request, op.request)) {
        return fail({ code: "IDEMPOTENCY_KEY_REUSED", key: op.key, fields: differingFields(first.request, op.request) });
      }
      first.count++;
      // A call with this key is in flight here: this one queues behind it on the lock, then replays.
      this.metrics.duplicateWaited(op.scope);
    } else {
      inFlight.set(op.key, { request: op.request, count: 1 });
    }
    try {
      // A grouping store orders the calls on one account itself (KeyedStore.groupsCalls).
      const taken = locked ?? this.lockFor(op, ctx, effect);
      const release = typeof taken === "function" ? taken : await taken;
      if (release === null) return this.lockTimedOut(inFlight, op.key);
      if (typeof release !== "function") return fail(release);
      try {
        return await this.deps.store.applyOnce(keyedCall(op, effect, admit), ctx);
      } finally {
        release();
      }
    } finally {
      leave(inFlight, op.key);
    }
  }

  /** The call's account locks; none for a call a grouping store orders itself (KeyedStore.groupsCalls). */
  private lockFor(op: KeyedOp, ctx: CallContext, effect: Effect): ReleaseLocks | Promise<ReleaseLocks | LockRefusal | null> {
    return this.deps.store.groupsCalls?.(effect) === true ? unlocked : this.locks.take(op.accounts, ctx.deadlineMs, ctx);
  }

  /** The answer of a store that answered later: the locks and the in-flight entry are given up once it settles. */
  private async settled<T>(answer: Promise<T>, release: ReleaseLocks, inFlight: Map<string, InFlightKey>, key: string): Promise<T> {
    try {
      return await answer;
    } finally {
      release();
      leave(inFlight, key);
    }
  }

  /** The approval store; approval and allowance calls exist only with `deps.approvals`. */
  approvalStore(): ApprovalStore {
    const a = this.deps.approvals;
    if (a === undefined) throw new Error("invariant violated: approval calls need MintCoreDeps.approvals");
    return a.store;
  }

  /** Gives a limiter slot back; a limiter that cannot be reached keeps it (erring towards refusing). */
  async giveBack(accountId: string): Promise<void> {
    try {
      await this.deps.limiter.giveBack(accountId);
    } catch {
      // The call's own outcome, already decided, is what the caller must see.
    }
  }

  /**
   * The call's deadline passed while it waited for an account lock. If
   * another call with the same key is in flight here, the caller is told
   * IDEMPOTENCY_KEY_IN_USE (retry with the same key soon); otherwise
   * DEADLINE_EXCEEDED. Either way nothing was looked at or applied.
   */
  private lockTimedOut<T>(scope: Map<string, InFlightKey>, key: string): Result<T> {
    if ((scope.get(key)?.count ?? 0) > 1) return fail({ code: "IDEMPOTENCY_KEY_IN_USE", key, retryAfterMs: KEY_IN_USE_RETRY_AFTER_MS });
    return fail(deadlinePassed);
  }
}
