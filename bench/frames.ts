/**
 * Pre-encoded gRPC request frames for the load generator. Each workload is a
 * template (the 5-byte gRPC prefix and a protobuf message encoded once with
 * the generated code) with fixed-width placeholders for the account ids and
 * the idempotency key; a request is a copy of the template with digits
 * written into those places. That keeps the generator cheap (no protobuf
 * encoding per call) while every call still has a unique key.
 */
import { GetBalanceRequest, MintUsdcRequest, TransferRequest } from "../gen/usdc/mint/v1/mint.js";

/** Accounts are "acct" + 6 digits: up to a million distinct accounts. */
export const ACCOUNT_DIGITS = 6;
export const ACCOUNT_PREFIX = "acct";
/** Keys are "k" + 6-character run tag + 12 digits. */
const KEY_TAG_CHARS = 6;
const KEY_DIGITS = 12;
export const KEY_LENGTH = 1 + KEY_TAG_CHARS + KEY_DIGITS;

/** The amount of each benchmark mint and transfer. */
export const MINT_AMOUNT = "1.5";
export const TRANSFER_AMOUNT = "0.000001";
/** Balance each account gets before transfers (in USDC). */
export const SEED_AMOUNT = "1000000";

export function accountId(n: number): string {
  return ACCOUNT_PREFIX + String(n).padStart(ACCOUNT_DIGITS, "0");
}

const ACCOUNT_MARK_A = "~".repeat(ACCOUNT_PREFIX.length + ACCOUNT_DIGITS);
const ACCOUNT_MARK_B = "=".repeat(ACCOUNT_PREFIX.length + ACCOUNT_DIGITS);
const KEY_MARK = "^".repeat(KEY_LENGTH);

/** Writes `n` as exactly `width` decimal digits at `offset` (wrapping past 10^width). */
function writeDigits(buf: Buffer, offset: number, width: number, n: number): void {
  for (let i = width - 1; i >= 0; i--) {
    buf[offset + i] = 48 + (n % 10);
    n = Math.floor(n / 10);
  }
}

function frame(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

function findMark(buf: Buffer, mark: string): number {
  const at = buf.indexOf(mark, 0, "latin1");
  if (at < 0 || buf.indexOf(mark, at + 1, "latin1") >= 0) throw new Error(`marker ${mark} not found exactly once`);
  return at;
}

/** What one call sends: the whole length-prefixed gRPC message. */
export type NextBody = () => Buffer;

export type Workload = "mint" | "transfer" | "getbalance" | "seed";

export const PATHS: Record<Workload, string> = {
  mint: "/usdc.mint.v1.MintService/MintUsdc",
  seed: "/usdc.mint.v1.MintService/MintUsdc",
  transfer: "/usdc.mint.v1.MintService/Transfer",
  getbalance: "/usdc.mint.v1.MintService/GetBalance",
};

export interface BodyOptions {
  readonly workload: Workload;
  /** Number of distinct accounts the calls spread over (2 for the hot-account run). */
  readonly accounts: number;
  /** Unique per generator process and run, so keys never repeat on one server. */
  readonly keyTag: string;
}

/**
 * Returns a function giving the next request body. Keys count up from 0 under
 * `keyTag`; accounts rotate (mint, seed, getbalance) or pair up (transfer:
 * `from` and `to` always differ).
 */
export function bodyMaker(opts: BodyOptions): NextBody {
  if (opts.keyTag.length !== KEY_TAG_CHARS) throw new Error(`keyTag must have ${KEY_TAG_CHARS} characters`);
  if (opts.accounts < 1 || opts.accounts > 10 ** ACCOUNT_DIGITS) throw new Error("accounts out of range");
  const n = opts.accounts;
  let seq = 0;
  const acctDigitsAt = ACCOUNT_PREFIX.length;
  const keyDigitsAt = 1 + KEY_TAG_CHARS;
  switch (opts.workload) {
    case "mint":
    case "seed": {
      const amount = opts.workload === "seed" ? SEED_AMOUNT : MINT_AMOUNT;
      const tpl = frame(
        MintUsdcRequest.encode({ accountId: ACCOUNT_MARK_A, amount, blockchain: 1, idempotencyKey: KEY_MARK }).finish(),
      );
      const a = findMark(tpl, ACCOUNT_MARK_A);
      const k = findMark(tpl, KEY_MARK);
      tpl.write(ACCOUNT_PREFIX, a, "latin1");
      tpl.write("k" + opts.keyTag, k, "latin1");
      return () => {
        const b = Buffer.allocUnsafe(tpl.length);
        tpl.copy(b);
        writeDigits(b, a + acctDigitsAt, ACCOUNT_DIGITS, seq % n);
        writeDigits(b, k + keyDigitsAt, KEY_DIGITS, seq);
        seq++;
        return b;
      };
    }
    case "transfer": {
      if (n < 2) throw new Error("transfers need at least 2 accounts");
      const tpl = frame(
        TransferRequest.encode({
          fromAccountId: ACCOUNT_MARK_A,
          toAccountId: ACCOUNT_MARK_B,
          amount: TRANSFER_AMOUNT,
          idempotencyKey: KEY_MARK,
        }).finish(),
      );
      const fa = findMark(tpl, ACCOUNT_MARK_A);
      const ta = findMark(tpl, ACCOUNT_MARK_B);
      const k = findMark(tpl, KEY_MARK);
      tpl.write(ACCOUNT_PREFIX, fa, "latin1");
      tpl.write(ACCOUNT_PREFIX, ta, "latin1");
      tpl.write("k" + opts.keyTag, k, "latin1");
      return () => {
        const b = Buffer.allocUnsafe(tpl.length);
        tpl.copy(b);
        const from = seq % n;
        // In [from+1, from+n-1] mod n: never `from`, and spread over all pairs.
        const to = (from + 1 + ((seq * 7919) % (n - 1))) % n;
        writeDigits(b, fa + acctDigitsAt, ACCOUNT_DIGITS, from);
        writeDigits(b, ta + acctDigitsAt, ACCOUNT_DIGITS, to);
        writeDigits(b, k + keyDigitsAt, KEY_DIGITS, seq);
        seq++;
        return b;
      };
    }
    case "getbalance": {
      const tpl = frame(GetBalanceRequest.encode({ accountId: ACCOUNT_MARK_A }).finish());
      const a = findMark(tpl, ACCOUNT_MARK_A);
      tpl.write(ACCOUNT_PREFIX, a, "latin1");
      return () => {
        const b = Buffer.allocUnsafe(tpl.length);
        tpl.copy(b);
        writeDigits(b, a + acctDigitsAt, ACCOUNT_DIGITS, seq % n);
        seq++;
        return b;
      };
    }
  }
}
