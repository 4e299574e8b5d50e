/**
 * UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits. Used as
 * the default idempotency key of a logical operation: time-ordered keys keep
 * the server's key index local, and 74 random bits make collisions between
 * callers negligible.
 */
import { randomBytes } from "node:crypto";

/** A new UUIDv7 string, e.g. "01932c07-8a3e-7b1c-9f2d-3c4e5a6b7c8d". */
export function uuidv7(nowMs: number = Date.now()): string {
  const bytes = randomBytes(16);
  let ms = BigInt(Math.floor(nowMs));
  for (let i = 5; i >= 0; i--) {
    bytes[i] = Number(ms & 0xffn);
    ms >>= 8n;
  }
  bytes[6] = ((bytes[6] as number) & 0x0f) | 0x70; // version 7
  bytes[8] = ((bytes[8] as number) & 0x3f) | 0x80; // variant 10
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
