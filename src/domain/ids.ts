/**
 * Ids: a prefix and 26 Crockford base32 characters — 10 of time (ms) and 16
 * random — so ids sort roughly by creation and never collide in practice.
 */
import { randomBytes } from "node:crypto";
import type { Clock } from "./clock.js";

const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

export interface IdGenerator {
  mintId(): string;
  transferId(): string;
}

export function createIdGenerator(clock: Clock): IdGenerator {
  // Random bytes are drawn in blocks: one syscall per 512 ids, not per id.
  let pool = randomBytes(0);
  let offset = 0;
  const random16 = (): string => {
    if (offset + 10 > pool.length) {
      pool = randomBytes(5120);
      offset = 0;
    }
    // 10 bytes = 80 bits = 16 base32 characters.
    let bits = 0n;
    for (let i = 0; i < 10; i++) bits = (bits << 8n) | BigInt(pool[offset + i] as number);
    offset += 10;
    let out = "";
    for (let i = 0; i < 16; i++) {
      out = ALPHABET[Number(bits & 31n)] + out;
      bits >>= 5n;
    }
    return out;
  };
  const time10 = (): string => {
    let t = Math.floor(clock.wallMs());
    let out = "";
    for (let i = 0; i < 10; i++) {
      out = ALPHABET[t % 32] + out;
      t = Math.floor(t / 32);
    }
    return out;
  };
  return {
    mintId: () => "mint_" + time10() + random16(),
    transferId: () => "xfr_" + time10() + random16(),
  };
}
