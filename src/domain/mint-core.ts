/**
 * The service's rules, independent of any transport or store: validation,
 * the rate limit, account locks, and one exactly-once store.
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
 *  3. `store.applyOnce`: the store looks the key up (replay, reuse, a
 *     duplicate in flight on another replica), runs `admit` (the limiter,
 *     for mints: replays never count), and commits the effect with the
 *     key's result, or nothing.
 *  4. A limiter slot is given back when the mint is known not applied (any
 *     returned failure, or a store error marked `notApplied`); when the
 *     outcome is unknown (a lost commit reply) it is kept.
 */
import { coversAllAccounts, idScopeRefusal, scopedIdempotencyKey, type Principal } from "./authorization.js";
import { AccountLocks } from "./account-locks.js";
import { LOCAL_ACTOR, reversalEntry, verifyChain, type AuditRecord, type ChainVerdict } from "./audit.js";
import type { JournalEntry } from "./journal.js";
import type { Clock } from "./clock.js";
import type { Failure } from "./errors.js";
import { invalid, UnavailableError } from "./errors.js";
import { createIdGenerator, type IdGenerator } from "./ids.js";
import {
  differingFields,
  mintRequest,
  sameRequest,
  transferRequest,
  type Blockchain,
  type CanonicalRequest,
  type IdempotencyScope,
  type MintRecord,
  type MintStatus,
  type NewMint,
  type StoredResult,
  type TransferRecord,
  type AccountState,
  type RedemptionRecord,
  type SupplyState,
  redeemRequest,
  redeemStoreKey,
} from "./model.js";
import { KEY_IN_USE_RETRY_AFTER_MS } from "./limits.js";
import { MAX_STORABLE_MICROS, parseAmount } from "./money.js";
import { ATTESTATION_REF_MAX_CHARS } from "./reserve.js";
import { decodePageToken, encodePageToken } from "./page-token.js";
import { noMetrics, type ApprovalStore, type Effect, type ExactlyOnceStore, type MetricsSink, type RateLimiter, type SettlementGate } from "./ports.js";
import { fail, ok, type Result } from "./result.js";
import * as v from "./validate.js";
export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 1000;

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
  /** M-of-N approval and minter allowances (issue 11); absent: neither (every mint completes at once, uncapped). */
  readonly approvals?: ApprovalSettings;
  /** Issue 12: refuse mints (RESERVE_NOT_SET) until a reserve is set (MINT_RESERVE_REQUIRED; default false). */
  readonly reserveRequired?: boolean;
  /** Hears money moved, replays, rate-limit refusals, duplicates and lock waits (default: nothing records). */
  readonly metrics?: MetricsSink;
  /** Issue 15: chains whose mints settle on-chain (default: none, every credit available at once). */
  readonly settlement?: SettlementGate;
}

/** Issue 11's settings and the store that keeps approvals and allowances (the same store as `store`). */
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
   * the account checks the core makes once it has looked a mint up; issue 12
   * takes the actor of redemptions and journal entries from it (`local` when absent).
   */
  readonly principal?: Principal;
}

export interface RedeemUsdcInput {
  readonly accountId: string;
  readonly amount: string;
  /** Proto enum name without the BLOCKCHAIN_ prefix; "" when unset. */
  readonly blockchain: string;
  readonly idempotencyKey: string;
}

export interface SetReserveInput {
  readonly amount: string;
  readonly attestationRef: string;
}

export interface MintUsdcInput {
  readonly accountId: string;
  readonly amount: string;
  /** Proto enum name without the BLOCKCHAIN_ prefix; "" when unset. */
  readonly blockchain: string;
  readonly idempotencyKey: string;
}

export interface TransferInput {
  readonly fromAccountId: string;
  readonly toAccountId: string;
  readonly amount: string;
  readonly idempotencyKey: string;
}

export interface ListMintsInput {
  readonly accountId: string;
  readonly pageSize: number;
  readonly pageToken: string;
  /** Only mints in this status (issue 11); absent or "" for all. */
  readonly status?: string;
}

const MINT_STATUSES: readonly MintStatus[] = ["COMPLETED", "REVERSED", "PENDING_APPROVAL", "REJECTED"];

/** A journal entry of one of issue 11's calls. */
function journalOf(actor: string, action: string, request: Record<string, string>, accounts: readonly string[]): JournalEntry {
  return { actor, action, idempotencyKey: null, request, accounts };
}

export interface ListAuditEventsInput {
  readonly accountId: string;
  readonly principal: string;
  /** Wall ms; 0 for no bound. */
  readonly startWallMs: number;
  readonly endWallMs: number;
  readonly pageSize: number;
  readonly pageToken: string;
}

/** Longest principal name a ListAuditEvents filter may name. */
const MAX_PRINCIPAL_CHARS = 256;

const deadlinePassed: Failure = { code: "DEADLINE_EXCEEDED", message: "deadline exceeded while waiting for an account lock; nothing was applied" };


/** A reserve amount: like a mint amount, but up to what the store can hold, and 0 allowed (nothing may be minted). */
function parseReserve(text: string): Result<bigint> {
  if (text === "0") return ok(0n);
  return parseAmount(text, MAX_STORABLE_MICROS);
}

/** An allowance amount: the mint amount grammar, "0" allowed, up to what numeric(38,0) holds. */
function parseAllowance(text: string, field: "amount" | "expected_amount"): Result<bigint> {
  if (text === "0") return ok(0n);
  return parseAmount(text, MAX_STORABLE_MICROS, field);
}

/** Calls in flight in this process for one key: the request of the first, and how many. */
interface InFlightKey {
  readonly request: CanonicalRequest;
  count: number;
}

/** Drops one in-flight use of `key`. */
function leave(scope: Map<string, InFlightKey>, key: string): void {
  const entry = scope.get(key);
  if (entry === undefined) return;
  if (entry.count <= 1) scope.delete(key);
  else entry.count--;
}

/** The journal entry of a keyed call (the store appends it with the result when the effect applies). */
function journalEntry(ctx: CallContext, action: string, key: string, request: CanonicalRequest, accounts: readonly string[]): JournalEntry {
  return { actor: ctx.principal?.name ?? LOCAL_ACTOR, action, idempotencyKey: key, request, accounts };
}

export class MintCore {
  readonly locks: AccountLocks;
  /** Calls in flight in this process per idempotency key and scope (bounded by calls in flight). */
  private readonly inFlight = { mint: new Map<string, InFlightKey>(), transfer: new Map<string, InFlightKey>(), redeem: new Map<string, InFlightKey>() };
  private readonly ids: IdGenerator;

  private readonly metrics: MetricsSink;

  constructor(private readonly deps: MintCoreDeps) {
    this.metrics = deps.metrics ?? noMetrics;
    this.locks = new AccountLocks(deps.clock, deps.maxLockWaiters, this.metrics);
    this.ids = deps.ids ?? createIdGenerator(deps.clock);
  }

  /** Failures: INVALID_ARGUMENT, IDEMPOTENCY_KEY_REUSED/IN_USE, IDEMPOTENCY_STORE_FULL, RATE_LIMITED, DEADLINE_EXCEEDED. */
  async mintUsdc(input: MintUsdcInput, ctx: CallContext): Promise<Result<{ mint: MintRecord; replayed: boolean }>> {
    const parsed = moneyCallInput(input, this.deps.maxAmountMicros);
    if (!parsed.ok) return parsed;
    const { accountId, amountMicros, blockchain, key } = parsed.value;
    // The record keeps the caller-scoped key, so that a reconcile frees the right one.
    const storeKey = scopedIdempotencyKey(ctx.principal, key);

    const limiter = this.deps.limiter;
    let counted = false;
    const admit = async (): Promise<Result<void>> => {
      const decision = await limiter.tryAcquire(accountId);
      if (!decision.allowed) {
        this.metrics.rateLimited();
        return fail({
          code: "RATE_LIMITED",
          accountId,
          retryAfterMs: decision.retryAfterMs,
          limit: limiter.limit,
          windowMs: limiter.windowMs,
        });
      }
      counted = true;
      return ok(undefined);
    };
    const settle = this.deps.settlement?.required(blockchain) === true;
    const effect: Effect = {
      kind: "mint",
      reserveRequired: this.deps.reserveRequired === true,
      cmd: this.withApproval(
        {
          mintId: this.ids.mintId(),
          accountId,
          amountMicros,
          blockchain,
          idempotencyKey: storeKey,
          createWallMs: this.deps.clock.wallMs(),
          settle,
        },
        ctx,
      ),
    };
    let r: Result<{ stored: StoredResult; replayed: boolean }>;
    try {
      const request = mintRequest(accountId, amountMicros, blockchain);
      const accounts = [accountId];
      r = await this.keyed(
        { scope: "mint", key: storeKey, request, accounts, journal: journalEntry(ctx, "MintUsdc", key, request, accounts) },
        ctx,
        effect,
        admit,
      );
    } catch (err) {
      if (counted && err instanceof UnavailableError && err.notApplied) await this.giveBack(accountId);
      throw err;
    }
    // A returned failure never applied anything: the slot goes back.
    if (!r.ok && counted) await this.giveBack(accountId);
    if (!r.ok) return r;
    const stored = r.value.stored;
    if (stored.scope !== "mint") throw new Error("invariant violated: a mint key holds a non-mint result");
    if (r.value.replayed) this.metrics.idempotentReplay("mint");
    else this.metrics.moneyMoved("mint", stored.mint.amountMicros);
    if (settle && !r.value.replayed) this.deps.settlement?.wake(blockchain);
    // A replay of a mint that went through approval answers the mint as it is now (issue 11).
    if (r.value.replayed && stored.mint.approval !== undefined) {
      return ok({ mint: (await this.deps.store.getMint(stored.mint.mintId)) ?? stored.mint, replayed: true });
    }
    return ok({ mint: stored.mint, replayed: r.value.replayed });
  }

  /** The mint command with issue 11's requester, pending state and allowance charge, when configured. */
  private withApproval(cmd: NewMint, ctx: CallContext): NewMint {
    const a = this.deps.approvals;
    if (a === undefined) return cmd;
    const pending = a.thresholdMicros !== null && cmd.amountMicros >= a.thresholdMicros;
    if (!pending && !a.allowances) return cmd;
    const out: NewMint = { ...cmd, requester: ctx.principal?.name ?? LOCAL_PRINCIPAL, chargeAllowance: a.allowances };
    return pending ? { ...out, pending: { required: a.required, expireWallMs: cmd.createWallMs + a.ttlMs } } : out;
  }

  /**
   * Approves a pending mint as the caller (issue 11); the approval reaching
   * the required count completes it. Failures: INVALID_ARGUMENT,
   * MINT_NOT_FOUND, APPROVER_IS_REQUESTER, MINT_NOT_PENDING, DEADLINE_EXCEEDED.
   */
  async approveMint(mintIdText: string, ctx: CallContext): Promise<Result<MintRecord>> {
    const mintId = v.mintId(mintIdText);
    if (!mintId.ok) return mintId;
    const actor = ctx.principal?.name ?? LOCAL_PRINCIPAL;
    const mint = await this.deps.store.getMint(mintId.value);
    const refusal = idScopeRefusal(ctx.principal, "ApproveMint", "mint", mint?.accountId ?? null, { code: "MINT_NOT_FOUND", mintId: mintId.value });
    if (refusal !== undefined || mint === null) return fail(refusal ?? { code: "MINT_NOT_FOUND", mintId: mintId.value });
    // Issue 15: the approval that completes a mint on a settling chain goes through MintUsdc's settle path.
    const settle = this.deps.settlement?.required(mint.blockchain) === true;
    const journal = journalOf(actor, "ApproveMint", { mint_id: mintId.value }, [mint.accountId]);
    const r = await this.approvalStore().approveMint(mintId.value, actor, this.deps.clock.wallMs(), journal, ctx, settle, this.deps.reserveRequired === true);
    if (settle && r.ok && r.value.status === "COMPLETED") this.deps.settlement?.wake(mint.blockchain);
    return r;
  }

  /** Rejects a pending mint (issue 11). Failures: INVALID_ARGUMENT, MINT_NOT_FOUND, MINT_NOT_PENDING, DEADLINE_EXCEEDED. */
  async rejectMint(mintIdText: string, reasonText: string, ctx: CallContext): Promise<Result<MintRecord>> {
    const mintId = v.mintId(mintIdText);
    if (!mintId.ok) return mintId;
    const reason = v.reason(reasonText);
    if (!reason.ok) return reason;
    const actor = ctx.principal?.name ?? LOCAL_PRINCIPAL;
    const mint = await this.deps.store.getMint(mintId.value);
    const refusal = idScopeRefusal(ctx.principal, "RejectMint", "mint", mint?.accountId ?? null, { code: "MINT_NOT_FOUND", mintId: mintId.value });
    if (refusal !== undefined || mint === null) return fail(refusal ?? { code: "MINT_NOT_FOUND", mintId: mintId.value });
    const journal = journalOf(actor, "RejectMint", { mint_id: mintId.value, reason: reason.value }, [mint.accountId]);
    return this.approvalStore().rejectMint(mintId.value, reason.value, actor, this.deps.clock.wallMs(), journal, ctx);
  }

  /**
   * Rejects, as expired, up to `limit` pending mints past their TTL; returns
   * how many it rejected (for the sweeper).
   */
  async expirePending(limit: number): Promise<number> {
    const store = this.deps.approvals?.store;
    if (store === undefined) return 0;
    const wallMs = this.deps.clock.wallMs();
    let rejected = 0;
    for (const mintId of await store.expiredPending(wallMs, limit)) {
      const journal = journalOf(SWEEPER_ACTOR, "ExpireMint", { mint_id: mintId }, []);
      const r = await store.rejectMint(mintId, "expired: not approved within MINT_APPROVAL_TTL", SWEEPER_ACTOR, wallMs, journal, { deadlineMs: Infinity });
      if (r.ok) rejected++;
    }
    return rejected;
  }

  /** What is left of a minter's allowance (issue 11). Failures: INVALID_ARGUMENT. */
  async getMinterAllowance(principalText: string): Promise<Result<{ principal: string; allowanceMicros: bigint }>> {
    const principal = v.accountId(principalText, "principal");
    if (!principal.ok) return principal;
    return ok({ principal: principal.value, allowanceMicros: await this.approvalStore().getAllowance(principal.value) });
  }

  /**
   * Sets what is left of a minter's allowance ("0" revokes). The Set is the
   * final word: refunds of mints charged before it never raise the value it
   * set. `expectedText` (optional) makes it a compare-and-set on what is left
   * now. Failures: INVALID_ARGUMENT (principal, amount, expected_amount),
   * SELF_ALLOWANCE (the caller names itself, unless `selfAllowance` is on),
   * ALLOWANCE_CHANGED (what is left is not `expectedText`), STORE_BUSY.
   */
  async setMinterAllowance(principalText: string, amountText: string, ctx: CallContext, expectedText?: string): Promise<Result<{ principal: string; allowanceMicros: bigint }>> {
    const principal = v.accountId(principalText, "principal");
    if (!principal.ok) return principal;
    const amount = parseAllowance(amountText, "amount");
    if (!amount.ok) return amount;
    const amountMicros = amount.value;
    let expectedMicros: bigint | undefined;
    if (expectedText !== undefined) {
      const expected = parseAllowance(expectedText, "expected_amount");
      if (!expected.ok) return expected;
      expectedMicros = expected.value;
    }
    const actor = ctx.principal?.name ?? LOCAL_PRINCIPAL;
    if (actor === principal.value && this.deps.approvals?.selfAllowance !== true) return fail({ code: "SELF_ALLOWANCE", principal: actor });
    const request: Record<string, string> = { principal: principal.value, amount: amountMicros.toString() };
    if (expectedMicros !== undefined) request.expected_amount = expectedMicros.toString();
    const set = await this.approvalStore().setAllowance(principal.value, amountMicros, journalOf(actor, "SetMinterAllowance", request, []), this.deps.clock.wallMs(), expectedMicros);
    if (!set.ok) return set;
    return ok({ principal: principal.value, allowanceMicros: amountMicros });
  }

  private approvalStore(): ApprovalStore {
    const a = this.deps.approvals;
    if (a === undefined) throw new Error("invariant violated: approval calls need MintCoreDeps.approvals");
    return a.store;
  }

  /** Failures: INVALID_ARGUMENT (incl. from == to), IDEMPOTENCY_*, INSUFFICIENT_FUNDS, DEADLINE_EXCEEDED. */
  async transfer(input: TransferInput, ctx: CallContext): Promise<Result<{ transfer: TransferRecord; replayed: boolean }>> {
    const from = v.accountId(input.fromAccountId, "from_account_id");
    if (!from.ok) return from;
    const to = v.accountId(input.toAccountId, "to_account_id");
    if (!to.ok) return to;
    if (from.value === to.value) {
      return fail(invalid("SAME_ACCOUNT", "to_account_id", "to_account_id must differ from from_account_id"));
    }
    const amount = parseAmount(input.amount, this.deps.maxAmountMicros);
    if (!amount.ok) return amount;
    const key = v.idempotencyKey(input.idempotencyKey);
    if (!key.ok) return key;
    // The record keeps the caller-scoped key, so that a reconcile frees the right one.
    const storeKey = scopedIdempotencyKey(ctx.principal, key.value);

    const request = transferRequest(from.value, to.value, amount.value);
    const accounts = [from.value, to.value];
    const r = await this.keyed(
      { scope: "transfer", key: storeKey, request, accounts, journal: journalEntry(ctx, "Transfer", key.value, request, accounts) },
      ctx,
      {
        kind: "transfer",
        cmd: {
          transferId: this.ids.transferId(),
          fromAccountId: from.value,
          toAccountId: to.value,
          amountMicros: amount.value,
          idempotencyKey: storeKey,
          createWallMs: this.deps.clock.wallMs(),
        },
      },
    );
    if (!r.ok) return r;
    const stored = r.value.stored;
    if (stored.scope !== "transfer") throw new Error("invariant violated: a transfer key holds a non-transfer result");
    if (r.value.replayed) this.metrics.idempotentReplay("transfer");
    else this.metrics.moneyMoved("transfer", stored.transfer.amountMicros);
    return ok({ transfer: stored.transfer, replayed: r.value.replayed });
  }

  // Issue 12: reserve, redemption, freeze.

  /**
   * Debits the account and takes the amount out of circulation. The key is
   * scoped to this RPC and the caller. On a chain that settles on-chain
   * (issue 16) the store queues the redemption's burn in the same atomic step
   * and the worker is woken; a burn the chain refuses is credited back by the
   * worker, and the key keeps answering that redemption. Failures:
   * INVALID_ARGUMENT, IDEMPOTENCY_*, INSUFFICIENT_FUNDS, ACCOUNT_FROZEN,
   * DEADLINE_EXCEEDED.
   */
  async redeemUsdc(input: RedeemUsdcInput, ctx: CallContext): Promise<Result<{ redemption: RedemptionRecord; replayed: boolean }>> {
    const parsed = moneyCallInput(input, this.deps.maxAmountMicros);
    if (!parsed.ok) return parsed;
    const { accountId, amountMicros, blockchain, key } = parsed.value;
    const actor = ctx.principal?.name ?? LOCAL_PRINCIPAL;
    const request = redeemRequest(accountId, amountMicros, blockchain);
    const accounts = [accountId];
    const journal: JournalEntry = { actor, action: "RedeemUsdc", idempotencyKey: key, request, accounts };
    // Issue 16: on a settling chain the redemption burns from the treasury through the settlement worker.
    const settle = this.deps.settlement?.required(blockchain) === true;
    const r = await this.keyed({ scope: "redeem", key: redeemStoreKey(actor, key), request, accounts, journal }, ctx, {
      kind: "redeem",
      cmd: {
        redemptionId: this.ids.redemptionId(),
        accountId,
        amountMicros,
        blockchain,
        idempotencyKey: key,
        actor,
        createWallMs: this.deps.clock.wallMs(),
      },
      journal,
      ...(settle ? { settle } : {}),
    });
    if (!r.ok) {
      // The store key carries the caller's name; errors show the caller's own key.
      const e = r.error;
      if (e.code === "IDEMPOTENCY_KEY_REUSED" || e.code === "IDEMPOTENCY_KEY_IN_USE") return fail({ ...e, key: key });
      return r;
    }
    const stored = r.value.stored;
    if (stored.scope !== "redeem") throw new Error("invariant violated: a redeem key holds a non-redeem result");
    if (settle && !r.value.replayed) this.deps.settlement?.wake(blockchain);
    return ok({ redemption: stored.redemption, replayed: r.value.replayed });
  }

  /** Failures: INVALID_ARGUMENT, RESERVE_EXCEEDED (below supply), DEADLINE_EXCEEDED. */
  async setReserve(input: SetReserveInput, ctx: CallContext): Promise<Result<SupplyState>> {
    const amount = parseReserve(input.amount);
    if (!amount.ok) return amount;
    const ref = v.attestationRef(input.attestationRef, ATTESTATION_REF_MAX_CHARS);
    if (!ref.ok) return ref;
    const actor = ctx.principal?.name ?? LOCAL_PRINCIPAL;
    return this.deps.store.setReserve(
      amount.value,
      ref.value,
      { actor, action: "SetReserve", idempotencyKey: null, request: { amount: amount.value.toString(), attestation_ref: ref.value }, accounts: [] },
      ctx,
    );
  }

  getSupply(): Promise<SupplyState> {
    return this.deps.store.getSupply();
  }

  /** Freezes (or unfreezes) an account, known or not. Failures: INVALID_ARGUMENT, DEADLINE_EXCEEDED. */
  async setFrozen(accountIdText: string, frozen: boolean, reasonText: string, ctx: CallContext): Promise<Result<AccountState>> {
    const accountId = v.accountId(accountIdText);
    if (!accountId.ok) return accountId;
    const reason = v.reason(reasonText);
    if (!reason.ok) return reason;
    const actor = ctx.principal?.name ?? LOCAL_PRINCIPAL;
    // No account lock: the store's own atomic step orders the freeze against
    // the calls in flight on the account (see ExactlyOnceStore.setFrozen).
    return this.deps.store.setFrozen(
      accountId.value,
      frozen,
      reason.value,
      { actor, action: frozen ? "FreezeAccount" : "UnfreezeAccount", idempotencyKey: null, request: { account_id: accountId.value, reason: reason.value }, accounts: [accountId.value] },
      ctx,
    );
  }

  /**
   * Balance, frozen state (issue 12) and pending balance (issue 15); an unknown
   * account is 0 and not frozen. Failures: INVALID_ARGUMENT.
   */
  async getAccount(accountIdText: string): Promise<Result<AccountState & { pendingMicros: bigint }>> {
    const accountId = v.accountId(accountIdText);
    if (!accountId.ok) return accountId;
    const store = this.deps.store;
    // Pending money exists only with settlement configured; without it the hot read stays one query.
    const [account, pendingMicros] = await Promise.all([
      store.getAccount(accountId.value),
      this.deps.settlement !== undefined && store.getPendingBalance !== undefined ? store.getPendingBalance(accountId.value) : 0n,
    ]);
    return ok({ ...account, pendingMicros });
  }

  /**
   * Scoped over the redemption's account, as GetMint is over the mint's.
   * Failures: INVALID_ARGUMENT, REDEMPTION_NOT_FOUND (no principal, or scope
   * `*`), PERMISSION_DENIED (out of scope or unknown, one answer: idScopeRefusal).
   */
  async getRedemption(redemptionIdText: string, ctx?: Pick<CallContext, "principal">): Promise<Result<RedemptionRecord>> {
    const id = v.redemptionId(redemptionIdText);
    if (!id.ok) return id;
    const r = await this.deps.store.getRedemption(id.value);
    const notFound: Failure = { code: "REDEMPTION_NOT_FOUND", redemptionId: id.value };
    const refusal = idScopeRefusal(ctx?.principal, "GetRedemption", "redemption", r?.accountId ?? null, notFound);
    return refusal !== undefined || r === null ? fail(refusal ?? notFound) : ok(r);
  }

  /** Oldest first, paged like ListMints. Failures: INVALID_ARGUMENT. */
  async listRedemptions(input: ListMintsInput): Promise<Result<{ redemptions: RedemptionRecord[]; nextPageToken: string }>> {
    const page = this.pageOf(input, redemptionTokenFilter(input.accountId));
    if (!page.ok) return page;
    const rows = await this.deps.store.listRedemptions({ accountId: page.value.accountId, afterSeq: page.value.afterSeq, limit: page.value.limit + 1 });
    const items = rows.slice(0, page.value.limit);
    const last = items[items.length - 1];
    const nextPageToken = rows.length > page.value.limit && last !== undefined ? encodePageToken(last.seq, redemptionTokenFilter(input.accountId)) : "";
    return ok({ redemptions: items.map((i) => i.redemption), nextPageToken });
  }

  /** Balance in micro-USDC; 0 for unknown accounts. Failures: INVALID_ARGUMENT. */
  async getBalance(accountIdText: string): Promise<Result<{ accountId: string; balanceMicros: bigint; pendingMicros: bigint }>> {
    const accountId = v.accountId(accountIdText);
    if (!accountId.ok) return accountId;
    const store = this.deps.store;
    // Pending money exists only with settlement configured; without it the hot read stays one query.
    const [balanceMicros, pendingMicros] = await Promise.all([
      store.getBalance(accountId.value),
      this.deps.settlement !== undefined && store.getPendingBalance !== undefined ? store.getPendingBalance(accountId.value) : 0n,
    ]);
    return ok({ accountId: accountId.value, balanceMicros, pendingMicros });
  }

  /**
   * Failures: INVALID_ARGUMENT, MINT_NOT_FOUND (no principal, or scope `*`),
   * PERMISSION_DENIED (the mint's account is outside the caller's scopes, or
   * no such mint: one answer, idScopeRefusal).
   */
  async getMint(mintIdText: string, ctx?: Pick<CallContext, "principal">): Promise<Result<MintRecord>> {
    const mintId = v.mintId(mintIdText);
    if (!mintId.ok) return mintId;
    const mint = await this.deps.store.getMint(mintId.value);
    const notFound: Failure = { code: "MINT_NOT_FOUND", mintId: mintId.value };
    const refusal = idScopeRefusal(ctx?.principal, "GetMint", "mint", mint?.accountId ?? null, notFound);
    return refusal !== undefined || mint === null ? fail(refusal ?? notFound) : ok(mint);
  }

  /** Oldest first. Failures: INVALID_ARGUMENT (account id, page size < 0, page token not ours). */
  async listMints(input: ListMintsInput): Promise<Result<{ mints: MintRecord[]; nextPageToken: string }>> {
    const page = this.pageOf(input);
    if (!page.ok) return page;
    const { accountId, afterSeq, limit, status } = page.value;
    // One extra row tells whether another page exists, so the last page has no token.
    const rows = await this.deps.store.listMints(status === undefined ? { accountId, afterSeq, limit: limit + 1 } : { accountId, afterSeq, limit: limit + 1, status });
    const mints = rows.slice(0, limit);
    const last = mints[mints.length - 1];
    const nextPageToken = rows.length > limit && last !== undefined ? encodePageToken(last.seq, input.accountId) : "";
    return ok({ mints, nextPageToken });
  }

  /**
   * The account filter, cursor and page size of a list call. `tokenFilter` is
   * what the page token is bound to: the account filter for ListMints, the
   * account filter tagged as a redemption listing for ListRedemptions (so one
   * RPC's token never pages the other's sequence).
   */
  private pageOf(input: ListMintsInput, tokenFilter: string = input.accountId): Result<{ accountId: string | null; afterSeq: number; limit: number; status?: MintStatus }> {
    let accountId: string | null = null;
    if (input.accountId !== "") {
      const a = v.accountId(input.accountId);
      if (!a.ok) return a;
      accountId = a.value;
    }
    if (!Number.isInteger(input.pageSize) || input.pageSize < 0) {
      return fail(invalid("INVALID_PAGE_SIZE", "page_size", "page_size must not be negative (0 means 50, at most 1000)"));
    }
    let status: MintStatus | undefined;
    if (input.status !== undefined && input.status !== "") {
      if (!(MINT_STATUSES as readonly string[]).includes(input.status)) {
        return fail(invalid("INVALID_STATUS", "status", `status must be one of ${MINT_STATUSES.join(", ")} (or unset for all)`));
      }
      status = input.status as MintStatus;
    }
    const limit = input.pageSize === 0 ? DEFAULT_PAGE_SIZE : Math.min(input.pageSize, MAX_PAGE_SIZE);
    let afterSeq = 0;
    if (input.pageToken !== "") {
      const decoded = decodePageToken(input.pageToken, tokenFilter);
      if (decoded === null) {
        return fail(invalid("INVALID_PAGE_TOKEN", "page_token", "page_token was not issued by this service for this account_id"));
      }
      afterSeq = decoded;
    }
    return ok(status === undefined ? { accountId, afterSeq, limit } : { accountId, afterSeq, limit, status });
  }

  /**
   * Reverses a mint and frees its idempotency key.
   * Failures: INVALID_ARGUMENT, MINT_NOT_FOUND, PERMISSION_DENIED, MINT_ALREADY_REVERSED, INSUFFICIENT_FUNDS, DEADLINE_EXCEEDED.
   */
  async reconcileMint(mintIdText: string, reasonText: string, ctx: CallContext): Promise<Result<MintRecord>> {
    const mintId = v.mintId(mintIdText);
    if (!mintId.ok) return mintId;
    const reason = v.reason(reasonText);
    if (!reason.ok) return reason;
    // The edge checked the role; the scope needs the mint's account, known
    // only after a lookup, and is checked before anything changes. A mint's
    // account never changes, so the lookup and the reversal cannot disagree.
    // A caller whose scopes cover every account needs no lookup.
    // A caller without it gets one PERMISSION_DENIED for an out-of-scope and an unknown mint.
    const principal = ctx.principal;
    if (principal !== undefined && !coversAllAccounts(principal)) {
      const mint = await this.deps.store.getMint(mintId.value);
      const refusal = idScopeRefusal(principal, "ReconcileMint", "mint", mint?.accountId ?? null, { code: "MINT_NOT_FOUND", mintId: mintId.value });
      if (refusal !== undefined) return fail(refusal);
    }
    // No account lock: the store reverses and frees the mint's key in one
    // atomic step, so neither a same-key retry nor a mint still in flight can
    // see the ledger and the key disagree.
    const reversed = await this.deps.store.reverseMint(
      mintId.value,
      reason.value,
      this.deps.clock.wallMs(),
      ctx,
      reversalEntry(ctx.principal?.name ?? LOCAL_ACTOR, mintId.value, reason.value),
    );
    if (reversed.ok) this.metrics.moneyMoved("reversal", reversed.value.amountMicros);
    return reversed;
  }

  /**
   * Sealed audit records, oldest first, filtered by account, principal and
   * time ([startWallMs, endWallMs); 0 for no bound). Failures:
   * INVALID_ARGUMENT (account id, principal, times, page size, page token).
   */
  async listAuditEvents(input: ListAuditEventsInput): Promise<Result<{ events: AuditRecord[]; nextPageToken: string }>> {
    let accountId: string | null = null;
    if (input.accountId !== "") {
      const a = v.accountId(input.accountId);
      if (!a.ok) return a;
      accountId = a.value;
    }
    if (input.principal.length > MAX_PRINCIPAL_CHARS) {
      return fail(invalid("INVALID_PRINCIPAL", "principal", `principal must be at most ${MAX_PRINCIPAL_CHARS} characters`));
    }
    if (!Number.isSafeInteger(input.startWallMs) || !Number.isSafeInteger(input.endWallMs) || input.startWallMs < 0 || input.endWallMs < 0) {
      return fail(invalid("INVALID_TIME_RANGE", "start_time", "start_time and end_time must be valid times after 1970"));
    }
    if (input.endWallMs !== 0 && input.endWallMs <= input.startWallMs) {
      return fail(invalid("INVALID_TIME_RANGE", "end_time", "end_time must be after start_time"));
    }
    if (!Number.isInteger(input.pageSize) || input.pageSize < 0) {
      return fail(invalid("INVALID_PAGE_SIZE", "page_size", "page_size must not be negative (0 means 50, at most 1000)"));
    }
    const limit = input.pageSize === 0 ? DEFAULT_PAGE_SIZE : Math.min(input.pageSize, MAX_PAGE_SIZE);
    // The token is bound to the filters, so it cannot page another query.
    const filters = `audit\u0000${input.accountId}\u0000${input.principal}\u0000${input.startWallMs}\u0000${input.endWallMs}`;
    let afterSeq = 0;
    if (input.pageToken !== "") {
      const decoded = decodePageToken(input.pageToken, filters);
      if (decoded === null) return fail(invalid("INVALID_PAGE_TOKEN", "page_token", "page_token was not issued by this service for these filters"));
      afterSeq = decoded;
    }
    const rows = await this.deps.store.audit.list({
      accountId,
      actor: input.principal === "" ? null : input.principal,
      fromTimeMs: input.startWallMs,
      toTimeMs: input.endWallMs === 0 ? Infinity : input.endWallMs,
      afterSeq,
      limit: limit + 1,
    });
    const events = rows.slice(0, limit);
    const last = events[events.length - 1];
    return ok({ events, nextPageToken: rows.length > limit && last !== undefined ? encodePageToken(last.seq, filters) : "" });
  }

  /** Recomputes the journal's chain over [fromSeq, toSeq] (0: start / head). Failures: INVALID_ARGUMENT (a negative or reversed range). */
  async verifyAuditChain(fromSeq: number, toSeq: number): Promise<Result<ChainVerdict>> {
    if (!Number.isSafeInteger(fromSeq) || !Number.isSafeInteger(toSeq) || fromSeq < 0 || toSeq < 0 || (toSeq !== 0 && toSeq < fromSeq)) {
      return fail(invalid("INVALID_SEQ_RANGE", "from_seq", "from_seq and to_seq must be >= 0 and from_seq <= to_seq (0 means the start / the head)"));
    }
    return ok(await verifyChain(this.deps.store.audit, fromSeq, toSeq));
  }

  /**
   * The path every keyed (mutating) call takes, steps 1–3 of the order at
   * the top of this file.
   */
  private async keyed(
    op: {
      readonly scope: IdempotencyScope;
      readonly key: string;
      readonly request: CanonicalRequest;
      readonly accounts: readonly string[];
      readonly journal: JournalEntry;
    },
    ctx: CallContext,
    effect: Effect,
    admit?: () => Promise<Result<void>>,
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
      const locked = this.locks.take(op.accounts, ctx.deadlineMs, ctx);
      const release = typeof locked === "function" ? locked : await locked;
      if (release === null) return this.lockTimedOut(inFlight, op.key);
      if (typeof release !== "function") return fail(release);
      try {
        const call = admit === undefined ? { ...op, effect } : { ...op, effect, admit };
        return await this.deps.store.applyOnce(call, ctx);
      } finally {
        release();
      }
    } finally {
      leave(inFlight, op.key);
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

  /** Gives a limiter slot back; a limiter that cannot be reached keeps it (erring towards refusing). */
  private async giveBack(accountId: string): Promise<void> {
    try {
      await this.deps.limiter.giveBack(accountId);
    } catch {
      // The call's own outcome, already decided, is what the caller must see.
    }
  }
}

/**
 * What a ListRedemptions page token is bound to: its account filter, tagged so
 * that it never equals a ListMints filter (account ids contain no NUL).
 */
function redemptionTokenFilter(accountId: string): string {
  return `redemptions\u0000${accountId}`;
}

/** The fields every money-moving keyed call into one account shares, validated in the order the error table documents. */
function moneyCallInput(
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
