/**
 * The memory store's all-or-none BatchTransfer (`KeyedStore.applyAllOrNone`).
 *
 * The caller holds every account lock of the batch. Each key is looked up
 * (and claimed when fresh) in order; then, in one synchronous stretch, every
 * fresh transfer is checked against the balances and freezes as they would
 * stand after the transfers before it, and only if all pass are they applied,
 * journaled and announced, still in that stretch: nothing (a freeze, a
 * reader) can run between the check and the last change. The keys' results
 * are stored after; until then a same-key call waits on the claim, as it
 * waits on any call in flight.
 */
import { entryOfEffect, transferResult, unsealedRecord } from "../../domain/audit.js";
import { assert, markNotApplied, type Failure } from "../../domain/errors.js";
import type { StoredResult, TransferRecord } from "../../domain/model.js";
import { isAborted, type AllOrNoneOutcome, type IdempotencyClaim, type IdempotencyStore, type KeyedCall, type Wait } from "../../domain/ports.js";
import type { MemoryAuditJournal } from "./memory-audit-journal.js";
import type { MemoryLedgerEventFeed } from "./memory-ledger-events.js";
import type { MemoryLedger } from "./memory-exactly-once-store.js";

/** What the all-or-none step needs of the memory store. */
export interface AllOrNoneParts {
  readonly ledger: MemoryLedger;
  readonly keys: IdempotencyStore;
  readonly journal: MemoryAuditJournal | null;
  readonly events: MemoryLedgerEventFeed;
}

const CANCELLED: Failure = { code: "CANCELLED", message: "the call was cancelled while it waited; nothing was applied" };

export async function applyAllOrNone(parts: AllOrNoneParts, calls: readonly KeyedCall[], wait: Wait): Promise<AllOrNoneOutcome> {
  const { ledger, keys } = parts;
  const claims: (IdempotencyClaim | null)[] = [];
  const results: ({ stored: StoredResult; replayed: boolean } | null)[] = [];
  const refuse = async (index: number | null, error: Failure): Promise<AllOrNoneOutcome> => {
    for (const c of claims) if (c !== null) await keys.release(c);
    return { ok: false, index, error };
  };
  for (let i = 0; i < calls.length; i++) {
    const call = calls[i] as KeyedCall;
    assert(call.effect.kind === "transfer", "an all-or-none batch holds transfers only");
    const begun = await keys.begin(call.scope, call.key, call.request, wait.deadlineMs);
    if (!begun.ok) {
      const code = begun.error.code;
      return refuse(code === "DEADLINE_EXCEEDED" || code === "CANCELLED" || code === "STORE_BUSY" ? null : i, begun.error);
    }
    if (begun.value.kind === "replay") {
      claims.push(null);
      results.push({ stored: begun.value.result, replayed: true });
    } else {
      claims.push(begun.value.claim);
      results.push(null);
    }
  }
  if (isAborted(wait)) return refuse(null, CANCELLED);

  // One synchronous stretch from here to the last change: check every fresh transfer, then apply them all.
  const balances = new Map<string, bigint>();
  const balanceOf = (accountId: string): bigint => balances.get(accountId) ?? ledger.peekAccount(accountId).balanceMicros;
  for (let i = 0; i < calls.length; i++) {
    const effect = (calls[i] as KeyedCall).effect;
    if (results[i] !== null || effect.kind !== "transfer") continue;
    const cmd = effect.cmd;
    for (const id of [cmd.fromAccountId, cmd.toAccountId]) {
      if (ledger.peekAccount(id).frozen) return refuse(i, { code: "ACCOUNT_FROZEN", accountId: id });
    }
    const from = balanceOf(cmd.fromAccountId);
    if (from < cmd.amountMicros) return refuse(i, { code: "INSUFFICIENT_FUNDS", accountId: cmd.fromAccountId });
    balances.set(cmd.fromAccountId, from - cmd.amountMicros);
    balances.set(cmd.toAccountId, balanceOf(cmd.toAccountId) + cmd.amountMicros);
  }
  const applied: Promise<unknown>[] = [];
  try {
    for (let i = 0; i < calls.length; i++) {
      const call = calls[i] as KeyedCall;
      const claim = claims[i];
      const effect = call.effect;
      if (claim === null || claim === undefined || effect.kind !== "transfer") continue;
      // The memory ledger's transfer runs to its end before it returns; checked above, it applies.
      const record: TransferRecord = { ...effect.cmd };
      applied.push(Promise.resolve(ledger.transfer(effect.cmd, claim, wait.deadlineMs)).then((r) => assert(r.ok, "a checked transfer of an all-or-none batch applies")));
      parts.journal?.append(unsealedRecord(call.journal ?? entryOfEffect(effect), transferResult(record), effect.cmd.createWallMs));
      parts.events.transfer(record);
      results[i] = { stored: { scope: "transfer", transfer: record }, replayed: false };
    }
  } catch (err) {
    throw markNotApplied(err);
  }
  await Promise.all(applied);
  for (let i = 0; i < calls.length; i++) {
    const claim = claims[i];
    const result = results[i];
    if (claim !== null && claim !== undefined && result !== null && result !== undefined) await keys.complete(claim, result.stored);
  }
  return { ok: true, value: results as { stored: StoredResult; replayed: boolean }[] };
}
