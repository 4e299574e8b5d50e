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
} from "../../gen/usdc/mint/v1/mint.js";

/** The chains the service knows (the proto enum without its BLOCKCHAIN_ prefix). */
export const BLOCKCHAINS = ["ETHEREUM", "SOLANA", "BASE", "ARBITRUM", "POLYGON", "AVALANCHE", "OPTIMISM", "STELLAR", "NOBLE"] as const;
export type BlockchainName = (typeof BLOCKCHAINS)[number];

export type MintStatusName = "COMPLETED" | "REVERSED" | "PENDING_APPROVAL" | "REJECTED" | "UNSPECIFIED" | "UNRECOGNIZED";

export interface Mint {
  readonly mintId: string;
  readonly accountId: string;
  /** Canonical decimal USDC ("100.5"); use toMicros() to compute with it. */
  readonly amount: string;
  /** "UNSPECIFIED"/"UNRECOGNIZED" only if the server knows a chain this SDK does not. */
  readonly blockchain: BlockchainName | "UNSPECIFIED" | "UNRECOGNIZED";
  readonly status: MintStatusName;
  readonly idempotencyKey: string;
  readonly createTime: Date | undefined;
  /** Set only when status is REVERSED. */
  readonly reverseTime: Date | undefined;
  readonly reverseReason: string;
  /** Issue 11: who asked ("" when neither approvals nor allowances applied), who approved and when, rejection. */
  readonly requester: string;
  readonly approvals: readonly { readonly approver: string; readonly approveTime: Date | undefined }[];
  readonly approvalExpireTime: Date | undefined;
  readonly rejectReason: string;
  readonly rejectedBy: string;
  readonly rejectTime: Date | undefined;
  /** Issues 15/16: its on-chain settlement; undefined when the chain settles nothing or the mint never reached the chain. */
  readonly settlement: Settlement | undefined;
}

export type SettlementStateName = "NOT_REQUIRED" | "PENDING" | "SUBMITTED" | "CONFIRMED" | "FAILED" | "UNSPECIFIED" | "UNRECOGNIZED";

/** A mint's on-chain settlement (Mint.settlement on the wire). */
export interface Settlement {
  readonly state: SettlementStateName;
  /** Every transaction signed for it, oldest first (fee bumps add more, same nonce). */
  readonly txHashes: readonly string[];
  /** The mined one; "" until mined. */
  readonly minedTxHash: string;
  readonly blockNumber: number;
  readonly confirmations: number;
  readonly attempts: number;
  readonly lastError: string;
  /** undefined while PENDING. */
  readonly nonce: number | undefined;
  /** Why a PENDING settlement is not signed yet (signer funds, fee ceiling); "" when nothing holds it back. */
  readonly waitReason: string;
  /** What the mined transaction cost the signer, in wei (decimal string); undefined while not final, when dropped, or unknown (settled before costs were recorded). */
  readonly costWei: string | undefined;
}

/** What is left of a minter's allowance (issue 11). */
export interface MinterAllowance {
  readonly principal: string;
  /** Canonical decimal USDC. */
  readonly allowance: string;
}

export interface Transfer {
  readonly transferId: string;
  readonly fromAccountId: string;
  readonly toAccountId: string;
  readonly amount: string;
  readonly idempotencyKey: string;
  readonly createTime: Date | undefined;
}

export interface MintResult {
  readonly mint: Mint;
  /** True when the service answered from its idempotency store (an earlier attempt or call applied it). */
  readonly replayed: boolean;
  /** The key the operation used (generated when the caller gave none). */
  readonly idempotencyKey: string;
}

export interface TransferResult {
  readonly transfer: Transfer;
  readonly replayed: boolean;
  readonly idempotencyKey: string;
}

export interface Balance {
  readonly accountId: string;
  /** Available: spendable now. */
  readonly balance: string;
  /** Issue 15: credited by mints whose on-chain settlement is not CONFIRMED yet (not spendable); "0" without settlement. */
  readonly pendingBalance: string;
  /** Issue 12: true while the account is frozen. */
  readonly frozen?: boolean;
  readonly freezeReason?: string;
}

// Issue 12: reserve, redemption, freeze.

/** Supply and reserve in USDC decimal strings; reserve and headroom are "" until a reserve is set. */
export interface SupplyInfo {
  readonly supply: string;
  readonly reserve: string;
  readonly headroom: string;
  readonly attestationRef: string;
  /** USDC in mints PENDING_APPROVAL (not in supply). */
  readonly pendingApproval: string;
}

export interface Redemption {
  readonly redemptionId: string;
  readonly accountId: string;
  readonly amount: string;
  readonly blockchain: Mint["blockchain"];
  readonly idempotencyKey: string;
  readonly actor: string;
  readonly createTime: Date | undefined;
  /** Issue 16: its on-chain burn (NOT_REQUIRED when the chain settles nothing). */
  readonly settlement: Settlement | undefined;
}

export interface RedemptionPage {
  readonly redemptions: Redemption[];
  /** "" on the last page. */
  readonly nextPageToken: string;
}

export interface RedeemResult {
  readonly redemption: Redemption;
  readonly replayed: boolean;
  readonly idempotencyKey: string;
}

export interface FreezeResult {
  readonly accountId: string;
  readonly balance: string;
  readonly frozen: boolean;
}

export interface MintPage {
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
    waitReason: w.waitReason,
    costWei: w.costWei,
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
 * Issue 16: one settlement whose on-chain state differs from the ledger's:
 * a mint's (mintId) or a redemption's burn (redemptionId); both "" for a mint
 * or burn on-chain the ledger does not know.
 */
export interface SettlementDifference {
  readonly mintId: string;
  readonly redemptionId: string;
  /** PENDING, SUBMITTED, CONFIRMED, FAILED; "UNSPECIFIED" for a mint or burn the ledger does not know. */
  readonly ledgerState: string;
  readonly chainState: string;
  readonly txHash: string;
}

/** Issue 16: ReconcileChain's answer. Money as canonical decimal USDC strings. */
export interface ChainReconciliation {
  readonly blockchain: string;
  readonly agree: boolean;
  readonly totalSupply: string;
  readonly treasuryBalance: string;
  readonly confirmedSum: string;
  readonly headBlock: number;
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
