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
  ReconcileChainResponse,
  type Mint,
  type Redemption,
  type ReconcileChainRequest,
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
import { ok, type Result } from "../../domain/result.js";
import { invalid } from "../../domain/errors.js";
import { fail } from "../../domain/result.js";
import { isBlockchain, type MintRecord, type RedemptionRecord } from "../../domain/model.js";
import { ChainUnavailableError } from "../../domain/settlement/ports.js";
import type { SettlementReads } from "../../domain/settlement/reads.js";
import {
  auditEventToProto,
  blockchainName,
  blockchainValue,
  mintStatusName,
  mintToProto,
  redemptionToProto,
  settlementStateValue,
  settlementToProto,
  supplyToProto,
  transferToProto,
  wallMsOfTimestamp,
} from "./convert.js";
import { andThen } from "./chain.js";
import type { Edge } from "./edge.js";

/** Every unary RPC; the server adds WatchLedger (watch-handler.ts), which is a stream. */
export function mintServiceHandlers(core: MintCore, edge: Edge, settlement?: SettlementReads): Omit<MintServiceServer, "watchLedger"> {
  /** Mints with their settlement; without settlement configured, no lookups at all. */
  const withSettlement = async (mints: readonly MintRecord[]): Promise<Mint[]> => {
    const out = mints.map(mintToProto);
    if (settlement === undefined) return out;
    const ids = mints.filter((m) => settlement.required(m.blockchain)).map((m) => m.mintId);
    if (ids.length === 0) return out;
    const found = await settlement.getMany(ids);
    return out.map((m) => (found.has(m.mintId) ? { ...m, settlement: settlementToProto(found.get(m.mintId)) } : m));
  };
  const one = async (m: MintRecord): Promise<Mint> => (await withSettlement([m]))[0] as Mint;
  /** Redemptions with their burn's settlement, the same way. */
  const redemptionsWithSettlement = async (list: readonly RedemptionRecord[]): Promise<Redemption[]> => {
    const out = list.map(redemptionToProto);
    if (settlement === undefined) return out;
    const ids = list.filter((r) => settlement.required(r.blockchain)).map((r) => r.redemptionId);
    if (ids.length === 0) return out;
    const found = await settlement.getMany(ids);
    return out.map((r) => (found.has(r.redemptionId) ? { ...r, settlement: settlementToProto(found.get(r.redemptionId)) } : r));
  };
  const oneRedemption = async (r: RedemptionRecord): Promise<Redemption> => (await redemptionsWithSettlement([r]))[0] as Redemption;
  return {
    // The hot RPCs answer the core's result as it comes: a value when nothing
    // waited (the edge then answers without a promise turn), else a promise.
    mintUsdc: edge.unary("MintUsdc", (req: MintUsdcRequest, ctx) =>
      andThen(
        core.mintUsdc({ accountId: req.accountId, amount: req.amount, blockchain: blockchainName(req.blockchain), idempotencyKey: req.idempotencyKey }, ctx),
        (r): Result<MintUsdcResponse> | Promise<Result<MintUsdcResponse>> => {
          if (!r.ok) return r;
          const replayed = r.value.replayed;
          // Without settlement no lookup, so no promise.
          if (settlement === undefined) return ok<MintUsdcResponse>({ mint: mintToProto(r.value.mint), replayed });
          return one(r.value.mint).then((mint) => ok<MintUsdcResponse>({ mint, replayed }));
        },
      ),
    ),

    transfer: edge.unary("Transfer", (req: TransferRequest, ctx) =>
      andThen(
        core.transfer({ fromAccountId: req.fromAccountId, toAccountId: req.toAccountId, amount: req.amount, idempotencyKey: req.idempotencyKey }, ctx),
        (r): Result<TransferResponse> => (r.ok ? ok<TransferResponse>({ transfer: transferToProto(r.value.transfer), replayed: r.value.replayed }) : r),
      ),
    ),

    getBalance: edge.unary("GetBalance", (req: GetBalanceRequest) =>
      // The account's state (frozen) comes with the balance in one read.
      andThen(
        core.getAccount(req.accountId),
        (r): Result<GetBalanceResponse> =>
          r.ok
            ? ok<GetBalanceResponse>({
                accountId: r.value.accountId,
                balance: formatMicros(r.value.balanceMicros),
                pendingBalance: formatMicros(r.value.pendingMicros),
                frozen: r.value.frozen,
                freezeReason: r.value.freezeReason,
              })
            : r,
      ),
    ),

    getMint: edge.unary("GetMint", async (req: GetMintRequest, ctx) => {
      const r = await core.getMint(req.mintId, ctx);
      return r.ok ? ok(GetMintResponse.fromPartial({ mint: await one(r.value) })) : r;
    }),

    listMints: edge.unary("ListMints", async (req: ListMintsRequest) => {
      const r = await core.listMints({ accountId: req.accountId, pageSize: req.pageSize, pageToken: req.pageToken, status: mintStatusName(req.status) });
      return r.ok ? ok(ListMintsResponse.fromPartial({ mints: await withSettlement(r.value.mints), nextPageToken: r.value.nextPageToken })) : r;
    }),

    reconcileMint: edge.unary("ReconcileMint", async (req: ReconcileMintRequest, ctx) => {
      const r = await core.reconcileMint(req.mintId, req.reason, ctx);
      return r.ok ? ok(ReconcileMintResponse.fromPartial({ mint: await one(r.value) })) : r;
    }),

    // Redemption burns and chain reconciliation.
    reconcileChain: edge.unary("ReconcileChain", async (req: ReconcileChainRequest) => {
      const name = blockchainName(req.blockchain);
      if (!isBlockchain(name)) return fail(invalid("INVALID_BLOCKCHAIN", "blockchain", "blockchain must be set to a known chain"));
      let report;
      try {
        report = settlement === undefined ? null : await settlement.reconcile(name);
      } catch (err) {
        if (err instanceof ChainUnavailableError) return fail({ code: "CHAIN_UNAVAILABLE", blockchain: name, message: err.message });
        throw err;
      }
      if (report === null) return fail({ code: "SETTLEMENT_NOT_CONFIGURED", blockchain: name });
      return ok(
        ReconcileChainResponse.fromPartial({
          blockchain: blockchainValue(report.blockchain),
          agree: report.agree,
          totalSupply: formatMicros(report.totalSupplyMicros),
          treasuryBalance: formatMicros(report.treasuryBalanceMicros),
          confirmedSum: formatMicros(report.confirmedSumMicros),
          headBlock: Number(report.headBlock),
          differences: report.differences.map((d) => ({
            mintId: d.kind === "mint" ? d.settlementId : "",
            redemptionId: d.kind === "burn" ? d.settlementId : "",
            ledgerState: d.ledgerState === null ? 0 : settlementStateValue(d.ledgerState),
            chainState: d.chainState,
            txHash: d.txHash ?? "",
          })),
        }),
      );
    }),

    // The audit journal.
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

    // M-of-N approval and minter allowances.
    approveMint: edge.unary("ApproveMint", async (req: ApproveMintRequest, ctx) => {
      const r = await core.approveMint(req.mintId, ctx);
      return r.ok ? ok(ApproveMintResponse.fromPartial({ mint: await one(r.value) })) : r;
    }),

    rejectMint: edge.unary("RejectMint", async (req: RejectMintRequest, ctx) => {
      const r = await core.rejectMint(req.mintId, req.reason, ctx);
      return r.ok ? ok(RejectMintResponse.fromPartial({ mint: mintToProto(r.value) })) : r;
    }),

    setMinterAllowance: edge.unary("SetMinterAllowance", async (req: SetMinterAllowanceRequest, ctx) => {
      const r = await core.setMinterAllowance(req.principal, req.amount, ctx, req.expectedAmount);
      return r.ok ? ok(SetMinterAllowanceResponse.fromPartial({ principal: r.value.principal, allowance: formatMicros(r.value.allowanceMicros) })) : r;
    }),

    getMinterAllowance: edge.unary("GetMinterAllowance", async (req: GetMinterAllowanceRequest) => {
      const r = await core.getMinterAllowance(req.principal);
      return r.ok ? ok(GetMinterAllowanceResponse.fromPartial({ principal: r.value.principal, allowance: formatMicros(r.value.allowanceMicros) })) : r;
    }),

    // Reserve, redemption, freeze.
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
      return r.ok ? ok<RedeemUsdcResponse>({ redemption: await oneRedemption(r.value.redemption), replayed: r.value.replayed }) : r;
    }),

    getRedemption: edge.unary("GetRedemption", async (req: GetRedemptionRequest, ctx) => {
      const r = await core.getRedemption(req.redemptionId, ctx);
      return r.ok ? ok<GetRedemptionResponse>({ redemption: await oneRedemption(r.value) }) : r;
    }),

    listRedemptions: edge.unary("ListRedemptions", async (req: ListRedemptionsRequest) => {
      const r = await core.listRedemptions({ accountId: req.accountId, pageSize: req.pageSize, pageToken: req.pageToken });
      return r.ok ? ok<ListRedemptionsResponse>({ redemptions: await redemptionsWithSettlement(r.value.redemptions), nextPageToken: r.value.nextPageToken }) : r;
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
