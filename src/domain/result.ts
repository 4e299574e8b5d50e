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
