/** The records of the ledger, as the core sees them. Money is `bigint` micro-USDC. */

/** Chains USDC can be minted on (the proto enum's names without the BLOCKCHAIN_ prefix). */
export const BLOCKCHAINS = [
  "ETHEREUM",
  "SOLANA",
  "BASE",
  "ARBITRUM",
  "POLYGON",
  "AVALANCHE",
  "OPTIMISM",
  "STELLAR",
  "NOBLE",
] as const;
export type Blockchain = (typeof BLOCKCHAINS)[number];

export function isBlockchain(value: string): value is Blockchain {
  return (BLOCKCHAINS as readonly string[]).includes(value);
}

export type MintStatus = "COMPLETED" | "REVERSED";

export interface MintRecord {
  /** "mint_" + 26 characters; unique. */
  readonly mintId: string;
  /** Position in the store's mint order (oldest first); used by ListMints cursors. */
  readonly seq: number;
  readonly accountId: string;
  readonly amountMicros: bigint;
  readonly blockchain: Blockchain;
  readonly status: MintStatus;
  readonly idempotencyKey: string;
  /** Wall-clock ms since the epoch. */
  readonly createWallMs: number;
  /** Wall-clock ms since the epoch; null unless REVERSED. */
  readonly reverseWallMs: number | null;
  /** Empty unless REVERSED. */
  readonly reverseReason: string;
}

export interface TransferRecord {
  /** "xfr_" + 26 characters; unique. */
  readonly transferId: string;
  readonly fromAccountId: string;
  readonly toAccountId: string;
  readonly amountMicros: bigint;
  readonly idempotencyKey: string;
  readonly createWallMs: number;
}

/** A mint about to be applied (validated; ids and time assigned by the core). */
export interface NewMint {
  readonly mintId: string;
  readonly accountId: string;
  readonly amountMicros: bigint;
  readonly blockchain: Blockchain;
  readonly idempotencyKey: string;
  readonly createWallMs: number;
  /**
   * Issue 15: the chain settles on-chain, so the store credits the account's
   * pending balance and writes the settlement's outbox row in the same
   * atomic step. Absent or false: the credit is available at once.
   */
  readonly settle?: boolean;
}

/** The record of a mint as applied: COMPLETED, at position `seq` of the store's mint order. */
export function completedMint(cmd: NewMint, seq: number): MintRecord {
  return {
    mintId: cmd.mintId,
    seq,
    accountId: cmd.accountId,
    amountMicros: cmd.amountMicros,
    blockchain: cmd.blockchain,
    status: "COMPLETED",
    idempotencyKey: cmd.idempotencyKey,
    createWallMs: cmd.createWallMs,
    reverseWallMs: null,
    reverseReason: "",
  };
}

/** A transfer about to be applied (validated; from != to). */
export interface NewTransfer {
  readonly transferId: string;
  readonly fromAccountId: string;
  readonly toAccountId: string;
  readonly amountMicros: bigint;
  readonly idempotencyKey: string;
  readonly createWallMs: number;
}

/** Idempotency keys are scoped per RPC: a mint key and a transfer key never collide. */
export type IdempotencyScope = "mint" | "transfer" | "redeem";

/** What an idempotency key stores on success and replays. */
export type StoredResult =
  | { readonly scope: "mint"; readonly mint: MintRecord }
  | { readonly scope: "transfer"; readonly transfer: TransferRecord }
  | { readonly scope: "redeem"; readonly redemption: RedemptionRecord };

/** The id of the mint, transfer or redemption a stored result holds. */
export function storedResultId(result: StoredResult): string {
  if (result.scope === "mint") return result.mint.mintId;
  return result.scope === "transfer" ? result.transfer.transferId : result.redemption.redemptionId;
}

// Issue 12: reserve, redemption, freeze.

/**
 * USDC taken out of circulation: the account was debited and supply lowered
 * by `amountMicros`, for dollars paid out off-ledger.
 */
export interface RedemptionRecord {
  /** "rdm_" + 26 characters; unique. */
  readonly redemptionId: string;
  readonly accountId: string;
  readonly amountMicros: bigint;
  /** The chain the holder redeems from. */
  readonly blockchain: Blockchain;
  /** The caller's key as sent (the store's key is scoped to the caller too). */
  readonly idempotencyKey: string;
  /** The principal that redeemed. */
  readonly actor: string;
  readonly createWallMs: number;
}

/** A redemption about to be applied (validated; id and time assigned by the core). */
export type NewRedemption = RedemptionRecord;

/** The canonical request of a RedeemUsdc call. */
export function redeemRequest(accountId: string, amountMicros: bigint, blockchain: Blockchain): CanonicalRequest {
  return { account_id: accountId, amount: amountMicros.toString(), blockchain };
}

/**
 * The store key of a redemption: the caller's key scoped to the caller
 * (length-prefixed, so no two (actor, key) pairs share one).
 */
export function redeemStoreKey(actor: string, key: string): string {
  return `${actor.length}:${actor}:${key}`;
}

/** Supply and reserve as one consistent snapshot. */
export interface SupplyState {
  /** Completed mints − reversals − redemptions, in micro-USDC. */
  readonly supplyMicros: bigint;
  /** null until a reserve has been set (supply not capped). */
  readonly reserveMicros: bigint | null;
  /** The auditor's attestation the reserve was set from ("" before any). */
  readonly attestationRef: string;
  /** reserve − supply; null when no reserve is set. */
  readonly headroomMicros: bigint | null;
}

/** An account's frozen state. */
export interface AccountState {
  readonly accountId: string;
  readonly balanceMicros: bigint;
  readonly frozen: boolean;
  /** Why it was frozen ("" when not frozen). */
  readonly freezeReason: string;
}

/**
 * The canonical fields of a request (idempotency key excluded), as strings in
 * canonical form ("7.000000" is stored as "7000000" micros). Their equality is
 * the request fingerprint; their differences name the fields of
 * IDEMPOTENCY_KEY_REUSED.
 */
export type CanonicalRequest = Readonly<Record<string, string>>;

/** The canonical request of a MintUsdc call. */
export function mintRequest(accountId: string, amountMicros: bigint, blockchain: Blockchain): CanonicalRequest {
  return { account_id: accountId, amount: amountMicros.toString(), blockchain };
}

/** The canonical request of a Transfer call (fields in sorted order, which `fingerprint` then need not sort). */
export function transferRequest(fromAccountId: string, toAccountId: string, amountMicros: bigint): CanonicalRequest {
  return { amount: amountMicros.toString(), from_account_id: fromAccountId, to_account_id: toAccountId };
}

/**
 * The canonical request a mint or transfer record answers, rebuilt from the
 * record: what `mintRequest` / `transferRequest` made for the call that
 * created it.
 */
export function requestOfRecord(record: MintRecord | TransferRecord | RedemptionRecord): CanonicalRequest {
  if ("redemptionId" in record) return redeemRequest(record.accountId, record.amountMicros, record.blockchain);
  return "transferId" in record
    ? transferRequest(record.fromAccountId, record.toAccountId, record.amountMicros)
    : mintRequest(record.accountId, record.amountMicros, record.blockchain);
}

/** Lists the field names whose values differ between two canonical requests, sorted. */
export function differingFields(a: CanonicalRequest, b: CanonicalRequest): string[] {
  const names = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...names].filter((n) => a[n] !== b[n]).sort();
}

/** Whether two canonical requests have the same fields with the same values (their fingerprints are equal). */
export function sameRequest(a: CanonicalRequest, b: CanonicalRequest): boolean {
  if (a === b) return true;
  let fields = 0;
  for (const name in a) {
    if (a[name] !== b[name]) return false;
    fields++;
  }
  for (const name in b) {
    if (!(name in a)) return false;
    fields--;
  }
  return fields === 0;
}

/**
 * A stable string form of a canonical request (sorted keys), used as the
 * fingerprint: `JSON.stringify` of the sorted `[name, value]` pairs, e.g.
 * `[["account_id","alice"],["amount","7000000"],["blockchain","BASE"]]`.
 * Stored by the PostgreSQL adapter, so the format never changes; it is built
 * here without the intermediate arrays, quoting plainly the names and values
 * that JSON would not escape (anything else goes through JSON.stringify).
 */
export function fingerprint(req: CanonicalRequest): string {
  const names = Object.keys(req);
  for (let i = 1; i < names.length; i++) {
    if ((names[i - 1] as string) > (names[i] as string)) {
      names.sort();
      break;
    }
  }
  let out = "[";
  for (let i = 0; i < names.length; i++) {
    const name = names[i] as string;
    out += (i === 0 ? "[" : ",[") + jsonString(name) + "," + jsonString(req[name]) + "]";
  }
  return out + "]";
}

/** `JSON.stringify(value)`, without the call for strings JSON leaves as they are. */
function jsonString(value: string | undefined): string {
  if (typeof value !== "string") return JSON.stringify(value) ?? "null";
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    // Control characters, the quote, the backslash and surrogates (lone ones are escaped) take the slow way.
    if (c < 0x20 || c === 0x22 || c === 0x5c || (c >= 0xd800 && c <= 0xdfff)) return JSON.stringify(value);
  }
  return '"' + value + '"';
}

/** Parses a fingerprint back into its fields (for naming the differing ones). */
export function parseFingerprint(fp: string): CanonicalRequest {
  const pairs = JSON.parse(fp) as [string, string][];
  return Object.fromEntries(pairs);
}
