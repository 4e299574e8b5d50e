/** ListMints in SQL: the mint feed, read up to a horizon no committing mint can fall behind. */
import type { MintRecord, MintStatus } from "../../../domain/model.js";
import type { ListMintsQuery } from "../../../domain/ports.js";
import { SEALER_APPLICATION_NAME } from "../postgres-audit-journal.js";
import type { LedgerTx } from "./tx.js";
import { LIST_MINTS_MAX_LIMIT, MINT_COLUMNS, mintFromRow, type MintRow } from "./rows.js";

/**
 * The feed's horizon (see migration 2801): `limit_seq` = base + per_xact *
 * the oldest transaction id that may still commit, i.e. the smallest of the snapshot's
 * next id (xmax) and the ids in progress (xip), leaving out the ids `$3`
 * that were seen running in another database (they cannot write our mints).
 * `$3` is read in an earlier statement (OTHER_DATABASE_XIDS_SQL), before
 * this statement's snapshot: a transaction whose id is below a mint already
 * committed got that id before the poll began, so if it is still running at
 * the snapshot it was already listed. An id in progress that is not listed
 * is kept, which can only delay, never skip. So an idle transaction in
 * another database never holds the feed back; one in this database holds
 * it back while it lives (the service's own are ended by the statement and
 * idle-in-transaction timeouts).
 */
const FEED_HORIZON_CTE = `
WITH s AS (SELECT pg_current_snapshot() AS snap),
h AS (
  SELECT x.base + x.per_xact * LEAST(
    pg_snapshot_xmax(s.snap)::text::bigint,
    COALESCE((
      SELECT min(x::text::bigint) FROM pg_snapshot_xip(s.snap) AS x
      WHERE NOT (xid(x) = ANY ($3::xid[]))
    ), pg_snapshot_xmax(s.snap)::text::bigint)
  ) AS limit_seq
  FROM s, mint_seq_xact AS x
)`;

/**
 * Transaction ids that can never write a mint: those running in other
 * databases of the cluster, and the audit sealer's (it only seals journal
 * rows; without this, every sealing pass would hold the feed back while it
 * runs). backend_xid is visible to every role.
 */
const OTHER_DATABASE_XIDS_SQL = `
SELECT COALESCE(array_agg(backend_xid::text), '{}') AS xids FROM pg_stat_activity
WHERE backend_xid IS NOT NULL
  AND (datid <> (SELECT oid FROM pg_database WHERE datname = current_database()) OR application_name = '${SEALER_APPLICATION_NAME}')`;

/**
 * Mints with `seq > afterSeq`, ascending, at most `limit` (capped at
 * LIST_MINTS_MAX_LIMIT), up to the feed's horizon (FEED_HORIZON_CTE): a
 * cursor never passes a mint that can still commit, so a poller never
 * skips one. Two round trips (the other databases' running ids first).
 * `ORDER BY mints.seq`, not `seq`: the bare name would pick the output
 * column `seq::text AS seq` and sort "10" before "9".
 */
export async function listMints(ledger: LedgerTx, query: ListMintsQuery): Promise<MintRecord[]> {
  const limit = Math.max(0, Math.min(Math.floor(query.limit), LIST_MINTS_MAX_LIMIT));
  if (limit === 0) return [];
  const others = await ledger.db.query<{ xids: string[] }>(OTHER_DATABASE_XIDS_SQL, [], "listing mints");
  const otherXids = others.rows[0]?.xids ?? [];
  if (query.status !== undefined) return listByStatus(ledger, query, query.status, limit, otherXids);
  const res =
    query.accountId === null
      ? await ledger.db.query<MintRow>(
          `${FEED_HORIZON_CTE} SELECT ${MINT_COLUMNS} FROM mints, h WHERE seq > $1 AND seq < h.limit_seq ORDER BY mints.seq LIMIT $2`,
          [query.afterSeq, limit, otherXids],
          "listing mints",
        )
      : await ledger.db.query<MintRow>(
          `${FEED_HORIZON_CTE} SELECT ${MINT_COLUMNS} FROM mints, h WHERE account_id = $4 AND seq > $1 AND seq < h.limit_seq ORDER BY mints.seq LIMIT $2`,
          [query.afterSeq, limit, otherXids, query.accountId],
          "listing mints",
        );
  return res.rows.map(mintFromRow);
}

/** ListMints filtered by status, up to the same horizon. */
export async function listByStatus(ledger: LedgerTx, query: ListMintsQuery, status: MintStatus, limit: number, otherXids: string[]): Promise<MintRecord[]> {
  const res = await ledger.db.query<MintRow>(
    `${FEED_HORIZON_CTE} SELECT ${MINT_COLUMNS} FROM mints, h WHERE status = $4 AND ($5::text IS NULL OR account_id = $5) AND seq > $1 AND seq < h.limit_seq ORDER BY mints.seq LIMIT $2`,
    [query.afterSeq, limit, otherXids, status, query.accountId],
    "listing mints",
  );
  return res.rows.map(mintFromRow);
}
