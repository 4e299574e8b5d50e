/** The audit journal's reads: ListAuditEvents (filtered, paged) and VerifyAuditChain. */
import { verifyChain, type AuditRecord, type ChainVerdict } from "./audit.js";
import type { CallPath } from "./call-path.js";
import { invalid } from "./errors.js";
import { decodePageToken, encodePageToken } from "./page-token.js";
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from "./paging.js";
import { fail, ok, type Result } from "./result.js";
import * as v from "./validate.js";

export interface ListAuditEventsInput {
  readonly accountId: string;
  readonly principal: string;
  /** Wall ms; 0 for no bound. */
  readonly startWallMs: number;
  readonly endWallMs: number;
  readonly pageSize: number;
  readonly pageToken: string;
}

/** Longest principal name a ListAuditEvents filter may name. */
const MAX_PRINCIPAL_CHARS = 256;

/**
 * Sealed audit records, oldest first, filtered by account, principal and
 * time ([startWallMs, endWallMs); 0 for no bound). Failures:
 * INVALID_ARGUMENT (account id, principal, times, page size, page token).
 */
export async function listAuditEvents(core: CallPath, input: ListAuditEventsInput): Promise<Result<{ events: AuditRecord[]; nextPageToken: string }>> {
  let accountId: string | null = null;
  if (input.accountId !== "") {
    const a = v.accountId(input.accountId);
    if (!a.ok) return a;
    accountId = a.value;
  }
  if (input.principal.length > MAX_PRINCIPAL_CHARS) {
    return fail(invalid("INVALID_PRINCIPAL", "principal", `principal must be at most ${MAX_PRINCIPAL_CHARS} characters`));
  }
  if (!Number.isSafeInteger(input.startWallMs) || !Number.isSafeInteger(input.endWallMs) || input.startWallMs < 0 || input.endWallMs < 0) {
    return fail(invalid("INVALID_TIME_RANGE", "start_time", "start_time and end_time must be valid times after 1970"));
  }
  if (input.endWallMs !== 0 && input.endWallMs <= input.startWallMs) {
    return fail(invalid("INVALID_TIME_RANGE", "end_time", "end_time must be after start_time"));
  }
  if (!Number.isInteger(input.pageSize) || input.pageSize < 0) {
    return fail(invalid("INVALID_PAGE_SIZE", "page_size", "page_size must not be negative (0 means 50, at most 1000)"));
  }
  const limit = input.pageSize === 0 ? DEFAULT_PAGE_SIZE : Math.min(input.pageSize, MAX_PAGE_SIZE);
  // The token is bound to the filters, so it cannot page another query.
  const filters = `audit\u0000${input.accountId}\u0000${input.principal}\u0000${input.startWallMs}\u0000${input.endWallMs}`;
  let afterSeq = 0;
  if (input.pageToken !== "") {
    const decoded = decodePageToken(input.pageToken, filters);
    if (decoded === null) return fail(invalid("INVALID_PAGE_TOKEN", "page_token", "page_token was not issued by this service for these filters"));
    afterSeq = decoded;
  }
  const rows = await core.deps.store.audit.list({
    accountId,
    actor: input.principal === "" ? null : input.principal,
    fromTimeMs: input.startWallMs,
    toTimeMs: input.endWallMs === 0 ? Infinity : input.endWallMs,
    afterSeq,
    limit: limit + 1,
  });
  const events = rows.slice(0, limit);
  const last = events[events.length - 1];
  return ok({ events, nextPageToken: rows.length > limit && last !== undefined ? encodePageToken(last.seq, filters) : "" });
}

/** Recomputes the journal's chain over [fromSeq, toSeq] (0: start / head). Failures: INVALID_ARGUMENT (a negative or reversed range). */
export async function verifyAuditChain(core: CallPath, fromSeq: number, toSeq: number): Promise<Result<ChainVerdict>> {
  if (!Number.isSafeInteger(fromSeq) || !Number.isSafeInteger(toSeq) || fromSeq < 0 || toSeq < 0 || (toSeq !== 0 && toSeq < fromSeq)) {
    return fail(invalid("INVALID_SEQ_RANGE", "from_seq", "from_seq and to_seq must be >= 0 and from_seq <= to_seq (0 means the start / the head)"));
  }
  return ok(await verifyChain(core.deps.store.audit, fromSeq, toSeq));
}
