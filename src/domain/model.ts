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

/** PENDING_APPROVAL and REJECTED only for mints at or above the approval threshold. */
export type MintStatus = "COMPLETED" | "REVERSED" | "PENDING_APPROVAL" | "REJECTED";

/** One approval of a pending mint. */
export interface MintApproval {
  readonly approver: string;
  readonly wallMs: number;
}

/**
 * The approval state of a mint that needed M-of-N approval:
 * absent on mints below the threshold.
 */
export interface ApprovalState {
  /** Distinct approvals needed to complete the mint. */
  readonly required: number;
  /** Distinct approvers so far, in the order they approved. */
  readonly approvals: readonly MintApproval[];
  /** Wall-clock ms after which the pending mint is expired (refused, then rejected by the sweeper). */
  readonly expireWallMs: number;
  /** Why it was rejected ("expired: ..." when by the sweeper); empty unless REJECTED. */
  readonly rejectReason: string;
  /** Who rejected it (an approver, or `sweeper`); empty unless REJECTED. */
  readonly rejectedBy: string;
  /** Wall-clock ms of the rejection; null unless REJECTED. */
  readonly rejectWallMs: number | null;
}

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
  /** The principal that asked for the mint; absent when neither approvals nor allowances applied. */
  readonly requester?: string;
  /** True when the mint consumed the requester's minter allowance (given back on reversal or rejection). */
  readonly allowanceCharged?: boolean;
  /** Present when the mint needed approval. */
  readonly approval?: ApprovalState;
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
   * The chain settles on-chain, so the store credits the account's
   * pending balance and writes the settlement's outbox row in the same
   * atomic step. Absent or false: the credit is available at once.
   */
  readonly settle?: boolean;
  /** The caller's principal; set when approvals or allowances apply. */
  readonly requester?: string;
  /** Consume `amountMicros` of the requester's allowance in the same atomic step, or refuse ALLOWANCE_EXCEEDED. */
  readonly chargeAllowance?: boolean;
  /** Create the mint PENDING_APPROVAL (nothing credited) instead of COMPLETED. */
  readonly pending?: { readonly required: number; readonly expireWallMs: number };
}

/** The record of a new mint: COMPLETED (or PENDING_APPROVAL when `cmd.pending`), at position `seq` of the store's mint order. */
export function completedMint(cmd: NewMint, seq: number): MintRecord {
  const base: MintRecord = {
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
  if (cmd.requester === undefined) return base;
  const withRequester: MintRecord = { ...base, requester: cmd.requester, allowanceCharged: cmd.chargeAllowance === true };
  if (cmd.pending === undefined) return withRequester;
  return {
    ...withRequester,
    status: "PENDING_APPROVAL",
    approval: { required: cmd.pending.required, approvals: [], expireWallMs: cmd.pending.expireWallMs, rejectReason: "", rejectedBy: "", rejectWallMs: null },
  };
}

/**
 * What an approval by `approver` at `wallMs` makes of `mint`: the next record
 * (`changed` false for a retry by an approver already counted), or why it is
 * refused. Both adapters decide with this, under their own lock or stretch.
 */
export function decideApproval(
  mint: MintRecord,
  approver: string,
  wallMs: number,
):
  | { readonly ok: true; readonly next: MintRecord; readonly changed: boolean }
  | { readonly ok: false; readonly error: { readonly code: "MINT_NOT_PENDING"; readonly mintId: string; readonly reason: NonNullable<ReturnType<typeof notPendingReason>> } | { readonly code: "APPROVER_IS_REQUESTER"; readonly mintId: string; readonly principal: string } } {
  const approval = mint.approval;
  const notPending = approval === undefined ? (mint.status === "REVERSED" ? "MINT_REVERSED" : "MINT_COMPLETED") : notPendingReason(mint, wallMs);
  // A retry of an approval already counted gets the mint back while it is pending or completed.
  if (approval?.approvals.some((a) => a.approver === approver) === true && (notPending === null || notPending === "MINT_COMPLETED")) {
    return { ok: true, next: mint, changed: false };
  }
  if (notPending !== null || approval === undefined) return { ok: false, error: { code: "MINT_NOT_PENDING", mintId: mint.mintId, reason: notPending ?? "MINT_COMPLETED" } };
  if (mint.requester === approver) return { ok: false, error: { code: "APPROVER_IS_REQUESTER", mintId: mint.mintId, principal: approver } };
  const approvals = [...approval.approvals, { approver, wallMs }];
  const status = approvals.length >= approval.required ? "COMPLETED" : "PENDING_APPROVAL";
  return { ok: true, next: { ...mint, status, approval: { ...approval, approvals } }, changed: true };
}

/**
 * What a rejection makes of `mint`, or why it is refused. A person cannot
 * reject a mint past its expiry (it says MINT_EXPIRED); the sweeper can.
 */
export function decideRejection(
  mint: MintRecord,
  reason: string,
  rejectedBy: string,
  wallMs: number,
  bySweeper: boolean,
): { readonly ok: true; readonly next: MintRecord } | { readonly ok: false; readonly error: { readonly code: "MINT_NOT_PENDING"; readonly mintId: string; readonly reason: NonNullable<ReturnType<typeof notPendingReason>> } } {
  const approval = mint.approval;
  if (approval === undefined) return { ok: false, error: { code: "MINT_NOT_PENDING", mintId: mint.mintId, reason: mint.status === "REVERSED" ? "MINT_REVERSED" : "MINT_COMPLETED" } };
  const notPending = notPendingReason(mint, bySweeper ? approval.expireWallMs - 1 : wallMs);
  if (notPending !== null) return { ok: false, error: { code: "MINT_NOT_PENDING", mintId: mint.mintId, reason: notPending } };
  return { ok: true, next: { ...mint, status: "REJECTED", approval: { ...approval, rejectReason: reason, rejectedBy, rejectWallMs: wallMs } } };
}

/** Why a mint that is not pending cannot be approved or rejected (the ErrorInfo reason of MINT_NOT_PENDING). */
export function notPendingReason(m: MintRecord, wallMs: number): "MINT_COMPLETED" | "MINT_REVERSED" | "MINT_REJECTED" | "MINT_EXPIRED" | null {
  if (m.status === "COMPLETED") return "MINT_COMPLETED";
  if (m.status === "REVERSED") return "MINT_REVERSED";
  if (m.status === "REJECTED") return m.approval?.rejectedBy === "sweeper" ? "MINT_EXPIRED" : "MINT_REJECTED";
  if (m.approval !== undefined && wallMs >= m.approval.expireWallMs) return "MINT_EXPIRED";
  return null;
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

// Reserve, redemption, freeze.

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
  /**
   * Set (once) when the redemption's burn FAILED on-chain and the
   * amount was credited back to the account; absent otherwise.
   */
  readonly recreditWallMs?: number;
  readonly recreditReason?: string;
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
  /** The sum of mints PENDING_APPROVAL (not in supply; each is checked against the reserve when its approval completes it). */
  readonly pendingApprovalMicros: bigint;
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
