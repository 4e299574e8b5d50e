/**
 * Group commit in SQL: many mints and transfers, each with its own
 * idempotency key, applied in one transaction by one statement (one round
 * trip), each with its own outcome.
 *
 * `ledger_group_apply` takes the items as a JSON array and runs in the
 * implicit transaction of its one statement:
 *  1. Keys, in (scope, key) order, in two statements: each is claimed (a
 *     'pending' row), or found completed (a replay, or
 *     IDEMPOTENCY_KEY_REUSED), or found expired (taken over). A key in
 *     flight in another transaction is waited for, as a single claim waits.
 *  2. Accounts: new receivers are inserted, then every account the claimed
 *     items touch is locked in one statement, in code-unit order; the supply
 *     row after them when a mint is among them (the lock order of
 *     `ledger/tx.ts`).
 *  3. Each claimed item, in the order it arrived, is checked against the
 *     balances and supply as the items before it left them: a frozen
 *     account, insufficient funds or the reserve refuse it and its key is
 *     freed, and the items after it go on. The checks are explicit, so no
 *     savepoint is taken.
 *  4. The writes, one statement per table: each account and the supply row
 *     once, the transfers, mints (their seqs in arrival order, migration
 *     2801), ledger entries, journal records and the keys' results.
 * Anything unexpected (a lock timeout, a lost race, a broken invariant)
 * raises, the whole statement rolls back, and the caller applies the items
 * one by one on the single-call path, which knows what to answer.
 */
import type { Migration } from "../migration.js";
import type { Lease } from "../pg-database.js";

export const GROUP_COMMIT_MIGRATION: Migration = {
  version: 2802,
  name: "group commit of mints and transfers",
  sql: `
-- items: [{ i, scope ('mint' | 'transfer'), key, fp, id, amount, ct (create
-- time), result (the key's stored result), from, to (transfer), account,
-- chain, rr (reserve required; mint), j (the journal record's 7 values, or
-- absent) }], i = 0, 1, ... in arrival order, keys distinct. Returns one row
-- per item: outcome 'applied' (detail: the mint's seq), 'replay' (the stored
-- result), 'reused' (the stored fingerprint), 'frozen' (the account),
-- 'funds' (the account), 'reserve' (supply and reserve as they stood).
CREATE FUNCTION ledger_group_apply(items jsonb, now_ms float8, ttl_ms float8, lock_ms int)
RETURNS TABLE (item int, outcome text, detail jsonb) LANGUAGE plpgsql AS $$
DECLARE
  now_ts timestamptz := COALESCE(to_timestamp(now_ms / 1000), now());
  expires timestamptz := COALESCE(to_timestamp(now_ms / 1000), now()) + make_interval(secs => ttl_ms / 1000);
  n int := jsonb_array_length(items);
  st text[] := array_fill(NULL::text, ARRAY[n]);
  det jsonb[] := array_fill(NULL::jsonb, ARRAY[n]);
  fresh boolean[] := array_fill(false, ARRAY[n]);
  it jsonb;
  x int;
  at_of jsonb;
  claimed int[];
  accts text[] := '{}';
  receivers text[] := '{}';
  created text[];
  bal jsonb := '{}';
  frz jsonb := '{}';
  r record;
  sup numeric;
  res numeric;
  minted numeric := 0;
  amt numeric;
  lo text;
  hi text;
  seqs jsonb := '{}';
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'a group commit runs under READ COMMITTED' USING ERRCODE = 'invalid_transaction_state';
  END IF;
  PERFORM set_config('lock_timeout', lock_ms::text || 'ms', true);

  -- Every key claimed in one statement, in (scope, key) order; the ones
  -- already there are then read and locked in one statement, in that order.
  SELECT jsonb_object_agg(e.value->>'scope' || ' ' || (e.value->>'key'), (e.value->>'i')::int + 1) INTO at_of FROM jsonb_array_elements(items) AS e;
  WITH ins AS (
    INSERT INTO idempotency_keys (scope, key, fingerprint, result, state, expires_at)
    SELECT e.value->>'scope', e.value->>'key', e.value->>'fp', NULL, 'pending', expires
    FROM jsonb_array_elements(items) AS e
    ORDER BY e.value->>'scope' COLLATE "C", e.value->>'key' COLLATE "C"
    ON CONFLICT (scope, key) DO NOTHING
    RETURNING scope, key
  )
  SELECT COALESCE(array_agg((at_of->>(ins.scope || ' ' || ins.key))::int), '{}') INTO claimed FROM ins;
  FOREACH x IN ARRAY claimed LOOP
    st[x] := 'claimed';
    fresh[x] := true;
  END LOOP;
  IF cardinality(claimed) < n THEN
    FOR r IN
      SELECT k.scope, k.key, k.fingerprint, k.result, k.state, k.expires_at <= now_ts AS expired
      FROM idempotency_keys AS k
      WHERE (k.scope, k.key) IN (
        SELECT e.value->>'scope', e.value->>'key' FROM jsonb_array_elements(items) AS e WHERE NOT ((e.value->>'i')::int + 1 = ANY (claimed))
      )
      ORDER BY k.scope COLLATE "C", k.key COLLATE "C"
      FOR UPDATE OF k
    LOOP
      x := (at_of->>(r.scope || ' ' || r.key))::int;
      IF r.expired THEN
        st[x] := 'claimed';
      ELSIF r.state <> 'completed' THEN
        RAISE EXCEPTION 'invariant violated: idempotency key %/% visible while pending', r.scope, r.key;
      ELSIF r.fingerprint = (items -> (x - 1))->>'fp' THEN
        st[x] := 'replay';
        det[x] := r.result;
      ELSE
        st[x] := 'reused';
        det[x] := to_jsonb(r.fingerprint);
      END IF;
    END LOOP;
    IF EXISTS (SELECT 1 FROM unnest(st) AS v WHERE v IS NULL) THEN
      RAISE EXCEPTION 'an idempotency key vanished under a group' USING ERRCODE = 'serialization_failure';
    END IF;
  END IF;

  FOR x IN 1..n LOOP
    CONTINUE WHEN st[x] <> 'claimed';
    it := items -> (x - 1);
    IF it->>'scope' = 'transfer' THEN
      accts := accts || ARRAY[it->>'from', it->>'to'];
      receivers := receivers || (it->>'to');
    ELSE
      accts := accts || (it->>'account');
      receivers := receivers || (it->>'account');
    END IF;
  END LOOP;
  IF cardinality(accts) > 0 THEN
    WITH ins AS (
      INSERT INTO accounts (account_id, balance)
      SELECT d.a, 0 FROM (SELECT DISTINCT a FROM unnest(receivers) AS a) AS d ORDER BY d.a COLLATE "C"
      ON CONFLICT (account_id) DO NOTHING
      RETURNING account_id
    )
    SELECT COALESCE(array_agg(ins.account_id), '{}') INTO created FROM ins;
    FOR r IN SELECT a.account_id, a.balance, a.frozen FROM accounts AS a WHERE a.account_id = ANY (accts) ORDER BY a.account_id COLLATE "C" FOR NO KEY UPDATE LOOP
      bal := bal || jsonb_build_object(r.account_id, r.balance::text);
      IF r.frozen THEN frz := frz || jsonb_build_object(r.account_id, true); END IF;
    END LOOP;
  END IF;
  IF EXISTS (SELECT 1 FROM jsonb_array_elements(items) WITH ORDINALITY AS e(value, ord) WHERE st[e.ord::int] = 'claimed' AND e.value->>'scope' = 'mint') THEN
    SELECT s.supply, s.reserve INTO sup, res FROM supply AS s WHERE s.id = 1 FOR UPDATE;
  END IF;

  FOR x IN 1..n LOOP
    CONTINUE WHEN st[x] <> 'claimed';
    it := items -> (x - 1);
    amt := (it->>'amount')::numeric;
    IF it->>'scope' = 'transfer' THEN
      lo := CASE WHEN (it->>'from') COLLATE "C" < (it->>'to') COLLATE "C" THEN it->>'from' ELSE it->>'to' END;
      hi := CASE WHEN lo = it->>'from' THEN it->>'to' ELSE it->>'from' END;
      IF frz ? lo OR frz ? hi THEN
        st[x] := 'frozen';
        det[x] := to_jsonb(CASE WHEN frz ? lo THEN lo ELSE hi END);
      ELSIF NOT (bal ? (it->>'from')) OR (bal->>(it->>'from'))::numeric < amt THEN
        st[x] := 'funds';
        det[x] := to_jsonb(it->>'from');
      ELSE
        bal := bal || jsonb_build_object(it->>'from', ((bal->>(it->>'from'))::numeric - amt)::text, it->>'to', ((bal->>(it->>'to'))::numeric + amt)::text);
        st[x] := 'applied';
      END IF;
    ELSIF frz ? (it->>'account') THEN
      st[x] := 'frozen';
      det[x] := to_jsonb(it->>'account');
    ELSIF (CASE WHEN res IS NULL THEN (it->>'rr')::boolean ELSE sup + amt > res END) THEN
      st[x] := 'reserve';
      det[x] := jsonb_build_object('supply', sup::text, 'reserve', res::text);
    ELSE
      bal := bal || jsonb_build_object(it->>'account', ((bal->>(it->>'account'))::numeric + amt)::text);
      sup := sup + amt;
      minted := minted + amt;
      st[x] := 'applied';
    END IF;
  END LOOP;

  UPDATE accounts AS a SET balance = (bal->>a.account_id)::numeric
  WHERE a.account_id IN (
    SELECT t.acct FROM jsonb_array_elements(items) WITH ORDINALITY AS e(value, ord),
      LATERAL (VALUES (e.value->>'from'), (e.value->>'to'), (e.value->>'account')) AS t(acct)
    WHERE st[e.ord::int] = 'applied' AND t.acct IS NOT NULL
  );
  INSERT INTO transfers (transfer_id, from_account_id, to_account_id, amount, idempotency_key, create_time)
  SELECT e.value->>'id', e.value->>'from', e.value->>'to', (e.value->>'amount')::numeric, e.value->>'key', (e.value->>'ct')::timestamptz
  FROM jsonb_array_elements(items) WITH ORDINALITY AS e(value, ord)
  WHERE st[e.ord::int] = 'applied' AND e.value->>'scope' = 'transfer'
  ORDER BY e.ord;
  WITH m AS (
    INSERT INTO mints (mint_id, account_id, amount, blockchain, status, idempotency_key, create_time)
    SELECT e.value->>'id', e.value->>'account', (e.value->>'amount')::numeric, e.value->>'chain', 'COMPLETED', e.value->>'key', (e.value->>'ct')::timestamptz
    FROM jsonb_array_elements(items) WITH ORDINALITY AS e(value, ord)
    WHERE st[e.ord::int] = 'applied' AND e.value->>'scope' = 'mint'
    ORDER BY e.ord
    RETURNING mint_id, seq
  )
  SELECT COALESCE(jsonb_object_agg(m.mint_id, m.seq), '{}') INTO seqs FROM m;
  INSERT INTO ledger_entries (account_id, amount, kind, ref_id, created_at)
  SELECT t.acct, t.delta, t.entry_kind, e.value->>'id', (e.value->>'ct')::timestamptz
  FROM jsonb_array_elements(items) WITH ORDINALITY AS e(value, ord)
  CROSS JOIN LATERAL (
    SELECT e.value->>'from', -(e.value->>'amount')::numeric, 'transfer_out', 1 WHERE e.value->>'scope' = 'transfer'
    UNION ALL SELECT e.value->>'to', (e.value->>'amount')::numeric, 'transfer_in', 2 WHERE e.value->>'scope' = 'transfer'
    UNION ALL SELECT e.value->>'account', (e.value->>'amount')::numeric, 'mint', 1 WHERE e.value->>'scope' = 'mint'
  ) AS t(acct, delta, entry_kind, o)
  WHERE st[e.ord::int] = 'applied'
  ORDER BY e.ord, t.o;
  INSERT INTO audit_journal (time_ms, actor, action, idempotency_key, request, result, accounts)
  SELECT (e.value->'j'->>0)::bigint, e.value->'j'->>1, e.value->'j'->>2, e.value->'j'->>3, e.value->'j'->>4, e.value->'j'->>5,
    ARRAY(SELECT jsonb_array_elements_text(e.value->'j'->6))
  FROM jsonb_array_elements(items) WITH ORDINALITY AS e(value, ord)
  WHERE st[e.ord::int] = 'applied' AND jsonb_typeof(e.value->'j') = 'array'
  ORDER BY e.ord;
  UPDATE idempotency_keys AS k
  SET fingerprint = e.value->>'fp', state = 'completed', expires_at = expires,
    result = CASE WHEN e.value->>'scope' = 'mint' THEN jsonb_set(e.value->'result', '{mint,seq}', seqs->(e.value->>'id')) ELSE e.value->'result' END
  FROM jsonb_array_elements(items) WITH ORDINALITY AS e(value, ord)
  WHERE st[e.ord::int] = 'applied' AND k.scope = e.value->>'scope' AND k.key = e.value->>'key';
  -- A refused item's claim is dropped (a key taken over when expired was only locked, never changed).
  DELETE FROM idempotency_keys AS k
  USING jsonb_array_elements(items) WITH ORDINALITY AS e(value, ord)
  WHERE fresh[e.ord::int] AND st[e.ord::int] <> 'applied' AND k.scope = e.value->>'scope' AND k.key = e.value->>'key';
  IF minted > 0 THEN
    UPDATE supply AS s SET supply = s.supply + minted, updated_at = now() WHERE s.id = 1;
  END IF;
  -- A receiver created for items that were all refused is removed again: a refused call leaves nothing.
  IF cardinality(created) > 0 THEN
    DELETE FROM accounts AS a
    WHERE a.account_id = ANY (created) AND NOT EXISTS (SELECT 1 FROM ledger_entries AS le WHERE le.account_id = a.account_id);
  END IF;

  RETURN QUERY
  SELECT (e.ord - 1)::int, st[e.ord::int],
    CASE WHEN st[e.ord::int] = 'applied' AND e.value->>'scope' = 'mint' THEN seqs->(e.value->>'id') ELSE det[e.ord::int] END
  FROM jsonb_array_elements(items) WITH ORDINALITY AS e(value, ord)
  ORDER BY e.ord;
END;
$$;
`,
};

/** One item of a group, as `ledger_group_apply` reads it. */
export type GroupItemJson =
  | {
      readonly i: number;
      readonly scope: "transfer";
      readonly key: string;
      readonly fp: string;
      readonly id: string;
      readonly amount: string;
      readonly ct: string;
      readonly result: unknown;
      readonly from: string;
      readonly to: string;
      readonly j?: unknown[];
    }
  | {
      readonly i: number;
      readonly scope: "mint";
      readonly key: string;
      readonly fp: string;
      readonly id: string;
      readonly amount: string;
      readonly ct: string;
      readonly result: unknown;
      readonly account: string;
      readonly chain: string;
      readonly rr: boolean;
      readonly j?: unknown[];
    };

/** What `ledger_group_apply` says of one item. */
export type GroupOutcome =
  | { readonly outcome: "applied"; readonly seq: number | null }
  | { readonly outcome: "replay"; readonly stored: unknown }
  | { readonly outcome: "reused"; readonly fingerprint: string }
  | { readonly outcome: "frozen" | "funds"; readonly accountId: string }
  | { readonly outcome: "reserve"; readonly supplyMicros: bigint; readonly reserveMicros: bigint | null };

const GROUP_SQL = "SELECT item, outcome, detail FROM ledger_group_apply($1::jsonb, $2::float8, $3::float8, $4::int)";

interface GroupRow {
  item: number;
  outcome: string;
  detail: unknown;
}

/**
 * Runs one group on `lease`'s client: one statement, its own (implicit)
 * transaction, committed when it returns. Rejects with what PostgreSQL
 * raised (the group rolled back) or a connection error (outcome unknown).
 */
export async function applyGroup(
  lease: Lease,
  items: readonly GroupItemJson[],
  nowParam: number | null,
  ttlMs: number,
  lockMs: number,
): Promise<GroupOutcome[]> {
  const res = await lease.client.query<GroupRow>(GROUP_SQL, [JSON.stringify(items), nowParam, ttlMs, Math.max(1, Math.ceil(lockMs))]);
  const out: GroupOutcome[] = [];
  for (const row of res.rows) out[row.item] = outcomeOf(row);
  if (out.length !== items.length || out.includes(undefined as unknown as GroupOutcome)) {
    throw new Error(`invariant violated: a group of ${items.length} answered ${res.rows.length} items`);
  }
  return out;
}

function outcomeOf(row: GroupRow): GroupOutcome {
  const d = row.detail;
  switch (row.outcome) {
    case "applied":
      return { outcome: "applied", seq: typeof d === "number" ? d : null };
    case "replay":
      return { outcome: "replay", stored: d };
    case "reused":
      return { outcome: "reused", fingerprint: String(d) };
    case "frozen":
    case "funds":
      return { outcome: row.outcome, accountId: String(d) };
    case "reserve": {
      const s = d as { supply: string; reserve: string | null };
      return { outcome: "reserve", supplyMicros: BigInt(s.supply), reserveMicros: s.reserve === null ? null : BigInt(s.reserve) };
    }
    default:
      throw new Error(`invariant violated: group outcome ${row.outcome}`);
  }
}
