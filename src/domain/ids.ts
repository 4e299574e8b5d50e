/**
 * Ids: a prefix and 26 Crockford base32 characters — 10 of time (ms) and 16
 * random — so ids sort roughly by creation and never collide in practice.
 */
import { randomBytes } from "node:crypto";
import type { Clock } from "./clock.js";

const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/** Character codes of ALPHABET, indexed by 5-bit value. */
const CODES: readonly number[] = Array.from(ALPHABET, (c) => c.charCodeAt(0));

/** Bytes of randomness per id: 10 bytes = 80 bits = 16 base32 characters. */
const RANDOM_BYTES = 10;
/** Random bytes are drawn in blocks: one syscall per 512 ids, not per id. */
const POOL_BYTES = 512 * RANDOM_BYTES;

export interface IdGenerator {
  mintId(): string;
  transferId(): string;
  /** Redemption ids: "rdm_" + 26 characters. */
  redemptionId(): string;
}

export function createIdGenerator(clock: Clock): IdGenerator {
  let pool = randomBytes(POOL_BYTES);
  let offset = 0;

  /**
   * Writes the 26 id characters (time, then randomness) as character codes
   * into `codes` from `at`. Plain number arithmetic, no BigInt: the 80 random
   * bits are taken 40 at a time (5 bytes → 8 characters, most significant
   * bits first, as a big-endian 80-bit number would give them).
   */
  const fill = (codes: number[], at: number): void => {
    let t = Math.floor(clock.wallMs());
    for (let i = at + 9; i >= at; i--) {
      codes[i] = CODES[t % 32] as number;
      t = Math.floor(t / 32);
    }
    if (offset + RANDOM_BYTES > pool.length) {
      pool = randomBytes(POOL_BYTES);
      offset = 0;
    }
    let j = at + 10;
    for (let half = 0; half < 2; half++) {
      const b0 = pool[offset] as number;
      const b1 = pool[offset + 1] as number;
      const b2 = pool[offset + 2] as number;
      const b3 = pool[offset + 3] as number;
      const b4 = pool[offset + 4] as number;
      offset += 5;
      codes[j++] = CODES[b0 >> 3] as number;
      codes[j++] = CODES[((b0 & 7) << 2) | (b1 >> 6)] as number;
      codes[j++] = CODES[(b1 >> 1) & 31] as number;
      codes[j++] = CODES[((b1 & 1) << 4) | (b2 >> 4)] as number;
      codes[j++] = CODES[((b2 & 15) << 1) | (b3 >> 7)] as number;
      codes[j++] = CODES[(b3 >> 2) & 31] as number;
      codes[j++] = CODES[((b3 & 3) << 3) | (b4 >> 5)] as number;
      codes[j++] = CODES[b4 & 31] as number;
    }
  };

  // One reusable buffer of character codes per prefix. The string is made in
  // one step from the codes, so it is flat from the start: concatenating
  // character by character would build a chain of cons strings that the
  // first Map lookup has to flatten (a copy) and that the GC has to trace.
  const mintCodes = Array.from("mint_" + "0".repeat(26), (c) => c.charCodeAt(0));
  const transferCodes = Array.from("xfr_" + "0".repeat(26), (c) => c.charCodeAt(0));
  const redemptionCodes = Array.from("rdm_" + "0".repeat(26), (c) => c.charCodeAt(0));
  return {
    mintId: () => {
      fill(mintCodes, 5);
      return String.fromCharCode.apply(null, mintCodes);
    },
    transferId: () => {
      fill(transferCodes, 4);
      return String.fromCharCode.apply(null, transferCodes);
    },
    redemptionId: () => {
      fill(redemptionCodes, 4);
      return String.fromCharCode.apply(null, redemptionCodes);
    },
  };
}
