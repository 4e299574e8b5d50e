/**
 * The edge's interceptor chain: every cross-cutting concern of a unary call
 * (draining, the in-flight cap, deadline, cancellation, logging, error
 * mapping; later auth, request ids, metrics) is one small link, and the links
 * run in one order around the handler.
 *
 * A link is `(call, next) => Promise<Answer>`: it may answer by itself (a
 * failure such as SHUTTING_DOWN, without calling `next`), or call
 * `next(call)` and look at or change what comes back. It may attach values to
 * the call for the links after it and for the handler (`call.values`, typed
 * by declaration merging on `CallValues`), and add trailing metadata to the
 * answer (`call.addTrailer`). Handlers see a `HandlerContext`: the deadline,
 * the AbortSignal and the values, never the raw metadata.
 *
 * The chain is composed once per RPC at start; a call allocates one `Call`
 * and no `next` closures. Links that only check something return
 * `next(call)` directly, and links that look at the answer use one `.then` or
 * `.catch` rather than an async function (one promise instead of two; the
 * hot path was measured, bench/LATEST.md).
 */
import { Metadata, type ServerUnaryCall } from "@grpc/grpc-js";
import type { Principal } from "../../domain/authorization.js";
import type { Failure } from "../../domain/errors.js";
import type { CallContext } from "../../domain/mint-core.js";
import type { Result } from "../../domain/result.js";
import { failureToStatus, type EdgeFailure, type RichError } from "./status.js";

/**
 * Values links attach to a call for later links and the handler. A link that
 * adds one declares it where it is written, e.g.
 *   declare module "./chain.js" { interface CallValues { principal?: Principal } }
 */
export interface CallValues {
  /** The call's request id (request-id.ts): the caller's valid `x-request-id` or a new UUID. */
  requestId?: string;
}

/** What a handler sees of its call. */
export interface HandlerContext extends CallContext {
  /** The RPC's method name, e.g. "MintUsdc". */
  readonly rpc: string;
  /** Monotonic ms on the core's clock by which the server gives up waiting; Infinity for none. */
  readonly deadlineMs: number;
  /**
   * Aborts when the caller cancels or goes away. Made on first read (an
   * AbortSignal costs microseconds), so read it only when about to wait.
   */
  readonly signal: AbortSignal;
  readonly values: CallValues;
  /** Who is calling, as the auth link decided; the core reads it, never metadata. */
  readonly principal?: Principal;
}

/** A link's view of the call: the handler's context plus the request, its metadata and the answer's trailers. */
export interface EdgeCall extends HandlerContext {
  readonly request: unknown;
  /** The caller's metadata (headers); only links read it. */
  readonly metadata: Metadata;
  /** The grpc-js call, for links that must listen to it (cancellation). */
  readonly raw: ServerUnaryCall<unknown, unknown>;
  deadlineMs: number;
  readonly values: CallValues;
  /** Set once by the auth link, before any other link does work. */
  principal?: Principal;
  /** Adds trailing metadata to the answer, success or failure. */
  addTrailer(key: string, value: string | Buffer): void;
  /** Aborts the call's signal (now, or at once when it is first read). */
  cancel(): void;
  /** Whether the call was cancelled, read without making the signal. */
  readonly aborted: boolean;
  /**
   * The error answer for `failure`, through the error table, built once per
   * call and failure: a link that needs its status code (metrics) and the
   * answer share one (building one costs microseconds).
   */
  statusOf(failure: Failure | EdgeFailure): RichError;
}

/** What a call comes to: the handler's value, or a failure for the error table. */
export type Answer = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: Failure | EdgeFailure };

export type Next = (call: EdgeCall) => Promise<Answer>;

/** One link of the chain. */
export type Link = (call: EdgeCall, next: Next) => Promise<Answer>;

/** The end of the chain: one RPC's handler. */
export type UnaryHandler<Req, Res> = (req: Req, ctx: HandlerContext) => Promise<Result<Res>>;

/** Builds `links[0](call, links[1](call, … handler))` once; calling it allocates nothing more. */
export function compose(links: readonly Link[], handler: Next): Next {
  let next = handler;
  for (let i = links.length - 1; i >= 0; i--) {
    const link = links[i] as Link;
    const inner = next;
    next = (call) => link(call, inner);
  }
  return next;
}

/** The one object a call allocates at the edge. */
export class Call implements EdgeCall {
  readonly values: CallValues = {};
  principal: Principal | undefined = undefined;
  private controller: AbortController | null = null;
  private cancelled = false;
  /** Trailing metadata added by links; made on first use. */
  trailers: Metadata | null = null;
  private built: { readonly failure: Failure | EdgeFailure; readonly status: RichError } | null = null;

  constructor(
    readonly rpc: string,
    readonly raw: ServerUnaryCall<unknown, unknown>,
    public deadlineMs: number,
  ) {}

  get request(): unknown {
    return this.raw.request;
  }

  get metadata(): Metadata {
    return this.raw.metadata;
  }

  get signal(): AbortSignal {
    if (this.controller === null) {
      this.controller = new AbortController();
      if (this.cancelled) this.controller.abort();
    }
    return this.controller.signal;
  }

  /**
   * Whether the caller went away, without making the AbortSignal: the
   * uncontended path asks this on every call (making a signal costs
   * microseconds), and reads `signal` only when it must wait.
   */
  get aborted(): boolean {
    return this.cancelled;
  }

  /**
   * The answer is sent: grpc-js still emits 'cancelled' when the stream
   * closes afterwards, on every call; that is no longer a cancellation (an
   * abort would build a DOMException per call for nothing).
   */
  answered(): void {
    this.cancelled = true;
    this.controller = null;
  }

  addTrailer(key: string, value: string | Buffer): void {
    this.trailers ??= new Metadata();
    this.trailers.add(key, value);
  }

  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.controller?.abort();
  }

  statusOf(failure: Failure | EdgeFailure): RichError {
    if (this.built?.failure !== failure) this.built = { failure, status: failureToStatus(failure) };
    return this.built.status;
  }
}
