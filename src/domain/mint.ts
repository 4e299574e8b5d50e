/**
 * Minting: MintUsdc (validated, rate-limited, exactly once per key; held for
 * approval or charged to the minter's allowance when configured) and the
 * mint reads, GetMint and ListMints.
 */
import { idScopeRefusal, scopedIdempotencyKey } from "./authorization.js";
import { journalEntry, LOCAL_PRINCIPAL, moneyCallInput, type CallContext, type CallPath } from "./call-path.js";
import type { Failure } from "./errors.js";
import { UnavailableError } from "./errors.js";
import { mintRequest, type MintRecord, type NewMint, type StoredResult } from "./model.js";
import { encodePageToken } from "./page-token.js";
import { pageOf, type ListMintsInput } from "./paging.js";
import type { Effect } from "./ports.js";
import { fail, ok, type Result } from "./result.js";
import * as v from "./validate.js";

export interface MintUsdcInput {
  readonly accountId: string;
  readonly amount: string;
  /** Proto enum name without the BLOCKCHAIN_ prefix; "" when unset. */
  readonly blockchain: string;
  readonly idempotencyKey: string;
}

/** Failures: INVALID_ARGUMENT, IDEMPOTENCY_KEY_REUSED/IN_USE, IDEMPOTENCY_STORE_FULL, RATE_LIMITED, DEADLINE_EXCEEDED. */
export async function mintUsdc(core: CallPath, input: MintUsdcInput, ctx: CallContext): Promise<Result<{ mint: MintRecord; replayed: boolean }>> {
  const { deps, metrics } = core;
  const parsed = moneyCallInput(input, deps.maxAmountMicros);
  if (!parsed.ok) return parsed;
  const { accountId, amountMicros, blockchain, key } = parsed.value;
  // The record keeps the caller-scoped key, so that a reconcile frees the right one.
  const storeKey = scopedIdempotencyKey(ctx.principal, key);

  const limiter = deps.limiter;
  let counted = false;
  const admit = async (): Promise<Result<void>> => {
    const decision = await limiter.tryAcquire(accountId);
    if (!decision.allowed) {
      metrics.rateLimited();
      return fail({
        code: "RATE_LIMITED",
        accountId,
        retryAfterMs: decision.retryAfterMs,
        limit: limiter.limit,
        windowMs: limiter.windowMs,
      });
    }
    counted = true;
    return ok(undefined);
  };
  const settle = deps.settlement?.required(blockchain) === true;
  const effect: Effect = {
    kind: "mint",
    reserveRequired: deps.reserveRequired === true,
    cmd: withApproval(
      core,
      {
        mintId: core.ids.mintId(),
        accountId,
        amountMicros,
        blockchain,
        idempotencyKey: storeKey,
        createWallMs: deps.clock.wallMs(),
        settle,
      },
      ctx,
    ),
  };
  let r: Result<{ stored: StoredResult; replayed: boolean }>;
  try {
    const request = mintRequest(accountId, amountMicros, blockchain);
    const accounts = [accountId];
    // A store that admits before it knows the key gives a replay's slot back here.
    const unadmit = async (): Promise<void> => {
      if (!counted) return;
      counted = false;
      await core.giveBack(accountId);
    };
    r = await core.keyed({ scope: "mint", key: storeKey, request, accounts, journal: journalEntry(ctx, "MintUsdc", key, request, accounts), unadmit }, ctx, effect, admit);
  } catch (err) {
    if (counted && err instanceof UnavailableError && err.notApplied) await core.giveBack(accountId);
    throw err;
  }
  // A returned failure never applied anything: the slot goes back.
  if (!r.ok && counted) await core.giveBack(accountId);
  if (!r.ok) return r;
  const stored = r.value.stored;
  if (stored.scope !== "mint") throw new Error("invariant violated: a mint key holds a non-mint result");
  if (r.value.replayed) metrics.idempotentReplay("mint");
  else metrics.moneyMoved("mint", stored.mint.amountMicros);
  if (settle && !r.value.replayed) deps.settlement?.wake(blockchain);
  // A replay of a mint that went through approval answers the mint as it is now.
  if (r.value.replayed && stored.mint.approval !== undefined) {
    return ok({ mint: (await deps.store.getMint(stored.mint.mintId)) ?? stored.mint, replayed: true });
  }
  return ok({ mint: stored.mint, replayed: r.value.replayed });
}

/** The mint command with the approval requester, pending state and allowance charge, when configured. */
function withApproval(core: CallPath, cmd: NewMint, ctx: CallContext): NewMint {
  const a = core.deps.approvals;
  if (a === undefined) return cmd;
  const pending = a.thresholdMicros !== null && cmd.amountMicros >= a.thresholdMicros;
  if (!pending && !a.allowances) return cmd;
  const out: NewMint = { ...cmd, requester: ctx.principal?.name ?? LOCAL_PRINCIPAL, chargeAllowance: a.allowances };
  return pending ? { ...out, pending: { required: a.required, expireWallMs: cmd.createWallMs + a.ttlMs } } : out;
}

/**
 * Failures: INVALID_ARGUMENT, MINT_NOT_FOUND (no principal, or scope `*`),
 * PERMISSION_DENIED (the mint's account is outside the caller's scopes, or
 * no such mint: one answer, idScopeRefusal).
 */
export async function getMint(core: CallPath, mintIdText: string, ctx?: Pick<CallContext, "principal">): Promise<Result<MintRecord>> {
  const mintId = v.mintId(mintIdText);
  if (!mintId.ok) return mintId;
  const mint = await core.deps.store.getMint(mintId.value);
  const notFound: Failure = { code: "MINT_NOT_FOUND", mintId: mintId.value };
  const refusal = idScopeRefusal(ctx?.principal, "GetMint", "mint", mint?.accountId ?? null, notFound);
  return refusal !== undefined || mint === null ? fail(refusal ?? notFound) : ok(mint);
}

/** Oldest first. Failures: INVALID_ARGUMENT (account id, page size < 0, page token not ours). */
export async function listMints(core: CallPath, input: ListMintsInput): Promise<Result<{ mints: MintRecord[]; nextPageToken: string }>> {
  const page = pageOf(input);
  if (!page.ok) return page;
  const { accountId, afterSeq, limit, status } = page.value;
  // One extra row tells whether another page exists, so the last page has no token.
  const rows = await core.deps.store.listMints(status === undefined ? { accountId, afterSeq, limit: limit + 1 } : { accountId, afterSeq, limit: limit + 1, status });
  const mints = rows.slice(0, limit);
  const last = mints[mints.length - 1];
  const nextPageToken = rows.length > limit && last !== undefined ? encodePageToken(last.seq, input.accountId) : "";
  return ok({ mints, nextPageToken });
}
