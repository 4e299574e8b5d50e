/** Minter allowances: what each minter may still mint, read and set by a reserve manager. */
import { journalOf, LOCAL_PRINCIPAL, type CallContext, type CallPath } from "./call-path.js";
import { MAX_STORABLE_MICROS, parseAmount } from "./money.js";
import { fail, ok, type Result } from "./result.js";
import * as v from "./validate.js";

/** An allowance amount: the mint amount grammar, "0" allowed, up to what numeric(38,0) holds. */
function parseAllowance(text: string, field: "amount" | "expected_amount"): Result<bigint> {
  if (text === "0") return ok(0n);
  return parseAmount(text, MAX_STORABLE_MICROS, field);
}

/** What is left of a minter's allowance. Failures: INVALID_ARGUMENT. */
export async function getMinterAllowance(core: CallPath, principalText: string): Promise<Result<{ principal: string; allowanceMicros: bigint }>> {
  const principal = v.accountId(principalText, "principal");
  if (!principal.ok) return principal;
  return ok({ principal: principal.value, allowanceMicros: await core.approvalStore().getAllowance(principal.value) });
}

/**
 * Sets what is left of a minter's allowance ("0" revokes). The Set is the
 * final word: refunds of mints charged before it never raise the value it
 * set. `expectedText` (optional) makes it a compare-and-set on what is left
 * now. Failures: INVALID_ARGUMENT (principal, amount, expected_amount),
 * SELF_ALLOWANCE (the caller names itself, unless `selfAllowance` is on),
 * ALLOWANCE_CHANGED (what is left is not `expectedText`), STORE_BUSY.
 */
export async function setMinterAllowance(
  core: CallPath,
  principalText: string,
  amountText: string,
  ctx: CallContext,
  expectedText?: string,
): Promise<Result<{ principal: string; allowanceMicros: bigint }>> {
  const principal = v.accountId(principalText, "principal");
  if (!principal.ok) return principal;
  const amount = parseAllowance(amountText, "amount");
  if (!amount.ok) return amount;
  const amountMicros = amount.value;
  let expectedMicros: bigint | undefined;
  if (expectedText !== undefined) {
    const expected = parseAllowance(expectedText, "expected_amount");
    if (!expected.ok) return expected;
    expectedMicros = expected.value;
  }
  const actor = ctx.principal?.name ?? LOCAL_PRINCIPAL;
  if (actor === principal.value && core.deps.approvals?.selfAllowance !== true) return fail({ code: "SELF_ALLOWANCE", principal: actor });
  const request: Record<string, string> = { principal: principal.value, amount: amountMicros.toString() };
  if (expectedMicros !== undefined) request.expected_amount = expectedMicros.toString();
  const set = await core.approvalStore().setAllowance(principal.value, amountMicros, journalOf(actor, "SetMinterAllowance", request, []), core.deps.clock.wallMs(), expectedMicros);
  if (!set.ok) return set;
  return ok({ principal: principal.value, allowanceMicros: amountMicros });
}
