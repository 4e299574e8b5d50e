/**
 * What the auth link decides for one call, before anything else runs: who is
 * calling (a verified client certificate and/or `authorization: Bearer …`),
 * and whether that principal holds the RPC's role and a scope over the
 * accounts the request names. A refused call has touched nothing: no lock,
 * no key, no limiter.
 *
 * GetMint, ReconcileMint, ApproveMint, RejectMint and GetRedemption name a
 * mint or redemption by id, not an account; their role is checked here and
 * the scope over its account by the core once it has looked it up (before it
 * changes anything), answering an unknown id and an out-of-scope one alike
 * (idScopeRefusal).
 */
import type { Metadata } from "@grpc/grpc-js";
import type { AuthContext } from "@grpc/grpc-js/build/src/auth-context.js";
import type {
  FreezeAccountRequest,
  GetBalanceRequest,
  ListAuditEventsRequest,
  ListMintsRequest,
  ListRedemptionsRequest,
  MintUsdcRequest,
  RedeemUsdcRequest,
  TransferRequest,
} from "../../../gen/usdc/mint/v1/mint.js";
import type { AuthnResult } from "../../auth/authenticate.js";
import type { Security } from "../../auth/security.js";
import { verifiedPeerSans } from "../../auth/tls.js";
import { ALL_ACCOUNTS, authorize, isRpc, type Principal, type Rpc } from "../../domain/authorization.js";
import type { Failure } from "../../domain/errors.js";
import type { Answer, Link } from "./chain.js";
import type { EdgeFailure } from "./status.js";

/** The accounts each RPC's scope applies to, read from its request (README "Roles"). */
export const SCOPE_ACCOUNTS: { readonly [R in Rpc]: (request: unknown) => readonly string[] } = {
  MintUsdc: (r) => [(r as MintUsdcRequest).accountId],
  Transfer: (r) => [(r as TransferRequest).fromAccountId],
  GetBalance: (r) => [(r as GetBalanceRequest).accountId],
  ListMints: (r) => [(r as ListMintsRequest).accountId === "" ? ALL_ACCOUNTS : (r as ListMintsRequest).accountId],
  GetMint: () => [],
  ReconcileMint: () => [],
  // A whole chain's totals: the role decides, no account is named.
  ReconcileChain: () => [],
  // An auditor reads one account's records, or (scope *) all of them and the whole chain.
  ListAuditEvents: (r) => [(r as ListAuditEventsRequest).accountId === "" ? ALL_ACCOUNTS : (r as ListAuditEventsRequest).accountId],
  VerifyAuditChain: () => [ALL_ACCOUNTS],
  // The mint's account is checked by the core once it has looked the mint up.
  ApproveMint: () => [],
  RejectMint: () => [],
  SetMinterAllowance: () => [],
  GetMinterAllowance: () => [],
  // Reserve, redemption, freeze.
  SetReserve: () => [],
  GetSupply: () => [],
  RedeemUsdc: (r) => [(r as RedeemUsdcRequest).accountId],
  // The redemption's account is checked by the core once it has looked the redemption up.
  GetRedemption: () => [],
  ListRedemptions: (r) => [(r as ListRedemptionsRequest).accountId === "" ? ALL_ACCOUNTS : (r as ListRedemptionsRequest).accountId],
  FreezeAccount: (r) => [(r as FreezeAccountRequest).accountId],
  UnfreezeAccount: (r) => [(r as FreezeAccountRequest).accountId],
  // Each account filtered on must be in scope; without a filter the stream itself leaves out what the scopes do not cover.
  WatchLedger: (r) => (r as { accountIds: string[] }).accountIds,
  // Each item's account is checked by the core, item by item (an item outside the scopes fails alone).
  BatchMint: () => [],
  BatchTransfer: () => [],
};

export type AuthFailure = Extract<EdgeFailure, { code: "UNAUTHENTICATED" }> | Extract<Failure, { code: "PERMISSION_DENIED" }>;

export type AuthCheck = { readonly ok: true; readonly principal: Principal } | { readonly ok: false; readonly error: AuthFailure };

/** Who is calling, from the call's metadata and its verified peer certificate. */
export function identifyCall(security: Security, metadata: Metadata, raw: { getAuthContext(): AuthContext | null }): AuthnResult {
  const values = metadata.get("authorization");
  if (values.length > 1) {
    return { ok: false, code: "UNAUTHENTICATED", reason: "MALFORMED_AUTHORIZATION", message: "send one authorization metadata value, not several" };
  }
  const authorization = values.length === 1 ? (typeof values[0] === "string" ? values[0] : "") : undefined;
  return security.identify({ authorization, verifiedCertificateSans: verifiedPeerSans(raw) });
}

/**
 * Authenticates and authorizes one call. `raw` is the grpc-js call (for the
 * peer certificate); `metadata` its headers. Metadata with several
 * `authorization` values is refused as malformed; over the network that
 * cannot happen: Node's http2 keeps only the first value of a repeated
 * `authorization` header in the headers grpc-js reads, so of two values the
 * first decides (README "Two `authorization` values"; pinned by
 * test/python/auth_scenario.py).
 */
export function checkCall(security: Security, rpc: Rpc, request: unknown, metadata: Metadata, raw: { getAuthContext(): AuthContext | null }): AuthCheck {
  const who = identifyCall(security, metadata, raw);
  if (!who.ok) return { ok: false, error: { code: "UNAUTHENTICATED", rpc, reason: who.reason, message: who.message } };
  const decision = authorize(who.principal, rpc, SCOPE_ACCOUNTS[rpc](request));
  if (!decision.ok) {
    return {
      ok: false,
      error:
        decision.missingRole !== undefined
          ? { code: "PERMISSION_DENIED", rpc, principal: who.principal.name, missingRole: decision.missingRole }
          : { code: "PERMISSION_DENIED", rpc, principal: who.principal.name, missingScope: decision.missingScope ?? "" },
    };
  }
  return { ok: true, principal: who.principal };
}

/**
 * The auth link: decides who is calling and whether they may make this call,
 * before any link that does work (the in-flight count, the deadline) and long
 * before the core (locks, keys, the limiter). A call it refuses has touched
 * nothing. The principal goes on the call, where the handler hands it to the
 * core; an RPC missing from the role table is refused (deny by default).
 */
export function authLink(security: Security): Link {
  return (call, next) => {
    if (!isRpc(call.rpc)) {
      return { ok: false, error: { code: "PERMISSION_DENIED", rpc: call.rpc, principal: "", missingRole: "(none grants it)" } } satisfies Answer;
    }
    const checked = checkCall(security, call.rpc, call.request, call.metadata, call.raw);
    if (!checked.ok) return { ok: false, error: checked.error } satisfies Answer;
    call.principal = checked.principal;
    return next(call);
  };
}
