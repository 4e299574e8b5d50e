/**
 * The JSON form of a stored idempotency result (`idempotency_keys.result`).
 * JSON has no bigint, and a JSON number would round amounts above 2^53, so
 * money travels as a decimal string of micro-USDC.
 */
import { assert } from "../../domain/errors.js";
import { isBlockchain, type ApprovalState, type MintRecord, type RedemptionRecord, type StoredResult, type TransferRecord } from "../../domain/model.js";

interface MintJson {
  mintId: string;
  seq: number;
  accountId: string;
  amountMicros: string;
  blockchain: string;
  status: string;
  idempotencyKey: string;
  createWallMs: number;
  reverseWallMs: number | null;
  reverseReason: string;
  requester?: string;
  allowanceCharged?: boolean;
  approval?: ApprovalState;
}

interface TransferJson {
  transferId: string;
  fromAccountId: string;
  toAccountId: string;
  amountMicros: string;
  idempotencyKey: string;
  createWallMs: number;
}

interface RedemptionJson {
  redemptionId: string;
  accountId: string;
  amountMicros: string;
  blockchain: string;
  idempotencyKey: string;
  actor: string;
  createWallMs: number;
}

export type StoredResultJson = { scope: "mint"; mint: MintJson } | { scope: "transfer"; transfer: TransferJson } | { scope: "redeem"; redemption: RedemptionJson };

export function redemptionToJson(r: RedemptionRecord): RedemptionJson {
  return { ...r, amountMicros: r.amountMicros.toString() };
}

export function mintToJson(m: MintRecord): MintJson {
  return { ...m, amountMicros: m.amountMicros.toString() };
}

export function transferToJson(t: TransferRecord): TransferJson {
  return { ...t, amountMicros: t.amountMicros.toString() };
}

export function encodeStoredResult(r: StoredResult): StoredResultJson {
  if (r.scope === "redeem") return { scope: "redeem", redemption: redemptionToJson(r.redemption) };
  return r.scope === "mint" ? { scope: "mint", mint: mintToJson(r.mint) } : { scope: "transfer", transfer: transferToJson(r.transfer) };
}

function str(o: Record<string, unknown>, k: string): string {
  const v = o[k];
  assert(typeof v === "string", `stored result field ${k} is a string`);
  return v;
}

function num(o: Record<string, unknown>, k: string): number {
  const v = o[k];
  assert(typeof v === "number" && Number.isFinite(v), `stored result field ${k} is a number`);
  return v;
}

function obj(v: unknown, what: string): Record<string, unknown> {
  assert(typeof v === "object" && v !== null && !Array.isArray(v), `stored result ${what} is an object`);
  return v as Record<string, unknown>;
}

/** The approval and allowance fields of a stored mint, as written by `mintToJson` (plain JSON values). */
export function approvalFields(m: Record<string, unknown>): Pick<MintRecord, "requester" | "allowanceCharged" | "approval"> {
  const out: { requester?: string; allowanceCharged?: boolean; approval?: ApprovalState } = {};
  if (typeof m.requester === "string") out.requester = m.requester;
  if (typeof m.allowanceCharged === "boolean") out.allowanceCharged = m.allowanceCharged;
  if (m.approval !== undefined && m.approval !== null) out.approval = obj(m.approval, "approval") as unknown as ApprovalState;
  return out;
}

/** Parses a stored result; a malformed one is a broken invariant (the adapter wrote it). */
export function decodeStoredResult(json: unknown): StoredResult {
  const o = obj(json, "root");
  if (o.scope === "mint") {
    const m = obj(o.mint, "mint");
    const blockchain = str(m, "blockchain");
    const status = str(m, "status");
    assert(isBlockchain(blockchain), "stored mint blockchain is known");
    assert(status === "COMPLETED" || status === "REVERSED" || status === "PENDING_APPROVAL" || status === "REJECTED", "stored mint status is known");
    const reverse = m.reverseWallMs;
    assert(reverse === null || typeof reverse === "number", "stored mint reverseWallMs is a number or null");
    return {
      scope: "mint",
      mint: {
        mintId: str(m, "mintId"),
        seq: num(m, "seq"),
        accountId: str(m, "accountId"),
        amountMicros: BigInt(str(m, "amountMicros")),
        blockchain,
        status,
        idempotencyKey: str(m, "idempotencyKey"),
        createWallMs: num(m, "createWallMs"),
        reverseWallMs: reverse,
        reverseReason: str(m, "reverseReason"),
        ...approvalFields(m),
      },
    };
  }
  if (o.scope === "redeem") {
    const r = obj(o.redemption, "redemption");
    const blockchain = str(r, "blockchain");
    assert(isBlockchain(blockchain), "stored redemption blockchain is known");
    return {
      scope: "redeem",
      redemption: {
        redemptionId: str(r, "redemptionId"),
        accountId: str(r, "accountId"),
        amountMicros: BigInt(str(r, "amountMicros")),
        blockchain,
        idempotencyKey: str(r, "idempotencyKey"),
        actor: str(r, "actor"),
        createWallMs: num(r, "createWallMs"),
      },
    };
  }
  assert(o.scope === "transfer", "stored result scope is mint, transfer or redeem");
  const t = obj(o.transfer, "transfer");
  return {
    scope: "transfer",
    transfer: {
      transferId: str(t, "transferId"),
      fromAccountId: str(t, "fromAccountId"),
      toAccountId: str(t, "toAccountId"),
      amountMicros: BigInt(str(t, "amountMicros")),
      idempotencyKey: str(t, "idempotencyKey"),
      createWallMs: num(t, "createWallMs"),
    },
  };
}
