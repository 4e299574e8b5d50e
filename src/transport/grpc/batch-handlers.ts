/**
 * BatchMint and BatchTransfer: proto in, the core's batch call, one result
 * per item out. Each is run by `Edge.unary` like every unary RPC (auth,
 * deadline, in-flight cap, logging, metrics: one batch is one call); an
 * item's failure is encoded as the `google.rpc.Status` its unary call would
 * carry in its status trailer, through the same error table (status.ts),
 * with the call's request id in its ErrorInfo as the unary call has it.
 */
import { Status } from "../../../gen/google/rpc/status.js";
import type {
  BatchMintRequest,
  BatchMintResponse,
  BatchMintResult,
  BatchTransferRequest,
  BatchTransferResponse,
  BatchTransferResult,
  Mint,
  MintServiceServer,
} from "../../../gen/usdc/mint/v1/mint.js";
import type { BatchLimits, ItemFailure, MintCore } from "../../domain/mint-core.js";
import type { MintRecord } from "../../domain/model.js";
import { ok } from "../../domain/result.js";
import type { SettlementReads } from "../../domain/settlement/reads.js";
import type { ServiceMetrics } from "../../observability/metrics.js";
import { blockchainName, mintToProto, settlementToProto, transferToProto } from "./convert.js";
import type { Edge } from "./edge.js";
import { addRequestIdToErrorInfo } from "./request-id.js";
import { failureToStatus, STATUS_DETAILS_KEY } from "./status.js";

export interface BatchHandlerOptions extends BatchLimits {
  /** Counts each item's outcome (usdc_mint_batch_items_total); absent when metrics are off. */
  readonly metrics?: ServiceMetrics;
  readonly settlement?: SettlementReads;
}

/** The google.rpc.Status of one item's failure, as the unary call's trailer would carry it. */
function itemStatus(failure: ItemFailure, requestId: string | undefined): Status {
  const rich = failureToStatus(failure);
  if (requestId !== undefined) addRequestIdToErrorInfo(rich, requestId);
  return Status.decode(rich.metadata.get(STATUS_DETAILS_KEY)[0] as Buffer);
}

/** Encodes item failures, once per failure object (an atomic refusal shares one among every other item). */
function statusCache(requestId: string | undefined): (failure: ItemFailure) => Status {
  const built = new Map<ItemFailure, Status>();
  return (failure) => {
    let s = built.get(failure);
    if (s === undefined) {
      s = itemStatus(failure, requestId);
      built.set(failure, s);
    }
    return s;
  };
}

export function batchHandlers(core: MintCore, edge: Edge, opts: BatchHandlerOptions): Pick<MintServiceServer, "batchMint" | "batchTransfer"> {
  const limits: BatchLimits = { maxItems: opts.maxItems };
  const { metrics, settlement } = opts;
  /** The mints' settlements, looked up together; none without settlement configured. */
  const settlements = async (mints: readonly MintRecord[]): Promise<Map<string, Mint["settlement"]>> => {
    const out = new Map<string, Mint["settlement"]>();
    if (settlement === undefined) return out;
    const ids = mints.filter((m) => settlement.required(m.blockchain)).map((m) => m.mintId);
    if (ids.length === 0) return out;
    for (const [id, s] of await settlement.getMany(ids)) out.set(id, settlementToProto(s));
    return out;
  };
  return {
    batchMint: edge.unary("BatchMint", async (req: BatchMintRequest, ctx) => {
      const items = req.items.map((i) => ({ accountId: i.accountId, amount: i.amount, blockchain: blockchainName(i.blockchain), idempotencyKey: i.idempotencyKey }));
      const r = await core.batchMint({ items }, limits, ctx);
      if (!r.ok) return r;
      const statusOf = statusCache(ctx.values.requestId);
      const found = await settlements(r.value.flatMap((i) => (i.ok ? [i.value.mint] : [])));
      const results = r.value.map((item): BatchMintResult => {
        if (!item.ok) return { response: undefined, error: statusOf(item.error) };
        const mint = mintToProto(item.value.mint);
        const s = found.get(mint.mintId);
        return { response: { mint: s === undefined ? mint : { ...mint, settlement: s }, replayed: item.value.replayed }, error: undefined };
      });
      if (metrics !== undefined) for (const x of results) metrics.batchItem("BatchMint", x.error?.code ?? 0);
      return ok<BatchMintResponse>({ results });
    }),

    batchTransfer: edge.unary("BatchTransfer", async (req: BatchTransferRequest, ctx) => {
      const items = req.items.map((i) => ({ fromAccountId: i.fromAccountId, toAccountId: i.toAccountId, amount: i.amount, idempotencyKey: i.idempotencyKey }));
      const r = await core.batchTransfer({ items, atomic: req.atomic }, limits, ctx);
      if (!r.ok) return r;
      const statusOf = statusCache(ctx.values.requestId);
      const results = r.value.items.map(
        (item): BatchTransferResult =>
          item.ok
            ? { response: { transfer: transferToProto(item.value.transfer), replayed: item.value.replayed }, error: undefined }
            : { response: undefined, error: statusOf(item.error) },
      );
      if (metrics !== undefined) for (const x of results) metrics.batchItem("BatchTransfer", x.error?.code ?? 0);
      return ok<BatchTransferResponse>({ results, refusedItem: r.value.refusedItem });
    }),
  };
}
