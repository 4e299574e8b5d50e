/**
 * The gRPC edge of every unary call: the chain of links (chain.ts, links.ts)
 * in its one order, and the answer sent exactly once. Adding a concern (auth,
 * request ids, metrics) is writing one link and adding it to `order` below.
 */
import type { sendUnaryData, ServerUnaryCall } from "@grpc/grpc-js";
import type { Clock } from "../../domain/clock.js";
import type { Logger } from "../../logger.js";
import { Call, compose, type Answer, type Link, type Next, type UnaryHandler } from "./chain.js";
import { cancellation, deadline, Draining, errors, InFlight, logging } from "./links.js";
import { devPrincipal } from "./dev-principal.js";
import { failureToStatus } from "./status.js";

export type { HandlerContext, UnaryHandler } from "./chain.js";

export interface EdgeOptions {
  readonly clock: Clock;
  readonly logger: Logger;
  /** Most calls in flight at once; more are refused UNAVAILABLE (OVERLOADED). */
  readonly maxCallsInFlight: number;
  /** Honour the x-mint-dev-principal header (issue 11's stop-gap until auth; loopback only, checked by config). */
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
      logging(opts.logger), // sees every answer, whichever link gave it
      errors(opts.logger), // maps what any link below throws
      this.drain.link, // refuses new calls while draining, before they count
      this.inFlight.link, // counts and caps calls in flight
      deadline(opts.clock), // the core's deadline, a little before the caller's
      cancellation, // aborts the call's signal when the caller goes away
      ...(opts.devPrincipalHeader === true ? [devPrincipal] : []), // names the caller (until auth, issue 9)
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
  if (answer.ok) {
    if (call.trailers === null) callback(null, answer.value);
    else callback(null, answer.value, call.trailers);
    return;
  }
  const status = failureToStatus(answer.error);
  if (call.trailers !== null) status.metadata.merge(call.trailers);
  callback(status);
}
