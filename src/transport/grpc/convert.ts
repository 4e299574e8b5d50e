/** Proto <-> domain conversions. Money leaves as a canonical decimal string, formatted once here. */
import { Blockchain, MintStatus, type Mint, type Transfer } from "../../../gen/usdc/mint/v1/mint.js";
import { callerIdempotencyKey } from "../../domain/authorization.js";
import { BLOCKCHAINS, type Blockchain as DomainBlockchain, type MintRecord, type TransferRecord } from "../../domain/model.js";
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

function blockchainValue(name: DomainBlockchain): Blockchain {
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
    requester: m.requester ?? "",
    approvals: a === undefined ? [] : a.approvals.map((x) => ({ approver: x.approver, approveTime: new Date(x.wallMs) })),
    approvalExpireTime: a === undefined ? undefined : new Date(a.expireWallMs),
    rejectReason: a?.rejectReason ?? "",
    rejectedBy: a?.rejectedBy ?? "",
    rejectTime: a?.rejectWallMs == null ? undefined : new Date(a.rejectWallMs),
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
