/**
 * `@usdc-mint/client`: the typed SDK of the MintService.
 *
 *   const client = createMintClient({ addresses: "ipv4:10.0.0.1:50051,10.0.0.2:50051", token });
 *   const { mint, replayed } = await client.mintUsdc({ accountId: "alice", amount: "100.5", blockchain: "ETHEREUM" });
 */
export { createMintClient, DEFAULT_DEADLINE_MS } from "./client.js";
export type { AuditEvent, AuditPage, AuditVerdict, ListAuditEventsInput } from "./client.js";
export type { CallOptions, ListMintsInput, MintClient, MintClientOptions, MintUsdcInput, ReconcileMintInput, RetryEvent, TransferInput } from "./client.js";
export type { EndpointState, EndpointStatus } from "./endpoints.js";
export { MintServiceError } from "./errors.js";
export { DEFAULT_BATCH_SIZE } from "./batch.js";
export type { BatchItemResult, BatchMintItem, BatchOptions, BatchTransferItem, BatchTransferOptions } from "./batch.js";
export type { FieldViolation, GrpcCodeName, MintServiceErrorInit, QuotaViolation } from "./errors.js";
export { fromMicros, MICROS_PER_USDC, toMicros } from "./money.js";
export { DEFAULT_RETRY_POLICY, retryDecision } from "./retry.js";
export type { CallSafety, RetryDecision, RetryPolicy } from "./retry.js";
export { BLOCKCHAINS } from "./types.js";
export type {
  Balance,
  BlockchainName,
  ChainReconciliation,
  FreezeResult,
  Mint,
  MintPage,
  MintResult,
  MintStatusName,
  MinterAllowance,
  RedeemResult,
  Redemption,
  RedemptionPage,
  Settlement,
  SettlementDifference,
  SettlementStateName,
  SupplyInfo,
  Transfer,
  TransferResult,
} from "./types.js";
export { uuidv7 } from "./uuidv7.js";
export { LEDGER_EVENT_KINDS } from "./watch.js";
export type {
  LedgerAllowanceEvent,
  LedgerEvent,
  LedgerEventChain,
  LedgerEventKindName,
  LedgerFreezeEvent,
  LedgerMintEvent,
  LedgerRedemptionEvent,
  LedgerReserveEvent,
  LedgerSettlementEvent,
  LedgerTransferEvent,
  WatchLedgerInput,
} from "./watch.js";
