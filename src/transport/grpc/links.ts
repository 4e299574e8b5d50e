/**
 * The links of the edge's chain (chain.ts), one concern each. `Edge` (edge.ts)
 * puts them in order; README "The edge" lists the order and why.
 */
import type { Clock } from "../../domain/clock.js";
import { OVERLOADED_RETRY_AFTER_MS } from "../../domain/limits.js";
import type { Logger } from "../../logger.js";
import { status as GrpcCode } from "@grpc/grpc-js";
import type { Failure } from "../../domain/errors.js";
import { andThen, isPromiseLike, type Answer, type EdgeCall, type Link, type MaybeAnswer } from "./chain.js";
import type { EdgeFailure } from "./status.js";

/** The server stops waiting this share of the caller's remaining time early... */
const DEADLINE_MARGIN_FRACTION = 0.25;
/** ...but at least this many ms (a short deadline under load needs room for the answer to travel)... */
const DEADLINE_MARGIN_MIN_MS = 20;
/** ...and never more than this many ms. */
const DEADLINE_MARGIN_MAX_MS = 50;

/**
 * The logger for lines about one call: a pino child carrying the call's
 * request id, so every line the edge writes for it can be found by the id the
 * caller was given. Made only when a line is written (most calls write none).
 */
export function callLogger(logger: Logger, call: EdgeCall): Logger {
  const requestId = call.values.requestId;
  return requestId === undefined ? logger : logger.child({ requestId });
}

/**
 * The fields every failed-call line carries, always these two: `code`, the
 * gRPC status code's name the caller got (`PERMISSION_DENIED`), and `reason`,
 * the ErrorInfo reason of its details (`MISSING_ROLE`). Both come from the
 * answer itself (built once per call, shared with the reply), so the log
 * cannot say something the caller was not told.
 */
export function failedCallFields(call: EdgeCall, failure: Failure | EdgeFailure): { code: string; reason: string } {
  const status = call.statusOf(failure);
  return { code: GrpcCode[status.code], reason: status.reason };
}

/**
 * Logs a failed call once, with its RPC, gRPC code and ErrorInfo reason
 * (failedCallFields); UNAVAILABLE-class failures at warn. Failures that came
 * from a throw were logged by `failureOfThrow`, with the error itself. The
 * edge runs it on every answer, whichever link gave it.
 */
export function logFailedCall(logger: Logger, call: EdgeCall, answer: Answer): void {
  if (answer.ok || answer.error.code === "STORE_UNAVAILABLE" || answer.error.code === "INTERNAL") return;
  const f = answer.error;
  const level = f.code === "UNAVAILABLE" || f.code === "OVERLOADED" || f.code === "ACCOUNT_BUSY" ? "warn" : "info";
  callLogger(logger, call)[level]({ rpc: call.rpc, ...failedCallFields(call, f) }, "call failed");
}

/** `logFailedCall` as a link, for a chain composed around it (the edge itself runs it as plain code). */
export function logging(logger: Logger): Link {
  return (call, next) =>
    andThen(next(call), (answer) => {
      logFailedCall(logger, call, answer);
      return answer;
    });
}

/**
 * Turns what a handler (or a link) throws into a failure: an unreachable
 * store (UnavailableError), a deadline inside an adapter
 * (DeadlineExceededError), or a bug — INTERNAL, whose stack goes to the log
 * and never to the caller.
 */
export function failureOfThrow(logger: Logger, call: EdgeCall, error: unknown): Answer {
  const code = (error as { code?: unknown } | null)?.code;
  if (code === "UNAVAILABLE") {
    const failure: EdgeFailure = { code: "STORE_UNAVAILABLE" };
    callLogger(logger, call).warn({ rpc: call.rpc, ...failedCallFields(call, failure), err: (error as Error).message }, "call failed: store unavailable");
    return { ok: false, error: failure };
  }
  // Logged by `logFailedCall`, as any other DEADLINE_EXCEEDED.
  if (code === "DEADLINE_EXCEEDED") return { ok: false, error: { code: "DEADLINE_EXCEEDED", message: (error as Error).message } };
  const failure: EdgeFailure = { code: "INTERNAL" };
  callLogger(logger, call).error({ rpc: call.rpc, ...failedCallFields(call, failure), err: error }, "call failed: internal error");
  return { ok: false, error: failure };
}

/** `failureOfThrow` as a link, for a chain composed around it (the edge itself runs it as plain code). */
export function errors(logger: Logger): Link {
  return (call, next) => {
    let answer: MaybeAnswer;
    try {
      answer = next(call);
    } catch (error: unknown) {
      // A link or handler that threw before returning.
      return failureOfThrow(logger, call, error);
    }
    return isPromiseLike(answer) ? answer.then(undefined, (error: unknown) => failureOfThrow(logger, call, error)) : answer;
  };
}

/** Refuses new calls once the server drains (UNAVAILABLE SHUTTING_DOWN); calls already in flight go on. */
export class Draining {
  draining = false;
  readonly link: Link = (call, next) => (this.draining ? SHUTTING_DOWN : next(call));
}

const SHUTTING_DOWN: Answer = { ok: false, error: { code: "SHUTTING_DOWN" } };

/**
 * Counts calls in flight (for the drain) and caps them: beyond `max`, a call
 * is refused at once, UNAVAILABLE (OVERLOADED) with RetryInfo, having done
 * nothing. A bounded number of calls bounds memory and the time each waits.
 * A counted call is released when its answer goes out (`call.release`,
 * which the edge calls once), not through a continuation of its own.
 */
export class InFlight {
  count = 0;
  private idleWaiters: (() => void)[] = [];
  private readonly overloaded: Answer;

  constructor(readonly max: number) {
    this.overloaded = { ok: false, error: { code: "OVERLOADED", maxCallsInFlight: max, retryAfterMs: OVERLOADED_RETRY_AFTER_MS } };
  }

  readonly link: Link = (call, next) => {
    if (this.count >= this.max) return this.overloaded;
    this.count++;
    call.release = this.done;
    return next(call);
  };

  /** Resolves when no call is in flight. */
  idle(): Promise<void> {
    if (this.count === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private readonly done = (): void => {
    if (--this.count === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  };
}

/**
 * Turns the caller's deadline (wall time from grpc-js) into the core's
 * monotonic `deadlineMs`, a little early: a quarter of the time left, at
 * least 20 ms and at most 50 ms. Whatever waits inside the server (a lock, a
 * key in use) gives up by then, so its answer — DEADLINE_EXCEEDED saying
 * nothing was applied, or ABORTED with RetryInfo — reaches the caller before
 * the caller's own timer fires; a call that arrives with its deadline already
 * passed is answered at once, having done nothing. A caller whose timer fires
 * first resets the stream (RST_STREAM), and enough resets on one connection
 * make nghttp2 close it (README "Short deadlines and rapid reset").
 */
export function deadline(clock: Clock): Link {
  return (call, next) => {
    const deadline = call.raw.getDeadline();
    const wallMs = deadline instanceof Date ? deadline.getTime() : deadline;
    if (!Number.isFinite(wallMs)) return next(call);
    const remainingMs = wallMs - Date.now();
    // The caller has already given up (the call waited in the socket or the event loop past
    // its deadline): answer so, having done nothing, rather than apply for nobody.
    if (remainingMs <= 0) return EXPIRED;
    const marginMs = Math.min(DEADLINE_MARGIN_MAX_MS, Math.max(DEADLINE_MARGIN_MIN_MS, remainingMs * DEADLINE_MARGIN_FRACTION));
    call.deadlineMs = clock.nowMs() + remainingMs - marginMs;
    return next(call);
  };
}

const EXPIRED: Answer = {
  ok: false,
  error: { code: "DEADLINE_EXCEEDED", message: "the deadline had passed when the call arrived; nothing was applied" },
};
