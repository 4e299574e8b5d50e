/** Account reads: the balance, and the account's state (frozen) with its pending (not yet settled) credit. */
import type { CallPath } from "./call-path.js";
import type { AccountState } from "./model.js";
import { isPromise, ok, type MaybePromise, type Result } from "./result.js";
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

/**
 * Balance in micro-USDC; 0 for unknown accounts. Failures: INVALID_ARGUMENT.
 * A value when the store has the balance at hand (memory).
 */
export function getBalance(core: CallPath, accountIdText: string): MaybePromise<Result<{ accountId: string; balanceMicros: bigint; pendingMicros: bigint }>> {
  const accountId = v.accountId(accountIdText);
  if (!accountId.ok) return accountId;
  const { deps } = core;
  const store = deps.store;
  const id = accountId.value;
  // Pending money exists only with settlement configured; without it the hot read stays one query.
  const pending = deps.settlement !== undefined && store.getPendingBalance !== undefined ? store.getPendingBalance(id) : 0n;
  const balance = store.getBalance(id);
  if (isPromise(balance) || isPromise(pending)) {
    return Promise.all([balance, pending]).then(([balanceMicros, pendingMicros]) => ok({ accountId: id, balanceMicros, pendingMicros }));
  }
  return ok({ accountId: id, balanceMicros: balance, pendingMicros: pending });
}
