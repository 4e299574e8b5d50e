/**
 * The outbox in PostgreSQL, beside the ledger, so the mint's own transaction
 * can write its settlement row (`enqueueIn(client, …)`), and one sender per
 * chain across replicas through a session-level advisory lock.
 *
 * The database itself refuses what must never happen: a settlement gets a
 * nonce exactly once (the PENDING → SUBMITTED update is conditional), and no
 * two settlements of a chain share a nonce (a unique index), even if two
 * replicas both believed they held the sender lock.
 *
 * The tables come from `SETTLEMENT_MIGRATIONS`; once the store adopts them
 * they are appended to the ledger's `MIGRATIONS` (versions 15xx are reserved).
 */
import type pg from "pg";
import { BLOCKCHAINS, type Blockchain } from "../domain/model.js";
import type { Migration } from "../adapters/postgres/migrations.js";
import { backgroundBounds, inTransaction, type TxBounds } from "../adapters/postgres/pg-transaction.js";
import {
  MAX_GET_MANY,
  type Hex,
  type NewSettlement,
  type RecordSignedOutcome,
  type SenderLock,
  type Settlement,
  type SettlementBacklog,
  type SettlementEffects,
  type SettlementOutbox,
  type SettlementState,
  type SettlementTx,
} from "./ports.js";

export const SETTLEMENT_MIGRATIONS: readonly Migration[] = [
  {
    version: 1501,
    name: "settlement outbox",
    sql: `
-- One row per mint to settle on-chain, written in the mint's own transaction.
-- seq orders the worker's signing; nonce is set once, when the first
-- transaction is signed (PENDING -> SUBMITTED), and never changes.
CREATE TABLE settlements (
  seq bigserial PRIMARY KEY,
  settlement_id text NOT NULL UNIQUE,
  kind text NOT NULL CHECK (kind IN ('mint')),
  blockchain text NOT NULL,
  amount numeric(38,0) NOT NULL CHECK (amount > 0),
  state text NOT NULL CHECK (state IN ('PENDING', 'SUBMITTED', 'CONFIRMED', 'FAILED')),
  nonce bigint CHECK (nonce >= 0),
  mined_hash text,
  block_number bigint,
  confirmations integer NOT NULL DEFAULT 0,
  attempts integer NOT NULL DEFAULT 0,
  last_error text NOT NULL DEFAULT '',
  create_time timestamptz NOT NULL,
  update_time timestamptz NOT NULL,
  CHECK ((state = 'PENDING') = (nonce IS NULL))
);
-- One nonce per ledger mint: no two settlements of a chain ever share one.
CREATE UNIQUE INDEX settlements_blockchain_nonce ON settlements (blockchain, nonce) WHERE nonce IS NOT NULL;
CREATE INDEX settlements_pending ON settlements (blockchain, seq) WHERE state = 'PENDING';
CREATE INDEX settlements_in_flight ON settlements (blockchain, nonce) WHERE state = 'SUBMITTED';

-- Every transaction signed for a settlement, stored BEFORE it is broadcast
-- (fee-bump replacements add rows with the same nonce).
CREATE TABLE settlement_txs (
  hash text PRIMARY KEY,
  settlement_id text NOT NULL REFERENCES settlements (settlement_id),
  nonce bigint NOT NULL,
  raw text NOT NULL,
  max_fee_per_gas numeric(78,0) NOT NULL,
  max_priority_fee_per_gas numeric(78,0) NOT NULL,
  signed_time timestamptz NOT NULL
);
CREATE INDEX settlement_txs_settlement_id ON settlement_txs (settlement_id, signed_time);
`,
  },
];

/** Issue 16: redemptions burn through the same outbox (appended after the ledger's 16xx migrations). */
export const BURN_SETTLEMENT_MIGRATION: Migration = {
  version: 1601,
  name: "issue 16: redemptions settle as burns",
  sql: `
-- A redemption on a settling chain writes a 'burn' settlement (id = the
-- redemption id) in its own transaction.
ALTER TABLE settlements DROP CONSTRAINT settlements_kind_check;
ALTER TABLE settlements ADD CONSTRAINT settlements_kind_check CHECK (kind IN ('mint', 'burn'));
`,
};

interface SettlementRow {
  seq: string;
  settlement_id: string;
  kind: "mint" | "burn";
  blockchain: Blockchain;
  amount: string;
  state: SettlementState;
  nonce: string | null;
  mined_hash: string | null;
  block_number: string | null;
  confirmations: number;
  attempts: number;
  last_error: string;
  create_time: Date;
  update_time: Date;
}

interface TxRow {
  hash: string;
  settlement_id: string;
  nonce: string;
  raw: string;
  max_fee_per_gas: string;
  max_priority_fee_per_gas: string;
  signed_time: Date;
}

type Mined = { hash: Hex; blockNumber: bigint; confirmations: number };
/** A pool, or a client inside a transaction. */
type Queryable = pg.Pool | pg.ClientBase;

function toTx(r: TxRow): SettlementTx {
  return {
    hash: r.hash as Hex,
    raw: r.raw as Hex,
    nonce: Number(r.nonce),
    maxFeePerGas: BigInt(r.max_fee_per_gas),
    maxPriorityFeePerGas: BigInt(r.max_priority_fee_per_gas),
    signedWallMs: r.signed_time.getTime(),
  };
}

function toSettlement(r: SettlementRow, txs: readonly SettlementTx[]): Settlement {
  return {
    settlementId: r.settlement_id,
    kind: r.kind,
    blockchain: r.blockchain,
    amountMicros: BigInt(r.amount),
    seq: Number(r.seq),
    state: r.state,
    txs,
    minedHash: r.mined_hash as Hex | null,
    blockNumber: r.block_number === null ? null : BigInt(r.block_number),
    confirmations: r.confirmations,
    attempts: r.attempts,
    lastError: r.last_error,
    createWallMs: r.create_time.getTime(),
    updateWallMs: r.update_time.getTime(),
  };
}

/**
 * Adds a PENDING settlement on `client`, inside the caller's transaction (the
 * mint's or the redemption's). Idempotent per settlement id.
 */
export async function enqueueSettlement(client: Queryable, s: NewSettlement): Promise<void> {
  if (s.amountMicros <= 0n) throw new Error("enqueue: the amount must be positive");
  await client.query(
    `INSERT INTO settlements (settlement_id, kind, blockchain, amount, state, create_time, update_time)
     VALUES ($1, $5, $2, $3, 'PENDING', to_timestamp($4 / 1000.0), to_timestamp($4 / 1000.0))
     ON CONFLICT (settlement_id) DO NOTHING`,
    [s.settlementId, s.blockchain, s.amountMicros.toString(), s.createWallMs, s.kind ?? "mint"],
  );
}

/**
 * ReconcileMint's half, on `client` inside the reversal's transaction: removes
 * the settlement while PENDING and returns what it found ("PENDING" =
 * cancelled; "SUBMITTED" / "CONFIRMED" / "FAILED" = leave the mint alone;
 * "MISSING" = the mint never needed settlement).
 */
export async function cancelSettlement(client: Queryable, settlementId: string): Promise<SettlementState | "MISSING"> {
  // FOR UPDATE: a worker signing it right now (recordSigned's UPDATE) either
  // commits first (we see SUBMITTED) or waits for us (and finds it gone).
  const found = await client.query<{ state: SettlementState }>("SELECT state FROM settlements WHERE settlement_id = $1 FOR UPDATE", [settlementId]);
  const state = found.rows[0]?.state ?? "MISSING";
  if (state === "PENDING") await client.query("DELETE FROM settlements WHERE settlement_id = $1", [settlementId]);
  return state;
}

/** Bounds of the outbox's transactions when it is not given the store's statement timeout (tests). */
const DEFAULT_STATEMENT_TIMEOUT_MS = 10_000;

export class PostgresSettlementOutbox implements SettlementOutbox {
  /**
   * The worker's steps have no caller deadline: each transaction is bounded
   * by the store's statement timeout (lock wait, statement, idleness) and
   * pins READ COMMITTED like every transaction of the store.
   */
  private readonly bounds: TxBounds;

  constructor(
    private readonly pool: pg.Pool,
    private readonly effects?: SettlementEffects<pg.PoolClient>,
    opts: { readonly statementTimeoutMs?: number } = {},
  ) {
    this.bounds = backgroundBounds(opts.statementTimeoutMs ?? DEFAULT_STATEMENT_TIMEOUT_MS);
  }

  private async withTxs(rows: SettlementRow[], client: Queryable = this.pool): Promise<Settlement[]> {
    if (rows.length === 0) return [];
    const res = await client.query<TxRow>("SELECT * FROM settlement_txs WHERE settlement_id = ANY($1) ORDER BY signed_time, hash", [rows.map((r) => r.settlement_id)]);
    const by = new Map<string, SettlementTx[]>();
    for (const t of res.rows) {
      const list = by.get(t.settlement_id) ?? [];
      list.push(toTx(t));
      by.set(t.settlement_id, list);
    }
    return rows.map((r) => toSettlement(r, by.get(r.settlement_id) ?? []));
  }

  async enqueue(s: NewSettlement): Promise<void> {
    await enqueueSettlement(this.pool, s);
  }

  async nextPending(blockchain: Blockchain, limit: number): Promise<Settlement[]> {
    const res = await this.pool.query<SettlementRow>("SELECT * FROM settlements WHERE blockchain = $1 AND state = 'PENDING' ORDER BY seq LIMIT $2", [blockchain, limit]);
    return res.rows.map((r) => toSettlement(r, []));
  }

  async inFlight(blockchain: Blockchain): Promise<Settlement[]> {
    const res = await this.pool.query<SettlementRow>("SELECT * FROM settlements WHERE blockchain = $1 AND state = 'SUBMITTED' ORDER BY nonce", [blockchain]);
    return this.withTxs(res.rows);
  }

  async highestNonce(blockchain: Blockchain): Promise<number> {
    const res = await this.pool.query<{ max: string | null }>("SELECT max(nonce) AS max FROM settlements WHERE blockchain = $1 AND nonce IS NOT NULL", [blockchain]);
    return res.rows[0]?.max === null || res.rows[0] === undefined ? -1 : Number(res.rows[0].max);
  }

  async recordSigned(settlementId: string, tx: SettlementTx, wallMs: number): Promise<RecordSignedOutcome> {
    return inTransaction(this.pool, this.bounds, async (c) => {
      const res = await c.query<SettlementRow>(
        `UPDATE settlements SET state = 'SUBMITTED', nonce = $2, update_time = to_timestamp($3 / 1000.0)
         WHERE settlement_id = $1 AND state = 'PENDING' RETURNING *`,
        [settlementId, tx.nonce, wallMs],
      );
      const row = res.rows[0];
      if (row === undefined) {
        const found = await c.query<{ state: SettlementState }>("SELECT state FROM settlements WHERE settlement_id = $1", [settlementId]);
        return { ok: false, code: "SETTLEMENT_NOT_PENDING", state: found.rows[0]?.state ?? "MISSING" } as const;
      }
      await c.query(
        `INSERT INTO settlement_txs (hash, settlement_id, nonce, raw, max_fee_per_gas, max_priority_fee_per_gas, signed_time)
         VALUES ($1, $2, $3, $4, $5, $6, to_timestamp($7 / 1000.0))`,
        [tx.hash, settlementId, tx.nonce, tx.raw, tx.maxFeePerGas.toString(), tx.maxPriorityFeePerGas.toString(), tx.signedWallMs],
      );
      const [settlement] = await this.withTxs([row], c);
      return { ok: true, settlement: settlement as Settlement } as const;
    });
  }

  async recordReplacement(settlementId: string, tx: SettlementTx, wallMs: number): Promise<boolean> {
    // One statement: the row is stored only while the settlement is SUBMITTED with this very nonce.
    const res = await this.pool.query(
      `WITH s AS (
         UPDATE settlements SET update_time = to_timestamp($8 / 1000.0)
         WHERE settlement_id = $2 AND state = 'SUBMITTED' AND nonce = $3 RETURNING 1
       )
       INSERT INTO settlement_txs (hash, settlement_id, nonce, raw, max_fee_per_gas, max_priority_fee_per_gas, signed_time)
       SELECT $1, $2, $3, $4, $5, $6, to_timestamp($7 / 1000.0) FROM s`,
      [tx.hash, settlementId, tx.nonce, tx.raw, tx.maxFeePerGas.toString(), tx.maxPriorityFeePerGas.toString(), tx.signedWallMs, wallMs],
    );
    return res.rowCount === 1;
  }

  async recordAttempt(settlementId: string, error: string, wallMs: number): Promise<void> {
    await this.pool.query(
      "UPDATE settlements SET attempts = attempts + 1, last_error = $2, update_time = to_timestamp($3 / 1000.0) WHERE settlement_id = $1 AND state = 'SUBMITTED'",
      [settlementId, error, wallMs],
    );
  }

  async recordWaiting(settlementId: string, reason: string, wallMs: number): Promise<void> {
    await this.pool.query("UPDATE settlements SET last_error = $2, update_time = to_timestamp($3 / 1000.0) WHERE settlement_id = $1 AND state = 'SUBMITTED'", [
      settlementId,
      reason,
      wallMs,
    ]);
  }

  async recordProgress(settlementId: string, mined: Mined | null, wallMs: number): Promise<void> {
    await this.pool.query(
      `UPDATE settlements SET mined_hash = $2, block_number = $3, confirmations = $4, update_time = to_timestamp($5 / 1000.0)
       WHERE settlement_id = $1 AND state = 'SUBMITTED'`,
      [settlementId, mined?.hash ?? null, mined?.blockNumber.toString() ?? null, mined?.confirmations ?? 0, wallMs],
    );
  }

  /** Moves SUBMITTED to a final state and runs the ledger's effect in the same transaction; false (no-op) when not SUBMITTED. */
  private async finish(settlementId: string, state: "CONFIRMED" | "FAILED", mined: Mined | null, reason: string, wallMs: number): Promise<boolean> {
    return inTransaction(this.pool, this.bounds, async (c) => {
      // The store's lock order: the ledger's row (the mint) before the settlement's.
      await this.effects?.lockFirst?.(c, settlementId);
      const res = await c.query<SettlementRow>(
        `UPDATE settlements SET state = $2, mined_hash = $3, block_number = $4, confirmations = $5, last_error = $6, update_time = to_timestamp($7 / 1000.0)
         WHERE settlement_id = $1 AND state = 'SUBMITTED' RETURNING *`,
        [settlementId, state, mined?.hash ?? null, mined?.blockNumber.toString() ?? null, mined?.confirmations ?? 0, reason, wallMs],
      );
      const row = res.rows[0];
      if (row === undefined) return false;
      if (this.effects === undefined) return true;
      const [s] = await this.withTxs([row], c);
      if (state === "CONFIRMED") await this.effects.confirmed(c, s as Settlement);
      else await this.effects.failed(c, s as Settlement, reason);
      return true;
    });
  }

  async markConfirmed(settlementId: string, mined: Mined, wallMs: number): Promise<boolean> {
    return this.finish(settlementId, "CONFIRMED", mined, "", wallMs);
  }

  async markFailed(settlementId: string, mined: Mined | null, reason: string, wallMs: number): Promise<boolean> {
    return this.finish(settlementId, "FAILED", mined, reason, wallMs);
  }

  async cancel(settlementId: string): Promise<SettlementState | "MISSING"> {
    return inTransaction(this.pool, this.bounds, (c) => cancelSettlement(c, settlementId));
  }

  async get(settlementId: string): Promise<Settlement | null> {
    const res = await this.pool.query<SettlementRow>("SELECT * FROM settlements WHERE settlement_id = $1", [settlementId]);
    const [s] = await this.withTxs(res.rows);
    return s ?? null;
  }

  /**
   * One query, one round trip, whatever the number of ids: the settlements
   * joined with their transactions (a settlement without any gives one row
   * of nulls), grouped here. Before, ListMints asked once per mint (two
   * queries each).
   */
  async getMany(settlementIds: readonly string[]): Promise<Map<string, Settlement>> {
    if (settlementIds.length > MAX_GET_MANY) throw new Error(`getMany: at most ${MAX_GET_MANY} ids, got ${settlementIds.length}`);
    const out = new Map<string, Settlement>();
    if (settlementIds.length === 0) return out;
    const res = await this.pool.query<SettlementRow & { [K in keyof TxRow as `tx_${K}`]: TxRow[K] | null }>(
      `SELECT s.*, t.hash AS tx_hash, t.settlement_id AS tx_settlement_id, t.nonce AS tx_nonce, t.raw AS tx_raw,
              t.max_fee_per_gas AS tx_max_fee_per_gas, t.max_priority_fee_per_gas AS tx_max_priority_fee_per_gas, t.signed_time AS tx_signed_time
       FROM settlements s LEFT JOIN settlement_txs t ON t.settlement_id = s.settlement_id
       WHERE s.settlement_id = ANY($1)
       ORDER BY s.seq, t.signed_time, t.hash`,
      [settlementIds],
    );
    const rows = new Map<string, { row: SettlementRow; txs: SettlementTx[] }>();
    for (const r of res.rows) {
      let entry = rows.get(r.settlement_id);
      if (entry === undefined) {
        entry = { row: r, txs: [] };
        rows.set(r.settlement_id, entry);
      }
      if (r.tx_hash !== null) {
        entry.txs.push(
          toTx({
            hash: r.tx_hash,
            settlement_id: r.settlement_id,
            nonce: r.tx_nonce as string,
            raw: r.tx_raw as string,
            max_fee_per_gas: r.tx_max_fee_per_gas as string,
            max_priority_fee_per_gas: r.tx_max_priority_fee_per_gas as string,
            signed_time: r.tx_signed_time as Date,
          }),
        );
      }
    }
    for (const [id, { row, txs }] of rows) out.set(id, toSettlement(row, txs));
    return out;
  }

  async backlog(): Promise<Map<Blockchain, SettlementBacklog>> {
    // Two halves, each on its partial index (settlements_pending,
    // settlements_in_flight), so the query reads open settlements only.
    const res = await this.pool.query<{ blockchain: Blockchain; state: "PENDING" | "SUBMITTED"; n: string; oldest: Date }>(
      `SELECT blockchain, 'PENDING' AS state, count(*) AS n, min(create_time) AS oldest FROM settlements WHERE state = 'PENDING' GROUP BY blockchain
       UNION ALL
       SELECT blockchain, 'SUBMITTED' AS state, count(*) AS n, min(create_time) AS oldest FROM settlements WHERE state = 'SUBMITTED' GROUP BY blockchain`,
    );
    const out = new Map<Blockchain, SettlementBacklog>();
    for (const r of res.rows) {
      const b = out.get(r.blockchain) ?? { pending: 0, submitted: 0, oldestCreateWallMs: Infinity };
      out.set(r.blockchain, {
        pending: b.pending + (r.state === "PENDING" ? Number(r.n) : 0),
        submitted: b.submitted + (r.state === "SUBMITTED" ? Number(r.n) : 0),
        oldestCreateWallMs: Math.min(b.oldestCreateWallMs, r.oldest.getTime()),
      });
    }
    return out;
  }

  /** Every settlement of `blockchain` in `seq` order (tests and reconciliation; unbounded, so not for the hot path). */
  async list(blockchain: Blockchain): Promise<Settlement[]> {
    const res = await this.pool.query<SettlementRow>("SELECT * FROM settlements WHERE blockchain = $1 ORDER BY seq", [blockchain]);
    return this.withTxs(res.rows);
  }

  async close(): Promise<void> {}
}

/** Advisory lock keys: "mint" in ASCII, then 1500 + the chain's position in BLOCKCHAINS (the migration runner uses (mint, 1)). */
const LOCK_CLASS = 0x6d696e74;
function lockKey(blockchain: Blockchain): [number, number] {
  return [LOCK_CLASS, 1500 + BLOCKCHAINS.indexOf(blockchain)];
}

/**
 * One sender per chain across replicas: a session-level advisory lock on a
 * dedicated connection (not a pooled one, whose session would be shared).
 * When that connection dies the lock is gone; `held` notices and the worker
 * stands by until it wins the lock again.
 */
export class PgSenderLock implements SenderLock {
  private client: pg.Client | null = null;
  private readonly holding = new Set<Blockchain>();

  constructor(private readonly connect: () => Promise<pg.Client>) {}

  private async session(): Promise<pg.Client> {
    if (this.client !== null) return this.client;
    const c = await this.connect();
    c.on("error", () => {
      // The session is gone and every lock with it.
      if (this.client === c) {
        this.client = null;
        this.holding.clear();
      }
    });
    this.client = c;
    return c;
  }

  async tryAcquire(blockchain: Blockchain): Promise<boolean> {
    const c = await this.session();
    if (this.holding.has(blockchain)) return true;
    const res = await c.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1, $2) AS ok", lockKey(blockchain));
    if (res.rows[0]?.ok === true) this.holding.add(blockchain);
    return this.holding.has(blockchain);
  }

  async held(blockchain: Blockchain): Promise<boolean> {
    if (!this.holding.has(blockchain) || this.client === null) return false;
    const [classid, objid] = lockKey(blockchain);
    try {
      const res = await this.client.query<{ n: string }>(
        "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND classid = $1 AND objid = $2 AND granted",
        [classid, objid],
      );
      return res.rows[0]?.n === "1";
    } catch {
      this.holding.delete(blockchain);
      return false;
    }
  }

  async release(blockchain: Blockchain): Promise<void> {
    if (!this.holding.delete(blockchain) || this.client === null) return;
    await this.client.query("SELECT pg_advisory_unlock($1, $2)", lockKey(blockchain)).catch(() => undefined);
  }

  /** Ends the session (releasing every lock it holds). */
  async close(): Promise<void> {
    const c = this.client;
    this.client = null;
    this.holding.clear();
    await c?.end().catch(() => undefined);
  }
}
