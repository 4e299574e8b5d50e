/**
 * When a failed attempt may be sent again, and after how long. Pure
 * functions, so the rules are tested one by one without a server.
 *
 * A call's *safety* decides what an ambiguous failure (the request may or may
 * not have been applied) allows:
 * - "keyed": carries an idempotency key reused on every attempt, so a resend
 *   replays instead of applying twice (MintUsdc, Transfer);
 * - "read": changes nothing (GetBalance, GetMint, ListMints);
 * - "unkeyed": changes state without a key (ReconcileMint): only failures
 *   where the service says it did not start are retried.
 */
import type { MintServiceError } from "./errors.js";

/**
 * What a retry of a call risks: "keyed" (an idempotency key makes a retry a
 * replay), "read" (changes nothing), "unkeyed" (a change without a key: an
 * ambiguous failure is not retried).
 */
export type CallSafety = "keyed" | "read" | "unkeyed";

/** When and how often one logical operation is retried. */
export interface RetryPolicy {
  /** Most attempts per logical operation, the first included. */
  readonly maxAttempts: number;
  /** Wall time one logical operation may take across all its attempts and waits. */
  readonly budgetMs: number;
  /** First backoff ceiling; each later one is `multiplier` times larger, up to `maxBackoffMs`. */
  readonly initialBackoffMs: number;
  /** The largest backoff ceiling. */
  readonly maxBackoffMs: number;
  /** Growth of the backoff ceiling per attempt. */
  readonly multiplier: number;
}

/** The policy a client uses unless told otherwise: 10 attempts within 30 s, backoff 50 ms doubling up to 2 s. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = Object.freeze({
  maxAttempts: 10,
  budgetMs: 30_000,
  initialBackoffMs: 50,
  maxBackoffMs: 2_000,
  multiplier: 2,
});

/** Whether to retry a failure; `exactDelayMs` when the server said how long to wait (RetryInfo). */
export type RetryDecision =
  | {
      /** Do not retry. */
      readonly retry: false;
    }
  | {
      /** Retry. */
      readonly retry: true;
      /** Wait exactly this long (RetryInfo); absent: jittered backoff. */
      readonly exactDelayMs?: number;
    };

const NO: RetryDecision = { retry: false };
const BACKOFF: RetryDecision = { retry: true };

/**
 * Whether `err` may be retried for a call of the given safety. `exactDelayMs`
 * is set when the server said how long to wait (RetryInfo); otherwise the
 * caller backs off with jitter. One case per gRPC code, so none is forgotten.
 */
export function retryDecision(err: MintServiceError, safety: CallSafety): RetryDecision {
  // Nothing was sent (no serving address): always safe.
  if (!err.sent) return BACKOFF;
  // The service refused before doing anything and said when to come back.
  const told: RetryDecision | undefined = err.retryAfterMs === undefined ? undefined : { retry: true, exactDelayMs: err.retryAfterMs };
  const ambiguousOk = safety !== "unkeyed";
  switch (err.code) {
    // The request itself is wrong or not allowed: resending it cannot help,
    // whatever details came with it.
    case "OK":
    case "INVALID_ARGUMENT":
    case "FAILED_PRECONDITION":
    case "ALREADY_EXISTS":
    case "PERMISSION_DENIED":
    case "UNAUTHENTICATED":
    case "NOT_FOUND":
    case "OUT_OF_RANGE":
    case "UNIMPLEMENTED":
    case "CANCELLED":
    case "DATA_LOSS":
      return NO;
    // RATE_LIMITED and IDEMPOTENCY_STORE_FULL carry RetryInfo; a message
    // too large (grpc-js, no details) does not and stays too large.
    case "RESOURCE_EXHAUSTED":
    case "UNKNOWN":
      return told ?? NO;
    case "ABORTED":
      return told ?? (err.reason === "IDEMPOTENCY_KEY_IN_USE" ? BACKOFF : NO);
    case "UNAVAILABLE":
      // With our ErrorInfo the service answered (draining, a store down) and
      // applied nothing it will not replay; without it the connection failed
      // (refused, reset, GOAWAY), perhaps after the request was applied.
      return told ?? (err.hasErrorInfo || ambiguousOk ? BACKOFF : NO);
    case "DEADLINE_EXCEEDED":
      return told ?? (ambiguousOk ? BACKOFF : NO);
    case "INTERNAL":
      // A stream reset by a GOAWAY surfaces as INTERNAL "RST_STREAM" with no
      // details; an INTERNAL with ErrorInfo is a bug in the service.
      return told ?? (ambiguousOk && !err.hasErrorInfo && err.message.includes("RST_STREAM") ? BACKOFF : NO);
    default: {
      const unreachable: never = err.code;
      throw new Error(`unknown gRPC code ${String(unreachable)}`);
    }
  }
}

/**
 * The wait before attempt `attempt + 1` when the server gave no delay:
 * "full jitter" (uniform in [0, ceiling]), so that callers failing together
 * do not come back together.
 */
export function backoffMs(attempt: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxBackoffMs, policy.initialBackoffMs * policy.multiplier ** Math.max(0, attempt - 1));
  return Math.floor(random() * ceiling);
}
