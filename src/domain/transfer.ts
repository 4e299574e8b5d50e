/** Transfer: moves money between two accounts, exactly once per key. */
import { scopedIdempotencyKey } from "./authorization.js";
import { journalEntry, type CallContext, type CallPath, type KeyedOp } from "./call-path.js";
import { invalid } from "./errors.js";
import { transferRequest, type StoredResult, type TransferRecord } from "./model.js";
import { parseAmount } from "./money.js";
import type { Effect } from "./ports.js";
import { fail, isPromise, ok, type MaybePromise, type Result } from "./result.js";
import * as v from "./validate.js";

export interface TransferInput {
  readonly fromAccountId: string;
  readonly toAccountId: string;
  readonly amount: string;
  readonly idempotencyKey: string;
}

/** A validated transfer, ready for the keyed path: the op (key, request, accounts, journal) and its effect. */
export interface PreparedTransfer {
  readonly op: KeyedOp;
  readonly effect: Effect & { readonly kind: "transfer" };
}

/**
 * Validates a transfer in the order the error table documents and builds its
 * keyed op and effect (a fresh transfer id). Failures: INVALID_ARGUMENT
 * (incl. from == to). Touches nothing.
 */
export function prepareTransfer(core: CallPath, input: TransferInput, ctx: CallContext): Result<PreparedTransfer> {
  const deps = core.deps;
  const from = v.accountId(input.fromAccountId, "from_account_id");
  if (!from.ok) return from;
  const to = v.accountId(input.toAccountId, "to_account_id");
  if (!to.ok) return to;
  if (from.value === to.value) {
    return fail(invalid("SAME_ACCOUNT", "to_account_id", "to_account_id must differ from from_account_id"));
  }
  const amount = parseAmount(input.amount, deps.maxAmountMicros);
  if (!amount.ok) return amount;
  const key = v.idempotencyKey(input.idempotencyKey);
  if (!key.ok) return key;
  // The record keeps the caller-scoped key, so that a reconcile frees the right one.
  const storeKey = scopedIdempotencyKey(ctx.principal, key.value);

  const request = transferRequest(from.value, to.value, amount.value);
  const accounts = [from.value, to.value];
  return ok({
    op: { scope: "transfer", key: storeKey, request, accounts, journal: journalEntry(ctx, "Transfer", key.value, request, accounts) },
    effect: {
      kind: "transfer",
      cmd: {
        transferId: core.ids.transferId(),
        fromAccountId: from.value,
        toAccountId: to.value,
        amountMicros: amount.value,
        idempotencyKey: storeKey,
        createWallMs: deps.clock.wallMs(),
      },
    },
  });
}

/**
 * Failures: INVALID_ARGUMENT (incl. from == to), IDEMPOTENCY_*, INSUFFICIENT_FUNDS, DEADLINE_EXCEEDED.
 * A value when nothing waited (see `CallPath.keyed`); errors always come as a rejected promise.
 */
export function transfer(core: CallPath, input: TransferInput, ctx: CallContext): MaybePromise<Result<{ transfer: TransferRecord; replayed: boolean }>> {
  const prepared = prepareTransfer(core, input, ctx);
  if (!prepared.ok) return prepared;
  let r: MaybePromise<Result<{ stored: StoredResult; replayed: boolean }>>;
  try {
    r = core.keyed(prepared.value.op, ctx, prepared.value.effect);
  } catch (err) {
    return Promise.reject(err);
  }
  return isPromise(r) ? r.then((settled) => transferred(core, settled)) : transferred(core, r);
}

/** The answer of an applied (or replayed) transfer, counted in the metrics. */
function transferred(core: CallPath, r: Result<{ stored: StoredResult; replayed: boolean }>): Result<{ transfer: TransferRecord; replayed: boolean }> {
  if (!r.ok) return r;
  const stored = r.value.stored;
  if (stored.scope !== "transfer") throw new Error("invariant violated: a transfer key holds a non-transfer result");
  countTransfer(core, stored.transfer, r.value.replayed);
  return ok({ transfer: stored.transfer, replayed: r.value.replayed });
}

/** Counts a transfer's outcome in the metrics: a replay, or money moved. */
export function countTransfer(core: CallPath, record: TransferRecord, replayed: boolean): void {
  if (replayed) core.metrics.idempotentReplay("transfer");
  else core.metrics.moneyMoved("transfer", record.amountMicros);
}
