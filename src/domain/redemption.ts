/**
 * Redemption: RedeemUsdc takes money out of circulation (burned on-chain
 * through the settlement worker on a settling chain); GetRedemption and
 * ListRedemptions read it back.
 */
import { idScopeRefusal } from "./authorization.js";
import { LOCAL_PRINCIPAL, moneyCallInput, type CallContext, type CallPath } from "./call-path.js";
import type { Failure } from "./errors.js";
import type { JournalEntry } from "./journal.js";
import { redeemRequest, redeemStoreKey, type RedemptionRecord } from "./model.js";
import { encodePageToken } from "./page-token.js";
import { pageOf, type ListMintsInput } from "./paging.js";
import { fail, ok, type Result } from "./result.js";
import * as v from "./validate.js";

export interface RedeemUsdcInput {
  readonly accountId: string;
  readonly amount: string;
  /** Proto enum name without the BLOCKCHAIN_ prefix; "" when unset. */
  readonly blockchain: string;
  readonly idempotencyKey: string;
}

/**
 * Debits the account and takes the amount out of circulation. The key is
 * scoped to this RPC and the caller. On a chain that settles on-chain
 * the store queues the redemption's burn in the same atomic step
 * and the worker is woken; a burn the chain refuses is credited back by the
 * worker, and the key keeps answering that redemption. Failures:
 * INVALID_ARGUMENT, IDEMPOTENCY_*, INSUFFICIENT_FUNDS, ACCOUNT_FROZEN,
 * DEADLINE_EXCEEDED.
 */
export async function redeemUsdc(core: CallPath, input: RedeemUsdcInput, ctx: CallContext): Promise<Result<{ redemption: RedemptionRecord; replayed: boolean }>> {
  const { deps } = core;
  const parsed = moneyCallInput(input, deps.maxAmountMicros);
  if (!parsed.ok) return parsed;
  const { accountId, amountMicros, blockchain, key } = parsed.value;
  const actor = ctx.principal?.name ?? LOCAL_PRINCIPAL;
  const request = redeemRequest(accountId, amountMicros, blockchain);
  const accounts = [accountId];
  const journal: JournalEntry = { actor, action: "RedeemUsdc", idempotencyKey: key, request, accounts };
  // On a settling chain the redemption burns from the treasury through the settlement worker.
  const settle = deps.settlement?.required(blockchain) === true;
  const r = await core.keyed({ scope: "redeem", key: redeemStoreKey(actor, key), request, accounts, journal }, ctx, {
    kind: "redeem",
    cmd: {
      redemptionId: core.ids.redemptionId(),
      accountId,
      amountMicros,
      blockchain,
      idempotencyKey: key,
      actor,
      createWallMs: deps.clock.wallMs(),
    },
    journal,
    ...(settle ? { settle } : {}),
  });
  if (!r.ok) {
    // The store key carries the caller's name; errors show the caller's own key.
    const e = r.error;
    if (e.code === "IDEMPOTENCY_KEY_REUSED" || e.code === "IDEMPOTENCY_KEY_IN_USE") return fail({ ...e, key: key });
    return r;
  }
  const stored = r.value.stored;
  if (stored.scope !== "redeem") throw new Error("invariant violated: a redeem key holds a non-redeem result");
  if (settle && !r.value.replayed) deps.settlement?.wake(blockchain);
  return ok({ redemption: stored.redemption, replayed: r.value.replayed });
}

/**
 * Scoped over the redemption's account, as GetMint is over the mint's.
 * Failures: INVALID_ARGUMENT, REDEMPTION_NOT_FOUND (no principal, or scope
 * `*`), PERMISSION_DENIED (out of scope or unknown, one answer: idScopeRefusal).
 */
export async function getRedemption(core: CallPath, redemptionIdText: string, ctx?: Pick<CallContext, "principal">): Promise<Result<RedemptionRecord>> {
  const id = v.redemptionId(redemptionIdText);
  if (!id.ok) return id;
  const r = await core.deps.store.getRedemption(id.value);
  const notFound: Failure = { code: "REDEMPTION_NOT_FOUND", redemptionId: id.value };
  const refusal = idScopeRefusal(ctx?.principal, "GetRedemption", "redemption", r?.accountId ?? null, notFound);
  return refusal !== undefined || r === null ? fail(refusal ?? notFound) : ok(r);
}

/** Oldest first, paged like ListMints. Failures: INVALID_ARGUMENT. */
export async function listRedemptions(core: CallPath, input: ListMintsInput): Promise<Result<{ redemptions: RedemptionRecord[]; nextPageToken: string }>> {
  const page = pageOf(input, redemptionTokenFilter(input.accountId));
  if (!page.ok) return page;
  const rows = await core.deps.store.listRedemptions({ accountId: page.value.accountId, afterSeq: page.value.afterSeq, limit: page.value.limit + 1 });
  const items = rows.slice(0, page.value.limit);
  const last = items[items.length - 1];
  const nextPageToken = rows.length > page.value.limit && last !== undefined ? encodePageToken(last.seq, redemptionTokenFilter(input.accountId)) : "";
  return ok({ redemptions: items.map((i) => i.redemption), nextPageToken });
}

/**
 * What a ListRedemptions page token is bound to: its account filter, tagged so
 * that it never equals a ListMints filter (account ids contain no NUL).
 */
function redemptionTokenFilter(accountId: string): string {
  return `redemptions\u0000${accountId}`;
}
