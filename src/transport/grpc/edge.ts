/**
 * The gRPC edge of every unary call: the chain of links (chain.ts, links.ts)
 * in its one order, and the answer sent exactly once. Adding a concern (auth,
 * say) is writing one link and adding it to the list below.
 */
import type { sendUnaryData, ServerUnaryCall } from "@grpc/grpc-js";
import type { Clock } from "../../domain/clock.js";
import type { Logger } from "../../logger.js";
import type { ServiceMetrics } from "../../observability/metrics.js";
import { Call, compose, type Answer, type Link, type Next, type UnaryHandler } from "./chain.js";
import type { Security } from "../../auth/security.js";
import { authLink } from "./auth-check.js";
import { cancellation, deadline, Draining, errors, InFlight, logging } from "./links.js";
import { metricsLink } from "./metrics-link.js";
import { addRequestIdToErrorInfo, requestIdLink } from "./request-id.js";
import { devPrincipal } from "./dev-principal.js";
import { failureToStatus } from "./status.js";

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

  constructor(opts: EdgeOptions) {
    this.inFlight = new InFlight(opts.maxCallsInFlight);
    // The order of the links, outermost first (README "The edge"):
    this.links = [
      requestIdLink, // first, so every link after it and every log line of the call has the id
      ...(opts.metrics === undefined ? [] : [metricsLink(opts.metrics.sink, opts.metrics.service)]), // counts and times every answer
      logging(opts.logger), // sees every answer, whichever link gave it
      errors(opts.logger), // maps what any link below throws
      this.drain.link, // refuses new calls while draining, before they count
      authLink(opts.security), // who is calling and may they: decided before anything does work
      this.inFlight.link, // counts and caps calls in flight
      deadline(opts.clock), // the core's deadline, a little before the caller's
      cancellation, // aborts the call's signal when the caller goes away
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

  /** The grpc-js handler of one unary RPC: the chain around `handler`, answered once. */
  unary<Req, Res>(rpc: string, handler: UnaryHandler<Req, Res>): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
    const run = compose(this.links, ((call) => handler(call.request as Req, call)) as Next);
    return (raw, callback) => {
      const call = new Call(rpc, raw as ServerUnaryCall<unknown, unknown>, Infinity);
      run(call).then(
        (answer) => answerOnce(call, answer, callback as sendUnaryData<unknown>),
        // Only a bug in a link outside `errors` can get here; the caller still gets one answer.
        () => answerOnce(call, { ok: false, error: { code: "INTERNAL" } }, callback as sendUnaryData<unknown>),
      );
    };
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
