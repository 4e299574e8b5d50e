/**
 * What a node's refusal of `eth_sendRawTransaction` means, from its message.
 * Nodes answer with free text; geth's wordings (which most clients and
 * providers copy) and the local test node's (hardhat's EDR) are matched,
 * case-insensitively, for each class. Anything else is "unknown": the worker
 * backs off and reports it instead of retrying it hot.
 */
import type { RefusalClass } from "./ports.js";

/** The node already has these exact bytes: the broadcast counts as accepted. geth: "already known"; EDR: "Known transaction: 0x…". */
export const ALREADY_KNOWN = /already known|known transaction|already imported|already exists/i;

const CLASSES: readonly (readonly [RefusalClass, RegExp])[] = [
  // geth: "nonce too low"; EDR: "Nonce too low. Expected nonce to be 3 but got 2."
  ["nonce-too-low", /nonce too low/i],
  // geth: "insufficient funds for gas * price + value"; EDR: "Sender doesn't have enough funds to send tx."
  ["insufficient-funds", /insufficient funds|doesn't have enough funds|does not have enough funds/i],
  // geth: "replacement transaction underpriced", "max fee per gas less than block base fee";
  // EDR: "Replacement transaction underpriced", "… is too low for the next block, which has a baseFeePerGas of …".
  ["underpriced", /underpriced|less than block base fee|too low for the next block, which has a baseFeePerGas of/i],
];

/** The class of a refusal message ("unknown" when no wording matches). Already-known is not a refusal: test `ALREADY_KNOWN` first. */
export function classifyRefusal(message: string): RefusalClass {
  for (const [cls, pattern] of CLASSES) if (pattern.test(message)) return cls;
  return "unknown";
}
