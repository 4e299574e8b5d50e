/** Proto <-> domain conversions. Money leaves as a canonical decimal string, formatted once here. */
import {
  Blockchain,
  MintStatus,
  SettlementState,
  type AuditEvent,
  type Mint,
  type Redemption,
  type Settlement as SettlementProto,
  type Supply,
  type Transfer,
} from "../../../gen/usdc/mint/v1/mint.js";
import { canonicalObjectJson, type AuditRecord } from "../../domain/audit.js";
import type { Settlement } from "../../settlement/ports.js";
import { callerIdempotencyKey } from "../../domain/authorization.js";
import { BLOCKCHAINS, type Blockchain as DomainBlockchain, type MintRecord, type RedemptionRecord, type SupplyState, type TransferRecord } from "../../domain/model.js";
import { formatMicros } from "../../domain/money.js";

const PREFIX = "BLOCKCHAIN_";

/**
 * Proto enum number -> domain name and back, built once. The names are the
 * constants of BLOCKCHAINS, so a request's chain is the same string in every
 * record (no per-call slice of the enum name to keep).
 */
const NAME_BY_VALUE = new Map<number, DomainBlockchain>();
const VALUE_BY_NAME = new Map<DomainBlockchain, Blockchain>();
for (const name of BLOCKCHAINS) {
  const value = (Blockchain as unknown as Record<string, Blockchain | undefined>)[PREFIX + name];
  if (value === undefined) continue;
  NAME_BY_VALUE.set(value, name);
  VALUE_BY_NAME.set(name, value);
}

/** The domain name of a proto enum number; "" for UNSPECIFIED or numbers this server does not know. */
export function blockchainName(value: Blockchain | number): string {
  return NAME_BY_VALUE.get(value) ?? "";
}

export function blockchainValue(name: DomainBlockchain): Blockchain {
  return VALUE_BY_NAME.get(name) as Blockchain;
}

const STATUS_TO_PROTO: Record<MintRecord["status"], MintStatus> = {
  COMPLETED: MintStatus.MINT_STATUS_COMPLETED,
  REVERSED: MintStatus.MINT_STATUS_REVERSED,
  PENDING_APPROVAL: MintStatus.MINT_STATUS_PENDING_APPROVAL,
  REJECTED: MintStatus.MINT_STATUS_REJECTED,
};

/** The domain name of a ListMints status filter; "" for UNSPECIFIED (all), "?" for numbers this server does not know. */
export function mintStatusName(value: MintStatus | number): string {
  if (value === MintStatus.MINT_STATUS_UNSPECIFIED) return "";
  for (const [name, v] of Object.entries(STATUS_TO_PROTO)) if (v === value) return name;
  return "?";
}

export function mintToProto(m: MintRecord): Mint {
  const a = m.approval;
  return {
    mintId: m.mintId,
    accountId: m.accountId,
    amount: formatMicros(m.amountMicros),
    blockchain: blockchainValue(m.blockchain),
    status: STATUS_TO_PROTO[m.status],
    idempotencyKey: callerIdempotencyKey(m.idempotencyKey),
    createTime: new Date(m.createWallMs),
    reverseTime: m.reverseWallMs === null ? undefined : new Date(m.reverseWallMs),
    reverseReason: m.reverseReason,
    settlement: NOT_REQUIRED,
    requester: m.requester ?? "",
    approvals: a === undefined ? [] : a.approvals.map((x) => ({ approver: x.approver, approveTime: new Date(x.wallMs) })),
    approvalExpireTime: a === undefined ? undefined : new Date(a.expireWallMs),
    rejectReason: a?.rejectReason ?? "",
    rejectedBy: a?.rejectedBy ?? "",
    rejectTime: a?.rejectWallMs == null ? undefined : new Date(a.rejectWallMs),
  };
}

/** Issue 15: a mint with no settlement (none configured for its chain, or cancelled before signing). */
const NOT_REQUIRED: SettlementProto = Object.freeze({
  state: SettlementState.SETTLEMENT_STATE_NOT_REQUIRED,
  txHashes: [],
  minedTxHash: "",
  blockNumber: 0,
  confirmations: 0,
  attempts: 0,
  lastError: "",
  nonce: undefined,
  waitReason: "",
  costWei: undefined,
}) as SettlementProto;

const STATE_VALUE: Record<Settlement["state"], SettlementState> = {
  PENDING: SettlementState.SETTLEMENT_STATE_PENDING,
  SUBMITTED: SettlementState.SETTLEMENT_STATE_SUBMITTED,
  CONFIRMED: SettlementState.SETTLEMENT_STATE_CONFIRMED,
  FAILED: SettlementState.SETTLEMENT_STATE_FAILED,
};

export function settlementStateValue(state: Settlement["state"]): SettlementState {
  return STATE_VALUE[state];
}

export function settlementToProto(s: Settlement | undefined): SettlementProto {
  if (s === undefined) return NOT_REQUIRED;
  return {
    state: STATE_VALUE[s.state],
    txHashes: s.txs.map((t) => t.hash),
    minedTxHash: s.minedHash ?? "",
    blockNumber: s.blockNumber === null ? 0 : Number(s.blockNumber),
    confirmations: s.confirmations,
    attempts: s.attempts,
    lastError: s.lastError,
    nonce: s.txs[0]?.nonce,
    waitReason: s.waitReason,
    costWei: s.costWei === null ? undefined : s.costWei.toString(),
  };
}

export function transferToProto(t: TransferRecord): Transfer {
  return {
    transferId: t.transferId,
    fromAccountId: t.fromAccountId,
    toAccountId: t.toAccountId,
    amount: formatMicros(t.amountMicros),
    createTime: new Date(t.createWallMs),
    idempotencyKey: callerIdempotencyKey(t.idempotencyKey),
  };
}

/** Issue 10: a sealed journal record on the wire (request and result as their canonical JSON). */
export function auditEventToProto(r: AuditRecord): AuditEvent {
  return {
    seq: r.seq,
    time: new Date(r.timeMs),
    principal: r.actor,
    action: r.action,
    idempotencyKey: r.idempotencyKey ?? "",
    requestJson: canonicalObjectJson(r.request),
    resultJson: canonicalObjectJson(r.result),
    accountIds: [...r.accounts],
    prevHash: r.prevHash,
    hash: r.hash,
  };
}

/** A request's optional time as wall ms; 0 when unset, -1 when not a valid time (refused by the core). */
export function wallMsOfTimestamp(t: Date | undefined): number {
  if (t === undefined) return 0;
  const ms = t.getTime();
  return Number.isFinite(ms) ? ms : -1;
}

// Issue 12.
export function redemptionToProto(r: RedemptionRecord): Redemption {
  return {
    redemptionId: r.redemptionId,
    accountId: r.accountId,
    amount: formatMicros(r.amountMicros),
    blockchain: blockchainValue(r.blockchain),
    idempotencyKey: r.idempotencyKey,
    actor: r.actor,
    createTime: new Date(r.createWallMs),
    // Issue 16: filled from the outbox by the handlers when the chain settles.
    settlement: NOT_REQUIRED,
  };
}

/** Reserve and headroom are empty strings until a reserve is set; pending approval is "0" when nothing waits. */
export function supplyToProto(s: SupplyState): Supply {
  return {
    supply: formatMicros(s.supplyMicros),
    reserve: s.reserveMicros === null ? "" : formatMicros(s.reserveMicros),
    headroom: s.headroomMicros === null ? "" : formatMicros(s.headroomMicros),
    attestationRef: s.attestationRef,
    pendingApproval: formatMicros(s.pendingApprovalMicros),
  };
}
