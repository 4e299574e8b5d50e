/**
 * The edge's interceptor chain: every cross-cutting concern of a unary call
 * (request ids, metrics, logging, error mapping, draining, auth, the
 * in-flight cap, deadline, cancellation) has one place, and they run in one
 * order around the handler.
 *
 * Concerns that decide whether the call runs (draining, auth, the in-flight
 * cap, the deadline) are links: `(call, next) => Answer | Promise<Answer>`.
 * A link may answer by itself (a failure such as SHUTTING_DOWN, without
 * calling `next`), or return `next(call)`. It may attach values to the call
 * for the links after it and for the handler (`call.values`, typed by
 * declaration merging on `CallValues`), and add trailing metadata to the
 * answer (`call.addTrailer`). Handlers see a `HandlerContext`: the deadline,
 * the AbortSignal and the values, never the raw metadata.
 *
 * Concerns that only observe (the request id, metrics, logging) and error
 * mapping run as plain code in `Edge` before and after the one call into the
 * links and the handler (edge.ts): a call whose handler answers a value, not
 * a promise, is answered without a single promise turn, and one that answers
 * a promise takes one `.then` for all of them.
 *
 * The chain is composed once per RPC at start; a call allocates one `Call`
 * and no `next` closures.
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
  /** The grpc-js call, for links that read it (the deadline, the peer certificate). */
  readonly raw: ServerUnaryCall<unknown, unknown>;
  deadlineMs: number;
  readonly values: CallValues;
  /** Set once by the auth link, before any other link does work. */
  principal?: Principal;
  /** Called once when the answer goes out; set by the link that counts the call in flight. */
  release: (() => void) | null;
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

/** A call's answer now (a handler that did not wait) or later. */
export type MaybeAnswer = Answer | Promise<Answer>;

export type Next = (call: EdgeCall) => MaybeAnswer;

/** One link of the chain. */
export type Link = (call: EdgeCall, next: Next) => MaybeAnswer;

/**
 * The end of the chain: one RPC's handler. It returns its result itself when
 * nothing waited (the memory store), so the edge answers without a promise
 * turn, or a promise of it.
 */
export type UnaryHandler<Req, Res> = (req: Req, ctx: HandlerContext) => Result<Res> | Promise<Result<Res>>;

/** Whether `value` is a promise (anything with a `then`), read as the edge and the handlers decide whether to wait. */
export function isPromiseLike<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null)?.then === "function";
}

/**
 * `f` applied to `value`: at once when it is a plain value, once it settles
 * when it is a promise. A core that answered without waiting costs no
 * promise turn; one that waited costs the one `.then` it would anyway.
 */
export function andThen<T, U>(value: T | PromiseLike<T>, f: (v: T) => U | Promise<U>): U | Promise<U> {
  return isPromiseLike(value) ? Promise.resolve(value).then(f) : f(value);
}

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
  /** Cancelled by `cancel()`, or answered (no cancellation matters after the answer). */
  private cancelled = false;
  /** Trailing metadata added by links; made on first use. */
  trailers: Metadata | null = null;
  /** Called once when the answer goes out (the in-flight count's release); set by the link that counts the call. */
  release: (() => void) | null = null;
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

  /**
   * Made on first read, which is when something is about to wait: only then
   * does the call listen for grpc-js's 'cancelled' (a listener per call
   * costs an EventEmitter entry, and grpc-js emits 'cancelled' on every call
   * when its stream closes after the answer).
   */
  get signal(): AbortSignal {
    if (this.controller === null) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort();
      else this.raw.once("cancelled", () => this.cancel());
    }
    return this.controller.signal;
  }

  /**
   * Whether the caller went away, without making the AbortSignal or
   * listening for it: grpc-js sets `cancelled` on its call when the caller
   * cancels, resets the stream or disconnects (and at its deadline), so the
   * wait points read it here; the uncontended path asks this on every call.
   */
  get aborted(): boolean {
    return this.cancelled || this.raw.cancelled === true;
  }

  /**
   * The answer is sent: what grpc-js reports afterwards (it marks every call
   * cancelled when the stream closes) is no longer a cancellation (an abort
   * would build a DOMException per call for nothing).
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
