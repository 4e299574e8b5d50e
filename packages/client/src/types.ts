/**
 * The SDK's plain objects: camelCase, money as canonical decimal strings,
 * enums as their short names ("ETHEREUM", "COMPLETED"), times as Dates.
 * Converters from the generated ts-proto messages live here, one per message.
 */
import {
  Blockchain as WireBlockchain,
  MintStatus as WireMintStatus,
  SettlementState as WireSettlementState,
  type Mint as WireMint,
  type Settlement as WireSettlement,
  type Transfer as WireTransfer,
  type Redemption as WireRedemption,
  type Supply as WireSupply,
} from "../gen/usdc/mint/v1/mint.js";

/** The chains the service knows (the proto enum without its BLOCKCHAIN_ prefix). */
export const BLOCKCHAINS = ["ETHEREUM", "SOLANA", "BASE", "ARBITRUM", "POLYGON", "AVALANCHE", "OPTIMISM", "STELLAR", "NOBLE"] as const;
/** A chain by its short name: one of {@link BLOCKCHAINS}. */
export type BlockchainName = (typeof BLOCKCHAINS)[number];

/**
 * A mint's status: COMPLETED (credited), REVERSED (undone by reconcileMint),
 * PENDING_APPROVAL (large; waits for approvers), REJECTED (refused by an
 * approver). UNSPECIFIED/UNRECOGNIZED only from a server newer than this SDK.
 */
export type MintStatusName = "COMPLETED" | "REVERSED" | "PENDING_APPROVAL" | "REJECTED" | "UNSPECIFIED" | "UNRECOGNIZED";

/** A mint: USDC credited to a ledger account, as the service records it. */
export interface Mint {
  /** The service's id ("mint_" and 26 Crockford base32 characters). */
  readonly mintId: string;
  /** The credited account. */
  readonly accountId: string;
  /** Canonical decimal USDC ("100.5"); use toMicros() to compute with it. */
  readonly amount: string;
  /** The chain; "UNSPECIFIED"/"UNRECOGNIZED" only if the server knows a chain this SDK does not. */
  readonly blockchain: BlockchainName | "UNSPECIFIED" | "UNRECOGNIZED";
  /** Where the mint stands. */
  readonly status: MintStatusName;
  /** The key the mint was made with; the same key again replays this mint. */
  readonly idempotencyKey: string;
  /** When the service applied it. */
  readonly createTime: Date | undefined;
  /** Set only when status is REVERSED. */
  readonly reverseTime: Date | undefined;
  /** Why it was reversed ("" unless REVERSED). */
  readonly reverseReason: string;
  /** The principal that asked for it ("" when neither approvals nor allowances applied). */
  readonly requester: string;
  /** Who approved a large mint, and when, in order. */
  readonly approvals: readonly {
    /** The approving principal. */
    readonly approver: string;
    /** When it approved. */
    readonly approveTime: Date | undefined;
  }[];
  /** When a PENDING_APPROVAL mint stops waiting for approvals. */
  readonly approvalExpireTime: Date | undefined;
  /** Why it was rejected ("" unless REJECTED). */
  readonly rejectReason: string;
  /** The principal that rejected it ("" unless REJECTED). */
  readonly rejectedBy: string;
  /** When it was rejected. */
  readonly rejectTime: Date | undefined;
  /** Its on-chain settlement; undefined when the chain settles nothing or the mint never reached the chain. */
  readonly settlement: Settlement | undefined;
}

/**
 * Where an on-chain settlement stands: NOT_REQUIRED (the chain settles
 * nothing), PENDING (not signed yet), SUBMITTED (sent, not mined with enough
 * confirmations), CONFIRMED, FAILED.
 */
export type SettlementStateName = "NOT_REQUIRED" | "PENDING" | "SUBMITTED" | "CONFIRMED" | "FAILED" | "UNSPECIFIED" | "UNRECOGNIZED";

/** The on-chain side of a mint or a redemption. */
export interface Settlement {
  /** Where it stands. */
  readonly state: SettlementStateName;
  /** Every transaction signed for it, oldest first (fee bumps add more, same nonce). */
  readonly txHashes: readonly string[];
  /** The mined one; "" until mined. */
  readonly minedTxHash: string;
  /** The block the mined transaction is in (0 until mined). */
  readonly blockNumber: number;
  /** Blocks on top of it, the block itself included, when last seen. */
  readonly confirmations: number;
  /** Transactions sent for it so far. */
  readonly attempts: number;
  /** The last error the sender met ("" when none). */
  readonly lastError: string;
  /** The sender's nonce; undefined while PENDING. */
  readonly nonce: number | undefined;
}

/** What is left of a minter's allowance. */
export interface MinterAllowance {
  /** The minter (an authenticated principal's name). */
  readonly principal: string;
  /** Canonical decimal USDC. */
  readonly allowance: string;
}

/** A transfer between two ledger accounts. */
export interface Transfer {
  /** The service's id ("xfer_" and 26 base32 characters). */
  readonly transferId: string;
  /** The debited account. */
  readonly fromAccountId: string;
  /** The credited account. */
  readonly toAccountId: string;
  /** Canonical decimal USDC. */
  readonly amount: string;
  /** The key the transfer was made with. */
  readonly idempotencyKey: string;
  /** When the service applied it. */
  readonly createTime: Date | undefined;
}

/** What mintUsdc answers. */
export interface MintResult {
  /** The mint, as applied (or as first applied, when replayed). */
  readonly mint: Mint;
  /** True when the service answered from its idempotency store (an earlier attempt or call applied it). */
  readonly replayed: boolean;
  /** The key the operation used (generated when the caller gave none). */
  readonly idempotencyKey: string;
}

/** What transfer answers. */
export interface TransferResult {
  /** The transfer, as applied (or as first applied, when replayed). */
  readonly transfer: Transfer;
  /** True when the service answered from its idempotency store. */
  readonly replayed: boolean;
  /** The key the operation used (generated when the caller gave none). */
  readonly idempotencyKey: string;
}

/** An account's balance. */
export interface Balance {
  /** The account. */
  readonly accountId: string;
  /** Available: spendable now. */
  readonly balance: string;
  /** Credited by mints whose on-chain settlement is not CONFIRMED yet (not spendable); "0" without settlement. */
  readonly pendingBalance: string;
  /** True while the account is frozen. */
  readonly frozen?: boolean;
  /** Why it is frozen ("" when it is not). */
  readonly freezeReason?: string;
}

/** Supply and reserve in USDC decimal strings; reserve and headroom are "" until a reserve is set. */
export interface SupplyInfo {
  /** USDC minted and not redeemed or reversed. */
  readonly supply: string;
  /** The attested reserve ("" until set). */
  readonly reserve: string;
  /** reserve − supply: what may still be minted ("" until a reserve is set). */
  readonly headroom: string;
  /** The reference of the attestation behind the reserve. */
  readonly attestationRef: string;
  /** USDC in mints PENDING_APPROVAL (not in supply). */
  readonly pendingApproval: string;
}

/** A redemption: USDC taken out of an account (burned on-chain where the chain settles). */
export interface Redemption {
  /** The service's id. */
  readonly redemptionId: string;
  /** The debited account. */
  readonly accountId: string;
  /** Canonical decimal USDC. */
  readonly amount: string;
  /** The chain it is redeemed on. */
  readonly blockchain: Mint["blockchain"];
  /** The key it was made with. */
  readonly idempotencyKey: string;
  /** The principal that redeemed. */
  readonly actor: string;
  /** When the service applied it. */
  readonly createTime: Date | undefined;
  /** Its on-chain burn (NOT_REQUIRED when the chain settles nothing). */
  readonly settlement: Settlement | undefined;
}

/** One page of listRedemptions. */
export interface RedemptionPage {
  /** This page's redemptions. */
  readonly redemptions: Redemption[];
  /** "" on the last page. */
  readonly nextPageToken: string;
}

/** What redeemUsdc answers. */
export interface RedeemResult {
  /** The redemption, as applied (or as first applied, when replayed). */
  readonly redemption: Redemption;
  /** True when the service answered from its idempotency store. */
  readonly replayed: boolean;
  /** The key the operation used (generated when the caller gave none). */
  readonly idempotencyKey: string;
}

/** What freezeAccount and unfreezeAccount answer. */
export interface FreezeResult {
  /** The account. */
  readonly accountId: string;
  /** Its balance (canonical decimal USDC). */
  readonly balance: string;
  /** Whether it is frozen now. */
  readonly frozen: boolean;
}

/** One page of listMints. */
export interface MintPage {
  /** This page's mints. */
  readonly mints: Mint[];
  /** "" on the last page. */
  readonly nextPageToken: string;
}

/**
 * A chain name as the wire number: "ETHEREUM", "ethereum" or
 * "BLOCKCHAIN_ETHEREUM". An unknown name is sent as UNSPECIFIED so that the
 * service, the one validator, answers INVALID_ARGUMENT (INVALID_BLOCKCHAIN).
 */
export function blockchainToWire(name: string): WireBlockchain {
  const upper = name.toUpperCase();
  const full = upper.startsWith("BLOCKCHAIN_") ? upper : `BLOCKCHAIN_${upper}`;
  const value = (WireBlockchain as unknown as Record<string, number | undefined>)[full];
  return typeof value === "number" && value >= 0 ? value : WireBlockchain.BLOCKCHAIN_UNSPECIFIED;
}

function blockchainName(wire: WireBlockchain): Mint["blockchain"] {
  const name = WireBlockchain[wire] as string | undefined;
  if (name === undefined || name === "UNRECOGNIZED") return "UNRECOGNIZED";
  return name.slice("BLOCKCHAIN_".length) as Mint["blockchain"];
}

function statusName(wire: WireMintStatus): MintStatusName {
  switch (wire) {
    case WireMintStatus.MINT_STATUS_COMPLETED:
      return "COMPLETED";
    case WireMintStatus.MINT_STATUS_REVERSED:
      return "REVERSED";
    case WireMintStatus.MINT_STATUS_PENDING_APPROVAL:
      return "PENDING_APPROVAL";
    case WireMintStatus.MINT_STATUS_REJECTED:
      return "REJECTED";
    case WireMintStatus.MINT_STATUS_UNSPECIFIED:
      return "UNSPECIFIED";
    case WireMintStatus.UNRECOGNIZED:
      return "UNRECOGNIZED";
    default:
      return "UNRECOGNIZED";
  }
}

/** The service always sends the message; a missing one is a broken server, reported as such. */
function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`the service answered without ${what}`);
  return value;
}

export function mintFromWire(m: WireMint | undefined): Mint {
  const w = required(m, "a mint");
  return {
    mintId: w.mintId,
    accountId: w.accountId,
    amount: w.amount,
    blockchain: blockchainName(w.blockchain),
    status: statusName(w.status),
    idempotencyKey: w.idempotencyKey,
    createTime: w.createTime,
    reverseTime: w.reverseTime,
    reverseReason: w.reverseReason,
    requester: w.requester,
    approvals: w.approvals.map((a) => ({ approver: a.approver, approveTime: a.approveTime })),
    approvalExpireTime: w.approvalExpireTime,
    rejectReason: w.rejectReason,
    rejectedBy: w.rejectedBy,
    rejectTime: w.rejectTime,
    settlement: w.settlement === undefined ? undefined : settlementFromWire(w.settlement),
  };
}

export function settlementFromWire(w: WireSettlement): Settlement {
  const name = WireSettlementState[w.state] ?? "UNRECOGNIZED";
  return {
    state: (name.startsWith("SETTLEMENT_STATE_") ? name.slice("SETTLEMENT_STATE_".length) : name) as SettlementStateName,
    txHashes: [...w.txHashes],
    minedTxHash: w.minedTxHash,
    blockNumber: w.blockNumber,
    confirmations: w.confirmations,
    attempts: w.attempts,
    lastError: w.lastError,
    nonce: w.nonce,
  };
}

/** A ListMints status filter as the wire number: "PENDING_APPROVAL" or "MINT_STATUS_PENDING_APPROVAL"; "" for all. */
export function mintStatusToWire(name: string): WireMintStatus {
  if (name === "") return WireMintStatus.MINT_STATUS_UNSPECIFIED;
  const upper = name.toUpperCase();
  const full = upper.startsWith("MINT_STATUS_") ? upper : `MINT_STATUS_${upper}`;
  const value = (WireMintStatus as unknown as Record<string, number | undefined>)[full];
  // An unknown name goes as a number the service does not know, so it answers INVALID_ARGUMENT.
  return typeof value === "number" && value >= 0 ? value : (-1 as WireMintStatus);
}

export function transferFromWire(t: WireTransfer | undefined): Transfer {
  const w = required(t, "a transfer");
  return {
    transferId: w.transferId,
    fromAccountId: w.fromAccountId,
    toAccountId: w.toAccountId,
    amount: w.amount,
    idempotencyKey: w.idempotencyKey,
    createTime: w.createTime,
  };
}

/**
 * One settlement whose on-chain state differs from the ledger's:
 * a mint's (mintId) or a redemption's burn (redemptionId); both "" for a mint
 * or burn on-chain the ledger does not know.
 */
export interface SettlementDifference {
  /** The mint ("" for a burn, or for a transaction the ledger does not know). */
  readonly mintId: string;
  /** The redemption ("" for a mint, or for a transaction the ledger does not know). */
  readonly redemptionId: string;
  /** PENDING, SUBMITTED, CONFIRMED, FAILED; "UNSPECIFIED" for a mint or burn the ledger does not know. */
  readonly ledgerState: string;
  /** What the chain says of it (e.g. CONFIRMED, or missing). */
  readonly chainState: string;
  /** The transaction concerned. */
  readonly txHash: string;
}

/** ReconcileChain's answer. Money as canonical decimal USDC strings. */
export interface ChainReconciliation {
  /** The chain compared. */
  readonly blockchain: string;
  /** True when the ledger and the chain agree and nothing differs. */
  readonly agree: boolean;
  /** The token's total supply on-chain. */
  readonly totalSupply: string;
  /** The treasury's on-chain balance. */
  readonly treasuryBalance: string;
  /** The sum of the ledger's CONFIRMED settlements. */
  readonly confirmedSum: string;
  /** The chain's head block when compared. */
  readonly headBlock: number;
  /** Each settlement whose state differs. */
  readonly differences: readonly SettlementDifference[];
}

export function supplyFromWire(s: WireSupply | undefined): SupplyInfo {
  const w = required(s, "a supply");
  return { supply: w.supply, reserve: w.reserve, headroom: w.headroom, attestationRef: w.attestationRef, pendingApproval: w.pendingApproval };
}

export function redemptionFromWire(r: WireRedemption | undefined): Redemption {
  const w = required(r, "a redemption");
  return {
    redemptionId: w.redemptionId,
    accountId: w.accountId,
    amount: w.amount,
    blockchain: blockchainName(w.blockchain),
    idempotencyKey: w.idempotencyKey,
    actor: w.actor,
    createTime: w.createTime,
    settlement: w.settlement === undefined ? undefined : settlementFromWire(w.settlement),
  };
}
