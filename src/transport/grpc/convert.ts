/** Proto <-> domain conversions. Money leaves as a canonical decimal string, formatted once here. */
import { Blockchain, MintStatus, type Mint, type Transfer } from "../../../gen/usdc/mint/v1/mint.js";
import { isBlockchain, type Blockchain as DomainBlockchain, type MintRecord, type TransferRecord } from "../../domain/model.js";
import { formatMicros } from "../../domain/money.js";

const PREFIX = "BLOCKCHAIN_";

/** The domain name of a proto enum number; "" for UNSPECIFIED or numbers this server does not know. */
export function blockchainName(value: Blockchain | number): string {
  const name = (Blockchain as unknown as Record<number, string | undefined>)[value];
  if (name === undefined || !name.startsWith(PREFIX)) return "";
  const short = name.slice(PREFIX.length);
  return isBlockchain(short) ? short : "";
}

function blockchainValue(name: DomainBlockchain): Blockchain {
  return (Blockchain as unknown as Record<string, Blockchain>)[PREFIX + name] as Blockchain;
}

export function mintToProto(m: MintRecord): Mint {
  return {
    mintId: m.mintId,
    accountId: m.accountId,
    amount: formatMicros(m.amountMicros),
    blockchain: blockchainValue(m.blockchain),
    status: m.status === "COMPLETED" ? MintStatus.MINT_STATUS_COMPLETED : MintStatus.MINT_STATUS_REVERSED,
    idempotencyKey: m.idempotencyKey,
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
    idempotencyKey: t.idempotencyKey,
  };
}
