/**
 * The PostgreSQL all-or-none BatchTransfer (`KeyedStore.applyAllOrNone`): one
 * transaction, in four statements whatever the batch's size.
 *
 *  1. Claim every key (sorted, so two batches sharing keys lock them in one
 *     order): a fresh key gets a 'pending' row; a live completed row is read
 *     in the same transaction and replays (same request) or refuses the batch
 *     (IDEMPOTENCY_KEY_REUSED). A key in flight elsewhere is waited for, as a
 *     unary claim waits.
 *  2. Create the new accounts, then lock every account of the batch in
 *     code-unit order (the lock order of `tx.ts`: keys before accounts).
 *  3. Check every fresh transfer in request order against the balances and
 *     freezes as they would stand after the ones before it.
 *  4. One statement moves the money, writes the transfers, their ledger
 *     entries, the keys' results and one journal record per transfer.
 *
 * Any refusal rolls the whole transaction back: nothing applied, every key free.
 */
import { entryOfEffect, transferResult, unsealedRecord } from "../../../domain/audit.js";
import { assert, type Failure } from "../../../domain/errors.js";
import { fingerprint, differingFields, parseFingerprint, type NewTransfer, type StoredResult, type TransferRecord } from "../../../domain/model.js";
import type { AllOrNoneOutcome, KeyedCall, Wait } from "../../../domain/ports.js";
import { fail, ok } from "../../../domain/result.js";
import { dbNowSql } from "../pg-database.js";
import { journalParams } from "../postgres-audit-journal.js";
import { isoOfWallMs } from "../postgres-idempotency-store.js";
import { decodeStoredResult, transferToJson } from "../stored-result-codec.js";
import type { LedgerTx } from "./tx.js";

/** Claims the fresh keys ($1 keys, $2 fingerprints, $3 now, $4 TTL ms); returns the keys claimed. */
const CLAIM_KEYS_SQL = `
INSERT INTO idempotency_keys AS k (scope, key, fingerprint, result, state, expires_at)
SELECT 'transfer', c.key, c.fp, NULL, 'pending', ${dbNowSql(3)} + make_interval(secs => $4::float8 / 1000)
FROM unnest($1::text[], $2::text[]) AS c (key, fp)
ORDER BY c.key COLLATE "C"
ON CONFLICT (scope, key) DO UPDATE
  SET fingerprint = EXCLUDED.fingerprint, result = NULL, state = 'pending', expires_at = EXCLUDED.expires_at
  WHERE k.expires_at <= ${dbNowSql(3)}
RETURNING k.key`;

/** The keys the claim left alone: live completed rows, locked by the claim's ON CONFLICT. */
const HELD_KEYS_SQL = "SELECT key, fingerprint, result FROM idempotency_keys WHERE scope = 'transfer' AND key = ANY($1::text[])";

const CREATE_ACCOUNTS_SQL = `
INSERT INTO accounts (account_id, balance)
SELECT a, 0 FROM unnest($1::text[]) AS a ORDER BY a COLLATE "C"
ON CONFLICT (account_id) DO NOTHING`;

const LOCK_ACCOUNTS_SQL = `
SELECT account_id, balance::text AS balance, frozen FROM accounts
WHERE account_id = ANY($1::text[])
ORDER BY account_id COLLATE "C"
FOR NO KEY UPDATE`;

/** Everything of the fresh transfers in one statement; the journal CTE only when journaling. */
function applySql(journal: boolean): string {
  const ctes = [
    `d AS (SELECT account_id, sum(delta) AS delta FROM unnest($1::text[], $2::numeric[]) AS x (account_id, delta) GROUP BY account_id)`,
    `upd AS (UPDATE accounts AS a SET balance = a.balance + d.delta FROM d WHERE a.account_id = d.account_id RETURNING 1)`,
    `t AS (
  INSERT INTO transfers (transfer_id, from_account_id, to_account_id, amount, idempotency_key, create_time)
  SELECT * FROM unnest($3::text[], $4::text[], $5::text[], $6::numeric[], $7::text[], $8::timestamptz[])
  RETURNING 1
)`,
    `e AS (
  INSERT INTO ledger_entries (account_id, amount, kind, ref_id, created_at)
  SELECT x.from_id, -x.amount, 'transfer_out', x.id, x.at FROM unnest($3::text[], $4::text[], $6::numeric[], $8::timestamptz[]) AS x (id, from_id, amount, at)
  UNION ALL
  SELECT x.to_id, x.amount, 'transfer_in', x.id, x.at FROM unnest($3::text[], $5::text[], $6::numeric[], $8::timestamptz[]) AS x (id, to_id, amount, at)
  RETURNING 1
)`,
    `k AS (
  UPDATE idempotency_keys AS k SET state = 'completed', result = r.result::jsonb,
    expires_at = ${dbNowSql(10)} + make_interval(secs => $11::float8 / 1000)
  FROM unnest($7::text[], $9::text[]) AS r (key, result)
  WHERE k.scope = 'transfer' AND k.key = r.key
  RETURNING 1
)`,
  ];
  if (journal) {
    ctes.push(`j AS (
  INSERT INTO audit_journal (time_ms, actor, action, idempotency_key, request, result, accounts)
  SELECT x.time_ms, x.actor, x.action, x.key, x.request, x.result, ARRAY[x.acc0, x.acc1]
  FROM unnest($12::bigint[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[], $18::text[], $19::text[])
    AS x (time_ms, actor, action, key, request, result, acc0, acc1)
  RETURNING 1
)`);
  }
  return `WITH ${ctes.join(",\n")}
SELECT (SELECT count(*) FROM upd)::int AS accounts, (SELECT count(*) FROM t)::int AS transfers, (SELECT count(*) FROM k)::int AS keys`;
}
const APPLY_SQL = applySql(false);
const APPLY_JOURNALED_SQL = applySql(true);

type Outcome = { stored: StoredResult; replayed: boolean };

export async function transferAllOrNone(ledger: LedgerTx, calls: readonly KeyedCall[], wait: Wait): Promise<AllOrNoneOutcome> {
  const cmds: NewTransfer[] = calls.map((c) => {
    assert(c.effect.kind === "transfer", "an all-or-none batch holds transfers only");
    return c.effect.cmd;
  });
  let refused: { index: number; error: Failure } | null = null;
  const r = await ledger.ownTx(wait.deadlineMs, wait.signal, "applying an all-or-none batch of transfers", async (lease) => {
    const client = lease.client;
    const refuse = (index: number, error: Failure) => {
      refused = { index, error };
      return fail<Outcome[]>(error);
    };
    // 1. The keys.
    const keys = calls.map((c) => c.key);
    const claimed = await client.query<{ key: string }>(CLAIM_KEYS_SQL, [keys, calls.map((c) => fingerprint(c.request)), ledger.db.nowParam(), ledger.idempotencyTtlMs]);
    const fresh = new Set(claimed.rows.map((row) => row.key));
    const results: (Outcome | null)[] = calls.map(() => null);
    if (fresh.size < calls.length) {
      const held = await client.query<{ key: string; fingerprint: string; result: unknown }>(HELD_KEYS_SQL, [keys.filter((k) => !fresh.has(k))]);
      const byKey = new Map(held.rows.map((row) => [row.key, row]));
      for (let i = 0; i < calls.length; i++) {
        const call = calls[i] as KeyedCall;
        if (fresh.has(call.key)) continue;
        const row = byKey.get(call.key);
        assert(row !== undefined, "a key the claim left alone is a live completed row");
        if (row.fingerprint !== fingerprint(call.request)) {
          return refuse(i, { code: "IDEMPOTENCY_KEY_REUSED", key: call.key, fields: differingFields(parseFingerprint(row.fingerprint), call.request) });
        }
        results[i] = { stored: decodeStoredResult(row.result), replayed: true };
      }
    }
    // 2. The accounts of the fresh transfers.
    const todo = cmds.map((cmd, i) => ({ cmd, i })).filter(({ i }) => results[i] === null);
    if (todo.length > 0) {
      const ids = [...new Set(todo.flatMap(({ cmd }) => [cmd.fromAccountId, cmd.toAccountId]))];
      await client.query(CREATE_ACCOUNTS_SQL, [todo.map(({ cmd }) => cmd.toAccountId)]);
      const locked = await client.query<{ account_id: string; balance: string; frozen: boolean }>(LOCK_ACCOUNTS_SQL, [ids]);
      const state = new Map(locked.rows.map((row) => [row.account_id, { balance: BigInt(row.balance), frozen: row.frozen }]));
      // 3. The checks, in request order.
      for (const { cmd, i } of todo) {
        const from = state.get(cmd.fromAccountId);
        const to = state.get(cmd.toAccountId);
        assert(to !== undefined, "the receiving account was created");
        if (from?.frozen === true) return refuse(i, { code: "ACCOUNT_FROZEN", accountId: cmd.fromAccountId });
        if (to.frozen) return refuse(i, { code: "ACCOUNT_FROZEN", accountId: cmd.toAccountId });
        if (from === undefined || from.balance < cmd.amountMicros) return refuse(i, { code: "INSUFFICIENT_FUNDS", accountId: cmd.fromAccountId });
        from.balance -= cmd.amountMicros;
        to.balance += cmd.amountMicros;
      }
      // 4. The change.
      const records: TransferRecord[] = todo.map(({ cmd }) => ({ ...cmd }));
      const params: unknown[] = [
        todo.flatMap(({ cmd }) => [cmd.fromAccountId, cmd.toAccountId]),
        todo.flatMap(({ cmd }) => [(-cmd.amountMicros).toString(), cmd.amountMicros.toString()]),
        records.map((t) => t.transferId),
        records.map((t) => t.fromAccountId),
        records.map((t) => t.toAccountId),
        records.map((t) => t.amountMicros.toString()),
        records.map((t) => t.idempotencyKey),
        records.map((t) => isoOfWallMs(t.createWallMs)),
        records.map((t) => JSON.stringify({ scope: "transfer", transfer: transferToJson(t) })),
        ledger.db.nowParam(),
        ledger.idempotencyTtlMs,
      ];
      if (ledger.audit !== null) {
        const rows = todo.map(({ cmd, i }, n) => journalParams(unsealedRecord((calls[i] as KeyedCall).journal ?? entryOfEffect({ kind: "transfer", cmd }), transferResult(records[n] as TransferRecord), cmd.createWallMs)));
        for (let col = 0; col < 6; col++) params.push(rows.map((p) => p[col]));
        for (const row of rows) assert((row[6] as string[]).length === 2, "a transfer's journal record names its two accounts");
        params.push(rows.map((p) => (p[6] as string[])[0]), rows.map((p) => (p[6] as string[])[1]));
      }
      const res = await client.query<{ accounts: number; transfers: number; keys: number }>(ledger.audit === null ? APPLY_SQL : APPLY_JOURNALED_SQL, params);
      const row = res.rows[0];
      assert(row !== undefined && row.transfers === todo.length && row.keys === todo.length, "an all-or-none batch wrote every transfer and its key");
      todo.forEach(({ i }, n) => {
        results[i] = { stored: { scope: "transfer", transfer: records[n] as TransferRecord }, replayed: false };
      });
    }
    return ok(results as Outcome[]);
  });
  if (r.ok) return r;
  const at = refused as { index: number; error: Failure } | null;
  return at !== null && at.error === r.error ? { ok: false, index: at.index, error: at.error } : { ok: false, index: null, error: r.error };
}
