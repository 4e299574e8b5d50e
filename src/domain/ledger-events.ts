/**
 * The ledger's event feed: what WatchLedger streams. Every state change of
 * money writes its events in the same atomic step as the change (the same
 * PostgreSQL transaction, written by triggers on the ledger's tables; the
 * same synchronous stretch in memory), so the feed has every change and
 * nothing that was refused or rolled back, and no setting turns it off (the
 * audit journal can be switched off to measure its cost; this feed cannot).
 *
 * Positions order the feed. In memory a position is the append counter; on
 * PostgreSQL it is (the writing transaction's id, the event's ordinal), read
 * only below the oldest transaction that may still commit, so a reader past
 * a position never sees a new event appear before it (see
 * src/adapters/postgres/ledger-events.ts). A cursor is a position with the
 * feed's epoch, encoded opaquely; an event id is its position spelled out.
 */
import { ALL_ACCOUNTS, type Principal, scopeMatches } from "./authorization.js";

export const LEDGER_EVENT_KINDS = [
  "MINT_CREATED",
  "MINT_PENDING_APPROVAL",
  "MINT_APPROVED",
  "MINT_REJECTED",
  "MINT_COMPLETED",
  "MINT_REVERSED",
  "SETTLEMENT_SUBMITTED",
  "SETTLEMENT_CONFIRMED",
  "SETTLEMENT_FAILED",
  "TRANSFER",
  "REDEMPTION",
  "REDEMPTION_RECREDITED",
  "ACCOUNT_FROZEN",
  "ACCOUNT_UNFROZEN",
  "RESERVE_SET",
  "ALLOWANCE_SET",
] as const;

export type LedgerEventKind = (typeof LEDGER_EVENT_KINDS)[number];

export function isLedgerEventKind(value: string): value is LedgerEventKind {
  return (LEDGER_EVENT_KINDS as readonly string[]).includes(value);
}

/**
 * The detail of an event, flat, every value a string (amounts in micro-USDC,
 * booleans "true"/"false"). Keys per kind:
 * - MINT_*: mint_id, account_id, amount, blockchain, status, approvals,
 *   approvals_required, actor, reason
 * - SETTLEMENT_*: settlement_id, settlement_kind (mint|burn), account_id,
 *   blockchain, amount, state, nonce, tx_hash, block_number, error
 * - TRANSFER: transfer_id, from_account_id, to_account_id, amount
 * - REDEMPTION*: redemption_id, account_id, amount, blockchain, reason
 * - ACCOUNT_*: account_id, frozen, reason
 * - RESERVE_SET: reserve, attestation_ref
 * - ALLOWANCE_SET: principal, allowance
 */
export type LedgerEventData = Readonly<Record<string, string>>;

/** An event as a store writes it. */
export interface NewLedgerEvent {
  readonly kind: LedgerEventKind;
  /** Wall ms of the change. */
  readonly timeMs: number;
  /** The accounts it touches; empty for reserve and allowance events. */
  readonly accounts: readonly string[];
  readonly data: LedgerEventData;
}

/** A place in the feed: compared as (a, b). Memory: (n, 0); PostgreSQL: (transaction id, ordinal). */
export interface FeedPosition {
  readonly a: bigint;
  readonly b: bigint;
}

export const FEED_START: FeedPosition = { a: 0n, b: 0n };

export function comparePositions(x: FeedPosition, y: FeedPosition): number {
  if (x.a !== y.a) return x.a < y.a ? -1 : 1;
  if (x.b !== y.b) return x.b < y.b ? -1 : 1;
  return 0;
}

/** An event read from the feed. */
export interface LedgerEvent extends NewLedgerEvent {
  readonly position: FeedPosition;
  /** Stable, unique across replicas (and restarts of a memory store: it holds the epoch). */
  readonly id: string;
}

export interface FeedPage {
  /** Events after the asked position, ascending, at most the limit. */
  readonly events: readonly LedgerEvent[];
  /**
   * Everything at or before this position was deleted by retention (read in
   * the same snapshot as `events`): a reader whose position is below it has
   * missed events.
   */
  readonly prunedThrough: FeedPosition;
}

/**
 * The read side of the feed, one per replica (the watch hub polls it). Only
 * events that can no longer be preceded by another are returned.
 */
export interface LedgerEventFeed {
  /** What cursors carry: a feed with another epoch holds other positions. */
  readonly epoch: string;
  /** Events after `after`, ascending, at most `limit`. */
  read(after: FeedPosition, limit: number): Promise<FeedPage>;
  /** The position of the newest event readable now (FEED_START or the pruned position when none). */
  head(): Promise<FeedPosition>;
  /** Deletes events older than `beforeWallMs` (a prefix of the feed); returns how many. */
  prune(beforeWallMs: number, maxEvents: number): Promise<number>;
  /** Wakes the hub when this process appended (memory); PostgreSQL polls instead. */
  onAppend?(listener: () => void): void;
}

const CURSOR_VERSION = "1";

/** The opaque cursor of a position: base64url of "1|epoch|a|b". */
export function encodeCursor(epoch: string, p: FeedPosition): string {
  return Buffer.from(`${CURSOR_VERSION}|${epoch}|${p.a}|${p.b}`, "utf8").toString("base64url");
}

export type DecodedCursor = { readonly ok: true; readonly epoch: string; readonly position: FeedPosition } | { readonly ok: false };

const DIGITS = /^(0|[1-9][0-9]{0,19})$/;

export function decodeCursor(cursor: string): DecodedCursor {
  if (cursor.length === 0 || cursor.length > 200 || !/^[A-Za-z0-9_-]+$/.test(cursor)) return { ok: false };
  const parts = Buffer.from(cursor, "base64url").toString("utf8").split("|");
  if (parts.length !== 4 || parts[0] !== CURSOR_VERSION) return { ok: false };
  const [, epoch, a, b] = parts as [string, string, string, string];
  if (!/^[A-Za-z0-9-]{1,64}$/.test(epoch) || !DIGITS.test(a) || !DIGITS.test(b)) return { ok: false };
  const position = { a: BigInt(a), b: BigInt(b) };
  if (position.a >= 1n << 63n || position.b >= 1n << 63n) return { ok: false };
  return { ok: true, epoch, position };
}

/** A stream's filter and the caller's scopes, decided once per stream. */
export interface EventFilter {
  /** Only events touching one of these; null for all. */
  readonly accounts: ReadonlySet<string> | null;
  /** Only these kinds; null for all. */
  readonly kinds: ReadonlySet<LedgerEventKind> | null;
  /** The caller; null when unauthenticated calls are allowed (every event visible). */
  readonly principal: Principal | null;
}

/**
 * Whether the stream sends `e`: of a wanted kind, touching a wanted account,
 * and visible to the caller (an account its scopes cover; events of no
 * account only with scope `*`).
 */
export function eventPasses(e: LedgerEvent, f: EventFilter): boolean {
  if (f.kinds !== null && !f.kinds.has(e.kind)) return false;
  if (f.accounts !== null) {
    let hit = false;
    for (const a of e.accounts) if (f.accounts.has(a)) hit = true;
    if (!hit) return false;
  }
  const p = f.principal;
  if (p === null || p.scopes.includes(ALL_ACCOUNTS)) return true;
  for (const a of e.accounts) if (f.accounts === null || f.accounts.has(a)) if (p.scopes.some((s) => scopeMatches(s, a))) return true;
  return false;
}
