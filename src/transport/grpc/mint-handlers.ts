/**
 * One handler per RPC: proto in, domain call, proto out. Each is run by
 * `Edge.unary`, which answers exactly once and maps failures through the one
 * error table (status.ts). The hot RPCs (MintUsdc, Transfer, GetBalance)
 * answer with plain objects of the generated types, every field set, rather
 * than through `fromPartial`, which would copy each message once more.
 */
import {
  ApproveMintResponse,
  GetMinterAllowanceResponse,
  RejectMintResponse,
  SetMinterAllowanceResponse,
  type ApproveMintRequest,
  type GetMinterAllowanceRequest,
  type RejectMintRequest,
  type SetMinterAllowanceRequest,
  GetMintResponse,
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
import { blockchainName, mintStatusName, mintToProto, transferToProto } from "./convert.js";
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
      const r = await core.listMints({ accountId: req.accountId, pageSize: req.pageSize, pageToken: req.pageToken, status: mintStatusName(req.status) });
      return r.ok ? ok(ListMintsResponse.fromPartial({ mints: r.value.mints.map(mintToProto), nextPageToken: r.value.nextPageToken })) : r;
    }),

    reconcileMint: edge.unary("ReconcileMint", async (req: ReconcileMintRequest, ctx) => {
      const r = await core.reconcileMint(req.mintId, req.reason, ctx);
      return r.ok ? ok(ReconcileMintResponse.fromPartial({ mint: mintToProto(r.value) })) : r;
    }),

    // Issue 11.
    approveMint: edge.unary("ApproveMint", async (req: ApproveMintRequest, ctx) => {
      const r = await core.approveMint(req.mintId, ctx);
      return r.ok ? ok(ApproveMintResponse.fromPartial({ mint: mintToProto(r.value) })) : r;
    }),

    rejectMint: edge.unary("RejectMint", async (req: RejectMintRequest, ctx) => {
      const r = await core.rejectMint(req.mintId, req.reason, ctx);
      return r.ok ? ok(RejectMintResponse.fromPartial({ mint: mintToProto(r.value) })) : r;
    }),

    setMinterAllowance: edge.unary("SetMinterAllowance", async (req: SetMinterAllowanceRequest, ctx) => {
      const r = await core.setMinterAllowance(req.principal, req.amount, ctx);
      return r.ok ? ok(SetMinterAllowanceResponse.fromPartial({ principal: r.value.principal, allowance: formatMicros(r.value.allowanceMicros) })) : r;
    }),

    getMinterAllowance: edge.unary("GetMinterAllowance", async (req: GetMinterAllowanceRequest) => {
      const r = await core.getMinterAllowance(req.principal);
      return r.ok ? ok(GetMinterAllowanceResponse.fromPartial({ principal: r.value.principal, allowance: formatMicros(r.value.allowanceMicros) })) : r;
    }),
  };
}
