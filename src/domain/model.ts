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
export type IdempotencyScope = "mint" | "transfer";

/** What an idempotency key stores on success and replays. */
export type StoredResult =
  | { readonly scope: "mint"; readonly mint: MintRecord }
  | { readonly scope: "transfer"; readonly transfer: TransferRecord };

/** The id of the mint or transfer a stored result holds. */
export function storedResultId(result: StoredResult): string {
  return result.scope === "mint" ? result.mint.mintId : result.transfer.transferId;
}

/**
 * The canonical fields of a request (idempotency key excluded), as strings in
 * canonical form ("7.000000" is stored as "7000000" micros). Their equality is
 * the request fingerprint; their differences name the fields of
 * IDEMPOTENCY_KEY_REUSED.
 */
export type CanonicalRequest = Readonly<Record<string, string>>;

/** Lists the field names whose values differ between two canonical requests, sorted. */
export function differingFields(a: CanonicalRequest, b: CanonicalRequest): string[] {
  const names = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...names].filter((n) => a[n] !== b[n]).sort();
}

/** A stable string form of a canonical request (sorted keys), used as the fingerprint. */
export function fingerprint(req: CanonicalRequest): string {
  return JSON.stringify(Object.keys(req).sort().map((k) => [k, req[k]]));
}

/** Parses a fingerprint back into its fields (for naming the differing ones). */
export function parseFingerprint(fp: string): CanonicalRequest {
  const pairs = JSON.parse(fp) as [string, string][];
  return Object.fromEntries(pairs);
}
