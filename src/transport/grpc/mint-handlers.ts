/**
 * One handler per RPC: proto in, domain call, proto out. Each is run by
 * `Edge.unary`, which answers exactly once and maps failures through the one
 * error table (status.ts). The hot RPCs (MintUsdc, Transfer, GetBalance)
 * answer with plain objects of the generated types, every field set, rather
 * than through `fromPartial`, which would copy each message once more.
 */
import {
  GetMintResponse,
  ListAuditEventsResponse,
  VerifyAuditChainResponse,
  type ListAuditEventsRequest,
  type VerifyAuditChainRequest,
  ListMintsResponse,
  ReconcileMintResponse,
  type GetBalanceRequest,
  type GetBalanceResponse,
  type GetMintRequest,
  type ListMintsRequest,
  type MintServiceServer,
  type MintUsdcRequest,
  type MintUsdcResponse,
  type ReconcileMintRequest,
  type TransferRequest,
  type TransferResponse,
} from "../../../gen/usdc/mint/v1/mint.js";
import type { MintCore } from "../../domain/mint-core.js";
import { formatMicros } from "../../domain/money.js";
import { ok } from "../../domain/result.js";
import { auditEventToProto, blockchainName, mintToProto, transferToProto, wallMsOfTimestamp } from "./convert.js";
import type { Edge } from "./edge.js";

export function mintServiceHandlers(core: MintCore, edge: Edge): MintServiceServer {
  return {
    mintUsdc: edge.unary("MintUsdc", async (req: MintUsdcRequest, ctx) => {
      const r = await core.mintUsdc(
        { accountId: req.accountId, amount: req.amount, blockchain: blockchainName(req.blockchain), idempotencyKey: req.idempotencyKey },
        ctx,
      );
      return r.ok ? ok<MintUsdcResponse>({ mint: mintToProto(r.value.mint), replayed: r.value.replayed }) : r;
    }),

    transfer: edge.unary("Transfer", async (req: TransferRequest, ctx) => {
      const r = await core.transfer(
        { fromAccountId: req.fromAccountId, toAccountId: req.toAccountId, amount: req.amount, idempotencyKey: req.idempotencyKey },
        ctx,
      );
      return r.ok ? ok<TransferResponse>({ transfer: transferToProto(r.value.transfer), replayed: r.value.replayed }) : r;
    }),

    getBalance: edge.unary("GetBalance", async (req: GetBalanceRequest) => {
      const r = await core.getBalance(req.accountId);
      return r.ok ? ok<GetBalanceResponse>({ accountId: r.value.accountId, balance: formatMicros(r.value.balanceMicros) }) : r;
    }),

    getMint: edge.unary("GetMint", async (req: GetMintRequest, ctx) => {
      const r = await core.getMint(req.mintId, ctx);
      return r.ok ? ok(GetMintResponse.fromPartial({ mint: mintToProto(r.value) })) : r;
    }),

    listMints: edge.unary("ListMints", async (req: ListMintsRequest) => {
      const r = await core.listMints({ accountId: req.accountId, pageSize: req.pageSize, pageToken: req.pageToken });
      return r.ok ? ok(ListMintsResponse.fromPartial({ mints: r.value.mints.map(mintToProto), nextPageToken: r.value.nextPageToken })) : r;
    }),

    reconcileMint: edge.unary("ReconcileMint", async (req: ReconcileMintRequest, ctx) => {
      const r = await core.reconcileMint(req.mintId, req.reason, ctx);
      return r.ok ? ok(ReconcileMintResponse.fromPartial({ mint: mintToProto(r.value) })) : r;
    }),

    // Issue 10: the audit journal.
    listAuditEvents: edge.unary("ListAuditEvents", async (req: ListAuditEventsRequest) => {
      const r = await core.listAuditEvents({
        accountId: req.accountId,
        principal: req.principal,
        startWallMs: wallMsOfTimestamp(req.startTime),
        endWallMs: wallMsOfTimestamp(req.endTime),
        pageSize: req.pageSize,
        pageToken: req.pageToken,
      });
      return r.ok ? ok(ListAuditEventsResponse.fromPartial({ events: r.value.events.map(auditEventToProto), nextPageToken: r.value.nextPageToken })) : r;
    }),

    verifyAuditChain: edge.unary("VerifyAuditChain", async (req: VerifyAuditChainRequest) => {
      const r = await core.verifyAuditChain(req.fromSeq, req.toSeq);
      if (!r.ok) return r;
      const v = r.value;
      return ok(
        VerifyAuditChainResponse.fromPartial(
          v.whole
            ? { whole: true, checked: v.checked, firstSeq: v.firstSeq, lastSeq: v.lastSeq, headHash: v.headHash, unsealed: v.unsealed }
            : { whole: false, checked: v.checked, brokenSeq: v.brokenSeq, reason: v.reason },
        ),
      );
    }),
  };
}
