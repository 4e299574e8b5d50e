/**
 * The sender's fee rules: what it signs at under the fee ceiling, and what
 * a replacement (a fee bump) must pay to be accepted, within the ceiling.
 */
import type { FeeQuote, Fees, SettlementTx } from "./ports.js";

/** The smallest raise a node accepts for a replacement: 10% on both EIP-1559 fees (rounded up). */
export const minReplacement = (v: bigint): bigint => v + (v + 9n) / 10n;

/** min(suggested, ceiling) while the ceiling covers the base fee plus the tip; otherwise why the settlement waits. */
export function capFees(quote: FeeQuote, cap: bigint | null): { fees: Fees } | { wait: string } {
  if (cap === null || quote.maxFeePerGas <= cap) return { fees: { maxFeePerGas: quote.maxFeePerGas, maxPriorityFeePerGas: quote.maxPriorityFeePerGas } };
  const base = quote.baseFeePerGas ?? 0n;
  if (base + quote.maxPriorityFeePerGas > cap) {
    return { wait: `waiting for the fee ceiling: base fee ${base} wei + tip ${quote.maxPriorityFeePerGas} wei is above maxFeePerGas ${cap} wei` };
  }
  return { fees: { maxFeePerGas: cap, maxPriorityFeePerGas: quote.maxPriorityFeePerGas } };
}

/**
 * The fees of a replacement for `last`: 12.5% above its fees or what the
 * chain suggests now, whichever is higher. The ceiling holds for bumps too:
 * clipped to it, and no bump at all (why it waits) when the clipped fees
 * would not raise both by the 10% a node requires.
 */
export function replacementFees(last: Pick<SettlementTx, "maxFeePerGas" | "maxPriorityFeePerGas">, suggested: FeeQuote, cap: bigint | null): { fees: Fees } | { wait: string } {
  const bump = (v: bigint): bigint => v + (v + 7n) / 8n;
  let priority = bump(last.maxPriorityFeePerGas) > suggested.maxPriorityFeePerGas ? bump(last.maxPriorityFeePerGas) : suggested.maxPriorityFeePerGas;
  let maxFee = bump(last.maxFeePerGas) > suggested.maxFeePerGas ? bump(last.maxFeePerGas) : suggested.maxFeePerGas;
  if (maxFee < priority) maxFee = priority;
  if (cap !== null && maxFee > cap) maxFee = cap;
  if (priority > maxFee) priority = maxFee;
  if (maxFee < minReplacement(last.maxFeePerGas) || priority < minReplacement(last.maxPriorityFeePerGas)) {
    return { wait: `waiting for the fee ceiling: a replacement must raise maxFeePerGas ${last.maxFeePerGas} wei by 10%, above the ceiling of ${cap ?? "?"} wei` };
  }
  return { fees: { maxFeePerGas: maxFee, maxPriorityFeePerGas: priority } };
}
