/**
 * The service's rules, independent of any transport or store: validation,
 * idempotency, the rate limit, account locks and the ledger, in that order.
 *
 * Order of a mutating call, and why:
 *  1. Validate everything (a bad request touches nothing, not even a key).
 *  2. Lock the accounts in code-unit order, within the call's deadline.
 *     Locks come before the key because claiming a key may hold a store
 *     resource (a PostgreSQL connection with an open transaction): calls
 *     queued on a busy account must wait holding nothing, or a hot account
 *     could take every pooled connection and starve all other accounts.
 *     A duplicate of a call in flight in this process queues here behind it
 *     (same request, same accounts); if its deadline passes first it gets
 *     IDEMPOTENCY_KEY_IN_USE, as API.md says, not a bare DEADLINE_EXCEEDED.
 *  3. Claim the idempotency key. Replays and key reuse are answered here,
 *     before the limiter, so a replay never counts and is never refused.
 *     A duplicate in flight on another replica is waited for here.
 *  4. (Mints) ask the limiter; a refusal counts nothing and frees the key.
 *  5. Apply through the ledger, then store the result under the key.
 * Any failure after step 3 releases the key: only successes are stored.
 */
import { AccountLocks } from "./account-locks.js";
import type { Clock } from "./clock.js";
import type { Failure } from "./errors.js";
import { invalid } from "./errors.js";
import { createIdGenerator, type IdGenerator } from "./ids.js";
import { KEY_IN_USE_RETRY_AFTER_MS } from "./limits.js";
import { mintRequest, transferRequest, type CanonicalRequest, type IdempotencyScope, type MintRecord, type StoredResult, type TransferRecord } from "./model.js";
import { parseAmount } from "./money.js";
import { decodePageToken, encodePageToken } from "./page-token.js";
import type { IdempotencyClaim, IdempotencyStore, LedgerStore, RateLimiter } from "./ports.js";
import { fail, ok, type Result } from "./result.js";
import * as v from "./validate.js";

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 1000;

export interface MintCoreDeps {
  readonly ledger: LedgerStore;
  readonly idempotency: IdempotencyStore;
  readonly limiter: RateLimiter;
  readonly clock: Clock;
  /** Largest amount one call may move, in micro-USDC. */
  readonly maxAmountMicros: bigint;
  readonly ids?: IdGenerator;
  /** Most calls waiting for one account's lock; beyond it ACCOUNT_BUSY (default: no bound). */
  readonly maxLockWaiters?: number;
}

/**
 * Per-call context. `deadlineMs` is monotonic on the core's clock; Infinity
 * for none. `signal` aborts when the caller cancels or goes away: a call still
 * waiting for a lock then gives up with nothing applied (CANCELLED). It is
 * read only when a call must wait (the edge makes one on first read).
 */
export interface CallContext {
  readonly deadlineMs: number;
  readonly signal?: AbortSignal;
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
}

const deadlinePassed: Failure = { code: "DEADLINE_EXCEEDED", message: "deadline exceeded while waiting for an account lock; nothing was applied" };


/** Drops one in-flight use of `key`. */
function leave(scope: Map<string, number>, key: string): void {
  const n = scope.get(key) ?? 0;
  if (n <= 1) scope.delete(key);
  else scope.set(key, n - 1);
}

export class MintCore {
  readonly locks: AccountLocks;
  /** Calls in flight in this process per idempotency key and scope (bounded by calls in flight). */
  private readonly inFlight = { mint: new Map<string, number>(), transfer: new Map<string, number>() };
  private readonly ids: IdGenerator;

  constructor(private readonly deps: MintCoreDeps) {
    this.locks = new AccountLocks(deps.clock, deps.maxLockWaiters);
    this.ids = deps.ids ?? createIdGenerator(deps.clock);
  }

  /** Failures: INVALID_ARGUMENT, IDEMPOTENCY_KEY_REUSED/IN_USE, IDEMPOTENCY_STORE_FULL, RATE_LIMITED, DEADLINE_EXCEEDED. */
  async mintUsdc(input: MintUsdcInput, ctx: CallContext): Promise<Result<{ mint: MintRecord; replayed: boolean }>> {
    const accountId = v.accountId(input.accountId);
    if (!accountId.ok) return accountId;
    const amount = parseAmount(input.amount, this.deps.maxAmountMicros);
    if (!amount.ok) return amount;
    const blockchain = v.blockchain(input.blockchain);
    if (!blockchain.ok) return blockchain;
    const key = v.idempotencyKey(input.idempotencyKey);
    if (!key.ok) return key;

    const r = await this.keyed(
      { scope: "mint", key: key.value, request: mintRequest(accountId.value, amount.value, blockchain.value), accounts: [accountId.value] },
      ctx,
      async (claim) => {
        const decision = await this.deps.limiter.tryAcquire(accountId.value);
        if (!decision.allowed) {
          return fail({
            code: "RATE_LIMITED",
            accountId: accountId.value,
            retryAfterMs: decision.retryAfterMs,
            limit: this.deps.limiter.limit,
            windowMs: this.deps.limiter.windowMs,
          });
        }
        const applied = await this.deps.ledger.mint(
          {
            mintId: this.ids.mintId(),
            accountId: accountId.value,
            amountMicros: amount.value,
            blockchain: blockchain.value,
            idempotencyKey: key.value,
            createWallMs: this.deps.clock.wallMs(),
          },
          claim,
          ctx.deadlineMs,
        );
        return applied.ok ? ok({ scope: "mint", mint: applied.value }) : applied;
      },
    );
    if (!r.ok) return r;
    const stored = r.value.stored;
    if (stored.scope !== "mint") throw new Error("invariant violated: a mint key holds a non-mint result");
    return ok({ mint: stored.mint, replayed: r.value.replayed });
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

    const r = await this.keyed(
      { scope: "transfer", key: key.value, request: transferRequest(from.value, to.value, amount.value), accounts: [from.value, to.value] },
      ctx,
      async (claim) => {
        const applied = await this.deps.ledger.transfer(
          {
            transferId: this.ids.transferId(),
            fromAccountId: from.value,
            toAccountId: to.value,
            amountMicros: amount.value,
            idempotencyKey: key.value,
            createWallMs: this.deps.clock.wallMs(),
          },
          claim,
          ctx.deadlineMs,
        );
        return applied.ok ? ok({ scope: "transfer", transfer: applied.value }) : applied;
      },
    );
    if (!r.ok) return r;
    const stored = r.value.stored;
    if (stored.scope !== "transfer") throw new Error("invariant violated: a transfer key holds a non-transfer result");
    return ok({ transfer: stored.transfer, replayed: r.value.replayed });
  }

  /** Balance in micro-USDC; 0 for unknown accounts. Failures: INVALID_ARGUMENT. */
  async getBalance(accountIdText: string): Promise<Result<{ accountId: string; balanceMicros: bigint }>> {
    const accountId = v.accountId(accountIdText);
    if (!accountId.ok) return accountId;
    return ok({ accountId: accountId.value, balanceMicros: await this.deps.ledger.getBalance(accountId.value) });
  }

  /** Failures: INVALID_ARGUMENT, MINT_NOT_FOUND. */
  async getMint(mintIdText: string): Promise<Result<MintRecord>> {
    const mintId = v.mintId(mintIdText);
    if (!mintId.ok) return mintId;
    const mint = await this.deps.ledger.getMint(mintId.value);
    return mint === null ? fail({ code: "MINT_NOT_FOUND", mintId: mintId.value }) : ok(mint);
  }

  /** Oldest first. Failures: INVALID_ARGUMENT (account id, page size < 0, page token not ours). */
  async listMints(input: ListMintsInput): Promise<Result<{ mints: MintRecord[]; nextPageToken: string }>> {
    let accountId: string | null = null;
    if (input.accountId !== "") {
      const a = v.accountId(input.accountId);
      if (!a.ok) return a;
      accountId = a.value;
    }
    if (!Number.isInteger(input.pageSize) || input.pageSize < 0) {
      return fail(invalid("INVALID_PAGE_SIZE", "page_size", "page_size must not be negative (0 means 50, at most 1000)"));
    }
    const limit = input.pageSize === 0 ? DEFAULT_PAGE_SIZE : Math.min(input.pageSize, MAX_PAGE_SIZE);
    let afterSeq = 0;
    if (input.pageToken !== "") {
      const decoded = decodePageToken(input.pageToken, input.accountId);
      if (decoded === null) {
        return fail(invalid("INVALID_PAGE_TOKEN", "page_token", "page_token was not issued by this service for this account_id"));
      }
      afterSeq = decoded;
    }
    // One extra row tells whether another page exists, so the last page has no token.
    const rows = await this.deps.ledger.listMints({ accountId, afterSeq, limit: limit + 1 });
    const mints = rows.slice(0, limit);
    const last = mints[mints.length - 1];
    const nextPageToken = rows.length > limit && last !== undefined ? encodePageToken(last.seq, input.accountId) : "";
    return ok({ mints, nextPageToken });
  }

  /**
   * Reverses a mint and frees its idempotency key.
   * Failures: INVALID_ARGUMENT, MINT_NOT_FOUND, MINT_ALREADY_REVERSED, INSUFFICIENT_FUNDS, DEADLINE_EXCEEDED.
   */
  async reconcileMint(mintIdText: string, reasonText: string, ctx: CallContext): Promise<Result<MintRecord>> {
    const mintId = v.mintId(mintIdText);
    if (!mintId.ok) return mintId;
    const reason = v.reason(reasonText);
    if (!reason.ok) return reason;
    const mint = await this.deps.ledger.getMint(mintId.value);
    if (mint === null) return fail({ code: "MINT_NOT_FOUND", mintId: mintId.value });
    // The account lock is a barrier, not held across the reversal: waiting
    // for it means no mint of this account is between its ledger write and
    // storing its key's result, so the `forget` below cannot miss a key still
    // in flight. Holding it across reverseMint is unnecessary (the reversal is
    // atomic in every store, which is what makes concurrent reconciles reverse
    // once) and would invert the order mints use (store connection, then
    // lock), which could starve a small PostgreSQL pool.
    const release = await this.locks.take([mint.accountId], ctx.deadlineMs, ctx);
    if (release === null) return fail(deadlinePassed);
    if (typeof release !== "function") return fail(release);
    release();
    const reversed = await this.deps.ledger.reverseMint(mintId.value, reason.value, this.deps.clock.wallMs(), ctx.deadlineMs);
    if (!reversed.ok) return reversed;
    await this.deps.idempotency.forget("mint", reversed.value.idempotencyKey, reversed.value.mintId);
    return reversed;
  }

  /** Releases a claim after a failed call. */
  /**
   * The path every keyed (mutating) call takes, steps 2–5 of the order at the
   * top of this file: lock the accounts, claim the key (or replay), run
   * `apply` under the claim, store its result; any outcome but a success
   * releases the key.
   */
  private async keyed(
    op: { readonly scope: IdempotencyScope; readonly key: string; readonly request: CanonicalRequest; readonly accounts: readonly string[] },
    ctx: CallContext,
    apply: (claim: IdempotencyClaim) => Promise<Result<StoredResult>>,
  ): Promise<Result<{ stored: StoredResult; replayed: boolean }>> {
    const inFlight = this.inFlight[op.scope];
    inFlight.set(op.key, (inFlight.get(op.key) ?? 0) + 1);
    try {
      const locked = this.locks.take(op.accounts, ctx.deadlineMs, ctx);
      const release = typeof locked === "function" ? locked : await locked;
      if (release === null) return this.lockTimedOut(inFlight, op.key);
      if (typeof release !== "function") return fail(release);
      try {
        const begun = await this.deps.idempotency.begin(op.scope, op.key, op.request, ctx.deadlineMs);
        if (!begun.ok) return begun;
        if (begun.value.kind === "replay") return ok({ stored: begun.value.result, replayed: true });
        const claim = begun.value.claim;
        let completed = false;
        try {
          const result = await apply(claim);
          if (!result.ok) return result;
          await this.deps.idempotency.complete(claim, result.value);
          completed = true;
          return ok({ stored: result.value, replayed: false });
        } finally {
          // A failure, a throw, or a complete() that threw: the key is freed.
          if (!completed) await this.releaseClaim(claim);
        }
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
  private lockTimedOut<T>(scope: Map<string, number>, key: string): Result<T> {
    if ((scope.get(key) ?? 0) > 1) return fail({ code: "IDEMPOTENCY_KEY_IN_USE", key, retryAfterMs: KEY_IN_USE_RETRY_AFTER_MS });
    return fail(deadlinePassed);
  }

  private async releaseClaim(claim: IdempotencyClaim): Promise<void> {
    try {
      await this.deps.idempotency.release(claim);
    } catch {
      // A store that cannot be reached to release the key has dropped it
      // anyway (its transaction died with the connection); the call's own
      // error, already on its way, is the one the caller must see.
    }
  }
}
