/** Input rules of API.md. Each returns the value or an INVALID_ARGUMENT failure naming the field. */
import { invalid, type FieldName } from "./errors.js";
import { isBlockchain, type Blockchain } from "./model.js";
import { fail, ok, type Result } from "./result.js";

const ACCOUNT_ID = /^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/;
/** 1 to 255 printable ASCII characters (space through tilde). */
const IDEMPOTENCY_KEY = /^[\x20-\x7e]{1,255}$/;
/**
 * `mint_` and up to 59 more id characters (the service issues `mint_` + 26
 * base32). Anything without the prefix cannot be a mint id and is
 * INVALID_ARGUMENT, like redemption ids without `rdm_`; a well-formed id that
 * names no mint is NOT_FOUND.
 */
const MINT_ID = /^mint_[A-Za-z0-9_]{1,59}$/;
/** Longest reconcile reason kept, in UTF-16 code units. */
export const REASON_MAX_CHARS = 1024;

export function accountId(value: string, field: FieldName = "account_id"): Result<string> {
  if (ACCOUNT_ID.test(value)) return ok(value);
  return fail(
    invalid(
      "INVALID_ACCOUNT_ID",
      field,
      value === "" ? `${field} is required` : `${field} must match ^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$`,
    ),
  );
}

export function idempotencyKey(value: string): Result<string> {
  if (IDEMPOTENCY_KEY.test(value)) return ok(value);
  return fail(
    invalid(
      "INVALID_IDEMPOTENCY_KEY",
      "idempotency_key",
      value === "" ? "idempotency_key is required" : "idempotency_key must be 1 to 255 printable ASCII characters",
    ),
  );
}

/** `name` is the proto enum name without the BLOCKCHAIN_ prefix ("" when unset or unknown). */
export function blockchain(name: string): Result<Blockchain> {
  if (isBlockchain(name)) return ok(name);
  return fail(invalid("INVALID_BLOCKCHAIN", "blockchain", "blockchain must be set to a known chain (e.g. BLOCKCHAIN_ETHEREUM)"));
}

export function mintId(value: string): Result<string> {
  if (MINT_ID.test(value)) return ok(value);
  return fail(invalid("INVALID_MINT_ID", "mint_id", value === "" ? "mint_id is required" : "mint_id is not a valid mint id"));
}

export function reason(value: string): Result<string> {
  if (value.length > REASON_MAX_CHARS) return fail(invalid("INVALID_REASON", "reason", `reason must be at most ${REASON_MAX_CHARS} characters`));
  // API.md: no control characters (tab and line breaks included): they would corrupt logs and audit trails.
  if (/[\x00-\x1f\x7f]/.test(value)) return fail(invalid("INVALID_REASON", "reason", "reason must not contain control characters"));
  return ok(value);
}

// Reserve, redemption, freeze.
const REDEMPTION_ID = /^rdm_[A-Za-z0-9]{1,60}$/;

export function redemptionId(value: string): Result<string> {
  if (REDEMPTION_ID.test(value)) return ok(value);
  return fail(invalid("INVALID_REDEMPTION_ID", "redemption_id", value === "" ? "redemption_id is required" : "redemption_id is not a valid redemption id"));
}

/** The auditor's attestation reference: 1 to `maxChars` printable characters, no control characters. */
export function attestationRef(value: string, maxChars: number): Result<string> {
  if (value.length === 0) return fail(invalid("INVALID_ATTESTATION_REF", "attestation_ref", "attestation_ref is required (where the auditor's attestation is)"));
  if (value.length > maxChars) return fail(invalid("INVALID_ATTESTATION_REF", "attestation_ref", `attestation_ref must be at most ${maxChars} characters`));
  if (/[\x00-\x1f\x7f]/.test(value)) return fail(invalid("INVALID_ATTESTATION_REF", "attestation_ref", "attestation_ref must not contain control characters"));
  return ok(value);
}
