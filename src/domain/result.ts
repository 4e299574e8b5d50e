import type { Failure } from "./errors.js";

/**
 * Expected outcomes are values: every core operation returns a `Result`, and
 * only bugs (broken invariants) throw.
 */
export type Result<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: Failure };

export function ok<T>(value: T): Result<T> {
  return { ok: true, value };
}

export function fail<T = never>(error: Failure): Result<T> {
  return { ok: false, error };
}

/**
 * A value, or a promise of it when producing it had to wait. The memory
 * store answers a call that waits for nothing in one synchronous stretch, and
 * the core hands that answer on as it is, so the edge can answer without a
 * promise turn; `await` takes either.
 */
export type MaybePromise<T> = T | Promise<T>;

/** Whether `v` is a promise (the one test the core makes on a `MaybePromise`). */
export function isPromise<T>(v: MaybePromise<T>): v is Promise<T> {
  return v instanceof Promise;
}
