/**
 * Minting: MintUsdc (validated, rate-limited, exactly once per key; held for
 * approval or charged to the minter's allowance when configured) and the
 * mint reads, GetMint and ListMints.
 */
import { idScopeRefusal, scopedIdempotencyKey } from "./authorization.js";
import { journalEntry, LOCAL_PRINCIPAL, moneyCallInput, type CallContext, type CallPath, type KeyedOp } from "./call-path.js";
import type { Failure } from "./errors.js";
import { UnavailableError } from "./errors.js";
import { mintRequest, type Blockchain, type MintRecord, type NewMint, type StoredResult } from "./model.js";
import { encodePageToken } from "./page-token.js";
import { pageOf, type ListMintsInput } from "./paging.js";
import type { Effect, LimitDecision } from "./ports.js";
import { fail, isPromise, ok, type MaybePromise, type Result } from "./result.js";
import * as v from "./validate.js";

export interface MintUsdcInput {
  readonly accountId: string;
  readonly amount: string;
  /** Proto enum name without the BLOCKCHAIN_ prefix; "" when unset. */
  readonly blockchain: string;
  readonly idempotencyKey: string;
}

/**
 * Failures: INVALID_ARGUMENT, IDEMPOTENCY_KEY_REUSED/IN_USE, IDEMPOTENCY_STORE_FULL, RATE_LIMITED, DEADLINE_EXCEEDED.
 * A value when nothing waited (see `CallPath.keyed`); errors always come as a rejected promise.
 */
export function mintUsdc(core: CallPath, input: MintUsdcInput, ctx: CallContext): MaybePromise<Result<{ mint: MintRecord; replayed: boolean }>> {
  const { deps, metrics } = core;
  const parsed = moneyCallInput(input, deps.maxAmountMicros);
  if (!parsed.ok) return parsed;
  const { accountId, amountMicros, blockchain, key } = parsed.value;
  // The record keeps the caller-scoped key, so that a reconcile frees the right one.
  const storeKey = scopedIdempotencyKey(ctx.principal, key);

  const limiter = deps.limiter;
  // Whether the limiter counted this mint (a slot to give back if nothing is applied).
  let counted = false;
  const admit = (): MaybePromise<Result<void>> => {
    const decision = limiter.tryAcquire(accountId);
    if (isPromise(decision)) {
      return decision.then((d) => {
        counted = d.allowed;
        return admission(core, accountId, d);
      });
    }
    counted = decision.allowed;
    return admission(core, accountId, decision);
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
  let r: MaybePromise<Result<{ stored: StoredResult; replayed: boolean }>>;
  try {
    const request = mintRequest(accountId, amountMicros, blockchain);
    const accounts = [accountId];
    const journal = journalEntry(ctx, "MintUsdc", key, request, accounts);
    // A store that admits before it knows the key (a grouping one) gives a replay's slot back through `unadmit`.
    const op: KeyedOp =
      deps.store.groupsCalls === undefined
        ? { scope: "mint", key: storeKey, request, accounts, journal }
        : {
            scope: "mint",
            key: storeKey,
            request,
            accounts,
            journal,
            unadmit: async (): Promise<void> => {
              if (!counted) return;
              counted = false;
              await core.giveBack(accountId);
            },
          };
    r = core.keyed(op, ctx, effect, admit);
  } catch (err) {
    return mintThrew(core, accountId, counted, err);
  }
  if (!isPromise(r)) return minted(core, r, counted, accountId, settle ? blockchain : null);
  return r.then(
    (settled) => minted(core, settled, counted, accountId, settle ? blockchain : null),
    (err: unknown) => mintThrew(core, accountId, counted, err),
  );
}

/** The limiter's decision as the mint's admission: RATE_LIMITED (counted in the metrics) or go on. */
function admission(core: CallPath, accountId: string, decision: LimitDecision): Result<void> {
  if (decision.allowed) return OK_VOID;
  core.metrics.rateLimited();
  const limiter = core.deps.limiter;
  return fail({ code: "RATE_LIMITED", accountId, retryAfterMs: decision.retryAfterMs, limit: limiter.limit, windowMs: limiter.windowMs });
}

/**
 * The answer of a mint the store answered: metrics, the settlement worker's
 * wake-up (`settling`: the chain it settles on), and the limiter slot given
 * back after a returned failure (which never applied anything).
 */
function minted(
  core: CallPath,
  r: Result<{ stored: StoredResult; replayed: boolean }>,
  counted: boolean,
  accountId: string,
  settling: Blockchain | null,
): MaybePromise<Result<{ mint: MintRecord; replayed: boolean }>> {
  if (!r.ok) return counted ? core.giveBack(accountId).then(() => r) : r;
  const { metrics, deps } = core;
  const stored = r.value.stored;
  if (stored.scope !== "mint") throw new Error("invariant violated: a mint key holds a non-mint result");
  if (r.value.replayed) metrics.idempotentReplay("mint");
  else metrics.moneyMoved("mint", stored.mint.amountMicros);
  if (settling !== null && !r.value.replayed) deps.settlement?.wake(settling);
  // A replay of a mint that went through approval answers the mint as it is now.
  if (r.value.replayed && stored.mint.approval !== undefined) return mintAsItIsNow(core, stored.mint);
  return ok({ mint: stored.mint, replayed: r.value.replayed });
}

/** A store error: the slot goes back when the mint is known not applied; the error always comes as a rejected promise. */
async function mintThrew(core: CallPath, accountId: string, counted: boolean, err: unknown): Promise<never> {
  if (counted && err instanceof UnavailableError && err.notApplied) await core.giveBack(accountId);
  throw err;
}

const OK_VOID: Result<void> = ok(undefined);

/** A replayed mint that went through approval, as it is now. */
async function mintAsItIsNow(core: CallPath, mint: MintRecord): Promise<Result<{ mint: MintRecord; replayed: boolean }>> {
  return ok({ mint: (await core.deps.store.getMint(mint.mintId)) ?? mint, replayed: true });
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
