/**
 * Money helpers for callers: the wire carries decimal USDC strings; a program
 * that adds or compares amounts should do it in `bigint` micro-USDC, never in
 * a JavaScript `number` (0.1 is not exact, and 2^53 micro-USDC is less than
 * one allowed mint).
 */

/** Micro-USDC in one USDC: the wire's decimal strings have at most 6 decimals. */
export const MICROS_PER_USDC = 1_000_000n;

/** The amounts the service answers with: canonical, at most 6 decimals, no sign. Zero is allowed (a balance). */
const DECIMAL_USDC = /^(0|[1-9][0-9]*)(?:\.([0-9]{1,6}))?$/;

/**
 * Parses a decimal USDC string ("100.5", "0", "7.000001") into micro-USDC.
 * Throws a RangeError for anything the wire grammar refuses (signs, exponents,
 * leading zeros, more than 6 decimals, spaces).
 */
export function toMicros(amount: string): bigint {
  const m = DECIMAL_USDC.exec(amount);
  if (m === null) throw new RangeError(`not a USDC amount: ${JSON.stringify(amount)} (expected e.g. "100.5", at most 6 decimals)`);
  return BigInt((m[1] as string) + (m[2] ?? "").padEnd(6, "0"));
}

/** Formats micro-USDC as the canonical decimal string the service uses ("100.5", "7", "0.000001"). */
export function fromMicros(micros: bigint): string {
  const negative = micros < 0n;
  const digits = (negative ? -micros : micros).toString();
  const whole = digits.length > 6 ? digits.slice(0, digits.length - 6) : "0";
  const frac = digits.length > 6 ? digits.slice(digits.length - 6) : digits.padStart(6, "0");
  const trimmed = frac.replace(/0+$/, "");
  const out = trimmed === "" ? whole : `${whole}.${trimmed}`;
  return negative ? `-${out}` : out;
}
