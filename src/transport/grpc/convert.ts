/** Proto <-> domain conversions. Money leaves as a canonical decimal string, formatted once here. */
import { Blockchain, MintStatus, type Mint, type Redemption, type Supply, type Transfer } from "../../../gen/usdc/mint/v1/mint.js";
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

function blockchainValue(name: DomainBlockchain): Blockchain {
  return VALUE_BY_NAME.get(name) as Blockchain;
}

export function mintToProto(m: MintRecord): Mint {
  return {
    mintId: m.mintId,
    accountId: m.accountId,
    amount: formatMicros(m.amountMicros),
    blockchain: blockchainValue(m.blockchain),
    status: m.status === "COMPLETED" ? MintStatus.MINT_STATUS_COMPLETED : MintStatus.MINT_STATUS_REVERSED,
    idempotencyKey: callerIdempotencyKey(m.idempotencyKey),
    createTime: new Date(m.createWallMs),
    reverseTime: m.reverseWallMs === null ? undefined : new Date(m.reverseWallMs),
    reverseReason: m.reverseReason,
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
  };
}

/** Reserve and headroom are empty strings until a reserve is set. */
export function supplyToProto(s: SupplyState): Supply {
  return {
    supply: formatMicros(s.supplyMicros),
    reserve: s.reserveMicros === null ? "" : formatMicros(s.reserveMicros),
    headroom: s.headroomMicros === null ? "" : formatMicros(s.headroomMicros),
    attestationRef: s.attestationRef,
  };
}
