/** Account reads: the balance, and the account's state (frozen) with its pending (not yet settled) credit. */
import type { CallPath } from "./call-path.js";
import type { AccountState } from "./model.js";
import { ok, type Result } from "./result.js";
import * as v from "./validate.js";

/**
 * Balance, frozen state and pending balance; an unknown
 * account is 0 and not frozen. Failures: INVALID_ARGUMENT.
 */
export async function getAccount(core: CallPath, accountIdText: string): Promise<Result<AccountState & { pendingMicros: bigint }>> {
  const accountId = v.accountId(accountIdText);
  if (!accountId.ok) return accountId;
  const { deps } = core;
  const store = deps.store;
  // Pending money exists only with settlement configured; without it the hot read stays one query.
  const [account, pendingMicros] = await Promise.all([
    store.getAccount(accountId.value),
    deps.settlement !== undefined && store.getPendingBalance !== undefined ? store.getPendingBalance(accountId.value) : 0n,
  ]);
  return ok({ ...account, pendingMicros });
}

/** Balance in micro-USDC; 0 for unknown accounts. Failures: INVALID_ARGUMENT. */
export async function getBalance(core: CallPath, accountIdText: string): Promise<Result<{ accountId: string; balanceMicros: bigint; pendingMicros: bigint }>> {
  const accountId = v.accountId(accountIdText);
  if (!accountId.ok) return accountId;
  const { deps } = core;
  const store = deps.store;
  // Pending money exists only with settlement configured; without it the hot read stays one query.
  const [balanceMicros, pendingMicros] = await Promise.all([
    store.getBalance(accountId.value),
    deps.settlement !== undefined && store.getPendingBalance !== undefined ? store.getPendingBalance(accountId.value) : 0n,
  ]);
  return ok({ accountId: accountId.value, balanceMicros, pendingMicros });
}
