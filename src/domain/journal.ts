/**
 * What the audit journal records of one state change. Every store
 * method that changes state takes one and appends it in the same atomic step
 * as the change (the same PostgreSQL transaction, the same critical section in
 * memory), with the result the store produced; refused calls are never
 * journaled. Shared by every feature that changes state (mints, transfers,
 * reversals, approvals, allowances, reserve, redemptions, freezes,
 * settlement outcomes) so each of them is one more `action`, not a new shape.
 */
export interface JournalEntry {
  /** The caller's principal name (`local` without an auth file), or an internal actor (`settlement-worker`, `sweeper`). */
  readonly actor: string;
  /** The RPC that made the change (`MintUsdc`, `ApproveMint`, ...), or the internal operation (`SettleMint`, `ExpireMint`, ...). */
  readonly action: string;
  /** The caller's idempotency key; null for calls that have none. */
  readonly idempotencyKey: string | null;
  /** The validated request in canonical form: JSON-safe values only, amounts as micro-USDC decimal strings. */
  readonly request: Readonly<Record<string, string | number | boolean | null>>;
  /** The accounts the change touches, for filtering the journal by account. */
  readonly accounts: readonly string[];
}
