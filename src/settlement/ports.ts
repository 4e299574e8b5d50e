/**
 * On-chain settlement: the ports the settlement worker needs. Like
 * `src/domain/ports.ts`, this module imports no adapter; adapters live beside
 * it (`signer-*.ts`, `chain-*.ts`, `outbox-*.ts`) and are chosen once, at wiring.
 *
 * Money is `bigint` micro-USDC; the token has 6 decimals, so one micro-USDC is
 * one token base unit and amounts go on-chain unchanged.
 */
import type { Blockchain } from "../domain/model.js";

export type Hex = `0x${string}`;
export type Address = `0x${string}`;

/** A secp256k1 signature over a 32-byte digest, s already normalised to the lower half of the curve order. */
export interface EcdsaSignature {
  readonly r: Hex;
  readonly s: Hex;
  /** The recovery bit (0 or 1): which of the two candidate public keys signed. */
  readonly yParity: 0 | 1;
}

/**
 * A key that signs and never shows itself. `pkcs11` keeps it in an HSM;
 * `dev-key` holds a private key in memory (tests and demos only).
 */
export interface Signer {
  readonly kind: "pkcs11" | "dev-key";
  /** The address of the key (EIP-55 checksummed). */
  readonly address: Address;
  /**
   * Signs a 32-byte digest. Throws on a digest of any other length and when
   * the device fails (a bug or an outage, not an expected outcome).
   */
  signDigest(digest: Hex): Promise<EcdsaSignature>;
  close(): Promise<void>;
}

/** EIP-1559 fees, in wei. */
export interface Fees {
  readonly maxFeePerGas: bigint;
  readonly maxPriorityFeePerGas: bigint;
}

/** A transaction signed but not yet (known to be) broadcast: enough to store, look up and send again. */
export interface SignedTx {
  readonly hash: Hex;
  /** The signed, serialized transaction (EIP-2718 type 2), as broadcast. */
  readonly raw: Hex;
  readonly nonce: number;
  readonly fees: Fees;
  readonly gasLimit: bigint;
}

export type TxLookup =
  /** The node has never heard of the hash (never broadcast, dropped, or reorged out while no longer in its pool). */
  | { readonly kind: "unknown" }
  /** In the node's pool, not mined. */
  | { readonly kind: "pending" }
  | {
      readonly kind: "mined";
      readonly blockNumber: bigint;
      readonly blockHash: Hex;
      /** head − blockNumber + 1: the including block counts as the first confirmation. */
      readonly confirmations: number;
      readonly status: "success" | "reverted";
    };

/** The outcome of handing signed bytes to a node. */
export type BroadcastOutcome =
  | { readonly kind: "accepted" }
  /** The node refused the bytes for good (e.g. nonce already used by another transaction); `reason` is the node's message. */
  | { readonly kind: "rejected"; readonly reason: string };

/**
 * One chain's token contract, seen from the treasury. Every method throws
 * `ChainUnavailableError` when the node cannot be reached or answers with
 * garbage; the worker waits and retries.
 */
export interface ChainSettlement {
  readonly blockchain: Blockchain;
  readonly chainId: number;
  readonly treasury: Address;
  /**
   * Builds the ERC-20 `mint(treasury, amountMicros)` transaction for `nonce`
   * and `fees`, signs it with the signer, and returns it WITHOUT sending it,
   * so the caller can store the hash first.
   */
  signMint(amountMicros: bigint, nonce: number, fees: Fees): Promise<SignedTx>;
  /**
   * Issue 16: builds and signs the ERC-20 `burn(amountMicros)` transaction
   * (the token burns from the caller's own balance, so the treasury must be
   * the signer's address), WITHOUT sending it.
   */
  signBurn(amountMicros: bigint, nonce: number, fees: Fees): Promise<SignedTx>;
  /**
   * What would make every mint fail, checked before signing: the node's chain
   * id differs from the configured one, the signer is not a minter of the
   * token, or the signer or treasury is blacklisted. Returns the problem in
   * one line, or null when settling can go ahead.
   */
  preflight(): Promise<string | null>;
  /** Sends signed bytes. A node that already has them counts as accepted. */
  broadcast(raw: Hex): Promise<BroadcastOutcome>;
  /** `headBlock`: the chain head the caller already read this pass (saves one request per lookup). */
  lookup(hash: Hex, headBlock?: bigint): Promise<TxLookup>;
  /** Fees for a transaction to be mined soon (base fee headroom of 2 blocks). */
  suggestFees(): Promise<Fees>;
  /** Transactions the treasury has had mined ("latest" nonce). */
  minedNonce(): Promise<number>;
  /**
   * Transactions the signer had mined as of block `blockNumber`
   * (`eth_getTransactionCount` at that block): the proof that a nonce was
   * consumed at least that deep. `unavailable` when the node cannot answer
   * for that block (a node that is not an archive node keeps the state of
   * recent blocks only); an unreachable node throws `ChainUnavailableError`.
   */
  nonceAt(blockNumber: bigint): Promise<NonceAt>;
  headBlock(): Promise<bigint>;
  totalSupply(): Promise<bigint>;
  treasuryBalance(): Promise<bigint>;
  /** Issue 16: every mint to the treasury on the chain (for reconciliation); adapters that cannot list them leave it out. */
  treasuryMints?(fromBlock?: bigint): Promise<TreasuryMint[]>;
  /** Issue 16: every burn from the treasury on the chain (for reconciliation); optional like `treasuryMints`. */
  treasuryBurns?(fromBlock?: bigint): Promise<TreasuryMint[]>;
  close(): Promise<void>;
}

/** What `ChainSettlement.nonceAt` learned: the signer's transaction count at a block, or why the node cannot tell. */
export type NonceAt = { readonly kind: "count"; readonly count: number } | { readonly kind: "unavailable"; readonly reason: string };

/** One mint to (or burn from) the treasury as the chain recorded it. */
export interface TreasuryMint {
  readonly hash: Hex;
  readonly amountMicros: bigint;
  readonly blockNumber: bigint;
}

/** The node could not be reached, or did not answer sensibly: wait and retry. */
export class ChainUnavailableError extends Error {
  override readonly name = "ChainUnavailableError";
  readonly code = "CHAIN_UNAVAILABLE";
}

/**
 * PENDING: in the outbox, nothing signed (ReconcileMint may cancel it).
 * SUBMITTED: a transaction is signed and stored (it may be on the wire; nobody may cancel it).
 * CONFIRMED: mined successfully and buried `confirmations` deep.
 * FAILED: mined and reverted (issue 16 also: dropped for good); the ledger reverses the credit.
 */
export type SettlementState = "PENDING" | "SUBMITTED" | "CONFIRMED" | "FAILED";

export interface SettlementTx {
  readonly hash: Hex;
  readonly raw: Hex;
  readonly nonce: number;
  readonly maxFeePerGas: bigint;
  readonly maxPriorityFeePerGas: bigint;
  readonly signedWallMs: number;
}

/**
 * "mint": a ledger mint, minted on-chain to the treasury (credit pending until CONFIRMED).
 * "burn": a ledger redemption (issue 16), burned on-chain from the treasury (debited at once; re-credited if FAILED).
 */
export type SettlementKind = "mint" | "burn";

export interface Settlement {
  /** The mint id for a mint, the redemption id for a burn (one settlement each). */
  readonly settlementId: string;
  readonly kind: SettlementKind;
  readonly blockchain: Blockchain;
  readonly amountMicros: bigint;
  /** Commit order in the outbox; the worker signs in this order. */
  readonly seq: number;
  readonly state: SettlementState;
  /** Every transaction signed for this settlement, oldest first (one now; fee bumps add more with the same nonce). */
  readonly txs: readonly SettlementTx[];
  /** The hash that was mined (CONFIRMED/FAILED, or mined but not yet deep enough); null otherwise. */
  readonly minedHash: Hex | null;
  readonly blockNumber: bigint | null;
  readonly confirmations: number;
  /** How many times signed bytes were handed to a node. */
  readonly attempts: number;
  /** The last error seen for this settlement (node refused, unreachable, reverted); empty when none. */
  readonly lastError: string;
  readonly createWallMs: number;
  readonly updateWallMs: number;
}

/** What the mint's (or redemption's) own transaction writes into the outbox. */
export interface NewSettlement {
  readonly settlementId: string;
  /** Default "mint". */
  readonly kind?: SettlementKind;
  readonly blockchain: Blockchain;
  readonly amountMicros: bigint;
  readonly createWallMs: number;
}

export type RecordSignedOutcome =
  | { readonly ok: true; readonly settlement: Settlement }
  /** The settlement is no longer PENDING (cancelled by ReconcileMint, or signed by another sender): do not broadcast. */
  | { readonly ok: false; readonly code: "SETTLEMENT_NOT_PENDING"; readonly state: SettlementState | "MISSING" };

/**
 * The durable queue of settlements, fed in the mint's own transaction, and the
 * record of everything the worker signs and learns. Every method is one
 * atomic step; adapters throw when their backing store is unreachable.
 */
export interface SettlementOutbox {
  /** Adds a PENDING settlement (the store calls this inside the mint's or redemption's transaction). Idempotent per `settlementId`. */
  enqueue(s: NewSettlement): Promise<void>;
  /** Up to `limit` PENDING settlements of `blockchain`, in commit order. */
  nextPending(blockchain: Blockchain, limit: number): Promise<Settlement[]>;
  /** Every SUBMITTED settlement of `blockchain` (signed, not final), lowest nonce first. */
  inFlight(blockchain: Blockchain): Promise<Settlement[]>;
  /** The highest nonce ever stored for `blockchain`, or −1. */
  highestNonce(blockchain: Blockchain): Promise<number>;
  /**
   * Stores a signed transaction and moves PENDING → SUBMITTED, atomically, BEFORE
   * the bytes are broadcast. Refuses (SETTLEMENT_NOT_PENDING) unless PENDING.
   */
  recordSigned(settlementId: string, tx: SettlementTx, wallMs: number): Promise<RecordSignedOutcome>;
  /**
   * Issue 16: stores a fee-bump replacement (same nonce, higher fees) of a
   * SUBMITTED settlement BEFORE it is broadcast. False (nothing stored) when
   * the settlement is no longer SUBMITTED.
   */
  recordReplacement(settlementId: string, tx: SettlementTx, wallMs: number): Promise<boolean>;
  /** Counts a broadcast attempt and its error ("" when accepted). */
  recordAttempt(settlementId: string, error: string, wallMs: number): Promise<void>;
  /**
   * Why a SUBMITTED settlement waits (its status's last error) without
   * counting a broadcast attempt: e.g. a possible drop not yet proven. A
   * no-op unless SUBMITTED.
   */
  recordWaiting(settlementId: string, reason: string, wallMs: number): Promise<void>;
  /** A tx of the settlement is mined but not yet deep enough (or no longer mined: `mined` null after a reorg). */
  recordProgress(settlementId: string, mined: { hash: Hex; blockNumber: bigint; confirmations: number } | null, wallMs: number): Promise<void>;
  /**
   * SUBMITTED → CONFIRMED, and the ledger's effect in the same atomic step (see
   * `SettlementEffects`): a mint's credit moves from pending to available; a
   * burn is journaled. True when this call made the change; false (a no-op)
   * when the settlement was not SUBMITTED (already final, or unknown), so a
   * caller counts each outcome once.
   */
  markConfirmed(settlementId: string, mined: { hash: Hex; blockNumber: bigint; confirmations: number }, wallMs: number): Promise<boolean>;
  /**
   * SUBMITTED → FAILED with `reason`, and in the same step the ledger reverses
   * a mint's pending credit or re-credits a burn's redemption. True when this
   * call made the change; false (a no-op) when already final, so the effect
   * runs once however often it is called.
   */
  markFailed(settlementId: string, mined: { hash: Hex; blockNumber: bigint; confirmations: number } | null, reason: string, wallMs: number): Promise<boolean>;
  /**
   * PENDING → removed, for ReconcileMint of a mint whose settlement is not yet signed.
   * Returns the state found: "PENDING" when cancelled; otherwise nothing changed.
   */
  cancel(settlementId: string): Promise<SettlementState | "MISSING">;
  get(settlementId: string): Promise<Settlement | null>;
  /**
   * The settlements of these ids that exist, with their transactions, in one
   * lookup (one query in PostgreSQL, whatever the number of ids): what a page
   * of ListMints needs. At most `MAX_GET_MANY` ids; ids without a settlement
   * are absent from the map.
   */
  getMany(settlementIds: readonly string[]): Promise<Map<string, Settlement>>;
  /**
   * What is not yet final, per chain (chains with nothing open are absent):
   * how many settlements are PENDING and SUBMITTED, and the enqueue wall time
   * of the oldest of them. Read when Prometheus scrapes; costs one query
   * (PostgreSQL) over the open settlements only, never over settled history.
   */
  backlog(): Promise<Map<Blockchain, SettlementBacklog>>;
  close(): Promise<void>;
}

/** Most ids one `getMany` takes: a ListMints page holds at most 1000 mints (MAX_PAGE_SIZE in domain/mint-core.ts). */
export const MAX_GET_MANY = 1_000;

/** The open settlements of one chain (see `SettlementOutbox.backlog`). */
export interface SettlementBacklog {
  readonly pending: number;
  readonly submitted: number;
  /** `createWallMs` of the oldest PENDING or SUBMITTED settlement. */
  readonly oldestCreateWallMs: number;
}

/**
 * The ledger's side of a final settlement, applied by the outbox in the same
 * atomic step as the state change (same critical section in memory, same SQL
 * transaction in PostgreSQL), so a crash never leaves one without the other.
 */
export interface SettlementEffects<Tx = void> {
  /**
   * Optional: locks the ledger's row of the settlement (a mint's) before the
   * outbox locks the settlement's own row, so a final step takes its locks in
   * the store's one order (the mint, then its settlement), as ReconcileMint
   * does. A store whose steps never interleave (memory) leaves it out.
   */
  lockFirst?(tx: Tx, settlementId: string): Promise<void> | void;
  /**
   * CONFIRMED. Mint: move `amountMicros` of the mint's credit from the
   * account's pending to its available balance. Burn: the debit happened
   * with the redemption; only the journal records the settlement.
   */
  confirmed(tx: Tx, s: Settlement): Promise<void> | void;
  /**
   * FAILED. Mint: reverse the pending credit (compensating entry, key freed).
   * Burn: re-credit the redemption's account (compensating entry, supply back
   * up, the redemption marked re-credited). Journal actor `settlement-worker`;
   * a mint or redemption already reversed is left alone.
   */
  failed(tx: Tx, s: Settlement, reason: string): Promise<void> | void;
}

/**
 * One sender per chain across all replicas: only the holder signs and
 * broadcasts for `blockchain`, so nonces never collide.
 */
export interface SenderLock {
  /** Takes the lock when free; false when another worker holds it. */
  tryAcquire(blockchain: Blockchain): Promise<boolean>;
  /** True while this worker still holds it (a PostgreSQL session lock is lost with its connection). */
  held(blockchain: Blockchain): Promise<boolean>;
  release(blockchain: Blockchain): Promise<void>;
}

/** How a settlement ended, as the metrics count it: mined successfully, mined and reverted, or dropped for good. */
export type SettlementOutcome = "confirmed" | "reverted" | "dropped";

/**
 * What the settlement worker records about one chain (issue 16), resolved
 * once per worker (`SettlementMetricsSink.chain`). Every method returns
 * nothing and never throws, so the worker records without guarding; none is
 * on the mint's path (the worker runs beside it).
 */
export interface ChainSettlementMetrics {
  /**
   * A settlement became final, counted once (the outbox's state change
   * succeeded). `seconds`: wall time from enqueue (the mint's commit) to now;
   * `confirmations`: how deep its transaction was when the worker saw it
   * (0 when dropped).
   */
  finished(outcome: SettlementOutcome, seconds: number, confirmations: number): void;
  /** A stuck transaction was replaced with higher fees (same nonce), stored before broadcast. */
  feeBumped(): void;
  /** A transaction of ours that was mined left the canonical chain before the confirmation depth. */
  reorged(): void;
  /** The same signed bytes were sent again (after a reorg, a crash between sign and broadcast, or a node that lost them). */
  rebroadcast(): void;
  /** A pass ended early on an outage or a misconfiguration (node or store unreachable, preflight refused). */
  passFailed(): void;
}

/** The settlement metrics port: per chain handles plus the signer (shared by every chain). */
export interface SettlementMetricsSink {
  /** The handles for `blockchain`. Throws for a chain the sink was not made for (a wiring bug, seen at start). */
  chain(blockchain: Blockchain): ChainSettlementMetrics;
  /** One `signDigest` call took `seconds` (monotonic); `ok` false when it threw. */
  signed(seconds: number, ok: boolean): void;
}

const noChainMetrics: ChainSettlementMetrics = Object.freeze({
  finished() {},
  feeBumped() {},
  reorged() {},
  rebroadcast() {},
  passFailed() {},
});

/** Records nothing: the default when metrics are off. */
export const noSettlementMetrics: SettlementMetricsSink = Object.freeze({
  chain: () => noChainMetrics,
  signed() {},
});

/** Named points where the test-only fault hook may stop the worker. */
export const FAULT_POINTS = ["after-sign", "after-broadcast"] as const;
export type FaultPoint = (typeof FAULT_POINTS)[number];

/** Called at each fault point; the test hook stops the process (or, in-process, throws `WorkerCrash`). */
export type FaultHook = (point: FaultPoint, settlementId: string) => void;

/** Thrown by an in-process fault hook: the worker stops at once, as if the process had died. */
export class WorkerCrash extends Error {
  override readonly name = "WorkerCrash";
}
