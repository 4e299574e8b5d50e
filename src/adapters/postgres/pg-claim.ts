/**
 * An idempotency claim of the PostgreSQL adapter: an open transaction that
 * has inserted (and so row-locks) the key's 'pending' row. Whoever arrives
 * with the same key blocks on that row until the transaction ends. The ledger
 * method that applies the effect runs on the same transaction and commits the
 * key's result with the ledger change, or rolls everything back.
 */
import { assert } from "../../domain/errors.js";
import type { CanonicalRequest, IdempotencyScope } from "../../domain/model.js";
import type { IdempotencyClaim } from "../../domain/ports.js";
import type { Lease } from "./pg-database.js";

export type ClaimState = "open" | "committed" | "rolled-back";

export class PgClaim implements IdempotencyClaim {
  private current: ClaimState = "open";

  constructor(
    readonly scope: IdempotencyScope,
    readonly key: string,
    readonly request: CanonicalRequest,
    readonly fingerprint: string,
    /** True when the claim inserted a new row (false: it took over an expired one); `size()` counts it. */
    readonly insertedRow: boolean,
    /** The client of the open transaction; given back when the claim ends. */
    readonly lease: Lease,
    private readonly onEnd: (claim: PgClaim) => void,
  ) {}

  get state(): ClaimState {
    return this.current;
  }

  /** Records how the transaction ended; the lease must already be given back. */
  end(state: "committed" | "rolled-back"): void {
    assert(this.current === "open", `claim ${this.scope}/${this.key} ended twice`);
    this.current = state;
    this.onEnd(this);
  }
}

/** Narrows a port claim to this adapter's; any other claim is a wiring bug. */
export function asPgClaim(claim: IdempotencyClaim): PgClaim {
  assert(claim instanceof PgClaim, "the claim comes from the PostgreSQL idempotency store");
  return claim;
}

/**
 * Every transaction of the adapter says its isolation level instead of
 * inheriting the database's default. The design relies on READ COMMITTED:
 * each statement sees what committed before it (a duplicate blocked on a
 * key row sees the committed result; a retried statement after a lost race
 * sees the winner's write), and row locks, not snapshots, order the writers.
 * Under a REPEATABLE READ or SERIALIZABLE default a retry would reuse the old
 * snapshot and fail again, and a hot account shared by replicas would end in
 * UNAVAILABLE.
 */
export const BEGIN_READ_COMMITTED = "BEGIN ISOLATION LEVEL READ COMMITTED";

/**
 * `SET LOCAL` statements for one step of a transaction. The values are
 * integers computed here, never caller text, so inlining them is safe (SET
 * takes no bind parameters).
 */
export function setLocalTimeoutsSql(timeouts: { lockMs: number; statementMs: number; idleMs?: number }): string {
  const parts = [
    `SET LOCAL lock_timeout = '${Math.max(1, Math.ceil(timeouts.lockMs))}ms'`,
    `SET LOCAL statement_timeout = '${Math.max(1, Math.ceil(timeouts.statementMs))}ms'`,
  ];
  if (timeouts.idleMs !== undefined) {
    parts.push(`SET LOCAL idle_in_transaction_session_timeout = '${Math.max(1, Math.ceil(timeouts.idleMs))}ms'`);
  }
  return parts.join("; ");
}
