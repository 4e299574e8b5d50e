/**
 * Money is a `bigint` of micro-USDC (10^-6 USDC) inside the service, parsed
 * once from the wire's decimal string and formatted once on the way out.
 * A JavaScript `number` never holds money.
 */
import { invalid, type FieldName, type Failure } from "./errors.js";
import { fail, ok, type Result } from "./result.js";

export const MICROS_PER_USDC = 1_000_000n;

/** The wire grammar of API.md: no sign, no exponent, no leading zeros, 1 to 6 fractional digits. */
const AMOUNT_PATTERN = /^(0|[1-9][0-9]*)(?:\.([0-9]{1,6}))?$/;

/** Longest amount string considered at all (requests are capped at a few KiB anyway). */
const AMOUNT_MAX_CHARS = 4096;

/**
 * Parses a decimal USDC string into micro-USDC. Refuses (INVALID_ARGUMENT):
 * empty, signs, spaces, exponents, leading zeros ("01"), a trailing or leading
 * dot, more than 6 fractional digits, zero, and amounts above `maxMicros`
 * (reason AMOUNT_TOO_LARGE).
 */
export function parseAmount(text: string, maxMicros: bigint, field: FieldName = "amount"): Result<bigint> {
  if (text.length === 0) return fail(invalid("INVALID_AMOUNT", field, `${field} is required (a decimal USDC string such as "100.5")`));
  if (text.length > AMOUNT_MAX_CHARS) return fail(invalid("INVALID_AMOUNT", field, `${field} is longer than ${AMOUNT_MAX_CHARS} characters`));
  const m = AMOUNT_PATTERN.exec(text);
  if (m === null) {
    return fail(
      invalid("INVALID_AMOUNT", field, `${field} must match ^(0|[1-9][0-9]*)(\\.[0-9]{1,6})?$ (at most 6 decimals, no sign, no leading zeros)`),
    );
  }
  // whole * 10^6 + frac, as one conversion of the digits with the fraction padded to 6.
  const micros = BigInt((m[1] as string) + (m[2] === undefined ? "000000" : m[2].padEnd(6, "0")));
  if (micros === 0n) return fail(invalid("INVALID_AMOUNT", field, `${field} must be greater than zero`));
  if (micros > maxMicros) {
    return fail(invalid("AMOUNT_TOO_LARGE", field, `${field} must be at most ${formatMicros(maxMicros)} USDC`));
  }
  return ok(micros);
}

/**
 * Formats micro-USDC in the canonical form: "100.5", "7", "0.000001", "-3.25".
 * Works on the decimal digits (one bigint-to-string conversion) rather than
 * with bigint division, which allocates a bigint per step.
 */
export function formatMicros(micros: bigint): string {
  const negative = micros < 0n;
  const digits = (negative ? -micros : micros).toString();
  const whole = digits.length > 6 ? digits.slice(0, digits.length - 6) : "0";
  const frac = digits.length > 6 ? digits.slice(digits.length - 6) : digits.padStart(6, "0");
  let end = 6;
  while (end > 0 && frac.charCodeAt(end - 1) === 48 /* "0" */) end--;
  const out = end === 0 ? whole : whole + "." + frac.slice(0, end);
  return negative ? "-" + out : out;
}

/**
 * The largest amount any store can hold in one column: PostgreSQL keeps money
 * as `numeric(38,0)` micro-USDC, so 10^38 - 1 micros. A configured limit above
 * it would let a mint pass validation and then fail in the database as
 * INTERNAL instead of AMOUNT_TOO_LARGE.
 */
export const MAX_STORABLE_MICROS = 10n ** 38n - 1n;

/**
 * Parses a configured whole-or-decimal USDC limit (e.g. MINT_MAX_AMOUNT);
 * returns null when malformed or above MAX_STORABLE_MICROS.
 */
export function parseConfigAmount(text: string): bigint | null {
  const r = parseAmount(text, MAX_STORABLE_MICROS);
  return r.ok ? r.value : null;
}

export type { Failure };
