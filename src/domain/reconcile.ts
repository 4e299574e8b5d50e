/** ReconcileMint: reverses a mint (an operator's correction) and frees its idempotency key. */
import { coversAllAccounts, idScopeRefusal } from "./authorization.js";
import { LOCAL_ACTOR, reversalEntry } from "./audit.js";
import type { CallContext, CallPath } from "./call-path.js";
import type { MintRecord } from "./model.js";
import { fail, type Result } from "./result.js";
import * as v from "./validate.js";

/**
 * Reverses a mint and frees its idempotency key.
 * Failures: INVALID_ARGUMENT, MINT_NOT_FOUND, PERMISSION_DENIED, MINT_ALREADY_REVERSED, INSUFFICIENT_FUNDS, DEADLINE_EXCEEDED.
 */
export async function reconcileMint(core: CallPath, mintIdText: string, reasonText: string, ctx: CallContext): Promise<Result<MintRecord>> {
  const { deps, metrics } = core;
  const mintId = v.mintId(mintIdText);
  if (!mintId.ok) return mintId;
  const reason = v.reason(reasonText);
  if (!reason.ok) return reason;
  // The edge checked the role; the scope needs the mint's account, known
  // only after a lookup, and is checked before anything changes. A mint's
  // account never changes, so the lookup and the reversal cannot disagree.
  // A caller whose scopes cover every account needs no lookup.
  // A caller without it gets one PERMISSION_DENIED for an out-of-scope and an unknown mint.
  const principal = ctx.principal;
  if (principal !== undefined && !coversAllAccounts(principal)) {
    const mint = await deps.store.getMint(mintId.value);
    const refusal = idScopeRefusal(principal, "ReconcileMint", "mint", mint?.accountId ?? null, { code: "MINT_NOT_FOUND", mintId: mintId.value });
    if (refusal !== undefined) return fail(refusal);
  }
  // No account lock: the store reverses and frees the mint's key in one
  // atomic step, so neither a same-key retry nor a mint still in flight can
  // see the ledger and the key disagree.
  const reversed = await deps.store.reverseMint(mintId.value, reason.value, deps.clock.wallMs(), ctx, reversalEntry(ctx.principal?.name ?? LOCAL_ACTOR, mintId.value, reason.value));
  if (reversed.ok) metrics.moneyMoved("reversal", reversed.value.amountMicros);
  return reversed;
}
