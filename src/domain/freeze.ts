/** Freezing: a frozen account neither receives nor sends (FreezeAccount, UnfreezeAccount). */
import { LOCAL_PRINCIPAL, type CallContext, type CallPath } from "./call-path.js";
import type { AccountState } from "./model.js";
import type { Result } from "./result.js";
import * as v from "./validate.js";

/** Freezes (or unfreezes) an account, known or not. Failures: INVALID_ARGUMENT, DEADLINE_EXCEEDED. */
export async function setFrozen(core: CallPath, accountIdText: string, frozen: boolean, reasonText: string, ctx: CallContext): Promise<Result<AccountState>> {
  const accountId = v.accountId(accountIdText);
  if (!accountId.ok) return accountId;
  const reason = v.reason(reasonText);
  if (!reason.ok) return reason;
  const actor = ctx.principal?.name ?? LOCAL_PRINCIPAL;
  // No account lock: the store's own atomic step orders the freeze against
  // the calls in flight on the account (see ExactlyOnceStore.setFrozen).
  return core.deps.store.setFrozen(
    accountId.value,
    frozen,
    reason.value,
    { actor, action: frozen ? "FreezeAccount" : "UnfreezeAccount", idempotencyKey: null, request: { account_id: accountId.value, reason: reason.value }, accounts: [accountId.value] },
    ctx,
  );
}
