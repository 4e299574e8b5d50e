/**
 * The reserve rule, written once for every adapter. Supply may
 * never pass a set reserve; before one is set supply is not capped unless
 * the operator requires a reserve (MINT_RESERVE_REQUIRED).
 */
import type { Failure } from "./errors.js";
import type { SupplyState } from "./model.js";

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
