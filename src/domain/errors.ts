/**
 * Every expected failure of the core, told apart by its literal `code`. The
 * gRPC edge (`src/transport/grpc/status.ts`) maps each one to a status code and
 * `google.rpc` details in one exhaustive table.
 */

/** The request field an INVALID_ARGUMENT names, as spelled in the proto. */
export type FieldName =
  | "amount"
  | "account_id"
  | "from_account_id"
  | "to_account_id"
  | "idempotency_key"
  | "blockchain"
  | "mint_id"
  | "reason"
  | "page_size"
  | "page_token"
  | "status"
  // The audit journal (ListAuditEvents, VerifyAuditChain).
  | "principal"
  | "start_time"
  | "end_time"
  | "from_seq"
  // Reserve, redemption.
  | "attestation_ref"
  | "redemption_id"
  // SetMinterAllowance's compare-and-set.
  | "expected_amount"
  // BatchMint and BatchTransfer: the item list, and one item's key.
  | "items"
  | `items[${number}].idempotency_key`;

/** UPPER_SNAKE_CASE reasons of INVALID_ARGUMENT. */
export type InvalidReason =
  | "INVALID_AMOUNT"
  | "AMOUNT_TOO_LARGE"
  | "INVALID_ACCOUNT_ID"
  | "SAME_ACCOUNT"
  | "INVALID_IDEMPOTENCY_KEY"
  | "INVALID_BLOCKCHAIN"
  | "INVALID_MINT_ID"
  | "INVALID_REASON"
  | "INVALID_PAGE_SIZE"
  | "INVALID_PAGE_TOKEN"
  | "INVALID_STATUS"
  // The audit journal (ListAuditEvents, VerifyAuditChain).
  | "INVALID_PRINCIPAL"
  | "INVALID_TIME_RANGE"
  | "INVALID_SEQ_RANGE"
  // Reserve, redemption, freeze.
  | "INVALID_ATTESTATION_REF"
  | "INVALID_REDEMPTION_ID"
  // BatchMint and BatchTransfer.
  | "EMPTY_BATCH"
  | "TOO_MANY_ITEMS"
  | "DUPLICATE_IDEMPOTENCY_KEY";

export type Failure =
  /** The request is malformed; nothing was looked at or changed. */
  | { readonly code: "INVALID_ARGUMENT"; readonly reason: InvalidReason; readonly field: FieldName; readonly message: string }
  /** More than the limit of mints for `accountId` in the window. */
  | { readonly code: "RATE_LIMITED"; readonly accountId: string; readonly retryAfterMs: number; readonly limit: number; readonly windowMs: number }
  /** The idempotency key was used for a different request; `fields` lists the differing request fields. */
  | { readonly code: "IDEMPOTENCY_KEY_REUSED"; readonly key: string; readonly fields: readonly string[] }
  /** The first call with this key was still running when the caller's deadline passed. */
  | { readonly code: "IDEMPOTENCY_KEY_IN_USE"; readonly key: string; readonly retryAfterMs: number }
  /** The idempotency store holds its maximum number of keys. */
  | { readonly code: "IDEMPOTENCY_STORE_FULL"; readonly maxKeys: number; readonly retryAfterMs: number }
  /** The account holds less than the operation needs. */
  | { readonly code: "INSUFFICIENT_FUNDS"; readonly accountId: string }
  | { readonly code: "MINT_ALREADY_REVERSED"; readonly mintId: string }
  | { readonly code: "MINT_NOT_FOUND"; readonly mintId: string }
  /** ReconcileMint of a mint whose on-chain transaction is signed and not final; wait for CONFIRMED or FAILED. */
  | { readonly code: "MINT_SETTLEMENT_IN_FLIGHT"; readonly mintId: string }
  /** ReconcileMint of a mint settled on-chain: settled money leaves only by redemption. */
  | { readonly code: "MINT_SETTLED"; readonly mintId: string }
  /** ReconcileChain of a chain without settlement configured. */
  | { readonly code: "SETTLEMENT_NOT_CONFIGURED"; readonly blockchain: string }
  /** The chain's node could not be reached (ReconcileChain); ledger reads and transfers are unaffected. */
  | { readonly code: "CHAIN_UNAVAILABLE"; readonly blockchain: string; readonly message: string }
  /** Approve/Reject of a mint that is no longer pending; `reason` says which state it is in. */
  | { readonly code: "MINT_NOT_PENDING"; readonly mintId: string; readonly reason: "MINT_COMPLETED" | "MINT_REVERSED" | "MINT_REJECTED" | "MINT_EXPIRED" }
  /** ReconcileMint of a mint awaiting approval: reject it instead. */
  | { readonly code: "MINT_PENDING_APPROVAL"; readonly mintId: string }
  /** The requester of a pending mint tried to approve it. */
  | { readonly code: "APPROVER_IS_REQUESTER"; readonly mintId: string; readonly principal: string }
  /** The mint is larger than what is left of the minter's allowance; nothing changed. */
  | { readonly code: "ALLOWANCE_EXCEEDED"; readonly principal: string; readonly remainingMicros: bigint; readonly amountMicros: bigint }
  /**
   * SetMinterAllowance with `expected_amount`: what is left of the allowance
   * is no longer the expected value (a mint, refund or another Set came
   * between the read and the Set); nothing changed. `remainingMicros` is the
   * value now, to read, decide and try again.
   */
  | { readonly code: "ALLOWANCE_CHANGED"; readonly principal: string; readonly remainingMicros: bigint; readonly expectedMicros: bigint }
  /**
   * A principal tried to set its own minter allowance (separation of duties,
   * as a requester may not approve its own mint); nothing changed.
   */
  | { readonly code: "SELF_ALLOWANCE"; readonly principal: string }
  /** The caller's deadline passed while the call waited (for a lock); nothing was applied. */
  | { readonly code: "DEADLINE_EXCEEDED"; readonly message: string }
  /** More calls already wait for this account's lock than the service queues; nothing was applied. */
  | { readonly code: "ACCOUNT_BUSY"; readonly accountId: string; readonly maxWaiters: number; readonly retryAfterMs: number }
  /**
   * The caller lacks the RPC's role, or a scope over an account the call
   * touches; nothing was looked at or changed. `idNamed` (no `missingScope`):
   * the call named a mint or redemption by id, and the caller (without scope
   * `*`) may not see it — whether because its account is outside the caller's
   * scopes or because there is no such id is not said, and neither is the account.
   */
  | {
      readonly code: "PERMISSION_DENIED";
      readonly rpc: string;
      readonly principal: string;
      readonly missingRole?: string;
      readonly missingScope?: string;
      readonly idNamed?: "mint" | "redemption";
    }
  /** The service cannot answer now (shutting down, a store is unreachable); safe to retry. */
  | { readonly code: "UNAVAILABLE"; readonly message: string }
  /**
   * Every store connection stayed busy until the call's deadline (or the
   * store's wait cap): the store is up but saturated. Nothing was applied;
   * retry with the same key after `retryAfterMs`.
   */
  | { readonly code: "STORE_BUSY"; readonly retryAfterMs: number; readonly message: string }
  /** The caller cancelled (or went away) while the call waited; nothing was applied. */
  | { readonly code: "CANCELLED"; readonly message: string }
  // Reserve, redemption, freeze.
  /**
   * The change would take supply past the reserve (a mint), or put the
   * reserve below supply (SetReserve). `headroomMicros` is reserve − supply
   * as it stood; nothing changed.
   */
  | { readonly code: "RESERVE_EXCEEDED"; readonly headroomMicros: bigint; readonly supplyMicros: bigint; readonly reserveMicros: bigint; readonly requestedMicros: bigint }
  /** MINT_RESERVE_REQUIRED is on and no reserve has been set yet; nothing changed. */
  | { readonly code: "RESERVE_NOT_SET" }
  /** The account is frozen: it neither receives nor sends; nothing changed. */
  | { readonly code: "ACCOUNT_FROZEN"; readonly accountId: string }
  | { readonly code: "REDEMPTION_NOT_FOUND"; readonly redemptionId: string }
  /**
   * An item of an all-or-none BatchTransfer that would have applied, had item
   * `refusedItem` (its index, from 0) not been refused: nothing of the batch
   * was applied.
   */
  | { readonly code: "ATOMIC_BATCH_REFUSED"; readonly refusedItem: number };

export type FailureCode = Failure["code"];

export function invalid(reason: InvalidReason, field: FieldName, message: string): Failure {
  return { code: "INVALID_ARGUMENT", reason, field, message };
}

/**
 * Thrown (not returned) by adapters whose backing service cannot be reached.
 * It is an operating error, not a bug: the edge answers UNAVAILABLE.
 */
export class UnavailableError extends Error {
  readonly code = "UNAVAILABLE" as const;
  /**
   * True when the adapter knows the effect was not applied (it failed before
   * anything could commit); false when the outcome is unknown (a lost commit
   * reply). The core gives a rate-limit slot back only in the first case.
   */
  readonly notApplied: boolean;
  constructor(message: string, options?: { cause?: unknown; notApplied?: boolean }) {
    super(message, options);
    this.name = "UnavailableError";
    this.notApplied = options?.notApplied ?? false;
  }
}

/** The same error marked "known not applied"; anything that is not an UnavailableError is returned as is. */
export function markNotApplied(err: unknown): unknown {
  if (!(err instanceof UnavailableError) || err.notApplied) return err;
  return new UnavailableError(err.message, { cause: err.cause ?? err, notApplied: true });
}

/** Thrown when a deadline passes inside an adapter; the edge answers DEADLINE_EXCEEDED. */
export class DeadlineExceededError extends Error {
  readonly code = "DEADLINE_EXCEEDED" as const;
  constructor(message = "deadline exceeded while waiting; nothing was applied") {
    super(message);
    this.name = "DeadlineExceededError";
  }
}

/** A broken invariant: a bug. Surfaces as INTERNAL with a fixed message. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(`invariant violated: ${message}`);
}
