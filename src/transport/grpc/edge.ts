/**
 * The gRPC edge of every call: refuses new calls while draining, turns the
 * caller's deadline into the core's monotonic deadline, maps failures through
 * the error table, logs failed calls, counts calls in flight, and answers
 * exactly once — unknown exceptions leave as INTERNAL with a fixed message
 * while their stack goes to the log.
 */
import type { sendUnaryData, ServerUnaryCall } from "@grpc/grpc-js";
import type { Clock } from "../../domain/clock.js";
import type { CallContext } from "../../domain/mint-core.js";
import type { Result } from "../../domain/result.js";
import type { Logger } from "../../logger.js";
import { failureToStatus, internalError, unavailable, type RichError } from "./status.js";

/** The server stops waiting this share of the caller's remaining time early... */
const DEADLINE_MARGIN_FRACTION = 0.1;
/** ...but never more than this many ms. */
const DEADLINE_MARGIN_MAX_MS = 50;

export type UnaryHandler<Req, Res> = (req: Req, ctx: CallContext) => Promise<Result<Res>>;

export class Edge {
  private draining = false;
  private inFlight = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {}

  /** From now on new calls get UNAVAILABLE; calls in flight continue. */
  startDraining(): void {
    this.draining = true;
  }

  get callsInFlight(): number {
    return this.inFlight;
  }

  /** Resolves when no call is in flight. */
  idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  unary<Req, Res>(rpc: string, handler: UnaryHandler<Req, Res>): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
    return (call, callback) => {
      if (this.draining) {
        callback(unavailable("the server is shutting down; retry on another replica", "SHUTTING_DOWN"));
        return;
      }
      this.inFlight++;
      let ctx: CallContext;
      try {
        ctx = { deadlineMs: this.monotonicDeadline(call.getDeadline()) };
      } catch {
        ctx = { deadlineMs: Infinity };
      }
      void this.run(rpc, handler, call.request, ctx, callback);
    };
  }

  /**
   * Runs one call and answers it once. One async frame per call instead of a
   * `.then` with two closures; the callback is called outside the `try`, so
   * that nothing it throws can lead to a second answer.
   */
  private async run<Req, Res>(rpc: string, handler: UnaryHandler<Req, Res>, request: Req, ctx: CallContext, callback: sendUnaryData<Res>): Promise<void> {
    let result: Result<Res>;
    try {
      result = await handler(request, ctx);
    } catch (error: unknown) {
      callback(this.thrown(rpc, error));
      this.done();
      return;
    }
    if (result.ok) {
      callback(null, result.value);
    } else {
      const f = result.error;
      const level = f.code === "UNAVAILABLE" ? "warn" : "info";
      this.logger[level]({ rpc, code: f.code, reason: f.code === "INVALID_ARGUMENT" ? f.reason : f.code }, "call failed");
      callback(failureToStatus(f));
    }
    this.done();
  }

  /** The answer to a handler that threw: a store that is unreachable, a deadline, or a bug. */
  private thrown(rpc: string, error: unknown): RichError {
    const code = (error as { code?: unknown } | null)?.code;
    if (code === "UNAVAILABLE") {
      this.logger.warn({ rpc, code, err: (error as Error).message }, "call failed: store unavailable");
      // Not "nothing was applied": a commit whose reply was lost may have applied. A retry with
      // the same idempotency key is always safe: it replays or applies, never twice.
      return unavailable("a backing store is unreachable; retry later with the same idempotency key (it never applies twice)", "STORE_UNAVAILABLE");
    }
    if (code === "DEADLINE_EXCEEDED") {
      this.logger.info({ rpc, code }, "call failed");
      return failureToStatus({ code: "DEADLINE_EXCEEDED", message: (error as Error).message });
    }
    this.logger.error({ rpc, err: error }, "call failed: internal error");
    return internalError();
  }

  private done(): void {
    if (--this.inFlight === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /**
   * grpc-js gives the deadline as wall time (Date or ms, Infinity for none);
   * the core wants monotonic ms. The server gives up a little before the
   * caller does (10% of the time left, at most 50 ms), so that its answer —
   * ABORTED with RetryInfo, or DEADLINE_EXCEEDED saying nothing was applied —
   * reaches the caller before the caller's own timer turns it into a bare
   * "Deadline exceeded".
   */
  private monotonicDeadline(deadline: Date | number): number {
    const wallMs = deadline instanceof Date ? deadline.getTime() : deadline;
    if (!Number.isFinite(wallMs)) return Infinity;
    const remainingMs = wallMs - Date.now();
    const marginMs = Math.min(DEADLINE_MARGIN_MAX_MS, Math.max(0, remainingMs) * DEADLINE_MARGIN_FRACTION);
    return this.clock.nowMs() + remainingMs - marginMs;
  }
}
