/** Rows of the ledger's tables and the records they map to. */
import { approvalFields } from "../stored-result-codec.js";
import { assert } from "../../../domain/errors.js";
import { isBlockchain, type MintRecord, type RedemptionRecord, type SupplyState } from "../../../domain/model.js";
import { supplyState } from "../../../domain/reserve.js";

/**
 * ListMints never returns more than this many rows, whatever it is asked: the
 * largest page (1000) plus the one look-ahead row by which the core learns
 * that another page exists (capping at 1000 dropped the next_page_token of a
 * full 1000-mint page).
 */
export const LIST_MINTS_MAX_LIMIT = 1001;

export const MINT_COLUMNS = `mint_id, seq::text AS seq, account_id, amount::text AS amount, blockchain, status,
  idempotency_key, create_time, reverse_time, reverse_reason, requester, allowance_charged, approval`;

export interface MintRow {
  mint_id: string;
  seq: string;
  account_id: string;
  amount: string;
  blockchain: string;
  status: string;
  idempotency_key: string;
  create_time: Date;
  reverse_time: Date | null;
  reverse_reason: string;
  requester: string | null;
  allowance_charged: boolean;
  approval: unknown;
}

export function mintFromRow(r: MintRow): MintRecord {
  assert(isBlockchain(r.blockchain), `mint ${r.mint_id} has a known blockchain`);
  assert(
    r.status === "COMPLETED" || r.status === "REVERSED" || r.status === "PENDING_APPROVAL" || r.status === "REJECTED",
    `mint ${r.mint_id} has a known status`,
  );
  const base: MintRecord = {
    mintId: r.mint_id,
    seq: Number(r.seq),
    accountId: r.account_id,
    amountMicros: BigInt(r.amount),
    blockchain: r.blockchain,
    status: r.status,
    idempotencyKey: r.idempotency_key,
    createWallMs: r.create_time.getTime(),
    reverseWallMs: r.reverse_time === null ? null : r.reverse_time.getTime(),
    reverseReason: r.reverse_reason,
  };
  if (r.requester === null) return base;
  return { ...base, ...approvalFields({ requester: r.requester, allowanceCharged: r.allowance_charged, approval: r.approval }) };
}

export interface SupplyRow {
  supply: string;
  reserve: string | null;
  attestation_ref: string;
  /** Absent where only the reserve check reads the row. */
  pending_approval?: string;
}

export function supplyFromRow(r: SupplyRow | undefined): SupplyState {
  assert(r !== undefined, "the supply row exists (migration 1201)");
  return supplyState(BigInt(r.supply), r.reserve === null ? null : BigInt(r.reserve), r.attestation_ref, BigInt(r.pending_approval ?? "0"));
}

export const REDEMPTION_COLUMNS = `seq::text AS seq, redemption_id, account_id, amount::text AS amount, blockchain, idempotency_key, actor, create_time, recredit_time, recredit_reason`;

export interface RedemptionRow {
  seq: string;
  redemption_id: string;
  account_id: string;
  amount: string;
  blockchain: string;
  idempotency_key: string;
  actor: string;
  create_time: Date;
  recredit_time: Date | null;
  recredit_reason: string;
}

export function redemptionFromRow(r: RedemptionRow): RedemptionRecord {
  assert(isBlockchain(r.blockchain), `redemption ${r.redemption_id} has a known blockchain`);
  const out: RedemptionRecord = {
    redemptionId: r.redemption_id,
    accountId: r.account_id,
    amountMicros: BigInt(r.amount),
    blockchain: r.blockchain,
    idempotencyKey: r.idempotency_key,
    actor: r.actor,
    createWallMs: r.create_time.getTime(),
  };
  // Re-credited after its burn failed on-chain.
  return r.recredit_time === null ? out : { ...out, recreditWallMs: r.recredit_time.getTime(), recreditReason: r.recredit_reason };
}
