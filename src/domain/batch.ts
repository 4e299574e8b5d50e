/**
 * BatchMint and BatchTransfer: many movements per call, one result per item.
 *
 * Each item goes through its unary feature module (`mintUsdc`, `transfer`),
 * one after another in request order, so every rule of the unary call
 * applies item by item: validation, the item's account scope (checked here
 * as the edge checks it for the unary call, since the batch names many
 * accounts), locks, the key (shared with the unary call's key space), the
 * limiter, allowances, approval, reserve, freeze and settlement. An item's
 * failure is its own result; the others go on.
 *
 * On a store that groups calls (`KeyedStore.groupsCalls`, PostgreSQL group
 * commit) the items are started together instead, in request order and
 * with one context of the batch's own (`isBatchContext`), and awaited
 * together: the store applies the calls made with it in the order they came, in as few groups as its
 * group size allows, each with its own answer, so the outcome is the one
 * sequential application gives. A run of items started together ends before
 * an item whose key an earlier item of the run holds (it must see that
 * item's outcome), and an item the store does not group (a mint held for
 * approval, charged to an allowance or settling on-chain) runs alone, after
 * the items before it and before the ones after it.
 *
 * An all-or-none BatchTransfer validates every item first, locks every
 * account of the batch, and hands the whole batch to the store's
 * `applyAllOrNone`, which applies every fresh item in one atomic step or none.
 *
 * A batch runs on the event loop for as long as its items take (about the
 * per-item µs in bench/LATEST.md times the items); MINT_BATCH_MAX_ITEMS
 * bounds that.
 */
import { authorize, type Rpc } from "./authorization.js";
import type { CallContext, CallPath } from "./call-path.js";
import { invalid, UnavailableError, type Failure } from "./errors.js";
import { mintUsdc, type MintUsdcInput } from "./mint.js";
import type { MintRecord, TransferRecord } from "./model.js";
import type { Effect, KeyedCall } from "./ports.js";
import { parseAmount } from "./money.js";
import * as v from "./validate.js";
import { fail, ok, type MaybePromise, type Result } from "./result.js";
import { countTransfer, prepareTransfer, transfer, type TransferInput } from "./transfer.js";

/**
 * An item's failure: a core failure, or the store could not be reached
 * (the unary call's STORE_UNAVAILABLE: the outcome of that item may be
 * unknown; a retry with the same key is always safe).
 */
export type ItemFailure = Failure | { readonly code: "STORE_UNAVAILABLE" };

/** One item's outcome. */
export type ItemResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: ItemFailure };

export interface BatchMintInput {
  readonly items: readonly MintUsdcInput[];
}

export interface BatchTransferInput {
  readonly items: readonly TransferInput[];
  /** All or none (see `batchTransfer`). */
  readonly atomic: boolean;
}

/** The limits of one batch call, from the service's settings. */
export interface BatchLimits {
  /** Most items per call (MINT_BATCH_MAX_ITEMS). */
  readonly maxItems: number;
}

export type MintItem = ItemResult<{ mint: MintRecord; replayed: boolean }>;
export type TransferItem = ItemResult<{ transfer: TransferRecord; replayed: boolean }>;

/**
 * Applies each mint as MintUsdc would, in order. Whole-call failures (nothing
 * applied): INVALID_ARGUMENT EMPTY_BATCH, TOO_MANY_ITEMS. Every other outcome
 * is an item's own result.
 */
export async function batchMint(core: CallPath, input: BatchMintInput, limits: BatchLimits, ctx: CallContext): Promise<Result<MintItem[]>> {
  const sized = checkSize(input.items.length, limits);
  if (!sized.ok) return sized;
  const grouped = groupedMints(core);
  const itemCtx = grouped === null ? ctx : batchContext(ctx);
  return ok(
    await eachItem(core, input.items, ctx, {
      refuse: (item) => scopeRefusal(ctx, "MintUsdc", item.accountId),
      apply: (item) => mintUsdc(core, item, itemCtx),
      key: (item) => item.idempotencyKey,
      grouped: grouped === null ? null : (item) => grouped(item),
    }),
  );
}

/**
 * Applies each transfer as Transfer would, in order; with `atomic`, all or
 * none. Whole-call failures (nothing applied): INVALID_ARGUMENT EMPTY_BATCH,
 * TOO_MANY_ITEMS, DUPLICATE_IDEMPOTENCY_KEY (atomic only); for an atomic
 * batch also what taking its accounts' locks can answer (DEADLINE_EXCEEDED,
 * ACCOUNT_BUSY, CANCELLED). An atomic batch that applied nothing names the
 * refusing item in `refusedItem`: that item has its own failure, every other
 * ATOMIC_BATCH_REFUSED.
 */
export async function batchTransfer(core: CallPath, input: BatchTransferInput, limits: BatchLimits, ctx: CallContext): Promise<Result<{ items: TransferItem[]; refusedItem?: number }>> {
  const sized = checkSize(input.items.length, limits);
  if (!sized.ok) return sized;
  if (input.atomic) return allOrNone(core, input.items, ctx);
  const grouped = core.deps.store.groupsCalls?.(TRANSFER_PROBE) === true;
  const itemCtx = grouped ? batchContext(ctx) : ctx;
  return ok({
    items: await eachItem(core, input.items, ctx, {
      refuse: (item) => scopeRefusal(ctx, "Transfer", item.fromAccountId),
      apply: (item) => transfer(core, item, itemCtx),
      key: (item) => item.idempotencyKey,
      grouped: grouped ? () => true : null,
    }),
  });
}

function checkSize(count: number, limits: BatchLimits): Result<void> {
  if (count === 0) return fail(invalid("EMPTY_BATCH", "items", "items must hold at least one item"));
  if (count > limits.maxItems) return fail(invalid("TOO_MANY_ITEMS", "items", `items holds ${count} items; at most ${limits.maxItems} per call`));
  return ok(undefined);
}

/** The unary call's refusal of an item outside the caller's scopes (the edge's check, made per item). */
function scopeRefusal(ctx: CallContext, rpc: Rpc, accountId: string): Failure | undefined {
  const principal = ctx.principal;
  if (principal === undefined) return undefined;
  const decision = authorize(principal, rpc, [accountId]);
  if (decision.ok) return undefined;
  return decision.missingRole !== undefined
    ? { code: "PERMISSION_DENIED", rpc, principal: principal.name, missingRole: decision.missingRole }
    : { code: "PERMISSION_DENIED", rpc, principal: principal.name, missingScope: decision.missingScope ?? "" };
}

/** The contexts batches give their items (see `batchContext`). */
const batchContexts = new WeakSet<object>();

/**
 * Whether `wait` is the context a batch gives its items: a store that
 * groups calls applies the calls made with one such context in the order
 * they were made, as if one after another (pg-group-commit.ts).
 */
export function isBatchContext(wait: object): boolean {
  return batchContexts.has(wait);
}

/** The caller's context for a batch's items: every read is the caller's, the object is the batch's own. */
function batchContext(ctx: CallContext): CallContext {
  const own = {
    get deadlineMs(): number {
      return ctx.deadlineMs;
    },
    get signal(): AbortSignal | undefined {
      return ctx.signal;
    },
    get aborted(): boolean | undefined {
      return ctx.aborted;
    },
    get principal() {
      return ctx.principal;
    },
  } as CallContext;
  batchContexts.add(own);
  return own;
}

const DEADLINE_BEFORE_ITEM: Failure = { code: "DEADLINE_EXCEEDED", message: "the call's deadline passed before this item was tried; nothing of it was applied" };
const CANCELLED_BEFORE_ITEM: Failure = { code: "CANCELLED", message: "the call was cancelled before this item was tried; nothing of it was applied" };

function aborted(ctx: CallContext): boolean {
  return ctx.aborted ?? ctx.signal?.aborted === true;
}

/** How `eachItem` treats one kind of item. */
interface ItemPath<I, T> {
  /** The item's scope refusal, if any (the edge's check of the unary call). */
  readonly refuse: (item: I) => Failure | undefined;
  /** The unary feature call (a value when nothing waited). */
  readonly apply: (item: I) => MaybePromise<Result<T>>;
  /** The item's idempotency key, as given. */
  readonly key: (item: I) => string;
  /** Whether the store groups this item's call; null: the store groups none (one item after another). */
  readonly grouped: ((item: I) => boolean) | null;
}

/** A transfer effect, to ask the store whether it groups transfers (every transfer is alike in that). */
const TRANSFER_PROBE: Effect = { kind: "transfer", cmd: { transferId: "", fromAccountId: "", toAccountId: "", amountMicros: 0n, idempotencyKey: "", createWallMs: 0 } };
/** A mint effect without approval, allowance or settlement, to ask the store whether it groups such mints. */
const MINT_PROBE: Effect = { kind: "mint", cmd: { mintId: "", accountId: "", amountMicros: 0n, blockchain: "ETHEREUM", idempotencyKey: "", createWallMs: 0 } };

/**
 * Which mints the store groups: those `mintUsdc` gives no requester (no
 * approval pending, no allowance charged) and that do not settle on-chain.
 * An item that fails validation counts as grouped: it fails before the store.
 * Null when the store groups no mint.
 */
function groupedMints(core: CallPath): ((item: MintUsdcInput) => boolean) | null {
  if (core.deps.store.groupsCalls?.(MINT_PROBE) !== true) return null;
  const { approvals, settlement, maxAmountMicros } = core.deps;
  if (approvals?.allowances === true) return null;
  const threshold = approvals?.thresholdMicros ?? null;
  return (item) => {
    const chain = v.blockchain(item.blockchain);
    if (chain.ok && settlement?.required(chain.value) === true) return false;
    if (threshold === null) return true;
    const amount = parseAmount(item.amount, maxAmountMicros);
    return !amount.ok || amount.value < threshold;
  };
}

/**
 * Runs `apply` on each item in request order, as if one after another
 * (started together on a grouping store, see the top of this file). Past
 * the deadline or after a cancellation the remaining items are not tried;
 * after an item found the store unreachable neither are the rest (each
 * answers STORE_UNAVAILABLE: retry with the same keys). Bugs still throw.
 */
async function eachItem<I, T>(core: CallPath, items: readonly I[], ctx: CallContext, path: ItemPath<I, T>): Promise<ItemResult<T>[]> {
  const out: ItemResult<T>[] = new Array<ItemResult<T>>(items.length);
  const clock = core.deps.clock;
  let unreachable = false;
  /** Why an item is not tried, if it is not. */
  const notTried = (): ItemResult<T> | undefined => {
    if (unreachable) return { ok: false, error: { code: "STORE_UNAVAILABLE" } };
    if (aborted(ctx)) return fail(CANCELLED_BEFORE_ITEM);
    if (ctx.deadlineMs !== Infinity && clock.nowMs() >= ctx.deadlineMs) return fail(DEADLINE_BEFORE_ITEM);
    return undefined;
  };
  /** An item's outcome, from its settled call. */
  const settle = (answer: PromiseSettledResult<Result<T>>): ItemResult<T> => {
    if (answer.status === "fulfilled") return answer.value;
    const err: unknown = answer.reason;
    if (err instanceof UnavailableError) {
      unreachable = true;
      return { ok: false, error: { code: "STORE_UNAVAILABLE" } };
    }
    if ((err as { code?: unknown } | null)?.code === "DEADLINE_EXCEEDED") return fail({ code: "DEADLINE_EXCEEDED", message: (err as Error).message });
    throw err;
  };
  // The items started together and not yet awaited, and their keys.
  let run: { index: number; answer: Promise<Result<T>> }[] = [];
  const runKeys = new Set<string>();
  const finishRun = async (): Promise<void> => {
    if (run.length === 0) return;
    const started = run;
    run = [];
    runKeys.clear();
    const answers = await Promise.allSettled(started.map((s) => s.answer));
    let bug: unknown;
    answers.forEach((answer, i) => {
      try {
        out[(started[i] as { index: number }).index] = settle(answer);
      } catch (err) {
        bug ??= err;
      }
    });
    if (bug !== undefined) throw bug;
  };
  for (let index = 0; index < items.length; index++) {
    const item = items[index] as I;
    const refused = path.refuse(item);
    if (refused !== undefined) {
      out[index] = fail(refused);
      continue;
    }
    const grouped = path.grouped?.(item) === true;
    const key = path.key(item);
    if (!grouped || runKeys.has(key)) await finishRun();
    const skipped = notTried();
    if (skipped !== undefined) {
      out[index] = skipped;
      continue;
    }
    if (grouped) {
      run.push({ index, answer: Promise.resolve(path.apply(item)) });
      runKeys.add(key);
      continue;
    }
    try {
      out[index] = await path.apply(item);
    } catch (reason) {
      out[index] = settle({ status: "rejected", reason });
    }
  }
  await finishRun();
  return out;
}

/** The all-or-none BatchTransfer (see `batchTransfer`). */
async function allOrNone(core: CallPath, items: readonly TransferInput[], ctx: CallContext): Promise<Result<{ items: TransferItem[]; refusedItem?: number }>> {
  const seen = new Map<string, number>();
  for (let i = 0; i < items.length; i++) {
    const key = (items[i] as TransferInput).idempotencyKey;
    const first = seen.get(key);
    if (first !== undefined) {
      return fail(invalid("DUPLICATE_IDEMPOTENCY_KEY", `items[${i}].idempotency_key`, `items ${first} and ${i} share an idempotency_key; an all-or-none batch needs one key per item`));
    }
    seen.set(key, i);
  }
  const calls: KeyedCall[] = [];
  const accounts: string[] = [];
  for (let i = 0; i < items.length; i++) {
    const item = items[i] as TransferInput;
    const refused = scopeRefusal(ctx, "Transfer", item.fromAccountId);
    if (refused !== undefined) return ok(refusedAt(items.length, i, refused));
    const prepared = prepareTransfer(core, item, ctx);
    if (!prepared.ok) return ok(refusedAt(items.length, i, prepared.error));
    const { op, effect } = prepared.value;
    calls.push({ scope: op.scope, key: op.key, request: op.request, effect, journal: op.journal });
    accounts.push(...op.accounts);
  }
  // Every account of the batch is locked, as each unary call locks its own.
  const locked = core.locks.take(accounts, ctx.deadlineMs, ctx);
  const release = typeof locked === "function" ? locked : await locked;
  if (release === null) return fail({ code: "DEADLINE_EXCEEDED", message: "deadline exceeded while waiting for the batch's account locks; nothing was applied" });
  if (typeof release !== "function") return fail(release);
  let r;
  try {
    r = await core.deps.store.applyAllOrNone(calls, ctx);
  } finally {
    release();
  }
  if (!r.ok) return r.index === null ? fail(r.error) : ok(refusedAt(items.length, r.index, r.error));
  const out: TransferItem[] = [];
  for (const { stored, replayed } of r.value) {
    if (stored.scope !== "transfer") throw new Error("invariant violated: a transfer key holds a non-transfer result");
    countTransfer(core, stored.transfer, replayed);
    out.push(ok({ transfer: stored.transfer, replayed }));
  }
  return ok({ items: out });
}

/** The answer of an atomic batch that applied nothing: the refusing item's failure, ATOMIC_BATCH_REFUSED for every other. */
function refusedAt(count: number, index: number, error: Failure): { items: TransferItem[]; refusedItem: number } {
  const others: TransferItem = fail({ code: "ATOMIC_BATCH_REFUSED", refusedItem: index });
  const items: TransferItem[] = [];
  for (let i = 0; i < count; i++) items.push(i === index ? fail(error) : others);
  return { items, refusedItem: index };
}
