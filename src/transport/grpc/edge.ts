/**
 * The gRPC edge of every unary call, in one pass: the request id and the
 * metrics start, the links that decide whether the call runs (chain.ts,
 * links.ts) and the handler are called once, and when the answer is there
 * (at once when nothing waited, else after one `.then`) error mapping,
 * logging and metrics see it and it is sent exactly once. Adding a concern
 * that decides (auth, say) is writing one link and adding it to the list
 * below; one that only observes is a line before or after the call.
 */
import { Metadata, type sendUnaryData, type ServerUnaryCall } from "@grpc/grpc-js";
import type { Clock } from "../../domain/clock.js";
import type { Logger } from "../../logger.js";
import type { ServiceMetrics } from "../../observability/metrics.js";
import { Call, compose, isPromiseLike, type Answer, type Link, type MaybeAnswer, type Next, type UnaryHandler } from "./chain.js";
import type { Security } from "../../auth/security.js";
import { authLink } from "./auth-check.js";
import { deadline, Draining, failureOfThrow, InFlight, logFailedCall } from "./links.js";
import { RpcMetrics } from "./metrics-link.js";
import { addRequestIdToErrorInfo, REQUEST_ID_KEY, requestIdOf } from "./request-id.js";
import { devPrincipal } from "./dev-principal.js";

export type { HandlerContext, UnaryHandler } from "./chain.js";

export interface EdgeOptions {
  readonly clock: Clock;
  readonly logger: Logger;
  /** Most calls in flight at once; more are refused UNAVAILABLE (OVERLOADED). */
  readonly maxCallsInFlight: number;
  /** Where calls are counted and timed; none when metrics are off (then no metrics link runs). */
  readonly metrics?: { readonly sink: ServiceMetrics; readonly service: string };
  /** Who may call: authentication and the role table (src/auth). */
  readonly security: Security;
  /** Honour the x-mint-dev-principal header (a development stand-in for authentication; loopback only, checked by config). */
  readonly devPrincipalHeader?: boolean;
}

export class Edge {
  private readonly drain = new Draining();
  private readonly inFlight: InFlight;
  private readonly links: readonly Link[];
  private readonly logger: Logger;
  private readonly metrics: EdgeOptions["metrics"];

  constructor(opts: EdgeOptions) {
    this.inFlight = new InFlight(opts.maxCallsInFlight);
    this.logger = opts.logger;
    this.metrics = opts.metrics;
    // The order of the concerns, outermost first (README "The edge"); the
    // first four run as plain code in `unary`, the rest are links:
    //   the request id: first, so every line and answer of the call has it;
    //   metrics (when on): count and time every answer;
    //   logging: sees every answer, whichever link gave it;
    //   error mapping: what any link below or the handler throws.
    this.links = [
      this.drain.link, // refuses new calls while draining, before they count
      authLink(opts.security), // who is calling and may they: decided before anything does work
      this.inFlight.link, // counts and caps calls in flight
      deadline(opts.clock), // the core's deadline, a little before the caller's
      // Cancellation has no link: the wait points read the call's `aborted` (grpc-js's `cancelled`).
      ...(opts.devPrincipalHeader === true ? [devPrincipal] : []), // names the caller (a development stand-in for authentication)
    ];
  }

  /** From now on new calls get UNAVAILABLE; calls in flight continue. */
  startDraining(): void {
    this.drain.draining = true;
  }

  get callsInFlight(): number {
    return this.inFlight.count;
  }

  /** Resolves when no call is in flight. */
  idle(): Promise<void> {
    return this.inFlight.idle();
  }

  /** The grpc-js handler of one unary RPC: the edge around `handler`, answered once. */
  unary<Req, Res>(rpc: string, handler: UnaryHandler<Req, Res>): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
    const run = compose(this.links, ((call) => handler(call.request as Req, call)) as Next);
    const metrics = this.metrics === undefined ? null : new RpcMetrics(this.metrics.sink, this.metrics.service, rpc);
    const logger = this.logger;
    /** Everything after the answer is known, outermost last; a bug here still answers once, INTERNAL. */
    const finish = (call: Call, answer: Answer, startMs: number, callback: sendUnaryData<unknown>): void => {
      try {
        call.release?.();
        logFailedCall(logger, call, answer);
        metrics?.answered(call, answer, startMs);
      } catch {
        answer = INTERNAL;
      }
      answerOnce(call, answer, callback);
    };
    return (raw, callback) => {
      const call = new Call(rpc, raw as ServerUnaryCall<unknown, unknown>, Infinity);
      const requestId = requestIdOf(raw.metadata);
      call.values.requestId = requestId;
      call.trailers = new RequestIdTrailer(requestId);
      const startMs = metrics === null ? 0 : metrics.started();
      let answer: MaybeAnswer;
      try {
        answer = run(call);
      } catch (error: unknown) {
        answer = failureOfThrow(logger, call, error);
      }
      if (isPromiseLike(answer)) {
        answer.then(
          (a) => finish(call, a, startMs, callback as sendUnaryData<unknown>),
          (error: unknown) => finish(call, failureOfThrow(logger, call, error), startMs, callback as sendUnaryData<unknown>),
        );
      } else {
        finish(call, answer, startMs, callback as sendUnaryData<unknown>);
      }
    };
  }
}

const INTERNAL: Answer = { ok: false, error: { code: "INTERNAL" } };

/**
 * The answer's trailing metadata: the request id, which every answer
 * carries. The id is checked already (requestIdOf: characters a subset of
 * the printable ASCII grpc-js allows in a value), so grpc-js's own key and
 * value checks (two regular expressions per call) are not run again.
 */
class RequestIdTrailer extends Metadata {
  constructor(requestId: string) {
    super();
    this.internalRepr.set(REQUEST_ID_KEY, [requestId]);
  }
}

/** Sends the answer with the trailers links added; on a failure, through the error table. */
function answerOnce(call: Call, answer: Answer, callback: sendUnaryData<unknown>): void {
  call.answered();
  if (answer.ok) {
    if (call.trailers === null) callback(null, answer.value);
    else callback(null, answer.value, call.trailers);
    return;
  }
  const status = call.statusOf(answer.error);
  if (call.values.requestId !== undefined) addRequestIdToErrorInfo(status, call.values.requestId);
  if (call.trailers !== null) status.metadata.merge(call.trailers);
  callback(status);
}
