/**
 * The reserve rule, written once for every adapter. Supply may
 * never pass a set reserve; before one is set supply is not capped unless
 * the operator requires a reserve (MINT_RESERVE_REQUIRED).
 */
import { LOCAL_PRINCIPAL, type CallContext, type CallPath } from "./call-path.js";
import type { Failure } from "./errors.js";
import type { SupplyState } from "./model.js";
import { MAX_STORABLE_MICROS, parseAmount } from "./money.js";
import { ok, type Result } from "./result.js";
import * as v from "./validate.js";

/** The supply snapshot an adapter hands out. */
export function supplyState(supplyMicros: bigint, reserveMicros: bigint | null, attestationRef: string, pendingApprovalMicros = 0n): SupplyState {
  return { supplyMicros, reserveMicros, attestationRef, headroomMicros: reserveMicros === null ? null : reserveMicros - supplyMicros, pendingApprovalMicros };
}

/**
 * Whether supply may rise by `amountMicros`: null when it may, else the
 * refusal. Adapters call it inside the atomic step that raises supply (the
 * memory ledger's synchronous mint; PostgreSQL evaluates the same rule in
 * SQL under the supply row's lock and uses this only to word the refusal).
 * An approval that completes a pending mint must pass the same
 * check in its own atomic step: see `checkReserve` in each adapter.
 */
export function reserveRefusal(supplyMicros: bigint, reserveMicros: bigint | null, amountMicros: bigint, reserveRequired: boolean): Failure | null {
  if (reserveMicros === null) return reserveRequired ? { code: "RESERVE_NOT_SET" } : null;
  if (supplyMicros + amountMicros <= reserveMicros) return null;
  return { code: "RESERVE_EXCEEDED", headroomMicros: reserveMicros - supplyMicros, supplyMicros, reserveMicros, requestedMicros: amountMicros };
}

/** Longest attestation reference kept, in UTF-16 code units. */
export const ATTESTATION_REF_MAX_CHARS = 512;

export interface SetReserveInput {
  readonly amount: string;
  readonly attestationRef: string;
}

/** A reserve amount: like a mint amount, but up to what the store can hold, and 0 allowed (nothing may be minted). */
function parseReserve(text: string): Result<bigint> {
  if (text === "0") return ok(0n);
  return parseAmount(text, MAX_STORABLE_MICROS);
}

/** Failures: INVALID_ARGUMENT, RESERVE_EXCEEDED (below supply), DEADLINE_EXCEEDED. */
export async function setReserve(core: CallPath, input: SetReserveInput, ctx: CallContext): Promise<Result<SupplyState>> {
  const amount = parseReserve(input.amount);
  if (!amount.ok) return amount;
  const ref = v.attestationRef(input.attestationRef, ATTESTATION_REF_MAX_CHARS);
  if (!ref.ok) return ref;
  const actor = ctx.principal?.name ?? LOCAL_PRINCIPAL;
  return core.deps.store.setReserve(
    amount.value,
    ref.value,
    { actor, action: "SetReserve", idempotencyKey: null, request: { amount: amount.value.toString(), attestation_ref: ref.value }, accounts: [] },
    ctx,
  );
}

/** Supply, the reserve and its headroom, and what waits for approval. */
export function getSupply(core: CallPath): Promise<SupplyState> {
  return core.deps.store.getSupply();
}
