/**
 * mintctl's exit codes. Scripts branch on them, so they are fixed:
 * 0 success, 1 an unexpected failure of mintctl itself, 2 bad usage (unknown
 * flag, missing argument, unreadable file), 3 a bulk mint finished with failed
 * rows, 4 `audit verify` found the audit chain broken, and 10 + the gRPC code for a call the service (or the transport)
 * refused: 13 INVALID_ARGUMENT, 15 NOT_FOUND, 16 ALREADY_EXISTS, 18
 * RESOURCE_EXHAUSTED, 19 FAILED_PRECONDITION, 24 UNAVAILABLE, ...
 */
import { status as GrpcCode } from "@grpc/grpc-js";
import type { GrpcCodeName } from "../../client/src/errors.js";

export const EXIT_OK = 0;
export const EXIT_INTERNAL = 1;
export const EXIT_USAGE = 2;
export const EXIT_BULK_FAILURES = 3;
/** `chain reconcile` found the ledger and the chain differ. */
export const EXIT_CHAIN_DIFFERS = 5;
/** `mintctl audit verify`: the service answered, and the audit chain is broken. */
export const EXIT_AUDIT_BROKEN = 4;
const GRPC_BASE = 10;

/** The exit code of a call that failed with the given gRPC code (10 + its number). */
export function exitCodeFor(code: GrpcCodeName): number {
  return GRPC_BASE + GrpcCode[code];
}
