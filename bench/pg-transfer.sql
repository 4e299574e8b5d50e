-- pgbench script: the transfer transaction of the PostgreSQL store, written
-- by hand, as the reference the service is compared with (bench/pg-bench.ts).
-- One key claimed, two accounts locked in code-unit order, both balances
-- moved, the transfer row, its two ledger entries and the key's result
-- written, in one transaction. Accounts acct000000.. are seeded by the bench.
\set from random(0, :naccounts - 1)
\set d random(1, :naccounts - 1)
\set to (:from + :d) % :naccounts
\set r random(1, 9000000000000000000)
BEGIN;
INSERT INTO idempotency_keys AS k (scope, key, fingerprint, result, state, expires_at)
VALUES ('transfer', 'pgb-' || :client_id::text || '-' || :r::text,
        '[["amount","1"],["from_account_id","acct' || lpad(:from::text, 6, '0') || '"],["to_account_id","acct' || lpad(:to::text, 6, '0') || '"]]',
        NULL, 'pending', now() + interval '1 day')
ON CONFLICT (scope, key) DO NOTHING;
SELECT account_id, balance::text AS balance FROM accounts
WHERE account_id = ANY (ARRAY['acct' || lpad(:from::text, 6, '0'), 'acct' || lpad(:to::text, 6, '0')])
ORDER BY account_id COLLATE "C"
FOR NO KEY UPDATE;
WITH ids AS (
  SELECT 'xfr_' || upper(substr(md5(random()::text), 1, 26)) AS tid,
         'acct' || lpad(:from::text, 6, '0') AS f,
         'acct' || lpad(:to::text, 6, '0') AS t,
         'pgb-' || :client_id::text || '-' || :r::text AS key
), upd AS (
  UPDATE accounts AS a SET balance = a.balance + d.delta
  FROM ids, LATERAL (VALUES (ids.f, -1::numeric), (ids.t, 1::numeric)) AS d (account_id, delta)
  WHERE a.account_id = d.account_id AND a.balance + d.delta >= 0
  RETURNING 1
), tr AS (
  INSERT INTO transfers (transfer_id, from_account_id, to_account_id, amount, idempotency_key, create_time)
  SELECT tid, f, t, 1, key, now() FROM ids
  RETURNING 1
), e AS (
  INSERT INTO ledger_entries (account_id, amount, kind, ref_id, created_at)
  SELECT f, -1::numeric, 'transfer_out', tid, now() FROM ids
  UNION ALL
  SELECT t, 1::numeric, 'transfer_in', tid, now() FROM ids
  RETURNING 1
), k AS (
  UPDATE idempotency_keys SET state = 'completed',
    result = jsonb_build_object('scope', 'transfer', 'transfer', jsonb_build_object(
      'transferId', (SELECT tid FROM ids), 'fromAccountId', (SELECT f FROM ids), 'toAccountId', (SELECT t FROM ids),
      'amountMicros', '1', 'idempotencyKey', (SELECT key FROM ids), 'createWallMs', 1795619284136)),
    expires_at = now() + interval '1 day'
  WHERE scope = 'transfer' AND key = (SELECT key FROM ids)
  RETURNING 1
)
SELECT (SELECT count(*) FROM upd)::int AS accounts, (SELECT count(*) FROM k)::int AS keys, (SELECT count(*) FROM tr)::int AS transfers;
COMMIT;
