/**
 * What the auth link decides for one call, before anything else runs: who is
 * calling (a verified client certificate and/or `authorization: Bearer …`),
 * and whether that principal holds the RPC's role and a scope over the
 * accounts the request names. A refused call has touched nothing: no lock,
 * no key, no limiter.
 *
 * GetMint and ReconcileMint name a mint, not an account; their role is
 * checked here and the scope over the mint's account by the core once it has
 * looked the mint up (before it changes anything).
 */
import type { Metadata } from "@grpc/grpc-js";
import type { AuthContext } from "@grpc/grpc-js/build/src/auth-context.js";
import type { GetBalanceRequest, ListMintsRequest, MintUsdcRequest, TransferRequest } from "../../../gen/usdc/mint/v1/mint.js";
import type { UnauthenticatedReason } from "../../auth/authenticate.js";
import type { Security } from "../../auth/security.js";
import { verifiedPeerSans } from "../../auth/tls.js";
import { ALL_ACCOUNTS, authorize, type Principal, type Role, type Rpc } from "../../domain/authorization.js";

/** The accounts each RPC's scope applies to, read from its request (README "Roles"). */
export const SCOPE_ACCOUNTS: { readonly [R in Rpc]: (request: unknown) => readonly string[] } = {
  MintUsdc: (r) => [(r as MintUsdcRequest).accountId],
  Transfer: (r) => [(r as TransferRequest).fromAccountId],
  GetBalance: (r) => [(r as GetBalanceRequest).accountId],
  ListMints: (r) => [(r as ListMintsRequest).accountId === "" ? ALL_ACCOUNTS : (r as ListMintsRequest).accountId],
  GetMint: () => [],
  ReconcileMint: () => [],
};

export type AuthFailure =
  | { readonly code: "UNAUTHENTICATED"; readonly rpc: string; readonly reason: UnauthenticatedReason; readonly message: string }
  | { readonly code: "PERMISSION_DENIED"; readonly rpc: string; readonly principal: string; readonly missingRole?: Role; readonly missingScope?: string };

export type AuthCheck = { readonly ok: true; readonly principal: Principal } | { readonly ok: false; readonly error: AuthFailure };

/**
 * Authenticates and authorizes one call. `raw` is the grpc-js call (for the
 * peer certificate); `metadata` its headers. Only the first `authorization`
 * value counts; several are refused as malformed.
 */
export function checkCall(security: Security, rpc: Rpc, request: unknown, metadata: Metadata, raw: { getAuthContext(): AuthContext | null }): AuthCheck {
  const values = metadata.get("authorization");
  if (values.length > 1) {
    return { ok: false, error: { code: "UNAUTHENTICATED", rpc, reason: "MALFORMED_AUTHORIZATION", message: "send one authorization metadata value, not several" } };
  }
  const authorization = values.length === 1 ? (typeof values[0] === "string" ? values[0] : "") : undefined;
  const who = security.identify({ authorization, verifiedCertificateSans: verifiedPeerSans(raw) });
  if (!who.ok) return { ok: false, error: { code: "UNAUTHENTICATED", rpc, reason: who.reason, message: who.message } };
  const decision = authorize(who.principal, rpc, SCOPE_ACCOUNTS[rpc](request));
  if (!decision.ok) {
    return {
      ok: false,
      error: { code: "PERMISSION_DENIED", rpc, principal: who.principal.name, missingRole: decision.missingRole, missingScope: decision.missingScope },
    };
  }
  return { ok: true, principal: who.principal };
}
