/**
 * Paging of the list calls: page sizes, the status filter of ListMints, and
 * page tokens bound to the filters they were issued for.
 */
import { invalid } from "./errors.js";
import type { MintStatus } from "./model.js";
import { decodePageToken } from "./page-token.js";
import { fail, ok, type Result } from "./result.js";
import * as v from "./validate.js";

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 1000;

export interface ListMintsInput {
  readonly accountId: string;
  readonly pageSize: number;
  readonly pageToken: string;
  /** Only mints in this status; absent or "" for all. */
  readonly status?: string;
}

const MINT_STATUSES: readonly MintStatus[] = ["COMPLETED", "REVERSED", "PENDING_APPROVAL", "REJECTED"];

/**
 * The account filter, cursor and page size of a list call. `tokenFilter` is
 * what the page token is bound to: the account filter for ListMints, the
 * account filter tagged as a redemption listing for ListRedemptions (so one
 * RPC's token never pages the other's sequence).
 */
export function pageOf(input: ListMintsInput, tokenFilter: string = input.accountId): Result<{ accountId: string | null; afterSeq: number; limit: number; status?: MintStatus }> {
  let accountId: string | null = null;
  if (input.accountId !== "") {
    const a = v.accountId(input.accountId);
    if (!a.ok) return a;
    accountId = a.value;
  }
  if (!Number.isInteger(input.pageSize) || input.pageSize < 0) {
    return fail(invalid("INVALID_PAGE_SIZE", "page_size", "page_size must not be negative (0 means 50, at most 1000)"));
  }
  let status: MintStatus | undefined;
  if (input.status !== undefined && input.status !== "") {
    if (!(MINT_STATUSES as readonly string[]).includes(input.status)) {
      return fail(invalid("INVALID_STATUS", "status", `status must be one of ${MINT_STATUSES.join(", ")} (or unset for all)`));
    }
    status = input.status as MintStatus;
  }
  const limit = input.pageSize === 0 ? DEFAULT_PAGE_SIZE : Math.min(input.pageSize, MAX_PAGE_SIZE);
  let afterSeq = 0;
  if (input.pageToken !== "") {
    const decoded = decodePageToken(input.pageToken, tokenFilter);
    if (decoded === null) {
      return fail(invalid("INVALID_PAGE_TOKEN", "page_token", "page_token was not issued by this service for this account_id"));
    }
    afterSeq = decoded;
  }
  return ok(status === undefined ? { accountId, afterSeq, limit } : { accountId, afterSeq, limit, status });
}
