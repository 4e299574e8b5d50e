/**
 * Refusals at broadcast are classified by the node's wording, geth's and the
 * local node's (EDR), in any case; "already known" is not a refusal.
 */
import { describe, expect, it } from "vitest";
import { ALREADY_KNOWN, classifyRefusal } from "../../src/settlement/refusals.js";

const CASES = [
  // geth
  ["nonce too low", "nonce-too-low"],
  ["insufficient funds for gas * price + value: address 0xabc have 1 want 2", "insufficient-funds"],
  ["max fee per gas less than block base fee: address 0xabc, maxFeePerGas: 1, baseFee: 7", "underpriced"],
  ["replacement transaction underpriced", "underpriced"],
  // EDR (hardhat)
  ["Nonce too low. Expected nonce to be 1 but got 0. Note that transactions can't be queued when automining.", "nonce-too-low"],
  ["Sender doesn't have enough funds to send tx. The max upfront cost is: 4500000000000000 and the sender's balance is: 1000.", "insufficient-funds"],
  ["Transaction gasPrice (1000000000) is too low for the next block, which has a baseFeePerGas of 8750000000", "underpriced"],
  ["Replacement transaction underpriced. A gasPrice/maxFeePerGas of at least 55000000000 is necessary to replace the existing transaction with nonce 0.", "underpriced"],
  // neither
  ["intrinsic gas too low", "unknown"],
  ["", "unknown"],
] as const;

describe("classifyRefusal", () => {
  it.each(CASES)("%j → %s", (message, expected) => {
    expect(classifyRefusal(message)).toBe(expected);
    expect(classifyRefusal(message.toUpperCase())).toBe(expected);
    expect(classifyRefusal(message.toLowerCase())).toBe(expected);
  });

  it("already known, in geth's and EDR's wording, any case", () => {
    for (const m of ["already known", "ALREADY KNOWN", "Known transaction: 0x1234", "known transaction: 0xABCD"]) expect(ALREADY_KNOWN.test(m)).toBe(true);
    expect(ALREADY_KNOWN.test("nonce too low")).toBe(false);
  });
});
