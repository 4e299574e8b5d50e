/**
 * One handler per RPC: proto in, domain call, proto out. Each is run by
 * `Edge.unary`, which answers exactly once and maps failures through the one
 * error table (status.ts). The hot RPCs (MintUsdc, Transfer, GetBalance)
 * answer with plain objects of the generated types, every field set, rather
 * than through `fromPartial`, which would copy each message once more.
 */
import {
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
  type FreezeAccountRequest,
  type FreezeAccountResponse,
  type GetRedemptionRequest,
  type GetRedemptionResponse,
  type GetSupplyResponse,
  type ListRedemptionsRequest,
  type ListRedemptionsResponse,
  type RedeemUsdcRequest,
  type RedeemUsdcResponse,
  type SetReserveRequest,
  type SetReserveResponse,
  type UnfreezeAccountRequest,
  type UnfreezeAccountResponse,
} from "../../../gen/usdc/mint/v1/mint.js";
import type { MintCore } from "../../domain/mint-core.js";
import { formatMicros } from "../../domain/money.js";
import { ok } from "../../domain/result.js";
import { blockchainName, mintToProto, redemptionToProto, supplyToProto, transferToProto } from "./convert.js";
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
      // The account's state (issue 12: frozen) comes with the balance in one read.
      const r = await core.getAccount(req.accountId);
      return r.ok
        ? ok<GetBalanceResponse>({ accountId: r.value.accountId, balance: formatMicros(r.value.balanceMicros), frozen: r.value.frozen, freezeReason: r.value.freezeReason })
        : r;
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

    // Issue 12: reserve, redemption, freeze.
    setReserve: edge.unary("SetReserve", async (req: SetReserveRequest, ctx) => {
      const r = await core.setReserve({ amount: req.amount, attestationRef: req.attestationRef }, ctx);
      return r.ok ? ok<SetReserveResponse>({ supply: supplyToProto(r.value) }) : r;
    }),

    getSupply: edge.unary("GetSupply", async () => ok<GetSupplyResponse>({ supply: supplyToProto(await core.getSupply()) })),

    redeemUsdc: edge.unary("RedeemUsdc", async (req: RedeemUsdcRequest, ctx) => {
      const r = await core.redeemUsdc(
        { accountId: req.accountId, amount: req.amount, blockchain: blockchainName(req.blockchain), idempotencyKey: req.idempotencyKey },
        ctx,
      );
      return r.ok ? ok<RedeemUsdcResponse>({ redemption: redemptionToProto(r.value.redemption), replayed: r.value.replayed }) : r;
    }),

    getRedemption: edge.unary("GetRedemption", async (req: GetRedemptionRequest) => {
      const r = await core.getRedemption(req.redemptionId);
      return r.ok ? ok<GetRedemptionResponse>({ redemption: redemptionToProto(r.value) }) : r;
    }),

    listRedemptions: edge.unary("ListRedemptions", async (req: ListRedemptionsRequest) => {
      const r = await core.listRedemptions({ accountId: req.accountId, pageSize: req.pageSize, pageToken: req.pageToken });
      return r.ok ? ok<ListRedemptionsResponse>({ redemptions: r.value.redemptions.map(redemptionToProto), nextPageToken: r.value.nextPageToken }) : r;
    }),

    freezeAccount: edge.unary("FreezeAccount", async (req: FreezeAccountRequest, ctx) => {
      const r = await core.setFrozen(req.accountId, true, req.reason, ctx);
      return r.ok ? ok<FreezeAccountResponse>({ accountId: r.value.accountId, balance: formatMicros(r.value.balanceMicros), frozen: r.value.frozen }) : r;
    }),

    unfreezeAccount: edge.unary("UnfreezeAccount", async (req: UnfreezeAccountRequest, ctx) => {
      const r = await core.setFrozen(req.accountId, false, req.reason, ctx);
      return r.ok ? ok<UnfreezeAccountResponse>({ accountId: r.value.accountId, balance: formatMicros(r.value.balanceMicros), frozen: r.value.frozen }) : r;
    }),
  };
}
