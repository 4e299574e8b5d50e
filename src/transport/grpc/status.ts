/**
 * The one error table: every domain failure becomes a gRPC status code plus a
 * `google.rpc.Status` (ErrorInfo always; BadRequest, RetryInfo, QuotaFailure
 * where they help) in the `grpc-status-details-bin` trailer. grpc-js has no
 * helper for rich errors, so the Status is encoded here by hand.
 */
import { Metadata, status as Code, type ServiceError } from "@grpc/grpc-js";
import { Any } from "../../../gen/google/protobuf/any.js";
import { BadRequest, ErrorInfo, QuotaFailure, RetryInfo } from "../../../gen/google/rpc/error_details.js";
import { Status } from "../../../gen/google/rpc/status.js";
import type { UnauthenticatedReason } from "../../auth/authenticate.js";
import { ALL_ACCOUNTS, callerIdempotencyKey } from "../../domain/authorization.js";
import type { Failure } from "../../domain/errors.js";
import { formatMicros } from "../../domain/money.js";

/** The fixed ErrorInfo domain of this service. */
export const ERROR_DOMAIN = "mint.usdc.example";
export const STATUS_DETAILS_KEY = "grpc-status-details-bin";
export const INTERNAL_MESSAGE = "internal error; the service logged the details";

const TYPE_PREFIX = "type.googleapis.com/";

function pack(typeName: string, value: Uint8Array): Any {
  return { typeUrl: TYPE_PREFIX + typeName, value: Buffer.from(value) };
}

/** An encoded ErrorInfo with its reason kept beside the bytes, so the log line need not decode it. */
interface ErrorInfoDetail extends Any {
  readonly reason: string;
}

function errorInfo(reason: string, metadata: Record<string, string> = {}): ErrorInfoDetail {
  return { typeUrl: TYPE_PREFIX + "google.rpc.ErrorInfo", value: Buffer.from(ErrorInfo.encode({ reason, domain: ERROR_DOMAIN, metadata }).finish()), reason };
}

function retryInfo(delayMs: number): Any {
  const ms = Math.max(0, Math.ceil(delayMs));
  const seconds = Math.floor(ms / 1000);
  return pack("google.rpc.RetryInfo", RetryInfo.encode({ retryDelay: { seconds, nanos: (ms - seconds * 1000) * 1_000_000 } }).finish());
}

/** A gRPC error with rich details, ready for a unary callback. */
export interface RichError extends Partial<ServiceError> {
  code: Code;
  details: string;
  metadata: Metadata;
  /** The ErrorInfo reason the details carry (what the failed-call log line writes beside the code). */
  reason: string;
}

/** Every error carries an ErrorInfo, first; other details follow. */
export function richError(code: Code, message: string, details: [ErrorInfoDetail, ...Any[]]): RichError {
  const metadata = new Metadata();
  // Any.encode writes typeUrl and value only: the ErrorInfo's kept reason is not encoded.
  metadata.set(STATUS_DETAILS_KEY, Buffer.from(Status.encode({ code, message, details }).finish()));
  return { code, details: message, metadata, message, name: "RichError", reason: details[0].reason };
}

/**
 * Failures the edge itself answers, before or around the core: the process is
 * draining, too many calls are in flight, a backing store threw
 * UnavailableError, or a bug.
 */
export type EdgeFailure =
  | { readonly code: "SHUTTING_DOWN" }
  | { readonly code: "OVERLOADED"; readonly maxCallsInFlight: number; readonly retryAfterMs: number }
  | { readonly code: "STORE_UNAVAILABLE" }
  /** A bug: the handler threw something else. */
  | { readonly code: "INTERNAL" }
  /** The auth link found no valid credentials; `reason` says which problem (never a secret). */
  | { readonly code: "UNAUTHENTICATED"; readonly rpc: string; readonly reason: UnauthenticatedReason; readonly message: string }
  /**
   * A request message above its method's own cap but within the transport's
   * (which is raised to the batch cap): refused before it was decoded.
   */
  | { readonly code: "MESSAGE_TOO_LARGE"; readonly rpc: string; readonly maxBytes: number; readonly bytes: number };

/** Maps one failure to its status (exhaustive: a new failure code fails to compile here). */
export function failureToStatus(f: Failure | EdgeFailure): RichError {
  switch (f.code) {
    case "INVALID_ARGUMENT":
      return richError(Code.INVALID_ARGUMENT, f.message, [
        errorInfo(f.reason, { field: f.field }),
        pack("google.rpc.BadRequest", BadRequest.encode({ fieldViolations: [{ field: f.field, description: f.message }] }).finish()),
      ]);
    case "RATE_LIMITED":
      return richError(
        Code.RESOURCE_EXHAUSTED,
        `rate limit: at most ${f.limit} mints per ${f.windowMs} ms for account ${f.accountId}; retry in ${Math.ceil(f.retryAfterMs)} ms`,
        [
          errorInfo("RATE_LIMITED", { account_id: f.accountId, limit: String(f.limit), window_ms: String(f.windowMs) }),
          retryInfo(f.retryAfterMs),
          pack(
            "google.rpc.QuotaFailure",
            QuotaFailure.encode({
              violations: [{ subject: `account:${f.accountId}`, description: `at most ${f.limit} mints per ${f.windowMs} ms` }],
            }).finish(),
          ),
        ],
      );
    case "IDEMPOTENCY_KEY_REUSED":
      return richError(
        Code.ALREADY_EXISTS,
        `idempotency_key was already used for a different request (differing fields: ${f.fields.join(", ")})`,
        [errorInfo("IDEMPOTENCY_KEY_REUSED", { differing_fields: f.fields.join(","), idempotency_key: callerIdempotencyKey(f.key) })],
      );
    case "IDEMPOTENCY_KEY_IN_USE":
      return richError(Code.ABORTED, "a call with this idempotency_key is still in flight; retry with the same key", [
        errorInfo("IDEMPOTENCY_KEY_IN_USE", { idempotency_key: callerIdempotencyKey(f.key) }),
        retryInfo(f.retryAfterMs),
      ]);
    case "IDEMPOTENCY_STORE_FULL":
      return richError(Code.RESOURCE_EXHAUSTED, `the idempotency store holds its maximum of ${f.maxKeys} keys; retry later`, [
        errorInfo("IDEMPOTENCY_STORE_FULL", { max_keys: String(f.maxKeys) }),
        retryInfo(f.retryAfterMs),
      ]);
    case "INSUFFICIENT_FUNDS":
      return richError(Code.FAILED_PRECONDITION, `account ${f.accountId} has insufficient funds; nothing changed`, [
        errorInfo("INSUFFICIENT_FUNDS", { account_id: f.accountId }),
      ]);
    case "MINT_ALREADY_REVERSED":
      return richError(Code.FAILED_PRECONDITION, `mint ${f.mintId} is already reversed`, [
        errorInfo("MINT_ALREADY_REVERSED", { mint_id: f.mintId }),
      ]);
    case "MINT_SETTLEMENT_IN_FLIGHT":
      return richError(Code.FAILED_PRECONDITION, `mint ${f.mintId} has a signed on-chain transaction not yet final; retry once its settlement is CONFIRMED or FAILED`, [
        errorInfo("MINT_SETTLEMENT_IN_FLIGHT", { mint_id: f.mintId }),
      ]);
    case "MINT_SETTLED":
      return richError(Code.FAILED_PRECONDITION, `mint ${f.mintId} is settled on-chain; settled money leaves only by redemption`, [
        errorInfo("MINT_SETTLED", { mint_id: f.mintId }),
      ]);
    case "SETTLEMENT_NOT_CONFIGURED":
      return richError(Code.FAILED_PRECONDITION, `no settlement is configured for ${f.blockchain}`, [errorInfo("SETTLEMENT_NOT_CONFIGURED", { blockchain: f.blockchain })]);
    case "CHAIN_UNAVAILABLE":
      return richError(Code.UNAVAILABLE, `the ${f.blockchain} node could not be reached: ${f.message}`, [errorInfo("CHAIN_UNAVAILABLE", { blockchain: f.blockchain })]);
    case "MINT_NOT_FOUND":
      return richError(Code.NOT_FOUND, `mint ${f.mintId} not found`, [errorInfo("MINT_NOT_FOUND", { mint_id: f.mintId })]);
    case "MINT_NOT_PENDING":
      return richError(Code.FAILED_PRECONDITION, `mint ${f.mintId} is not pending approval (${f.reason}); nothing changed`, [
        errorInfo(f.reason, { mint_id: f.mintId }),
      ]);
    case "MINT_PENDING_APPROVAL":
      return richError(Code.FAILED_PRECONDITION, `mint ${f.mintId} is pending approval and credited nothing; reject it instead`, [
        errorInfo("MINT_PENDING_APPROVAL", { mint_id: f.mintId }),
      ]);
    case "APPROVER_IS_REQUESTER":
      return richError(Code.PERMISSION_DENIED, `${f.principal} requested mint ${f.mintId} and cannot approve it; nothing changed`, [
        errorInfo("APPROVER_IS_REQUESTER", { mint_id: f.mintId, principal: f.principal }),
      ]);
    case "ALLOWANCE_EXCEEDED":
      return richError(
        Code.FAILED_PRECONDITION,
        `the mint exceeds what is left of ${f.principal}'s minter allowance (${formatMicros(f.remainingMicros)} USDC); nothing changed`,
        [
          errorInfo("ALLOWANCE_EXCEEDED", {
            principal: f.principal,
            remaining: formatMicros(f.remainingMicros),
            amount: formatMicros(f.amountMicros),
          }),
        ],
      );
    case "ALLOWANCE_CHANGED":
      return richError(
        Code.FAILED_PRECONDITION,
        `${f.principal}'s minter allowance is ${formatMicros(f.remainingMicros)} USDC, not the expected ${formatMicros(f.expectedMicros)}; nothing changed`,
        [errorInfo("ALLOWANCE_CHANGED", { principal: f.principal, remaining: formatMicros(f.remainingMicros), expected: formatMicros(f.expectedMicros) })],
      );
    case "SELF_ALLOWANCE":
      return richError(Code.PERMISSION_DENIED, `${f.principal} may not set its own minter allowance; nothing changed`, [errorInfo("SELF_ALLOWANCE", { principal: f.principal })]);
    case "DEADLINE_EXCEEDED":
      return richError(Code.DEADLINE_EXCEEDED, f.message, [errorInfo("DEADLINE_EXCEEDED")]);
    case "ACCOUNT_BUSY":
      return unavailable(
        `${f.maxWaiters} calls already wait for account ${f.accountId}; nothing was applied; retry with the same idempotency key`,
        "ACCOUNT_BUSY",
        { account_id: f.accountId, max_waiters: String(f.maxWaiters) },
        f.retryAfterMs,
      );
    case "UNAVAILABLE":
      return unavailable(f.message);
    case "STORE_BUSY":
      // Not an outage: the store answers, but every connection stayed busy
      // for as long as this call could wait. Nothing was applied.
      return richError(Code.UNAVAILABLE, f.message, [errorInfo("STORE_BUSY"), retryInfo(f.retryAfterMs)]);
    case "CANCELLED":
      return richError(Code.CANCELLED, f.message, [errorInfo("CANCELLED")]);
    // Reserve, redemption, freeze.
    case "RESERVE_EXCEEDED":
      return richError(
        Code.FAILED_PRECONDITION,
        `supply would exceed the reserve (supply ${f.supplyMicros} micro-USDC, reserve ${f.reserveMicros}, headroom ${f.headroomMicros}, requested ${f.requestedMicros}); nothing changed`,
        [
          errorInfo("RESERVE_EXCEEDED", {
            headroom_micros: f.headroomMicros.toString(),
            supply_micros: f.supplyMicros.toString(),
            reserve_micros: f.reserveMicros.toString(),
            requested_micros: f.requestedMicros.toString(),
          }),
        ],
      );
    case "RESERVE_NOT_SET":
      return richError(Code.FAILED_PRECONDITION, "no reserve has been set and MINT_RESERVE_REQUIRED is on: mints wait for SetReserve; nothing changed", [
        errorInfo("RESERVE_NOT_SET"),
      ]);
    case "ACCOUNT_FROZEN":
      return richError(Code.FAILED_PRECONDITION, `account ${f.accountId} is frozen; nothing changed`, [errorInfo("ACCOUNT_FROZEN", { account_id: f.accountId })]);
    case "ATOMIC_BATCH_REFUSED":
      return richError(Code.FAILED_PRECONDITION, `item ${f.refusedItem} of this all-or-none batch was refused, so no item was applied`, [
        errorInfo("ATOMIC_BATCH_REFUSED", { refused_item: String(f.refusedItem) }),
      ]);
    case "MESSAGE_TOO_LARGE":
      return richError(Code.RESOURCE_EXHAUSTED, `${f.rpc} requests are at most ${f.maxBytes} bytes; this one is ${f.bytes}; nothing was decoded or applied`, [
        errorInfo("MESSAGE_TOO_LARGE", { rpc: f.rpc, max_bytes: String(f.maxBytes), bytes: String(f.bytes) }),
      ]);
    case "REDEMPTION_NOT_FOUND":
      return richError(Code.NOT_FOUND, `redemption ${f.redemptionId} not found`, [errorInfo("REDEMPTION_NOT_FOUND", { redemption_id: f.redemptionId })]);
    case "SHUTTING_DOWN":
      return unavailable("the server is shutting down; retry on another replica", "SHUTTING_DOWN");
    case "OVERLOADED":
      return unavailable(
        `the server runs its maximum of ${f.maxCallsInFlight} calls; nothing was applied; retry with the same idempotency key`,
        "OVERLOADED",
        { max_calls_in_flight: String(f.maxCallsInFlight) },
        f.retryAfterMs,
      );
    case "STORE_UNAVAILABLE":
      // Not "nothing was applied": a commit whose reply was lost may have applied. A retry with
      // the same idempotency key is always safe: it replays or applies, never twice.
      return unavailable("a backing store is unreachable; retry later with the same idempotency key (it never applies twice)", "STORE_UNAVAILABLE");
    case "INTERNAL":
      return internalError();
    case "UNAUTHENTICATED":
      return richError(Code.UNAUTHENTICATED, f.message, [errorInfo(f.reason, { rpc: f.rpc })]);
    case "PERMISSION_DENIED":
      // One answer for "out of scope" and "no such id": no id, no account, nothing that differs.
      if (f.missingRole === undefined && f.idNamed !== undefined) {
        return richError(
          Code.PERMISSION_DENIED,
          `principal ${f.principal} may not call ${f.rpc} for this ${f.idNamed}: it does not exist, or its account is outside the principal's scopes`,
          [errorInfo("NOT_IN_SCOPE_OR_NOT_FOUND", { rpc: f.rpc, principal: f.principal })],
        );
      }
      return f.missingRole !== undefined
        ? richError(Code.PERMISSION_DENIED, `principal ${f.principal} lacks the role ${f.missingRole}, which ${f.rpc} needs`, [
            errorInfo("MISSING_ROLE", { rpc: f.rpc, principal: f.principal, missing_role: f.missingRole }),
          ])
        : richError(
            Code.PERMISSION_DENIED,
            f.missingScope === ALL_ACCOUNTS
              ? `principal ${f.principal} may not call ${f.rpc} over all accounts (needs scope *)`
              : `principal ${f.principal} has no scope over account ${f.missingScope ?? ""} for ${f.rpc}`,
            [errorInfo("ACCOUNT_NOT_IN_SCOPE", { rpc: f.rpc, principal: f.principal, missing_scope: f.missingScope ?? "" })],
          );
    default: {
      const unreachable: never = f;
      throw new Error(`unmapped failure ${JSON.stringify(unreachable)}`);
    }
  }
}

/**
 * The one UNAVAILABLE answer: shutting down, shed under load, or a store
 * unreachable; always safe to retry with the same idempotency key. With
 * `retryAfterMs` it carries RetryInfo.
 */
function unavailable(message: string, reason = "UNAVAILABLE", metadata: Record<string, string> = {}, retryAfterMs?: number): RichError {
  const info = errorInfo(reason, metadata);
  return richError(Code.UNAVAILABLE, message, retryAfterMs === undefined ? [info] : [info, retryInfo(retryAfterMs)]);
}

/** A bug: a fixed message for the caller; the stack goes to the log only. */
export function internalError(): RichError {
  return richError(Code.INTERNAL, INTERNAL_MESSAGE, [errorInfo("INTERNAL")]);
}
