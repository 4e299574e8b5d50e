/**
 * ListMints page tokens: opaque to callers, tamper-evident for us. A token
 * carries the last `seq` returned and the account filter it was issued for,
 * with an HMAC, so a token the server did not issue (or issued for another
 * filter) is refused as INVALID_ARGUMENT instead of paging from a wrong place.
 * The key is fixed: tokens are not secrets, and every replica must accept
 * every other replica's tokens.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

const KEY = "usdc.mint.v1.ListMints.page_token";
const TAG_BYTES = 12;

function tag(body: string): Buffer {
  return createHmac("sha256", KEY).update(body).digest().subarray(0, TAG_BYTES);
}

export function encodePageToken(afterSeq: number, accountId: string): string {
  const body = `1:${afterSeq}:${accountId}`;
  return Buffer.concat([tag(body), Buffer.from(body, "utf8")]).toString("base64url");
}

/** Returns the `afterSeq` of a token issued for `accountId`, or null if it was not issued by us for it. */
export function decodePageToken(token: string, accountId: string): number | null {
  if (token.length > 512 || !/^[A-Za-z0-9_-]+$/.test(token)) return null;
  const raw = Buffer.from(token, "base64url");
  // Node's decoder ignores a dangling last character and the unused low bits
  // of the final one, so several strings decode to the same bytes: accept
  // only the exact spelling we issue.
  if (raw.length <= TAG_BYTES || raw.toString("base64url") !== token) return null;
  const body = raw.subarray(TAG_BYTES).toString("utf8");
  const expected = tag(body);
  if (!timingSafeEqual(expected, raw.subarray(0, TAG_BYTES))) return null;
  const m = /^1:([0-9]{1,15}):(.*)$/s.exec(body);
  if (m === null || m[2] !== accountId) return null;
  return Number(m[1]);
}
