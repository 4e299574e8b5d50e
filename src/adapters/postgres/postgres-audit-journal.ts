/**
 * The audit journal in PostgreSQL (issue 10), without a global queue.
 *
 * Appending: every state-changing transaction inserts its record UNSEALED
 * (no seq, no hashes) with its other statements, so concurrent transactions
 * on different accounts never wait for one another. Two ways, the same row:
 *  - `journalCte(n)` + `journalParams(u)`: one more CTE in the change's own
 *    statement (no extra round trip; mint and transfer use it);
 *  - `appendJournal(client, u)`: one INSERT on the transaction's client
 *    (reversal, and any new store method).
 *
 * Sealing: a single sealer at a time across replicas (a transaction-scoped
 * advisory lock; a replica that cannot take it skips the pass) reads the
 * committed unsealed rows in insert order, chains them after the head
 * (seq = head + 1, ..., prev_hash, hash) and writes that in one UPDATE. A
 * pass runs right after every commit that appended a record (coalesced: at
 * most one pass in flight per replica, and one more queued) and every
 * SEAL_INTERVAL_MS on every replica, so a record whose replica died between
 * commit and kick is sealed by any other (or by the next one to start).
 * Bound: while at least one replica runs, a committed record is sealed
 * within SEAL_INTERVAL_MS plus the time to seal the records ahead of it
 * (SEAL_BATCH per pass, passes back to back).
 */
import type pg from "pg";
import { recordHash, canonicalObjectJson, type AuditJournal, type AuditQuery, type AuditRecord, type CanonicalObject, type UnsealedAuditRecord } from "../../domain/audit.js";
import type { Clock } from "../../domain/clock.js";
import { GENESIS_HASH } from "../../domain/audit.js";
import { backgroundBounds, inTransaction } from "./pg-transaction.js";

/** How often every replica runs a sealing pass even without a kick, in ms: the unsealed bound's main term. */
export const SEAL_INTERVAL_MS = 100;
/** Records sealed per pass (one UPDATE). */
export const SEAL_BATCH = 1000;
/** The sealer's advisory lock: "mint" in ASCII, and 10 for the issue. */
const SEALER_LOCK = [0x6d696e74, 10] as const;

/**
 * The sealer's application_name inside its transaction: the mint feed leaves
 * its transaction ids out of its horizon (it never writes mints), so a
 * sealing pass never holds ListMints back.
 */
export const SEALER_APPLICATION_NAME = "usdc-mint audit sealer";

const INSERT_COLUMNS = "time_ms, actor, action, idempotency_key, request, result, accounts";

/** A CTE named `j` that inserts the record whose 7 parameters start at `$first` (see `journalParams`). */
export function journalCte(first: number): string {
  const p = (i: number): string => `$${first + i}`;
  return `j AS (
  INSERT INTO audit_journal (${INSERT_COLUMNS})
  VALUES (${p(0)}::bigint, ${p(1)}, ${p(2)}, ${p(3)}, ${p(4)}, ${p(5)}, ${p(6)}::text[])
  RETURNING 1
)`;
}

/**
 * Like `journalCte`, but the record is inserted only when the CTE `source`
 * returned a row: for a one-statement change that may refuse (issue 12's
 * SetReserve), so a refusal journals nothing.
 */
export function journalCteWhen(first: number, source: string): string {
  const p = (i: number): string => `$${first + i}`;
  return `j AS (
  INSERT INTO audit_journal (${INSERT_COLUMNS})
  SELECT ${p(0)}::bigint, ${p(1)}::text, ${p(2)}::text, ${p(3)}::text, ${p(4)}::text, ${p(5)}::text, ${p(6)}::text[] FROM ${source}
  RETURNING 1
)`;
}

/** The 7 parameters of `journalCte` / `appendJournal`, in order. */
export function journalParams(u: UnsealedAuditRecord): unknown[] {
  return [u.timeMs, u.actor, u.action, u.idempotencyKey, canonicalObjectJson(u.request), canonicalObjectJson(u.result), u.accounts];
}

const APPEND_SQL = `INSERT INTO audit_journal (${INSERT_COLUMNS}) VALUES ($1::bigint, $2, $3, $4, $5, $6, $7::text[])`;

/**
 * THE append: inserts `u` unsealed on `client`, which must be inside the
 * transaction of the change it records (so both commit or neither). Call
 * `PostgresAuditJournal.kick()` after that transaction commits.
 */
export async function appendJournal(client: pg.ClientBase, u: UnsealedAuditRecord): Promise<void> {
  await client.query(APPEND_SQL, journalParams(u));
}

interface Row {
  seq: string;
  time_ms: string;
  actor: string;
  action: string;
  idempotency_key: string | null;
  request: string;
  result: string;
  accounts: string[];
  prev_hash: string;
  hash: string;
}

const COLUMNS = "seq::text AS seq, time_ms::text AS time_ms, actor, action, idempotency_key, request, result, accounts, prev_hash, hash";

function parseObject(text: string): CanonicalObject {
  // A tampered row may hold anything; whatever it parses to is what the hash is checked against.
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as CanonicalObject) : { invalid: text };
  } catch {
    return { invalid: text };
  }
}

function fromRow(r: Row): AuditRecord {
  return {
    seq: Number(r.seq),
    timeMs: Number(r.time_ms),
    actor: r.actor,
    action: r.action,
    idempotencyKey: r.idempotency_key,
    request: parseObject(r.request) as Readonly<Record<string, string>>,
    result: parseObject(r.result),
    accounts: r.accounts,
    prevHash: r.prev_hash,
    hash: r.hash,
  };
}

/** What the journal needs of a pool (a pg.Pool; the verify command opens a bare one). */
export interface Queryable {
  query<R extends pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
  connect(): Promise<pg.PoolClient>;
}

/** Bounds of a sealing transaction when the journal is not given the store's statement timeout (the verify command). */
const DEFAULT_SEAL_STATEMENT_TIMEOUT_MS = 10_000;

export interface SealerLogger {
  warn(o: object, m: string): void;
}

export class PostgresAuditJournal implements AuditJournal {
  private running: Promise<void> | null = null;
  private again = false;
  private cancelTimer: () => void = () => undefined;
  private closed = false;
  private failing = false;

  constructor(
    private readonly pool: Queryable,
    private readonly opts: {
      readonly clock: Clock;
      readonly logger?: SealerLogger;
      readonly sealIntervalMs?: number;
      /** Bounds each sealing transaction (lock wait, statement, idleness; see `backgroundBounds`); the store's statement timeout. */
      readonly statementTimeoutMs?: number;
    } = { clock: undefinedClock() },
  ) {}

  async list(q: AuditQuery): Promise<AuditRecord[]> {
    const res = await this.pool.query<Row>(
      `SELECT ${COLUMNS} FROM audit_journal
       WHERE seq > $1 AND ($2::text IS NULL OR accounts @> ARRAY[$2::text]) AND ($3::text IS NULL OR actor = $3)
         AND time_ms >= $4::bigint AND ($5::bigint IS NULL OR time_ms < $5::bigint)
       ORDER BY audit_journal.seq LIMIT $6`,
      [q.afterSeq, q.accountId, q.actor, q.fromTimeMs, q.toTimeMs === Infinity ? null : q.toTimeMs, q.limit],
    );
    return res.rows.map(fromRow);
  }

  async readSealed(afterSeq: number, limit: number): Promise<AuditRecord[]> {
    const res = await this.pool.query<Row>(`SELECT ${COLUMNS} FROM audit_journal WHERE seq > $1 ORDER BY audit_journal.seq LIMIT $2`, [afterSeq, limit]);
    return res.rows.map(fromRow);
  }

  async readOne(seq: number): Promise<AuditRecord | null> {
    const res = await this.pool.query<Row>(`SELECT ${COLUMNS} FROM audit_journal WHERE seq = $1`, [seq]);
    const row = res.rows[0];
    return row === undefined ? null : fromRow(row);
  }

  async unsealedCount(): Promise<number> {
    const res = await this.pool.query<{ n: number }>("SELECT count(*)::int AS n FROM audit_journal WHERE seq IS NULL");
    return res.rows[0]?.n ?? 0;
  }

  /** Starts the periodic pass (and runs one now: records a stopped replica left unsealed). */
  start(): void {
    this.kick();
    this.schedule();
  }

  /** Asks for a sealing pass soon; coalesced with one in flight. Call it after a commit that appended. */
  kick(): void {
    if (this.closed) return;
    if (this.running !== null) {
      this.again = true;
      return;
    }
    this.running = this.drain().finally(() => {
      this.running = null;
      if (this.again && !this.closed) {
        this.again = false;
        this.kick();
      }
    });
  }

  /** Resolves when the pass in flight (if any) and the one queued behind it are done. */
  async settled(): Promise<void> {
    while (this.running !== null) await this.running;
  }

  /** Stops the timer and seals what is left (a clean stop leaves nothing unsealed). */
  async close(): Promise<void> {
    this.cancelTimer();
    await this.settled();
    this.closed = true;
    try {
      while ((await this.sealOnce()) === SEAL_BATCH);
    } catch (err) {
      this.opts.logger?.warn({ err: err instanceof Error ? err.message : String(err) }, "final audit sealing pass failed; the next replica to start seals the rest");
    }
  }

  private schedule(): void {
    if (this.closed) return;
    this.cancelTimer = this.opts.clock.setTimer(this.opts.sealIntervalMs ?? SEAL_INTERVAL_MS, () => {
      this.kick();
      this.schedule();
    });
  }

  /**
   * Passes back to back until a pass finds less than a full batch. A failure
   * (the database unreachable) is logged once, not every pass, until a pass
   * succeeds again; the next pass retries.
   */
  private async drain(): Promise<void> {
    try {
      while ((await this.sealOnce()) === SEAL_BATCH);
      if (this.failing) this.opts.logger?.warn({}, "audit sealing passes succeed again");
      this.failing = false;
    } catch (err) {
      if (!this.failing) this.opts.logger?.warn({ err: err instanceof Error ? err.message : String(err) }, "audit sealing pass failed; retrying every pass until it succeeds");
      this.failing = true;
    }
  }

  /**
   * One pass: under the sealer lock, seals up to SEAL_BATCH committed
   * unsealed records in insert order after the head. Returns how many it
   * sealed (0 when another replica holds the lock).
   */
  async sealOnce(): Promise<number> {
    // SET LOCAL application_name in BEGIN's round trip, before any write, so
    // the name is in pg_stat_activity before this transaction has an id.
    return inTransaction(
      this.pool,
      backgroundBounds(this.opts.statementTimeoutMs ?? DEFAULT_SEAL_STATEMENT_TIMEOUT_MS),
      async (client) => {
        const lock = await client.query<{ got: boolean }>("SELECT pg_try_advisory_xact_lock($1, $2) AS got", [...SEALER_LOCK]);
        if (lock.rows[0]?.got !== true) return 0;
        const head = await client.query<{ seq: string; hash: string }>("SELECT seq::text AS seq, hash FROM audit_journal WHERE seq IS NOT NULL ORDER BY audit_journal.seq DESC LIMIT 1");
        const pending = await client.query<Omit<Row, "seq" | "prev_hash" | "hash"> & { record_id: string }>(
          `SELECT record_id::text AS record_id, time_ms::text AS time_ms, actor, action, idempotency_key, request, result, accounts
           FROM audit_journal WHERE seq IS NULL ORDER BY record_id LIMIT $1`,
          [SEAL_BATCH],
        );
        if (pending.rows.length === 0) return 0;
        let seq = Number(head.rows[0]?.seq ?? 0);
        let prevHash = head.rows[0]?.hash ?? GENESIS_HASH;
        const ids: string[] = [];
        const seqs: number[] = [];
        const prevs: string[] = [];
        const hashes: string[] = [];
        for (const r of pending.rows) {
          seq++;
          const record = fromRow({ ...r, seq: String(seq), prev_hash: prevHash, hash: "" });
          const hash = recordHash(record);
          ids.push(r.record_id);
          seqs.push(seq);
          prevs.push(prevHash);
          hashes.push(hash);
          prevHash = hash;
        }
        await client.query(
          `UPDATE audit_journal AS a SET seq = v.seq, prev_hash = v.prev_hash, hash = v.hash
           FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[]) AS v (record_id, seq, prev_hash, hash)
           WHERE a.record_id = v.record_id`,
          [ids, seqs, prevs, hashes],
        );
        return pending.rows.length;
      },
      `SET LOCAL application_name = '${SEALER_APPLICATION_NAME}'`,
    );
  }
}

/** A clock for read-only use (the verify command never seals on a timer). */
function undefinedClock(): Clock {
  return {
    nowMs: () => performance.now(),
    wallMs: () => Date.now(),
    setTimer: () => () => undefined,
  };
}
