/**
 * The ledger's event feed on PostgreSQL (WatchLedger).
 *
 * Written by triggers on the ledger's own tables (mints, transfers,
 * redemptions, accounts, supply, settlements, settlement_txs), so every
 * change writes its events in its own transaction whatever code path made it
 * (the service, the standalone settlement worker) and whatever
 * MINT_AUDIT_JOURNAL says; a rolled-back change leaves none. Allowance
 * changes are the one exception: the allowance row also moves with every
 * mint that charges it, so SetMinterAllowance writes its event itself, in
 * its transaction (`recordAllowanceSet`).
 *
 * Order and gaps. An event's position is (xid, ord): the id of the
 * transaction that wrote it and a sequence number taken as it was written
 * (increasing within the transaction). A reader only ever reads events whose
 * xid is below the feed horizon: the oldest transaction id that may still
 * commit, from the reading statement's own snapshot (the smallest id in
 * progress, or the next id to be assigned), leaving out the ids seen running
 * in other databases of the cluster and the audit sealer's (neither writes
 * events; see FEED_HORIZON_CTE in postgres-ledger-store.ts, the same horizon
 * ListMints pages by). Every transaction below the horizon has ended, so the
 * events below it are final: none can appear later at or before a position
 * already read. Hence a cursor (a position) resumes exactly after the last
 * event read, on any replica, after any restart: the position is in the
 * database, not in the process. The order is transaction-id order: a
 * transaction's id is assigned at its first write, so two transactions that
 * overlap in time are ordered by when they first wrote, which is their
 * commit order for every pair whose second began writing after the first
 * committed.
 *
 * Retention deletes a prefix of the feed (events below the horizon, oldest
 * first, older than the retention) and records the last position deleted in
 * ledger_event_feed in the same statement; a read returns that position from
 * the same snapshot as its events, so a reader behind it knows it missed some.
 */
import pg from "pg";
import { FEED_START, type FeedPage, type FeedPosition, type LedgerEvent, type LedgerEventFeed, type LedgerEventKind } from "../../domain/ledger-events.js";
import type { Migration } from "./migrations.js";
import { SEALER_APPLICATION_NAME } from "./postgres-audit-journal.js";

export const LEDGER_EVENTS_MIGRATION: Migration = {
  version: 2901,
  name: "ledger event feed (WatchLedger)",
  sql: `
-- One row per event, written by the triggers below in the transaction of the
-- change. Position: (xid, ord); see src/adapters/postgres/ledger-events.ts.
CREATE SEQUENCE ledger_events_ord;
CREATE TABLE ledger_events (
  xid bigint NOT NULL DEFAULT (pg_current_xact_id()::text::bigint),
  ord bigint NOT NULL DEFAULT nextval('ledger_events_ord'),
  kind text NOT NULL,
  time_ms bigint NOT NULL,
  accounts text[] NOT NULL,
  data jsonb NOT NULL,
  PRIMARY KEY (xid, ord)
);
-- The feed's epoch (cursors of another database are refused) and the last
-- position retention deleted.
CREATE TABLE ledger_event_feed (
  id smallint PRIMARY KEY CHECK (id = 1),
  epoch text NOT NULL,
  pruned_xid bigint NOT NULL DEFAULT 0,
  pruned_ord bigint NOT NULL DEFAULT 0
);
INSERT INTO ledger_event_feed (id, epoch) VALUES (1, gen_random_uuid()::text);

CREATE FUNCTION ledger_event_ms(t timestamptz) RETURNS bigint LANGUAGE sql IMMUTABLE AS
$$ SELECT (extract(epoch FROM t) * 1000)::bigint $$;

CREATE FUNCTION ledger_event_mint_data(m mints, actor text, reason text) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
    'mint_id', m.mint_id, 'account_id', m.account_id, 'amount', m.amount::text, 'blockchain', m.blockchain,
    'status', m.status, 'approvals', COALESCE(jsonb_array_length(m.approval->'approvals'), 0)::text,
    'approvals_required', COALESCE(m.approval->>'required', '0'), 'actor', actor, 'reason', reason)
$$;

CREATE FUNCTION ledger_events_mints() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  n_old int;
  n_new int;
  t bigint;
BEGIN
  IF TG_OP = 'INSERT' THEN
    t := ledger_event_ms(NEW.create_time);
    INSERT INTO ledger_events (kind, time_ms, accounts, data) VALUES
      ('MINT_CREATED', t, ARRAY[NEW.account_id], ledger_event_mint_data(NEW, '', '')),
      (CASE WHEN NEW.status = 'PENDING_APPROVAL' THEN 'MINT_PENDING_APPROVAL' ELSE 'MINT_COMPLETED' END, t, ARRAY[NEW.account_id], ledger_event_mint_data(NEW, '', ''));
    RETURN NULL;
  END IF;
  n_old := COALESCE(jsonb_array_length(OLD.approval->'approvals'), 0);
  n_new := COALESCE(jsonb_array_length(NEW.approval->'approvals'), 0);
  t := ledger_event_ms(statement_timestamp());
  IF n_new > n_old THEN
    t := COALESCE((NEW.approval->'approvals'->(n_new - 1)->>'wallMs')::numeric::bigint, t);
    INSERT INTO ledger_events (kind, time_ms, accounts, data)
    VALUES ('MINT_APPROVED', t, ARRAY[NEW.account_id], ledger_event_mint_data(NEW, NEW.approval->'approvals'->(n_new - 1)->>'approver', ''));
  END IF;
  IF NEW.status IS DISTINCT FROM OLD.status THEN
    IF NEW.status = 'COMPLETED' THEN
      INSERT INTO ledger_events (kind, time_ms, accounts, data) VALUES ('MINT_COMPLETED', t, ARRAY[NEW.account_id], ledger_event_mint_data(NEW, '', ''));
    ELSIF NEW.status = 'REJECTED' THEN
      INSERT INTO ledger_events (kind, time_ms, accounts, data)
      VALUES ('MINT_REJECTED', COALESCE((NEW.approval->>'rejectWallMs')::numeric::bigint, t), ARRAY[NEW.account_id],
              ledger_event_mint_data(NEW, COALESCE(NEW.approval->>'rejectedBy', ''), COALESCE(NEW.approval->>'rejectReason', '')));
    ELSIF NEW.status = 'REVERSED' THEN
      INSERT INTO ledger_events (kind, time_ms, accounts, data)
      VALUES ('MINT_REVERSED', COALESCE(ledger_event_ms(NEW.reverse_time), t), ARRAY[NEW.account_id], ledger_event_mint_data(NEW, '', NEW.reverse_reason));
    END IF;
  END IF;
  RETURN NULL;
END;
$$;
CREATE TRIGGER ledger_events_mints_insert AFTER INSERT ON mints FOR EACH ROW EXECUTE FUNCTION ledger_events_mints();
CREATE TRIGGER ledger_events_mints_update AFTER UPDATE ON mints FOR EACH ROW
  WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.approval IS DISTINCT FROM NEW.approval)
  EXECUTE FUNCTION ledger_events_mints();

CREATE FUNCTION ledger_events_transfers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO ledger_events (kind, time_ms, accounts, data)
  VALUES ('TRANSFER', ledger_event_ms(NEW.create_time), ARRAY[NEW.from_account_id, NEW.to_account_id],
          jsonb_build_object('transfer_id', NEW.transfer_id, 'from_account_id', NEW.from_account_id, 'to_account_id', NEW.to_account_id, 'amount', NEW.amount::text));
  RETURN NULL;
END;
$$;
CREATE TRIGGER ledger_events_transfers AFTER INSERT ON transfers FOR EACH ROW EXECUTE FUNCTION ledger_events_transfers();

CREATE FUNCTION ledger_events_redemptions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO ledger_events (kind, time_ms, accounts, data)
  VALUES (CASE WHEN TG_OP = 'INSERT' THEN 'REDEMPTION' ELSE 'REDEMPTION_RECREDITED' END,
          ledger_event_ms(CASE WHEN TG_OP = 'INSERT' THEN NEW.create_time ELSE NEW.recredit_time END), ARRAY[NEW.account_id],
          jsonb_build_object('redemption_id', NEW.redemption_id, 'account_id', NEW.account_id, 'amount', NEW.amount::text,
                             'blockchain', NEW.blockchain, 'reason', CASE WHEN TG_OP = 'INSERT' THEN '' ELSE NEW.recredit_reason END));
  RETURN NULL;
END;
$$;
CREATE TRIGGER ledger_events_redemptions_insert AFTER INSERT ON redemptions FOR EACH ROW EXECUTE FUNCTION ledger_events_redemptions();
CREATE TRIGGER ledger_events_redemptions_recredit AFTER UPDATE ON redemptions FOR EACH ROW
  WHEN (OLD.recredit_time IS NULL AND NEW.recredit_time IS NOT NULL)
  EXECUTE FUNCTION ledger_events_redemptions();

CREATE FUNCTION ledger_events_accounts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO ledger_events (kind, time_ms, accounts, data)
  VALUES (CASE WHEN NEW.frozen THEN 'ACCOUNT_FROZEN' ELSE 'ACCOUNT_UNFROZEN' END, ledger_event_ms(statement_timestamp()), ARRAY[NEW.account_id],
          jsonb_build_object('account_id', NEW.account_id, 'frozen', NEW.frozen::text, 'reason', NEW.freeze_reason));
  RETURN NULL;
END;
$$;
CREATE TRIGGER ledger_events_accounts_insert AFTER INSERT ON accounts FOR EACH ROW WHEN (NEW.frozen) EXECUTE FUNCTION ledger_events_accounts();
CREATE TRIGGER ledger_events_accounts_update AFTER UPDATE ON accounts FOR EACH ROW
  WHEN (OLD.frozen IS DISTINCT FROM NEW.frozen OR (NEW.frozen AND OLD.freeze_reason IS DISTINCT FROM NEW.freeze_reason))
  EXECUTE FUNCTION ledger_events_accounts();

CREATE FUNCTION ledger_events_supply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO ledger_events (kind, time_ms, accounts, data)
  VALUES ('RESERVE_SET', ledger_event_ms(statement_timestamp()), '{}',
          jsonb_build_object('reserve', NEW.reserve::text, 'attestation_ref', NEW.attestation_ref));
  RETURN NULL;
END;
$$;
CREATE TRIGGER ledger_events_supply AFTER UPDATE ON supply FOR EACH ROW
  WHEN (OLD.reserve IS DISTINCT FROM NEW.reserve OR OLD.attestation_ref IS DISTINCT FROM NEW.attestation_ref)
  EXECUTE FUNCTION ledger_events_supply();

-- SUBMITTED is written with the settlement's first signed transaction (its
-- row is inserted after the state changes, in the same transaction), so the
-- event carries the hash; CONFIRMED and FAILED with the state change.
CREATE FUNCTION ledger_event_settlement_data(s settlements, tx_hash text) RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT jsonb_build_object(
    'settlement_id', s.settlement_id, 'settlement_kind', s.kind,
    'account_id', COALESCE(CASE WHEN s.kind = 'burn' THEN (SELECT account_id FROM redemptions WHERE redemption_id = s.settlement_id)
                                ELSE (SELECT account_id FROM mints WHERE mint_id = s.settlement_id) END, ''),
    'blockchain', s.blockchain, 'amount', s.amount::text, 'state', s.state, 'nonce', COALESCE(s.nonce, 0)::text,
    'tx_hash', COALESCE(tx_hash, s.mined_hash, ''), 'block_number', COALESCE(s.block_number, 0)::text,
    'error', CASE WHEN s.state = 'FAILED' THEN s.last_error ELSE '' END)
$$;
CREATE FUNCTION ledger_events_settlements() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  d jsonb;
BEGIN
  d := ledger_event_settlement_data(NEW, NULL);
  INSERT INTO ledger_events (kind, time_ms, accounts, data)
  VALUES ('SETTLEMENT_' || NEW.state, ledger_event_ms(NEW.update_time), CASE WHEN d->>'account_id' = '' THEN '{}' ELSE ARRAY[d->>'account_id'] END, d);
  RETURN NULL;
END;
$$;
CREATE TRIGGER ledger_events_settlements AFTER UPDATE ON settlements FOR EACH ROW
  WHEN (OLD.state IS DISTINCT FROM NEW.state AND NEW.state IN ('CONFIRMED', 'FAILED'))
  EXECUTE FUNCTION ledger_events_settlements();
CREATE FUNCTION ledger_events_settlement_submitted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  s settlements;
  d jsonb;
BEGIN
  SELECT * INTO s FROM settlements WHERE settlement_id = NEW.settlement_id;
  IF s.state <> 'SUBMITTED' OR EXISTS (SELECT 1 FROM settlement_txs WHERE settlement_id = NEW.settlement_id AND hash <> NEW.hash) THEN
    RETURN NULL;
  END IF;
  d := ledger_event_settlement_data(s, NEW.hash);
  INSERT INTO ledger_events (kind, time_ms, accounts, data)
  VALUES ('SETTLEMENT_SUBMITTED', ledger_event_ms(s.update_time), CASE WHEN d->>'account_id' = '' THEN '{}' ELSE ARRAY[d->>'account_id'] END, d);
  RETURN NULL;
END;
$$;
CREATE TRIGGER ledger_events_settlement_submitted AFTER INSERT ON settlement_txs FOR EACH ROW EXECUTE FUNCTION ledger_events_settlement_submitted();
`,
};

/** SetMinterAllowance's event, in its transaction (see the top of this file). */
export async function recordAllowanceSet(client: pg.ClientBase, principal: string, amountMicros: bigint, wallMs: number): Promise<void> {
  await client.query("INSERT INTO ledger_events (kind, time_ms, accounts, data) VALUES ('ALLOWANCE_SET', $1, '{}', jsonb_build_object('principal', $2::text, 'allowance', $3::text))", [
    wallMs,
    principal,
    amountMicros.toString(),
  ]);
}

/**
 * Transaction ids that never write events: those running in other databases
 * of the cluster, and the audit sealer's. Read in a statement before the
 * feed's own (the argument of FEED_HORIZON_CTE in postgres-ledger-store.ts).
 */
const OTHER_XIDS_SQL = `
SELECT COALESCE(array_agg(backend_xid::text), '{}') AS xids FROM pg_stat_activity
WHERE backend_xid IS NOT NULL
  AND (datid <> (SELECT oid FROM pg_database WHERE datname = current_database()) OR application_name = '${SEALER_APPLICATION_NAME}')`;

/** The horizon ($1: the other ids as text): every transaction with a smaller id has ended. */
const HORIZON_CTE = `
s AS (SELECT pg_current_snapshot() AS snap),
h AS (
  SELECT LEAST(
    pg_snapshot_xmax(s.snap)::text::bigint,
    COALESCE((SELECT min(x::text::bigint) FROM pg_snapshot_xip(s.snap) AS x WHERE NOT (x::text = ANY ($1::text[]))), pg_snapshot_xmax(s.snap)::text::bigint)
  ) AS lim
  FROM s
)`;

const READ_SQL = `
WITH ${HORIZON_CTE},
f AS (SELECT pruned_xid, pruned_ord FROM ledger_event_feed WHERE id = 1)
SELECT f.pruned_xid::text AS pruned_xid, f.pruned_ord::text AS pruned_ord,
  e.xid::text AS xid, e.ord::text AS ord, e.kind, e.time_ms::text AS time_ms, e.accounts, e.data
FROM f LEFT JOIN LATERAL (
  SELECT * FROM ledger_events
  WHERE (xid, ord) > ($2::bigint, $3::bigint) AND xid < (SELECT lim FROM h)
  ORDER BY xid, ord LIMIT $4
) AS e ON true
ORDER BY e.xid, e.ord`;

const HEAD_SQL = `
WITH ${HORIZON_CTE}
SELECT xid::text AS xid, ord::text AS ord FROM ledger_events WHERE xid < (SELECT lim FROM h) ORDER BY xid DESC, ord DESC LIMIT 1`;

const PRUNE_CANDIDATES_SQL = `
WITH ${HORIZON_CTE}
SELECT xid::text AS xid, ord::text AS ord, time_ms::text AS time_ms FROM ledger_events WHERE xid < (SELECT lim FROM h) ORDER BY xid, ord LIMIT $2`;

const PRUNE_SQL = `
WITH d AS (DELETE FROM ledger_events WHERE (xid, ord) <= ($1::bigint, $2::bigint) RETURNING 1),
u AS (
  UPDATE ledger_event_feed SET pruned_xid = $1, pruned_ord = $2
  WHERE id = 1 AND (pruned_xid, pruned_ord) < ($1::bigint, $2::bigint)
  RETURNING 1
)
SELECT (SELECT count(*) FROM d)::int AS deleted, (SELECT count(*) FROM u)::int AS moved`;

interface EventRow {
  pruned_xid: string;
  pruned_ord: string;
  xid: string | null;
  ord: string | null;
  kind: string | null;
  time_ms: string | null;
  accounts: string[] | null;
  data: Record<string, string> | null;
}

export class PostgresLedgerEventFeed implements LedgerEventFeed {
  private constructor(
    private readonly pool: pg.Pool,
    readonly epoch: string,
  ) {}

  /**
   * Opens the feed on a small pool of its own (the poller, resuming
   * watchers, retention), so a replica busy with calls never starves its
   * watchers and they never take a call's connection. The schema must be
   * migrated (openPostgresStores does it).
   */
  static async connect(opts: { url: string; statementTimeoutMs: number; connectTimeoutMs: number; poolSize?: number }): Promise<PostgresLedgerEventFeed> {
    const pool = new pg.Pool({
      connectionString: opts.url,
      max: opts.poolSize ?? 3,
      statement_timeout: opts.statementTimeoutMs,
      connectionTimeoutMillis: opts.connectTimeoutMs,
      application_name: "usdc-mint-service ledger events",
    });
    // An idle client's socket error is reported here; the next query reconnects.
    pool.on("error", () => undefined);
    try {
      const res = await pool.query<{ epoch: string }>("SELECT epoch FROM ledger_event_feed WHERE id = 1");
      const epoch = res.rows[0]?.epoch;
      if (epoch === undefined) throw new Error("invariant violated: ledger_event_feed has no row (migration 2901 not applied)");
      return new PostgresLedgerEventFeed(pool, epoch);
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  /** Runs the two statements of a horizon read on one connection, in order. */
  private async withHorizon<R extends pg.QueryResultRow>(sql: string, params: readonly unknown[]): Promise<R[]> {
    const client = await this.pool.connect();
    // pg emits 'error' on a checked-out client whose connection ends, and the
    // pool listens only to idle ones: unheard, it would end the process. The
    // statement in flight rejects with the same error, and the caller retries.
    const onError = (): void => undefined;
    client.on("error", onError);
    let broken: Error | undefined;
    try {
      const other = await client.query<{ xids: string[] }>(OTHER_XIDS_SQL);
      const res = await client.query<R>(sql, [other.rows[0]?.xids ?? [], ...params]);
      return res.rows;
    } catch (err) {
      broken = err instanceof Error ? err : new Error(String(err));
      throw err;
    } finally {
      client.removeListener("error", onError);
      client.release(broken);
    }
  }

  async read(after: FeedPosition, limit: number): Promise<FeedPage> {
    const rows = await this.withHorizon<EventRow>(READ_SQL, [after.a.toString(), after.b.toString(), limit]);
    const first = rows[0];
    const prunedThrough = first === undefined ? FEED_START : { a: BigInt(first.pruned_xid), b: BigInt(first.pruned_ord) };
    const events: LedgerEvent[] = [];
    for (const r of rows) {
      if (r.xid === null || r.ord === null) continue;
      const a = BigInt(r.xid);
      const b = BigInt(r.ord);
      events.push({
        position: { a, b },
        id: `evt_${r.xid}_${r.ord}`,
        kind: r.kind as LedgerEventKind,
        timeMs: Number(r.time_ms),
        accounts: r.accounts ?? [],
        data: r.data ?? {},
      });
    }
    return { events, prunedThrough };
  }

  async head(): Promise<FeedPosition> {
    const rows = await this.withHorizon<{ xid: string; ord: string }>(HEAD_SQL, []);
    const r = rows[0];
    if (r !== undefined) return { a: BigInt(r.xid), b: BigInt(r.ord) };
    const pruned = await this.pool.query<{ x: string; o: string }>("SELECT pruned_xid::text AS x, pruned_ord::text AS o FROM ledger_event_feed WHERE id = 1");
    const p = pruned.rows[0];
    return p === undefined ? FEED_START : { a: BigInt(p.x), b: BigInt(p.o) };
  }

  async prune(beforeWallMs: number, maxEvents: number): Promise<number> {
    const rows = await this.withHorizon<{ xid: string; ord: string; time_ms: string }>(PRUNE_CANDIDATES_SQL, [maxEvents]);
    let last: { xid: string; ord: string } | null = null;
    for (const r of rows) {
      if (Number(r.time_ms) >= beforeWallMs) break;
      last = r;
    }
    if (last === null) return 0;
    const res = await this.pool.query<{ deleted: number }>(PRUNE_SQL, [last.xid, last.ord]);
    return res.rows[0]?.deleted ?? 0;
  }
}
