/** M-of-N approval of large mints: ApproveMint, RejectMint, and the expiry of pending mints. */
import { idScopeRefusal } from "./authorization.js";
import { journalOf, LOCAL_PRINCIPAL, SWEEPER_ACTOR, type CallContext, type CallPath } from "./call-path.js";
import type { MintRecord } from "./model.js";
import { fail, type Result } from "./result.js";
import * as v from "./validate.js";

/**
 * Approves a pending mint as the caller; the approval reaching
 * the required count completes it. Failures: INVALID_ARGUMENT,
 * MINT_NOT_FOUND, APPROVER_IS_REQUESTER, MINT_NOT_PENDING, DEADLINE_EXCEEDED.
 */
export async function approveMint(core: CallPath, mintIdText: string, ctx: CallContext): Promise<Result<MintRecord>> {
  const { deps } = core;
  const mintId = v.mintId(mintIdText);
  if (!mintId.ok) return mintId;
  const actor = ctx.principal?.name ?? LOCAL_PRINCIPAL;
  const mint = await deps.store.getMint(mintId.value);
  const refusal = idScopeRefusal(ctx.principal, "ApproveMint", "mint", mint?.accountId ?? null, { code: "MINT_NOT_FOUND", mintId: mintId.value });
  if (refusal !== undefined || mint === null) return fail(refusal ?? { code: "MINT_NOT_FOUND", mintId: mintId.value });
  // The approval that completes a mint on a settling chain goes through MintUsdc's settle path.
  const settle = deps.settlement?.required(mint.blockchain) === true;
  const journal = journalOf(actor, "ApproveMint", { mint_id: mintId.value }, [mint.accountId]);
  const r = await core.approvalStore().approveMint(mintId.value, actor, deps.clock.wallMs(), journal, ctx, settle, deps.reserveRequired === true);
  if (settle && r.ok && r.value.status === "COMPLETED") deps.settlement?.wake(mint.blockchain);
  return r;
}

/** Rejects a pending mint. Failures: INVALID_ARGUMENT, MINT_NOT_FOUND, MINT_NOT_PENDING, DEADLINE_EXCEEDED. */
export async function rejectMint(core: CallPath, mintIdText: string, reasonText: string, ctx: CallContext): Promise<Result<MintRecord>> {
  const { deps } = core;
  const mintId = v.mintId(mintIdText);
  if (!mintId.ok) return mintId;
  const reason = v.reason(reasonText);
  if (!reason.ok) return reason;
  const actor = ctx.principal?.name ?? LOCAL_PRINCIPAL;
  const mint = await deps.store.getMint(mintId.value);
  const refusal = idScopeRefusal(ctx.principal, "RejectMint", "mint", mint?.accountId ?? null, { code: "MINT_NOT_FOUND", mintId: mintId.value });
  if (refusal !== undefined || mint === null) return fail(refusal ?? { code: "MINT_NOT_FOUND", mintId: mintId.value });
  const journal = journalOf(actor, "RejectMint", { mint_id: mintId.value, reason: reason.value }, [mint.accountId]);
  return core.approvalStore().rejectMint(mintId.value, reason.value, actor, deps.clock.wallMs(), journal, ctx);
}

/**
 * Rejects, as expired, up to `limit` pending mints past their TTL; returns
 * how many it rejected (for the sweeper).
 */
export async function expirePending(core: CallPath, limit: number): Promise<number> {
  const store = core.deps.approvals?.store;
  if (store === undefined) return 0;
  const wallMs = core.deps.clock.wallMs();
  let rejected = 0;
  for (const mintId of await store.expiredPending(wallMs, limit)) {
    const journal = journalOf(SWEEPER_ACTOR, "ExpireMint", { mint_id: mintId }, []);
    const r = await store.rejectMint(mintId, "expired: not approved within MINT_APPROVAL_TTL", SWEEPER_ACTOR, wallMs, journal, { deadlineMs: Infinity });
    if (r.ok) rejected++;
  }
  return rejected;
}
