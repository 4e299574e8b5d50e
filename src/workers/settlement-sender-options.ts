/** What the settlement sender is given (its options), what it reports (a pass, its status), and what it keeps between passes. */
import type { Clock } from "../domain/clock.js";
import type { ChainSettlement, ChainSettlementMetrics, FaultHook, Fees, RefusalClass, SenderLock, SettlementOutbox } from "../domain/settlement/ports.js";

export interface SettlementWorkerOptions {
  readonly chain: ChainSettlement;
  readonly outbox: SettlementOutbox;
  readonly lock: SenderLock;
  readonly clock: Clock;
  /** Confirmations (the including block counts as 1) before CONFIRMED or FAILED; at least 1. */
  readonly confirmations: number;
  /** Pause between passes when idle. */
  readonly pollIntervalMs: number;
  /** Longest pause after repeated errors. */
  readonly maxBackoffMs?: number;
  /** Most settlements signed and not final at once (bounds the nonce gap a stuck transaction can leave). */
  readonly maxInFlight?: number;
  /**
   * A transaction not mined this long after it was signed (wall ms)
   * is replaced by one with the same nonce and higher fees (default: never).
   */
  readonly feeBumpTimeoutMs?: number;
  /** How long an unknown transaction waits before its bytes are broadcast again. */
  readonly rebroadcastAfterMs?: number;
  /** The fee ceiling (wei per gas): sign at min(suggested, ceiling); wait while the base fee plus the tip is above it; bumps never pass it. Absent or null: none. */
  readonly maxFeePerGasWei?: bigint | null;
  /** The signer's balance floor (wei): below it the chain is unhealthy and nothing is signed. Absent or null: `signerBalanceFloorTxs` transactions at the fee signed now. */
  readonly signerBalanceFloorWei?: bigint | null;
  /** Transactions the derived floor covers (default 10; 0 turns the floor off while still refusing what the signer cannot pay). */
  readonly signerBalanceFloorTxs?: number;
  /** Longest pause before bytes a node refused for an unknown reason are offered again (default 5 min). */
  readonly maxRefusalBackoffMs?: number;
  /** Test-only: called at each fault point (see `createFaultHook`). */
  readonly faultHook?: FaultHook;
  /** Where the worker records outcomes, fee bumps, reorgs and failed passes (default: nowhere). */
  readonly metrics?: ChainSettlementMetrics;
  /** Told about every failed pass (logging); never throws. */
  readonly onError?: (err: unknown) => void;
  /** Told, once per change, why settlements wait (signer balance, fee ceiling) and about every refused broadcast (logging); never throws. */
  readonly onNotice?: (message: string) => void;
  /** Told once when the node cannot give a proof the worker needs (logging), e.g. a deep nonce read on a node that is not an archive node; never throws. */
  readonly onWarning?: (message: string) => void;
}

export interface TickReport {
  readonly role: "sender" | "standby";
  readonly signed: number;
  readonly confirmed: number;
  readonly failed: number;
  readonly rebroadcast: number;
}

/** What health reports for settlement, separately from the ledger's health. */
export interface WorkerStatus {
  readonly blockchain: string;
  readonly role: "sender" | "standby" | "stopped";
  /** False while the last pass failed (node or store unreachable). */
  readonly healthy: boolean;
  readonly lastError: string;
  readonly consecutiveErrors: number;
  /** Fee-bump replacements signed since start. */
  readonly replacements: number;
  /** Why PENDING settlements wait (signer balance, fee ceiling), as of the last pass; empty when they do not. */
  readonly waitReason: string;
  /** The signer's balance as last read (wei); null before the first read or when the chain cannot tell. */
  readonly signerBalanceWei: bigint | null;
}

/** What a pass learned about gas before signing: the fees it may sign at (null: the ceiling holds everything back) and what the signer can still pay. */
export interface GasView {
  readonly fees: Fees | null;
  /** Why nothing is signed this pass; "" when signing may go ahead. */
  readonly waitReason: string;
  readonly waitKind: "fee_ceiling" | "signer_balance" | null;
  /** Balance minus the worst case of every signed, unmined transaction (wei); null when the chain cannot tell the balance. */
  available: bigint | null;
}

/** A refused broadcast remembered per settlement, so its bytes are not offered again hot. */
export interface Refusal {
  readonly refusal: RefusalClass;
  readonly count: number;
  /** Monotonic ms before which the bytes are not offered again. */
  readonly retryAtMs: number;
}
