/**
 * The schema, as ordered migrations embedded in the code (so the same module
 * works from `src` under tsx and from the compiled `dist`), and the runner
 * every replica calls at start.
 *
 * Several replicas may start at once: the runner holds a session-level
 * advisory lock while it reads `schema_migrations` and applies what is
 * missing, so exactly one of them applies each migration and the others wait,
 * then find nothing to do. Each migration runs in its own transaction together
 * with its `schema_migrations` row, so a crash leaves it applied or not at all.
 */
import type pg from "pg";
import type { Migration } from "./migration.js";
import { BURN_SETTLEMENT_MIGRATION, GAS_SETTLEMENT_MIGRATION, SETTLEMENT_MIGRATIONS } from "./settlement-outbox.js";
import { LEDGER_EVENTS_MIGRATION } from "./ledger-events.js";
import { GROUP_COMMIT_MIGRATION } from "./ledger/group.js";

export type { Migration } from "./migration.js";

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "ledger and idempotency keys",
    sql: `
-- Money is micro-USDC in numeric(38,0): exact, and wider than any amount the
-- service accepts, so sums never overflow and never round.
CREATE TABLE accounts (
  account_id text PRIMARY KEY,
  balance numeric(38,0) NOT NULL CHECK (balance >= 0)
);

CREATE TABLE mints (
  seq bigserial PRIMARY KEY,
  mint_id text NOT NULL UNIQUE,
  account_id text NOT NULL REFERENCES accounts (account_id),
  amount numeric(38,0) NOT NULL CHECK (amount > 0),
  blockchain text NOT NULL,
  status text NOT NULL CHECK (status IN ('COMPLETED', 'REVERSED')),
  idempotency_key text NOT NULL,
  create_time timestamptz NOT NULL,
  reverse_time timestamptz,
  reverse_reason text NOT NULL DEFAULT '',
  CHECK ((status = 'REVERSED') = (reverse_time IS NOT NULL))
);
-- ListMints for one account pages by seq.
CREATE INDEX mints_account_id_seq ON mints (account_id, seq);

CREATE TABLE transfers (
  seq bigserial PRIMARY KEY,
  transfer_id text NOT NULL UNIQUE,
  from_account_id text NOT NULL REFERENCES accounts (account_id),
  to_account_id text NOT NULL REFERENCES accounts (account_id),
  amount numeric(38,0) NOT NULL CHECK (amount > 0),
  idempotency_key text NOT NULL,
  create_time timestamptz NOT NULL,
  CHECK (from_account_id <> to_account_id)
);

-- The append-only journal: every balance is the sum of its account's entries.
CREATE TABLE ledger_entries (
  entry_id bigserial PRIMARY KEY,
  account_id text NOT NULL REFERENCES accounts (account_id),
  amount numeric(38,0) NOT NULL CHECK (amount <> 0),
  kind text NOT NULL CHECK (kind IN ('mint', 'transfer_out', 'transfer_in', 'reversal')),
  ref_id text NOT NULL,
  created_at timestamptz NOT NULL
);
CREATE INDEX ledger_entries_account_id ON ledger_entries (account_id, entry_id);
CREATE INDEX ledger_entries_ref_id ON ledger_entries (ref_id);

-- Corrections are new entries (a reversal), never edits: refuse the others.
CREATE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'ledger_entries is append-only (% refused)', TG_OP;
END;
$$;
CREATE TRIGGER ledger_entries_append_only
  BEFORE UPDATE OR DELETE OR TRUNCATE ON ledger_entries
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_append_only();

-- A 'pending' row only ever exists inside the uncommitted transaction that
-- claimed the key; other sessions see committed 'completed' rows only.
CREATE TABLE idempotency_keys (
  scope text NOT NULL CHECK (scope IN ('mint', 'transfer')),
  key text NOT NULL,
  fingerprint text NOT NULL,
  result jsonb,
  state text NOT NULL CHECK (state IN ('pending', 'completed')),
  expires_at timestamptz NOT NULL,
  PRIMARY KEY (scope, key),
  CHECK ((state = 'completed') = (result IS NOT NULL))
);
-- The sweeper takes the oldest expired keys first.
CREATE INDEX idempotency_keys_expires_at ON idempotency_keys (expires_at);
`,
  },
  {
    version: 2,
    name: "mint seq in transaction-id order, for a feed that never skips",
    sql: `
-- A sequence hands out numbers in call order, but transactions commit in
-- another: a reader past seq 102 never saw 101 committing later. From now on
-- a mint's seq is base + the id of the transaction that wrote it (one mint per
-- transaction), and ListMints returns only mints whose transaction id is below
-- the oldest transaction still running in this database: every mint that can
-- still commit has a larger seq than any mint already returned.
CREATE TABLE mint_seq_base (base bigint NOT NULL);
INSERT INTO mint_seq_base (base) SELECT COALESCE(MAX(seq), 0) + 1 FROM mints;
ALTER TABLE mints ALTER COLUMN seq DROP DEFAULT;
`,
  },
  // The audit journal (versions 1001+).
  {
    version: 1001,
    name: "hash-chained audit journal",
    sql: `
-- One row per state change, inserted unsealed (seq, prev_hash, hash null) in
-- the change's own transaction; the single sealer (advisory lock) fills them
-- in, in commit order, right after. request and result hold canonical JSON
-- text, exactly the bytes the hash covers for those two fields.
CREATE TABLE audit_journal (
  record_id bigserial PRIMARY KEY,
  seq bigint UNIQUE CHECK (seq > 0),
  time_ms bigint NOT NULL,
  actor text NOT NULL,
  action text NOT NULL,
  idempotency_key text,
  request text NOT NULL,
  result text NOT NULL,
  accounts text[] NOT NULL,
  prev_hash text,
  hash text,
  CHECK ((seq IS NULL) = (hash IS NULL) AND (seq IS NULL) = (prev_hash IS NULL))
);
-- The sealer's work list: only unsealed rows are in it.
CREATE INDEX audit_journal_unsealed ON audit_journal (record_id) WHERE seq IS NULL;
CREATE INDEX audit_journal_accounts ON audit_journal USING gin (accounts);
CREATE INDEX audit_journal_actor_seq ON audit_journal (actor, seq);
CREATE INDEX audit_journal_time ON audit_journal (time_ms);

-- Append-only, like ledger_entries: DELETE and TRUNCATE are refused, and the
-- only UPDATE allowed is sealing, once: an unsealed row gets its seq,
-- prev_hash and hash and nothing else changes. A sealed row never changes.
CREATE FUNCTION audit_journal_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit_journal is append-only (% refused)', TG_OP;
END;
$$;
CREATE TRIGGER audit_journal_no_delete
  BEFORE DELETE OR TRUNCATE ON audit_journal
  FOR EACH STATEMENT EXECUTE FUNCTION audit_journal_append_only();
CREATE FUNCTION audit_journal_seal_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.seq IS NOT NULL OR NEW.seq IS NULL
     OR (NEW.record_id, NEW.time_ms, NEW.actor, NEW.action, NEW.idempotency_key, NEW.request, NEW.result, NEW.accounts)
        IS DISTINCT FROM (OLD.record_id, OLD.time_ms, OLD.actor, OLD.action, OLD.idempotency_key, OLD.request, OLD.result, OLD.accounts) THEN
    RAISE EXCEPTION 'audit_journal is append-only (UPDATE refused: only sealing an unsealed record is allowed)';
  END IF;
  RETURN NEW;
END;
$$;
CREATE TRIGGER audit_journal_seal_only
  BEFORE UPDATE ON audit_journal
  FOR EACH ROW EXECUTE FUNCTION audit_journal_seal_only();
`,
  },
  {
    version: 1101,
    name: "M-of-N approval of large mints and minter allowances",
    sql: `
ALTER TABLE mints DROP CONSTRAINT mints_status_check;
ALTER TABLE mints ADD CONSTRAINT mints_status_check CHECK (status IN ('COMPLETED', 'REVERSED', 'PENDING_APPROVAL', 'REJECTED'));
-- requester: the principal that asked (null when neither approvals nor
-- allowances applied); approval: the ApprovalState JSON of a mint that needed
-- approval (approvers with times, expiry, rejection), null otherwise.
ALTER TABLE mints ADD COLUMN requester text,
  ADD COLUMN allowance_charged boolean NOT NULL DEFAULT false,
  ADD COLUMN approval jsonb;
-- The expiry sweeper reads pending mints only.
CREATE INDEX mints_pending ON mints (seq) WHERE status = 'PENDING_APPROVAL';
-- What is left of each minter's allowance: a mint takes from it in its own
-- transaction (row lock), a reversal or rejection gives back.
CREATE TABLE minter_allowances (
  principal text PRIMARY KEY,
  remaining numeric(38,0) NOT NULL CHECK (remaining >= 0)
);
`,
  },
  // Supply and reserve, redemptions, frozen accounts.
  {
    version: 1201,
    name: "supply and reserve, redemptions, frozen accounts",
    sql: `
-- One row holds supply and the reserve. Every mint, reversal and redemption
-- updates it in its own transaction, so its row lock orders them across all
-- replicas and the reserve check (supply + amount <= reserve) is evaluated on
-- the latest committed supply. Transfers never touch it. Supply starts at
-- what the ledger already holds.
CREATE TABLE supply (
  id smallint PRIMARY KEY CHECK (id = 1),
  supply numeric(38,0) NOT NULL CHECK (supply >= 0),
  reserve numeric(38,0) CHECK (reserve >= 0),
  attestation_ref text NOT NULL DEFAULT '',
  updated_at timestamptz NOT NULL DEFAULT now(),
  CHECK (reserve IS NULL OR supply <= reserve)
);
INSERT INTO supply (id, supply) SELECT 1, COALESCE(SUM(balance), 0) FROM accounts;

CREATE TABLE redemptions (
  seq bigserial PRIMARY KEY,
  redemption_id text NOT NULL UNIQUE,
  account_id text NOT NULL REFERENCES accounts (account_id),
  amount numeric(38,0) NOT NULL CHECK (amount > 0),
  blockchain text NOT NULL,
  idempotency_key text NOT NULL,
  actor text NOT NULL,
  create_time timestamptz NOT NULL
);
CREATE INDEX redemptions_account_id_seq ON redemptions (account_id, seq);

ALTER TABLE accounts ADD COLUMN frozen boolean NOT NULL DEFAULT false;
ALTER TABLE accounts ADD COLUMN freeze_reason text NOT NULL DEFAULT '';

ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_check
  CHECK (kind IN ('mint', 'transfer_out', 'transfer_in', 'reversal', 'redemption'));
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_scope_check;
ALTER TABLE idempotency_keys ADD CONSTRAINT idempotency_keys_scope_check CHECK (scope IN ('mint', 'transfer', 'redeem'));
`,
  },
  // The settlement outbox (its own module keeps its schema), then pending credit.
  ...SETTLEMENT_MIGRATIONS,
  {
    version: 1502,
    name: "pending credit of mints not yet settled on-chain",
    sql: `
-- The credit of a mint whose settlement is not CONFIRMED is pending: it
-- counts in the ledger (balance + pending = the sum of the account's
-- entries) but cannot be spent.
ALTER TABLE accounts ADD COLUMN pending numeric(38,0) NOT NULL DEFAULT 0 CHECK (pending >= 0);
ALTER TABLE mints ADD COLUMN pending boolean NOT NULL DEFAULT false;
`,
  },
  // Redemptions burn on-chain; a failed burn re-credits the account.
  BURN_SETTLEMENT_MIGRATION,
  {
    version: 1602,
    name: "re-credit of a redemption whose burn failed",
    sql: `
-- Set once, by the transaction that marks the redemption's burn FAILED and
-- credits the amount back ('redemption_reversal' entry, supply back up).
ALTER TABLE redemptions ADD COLUMN recredit_time timestamptz;
ALTER TABLE redemptions ADD COLUMN recredit_reason text NOT NULL DEFAULT '';
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_check
  CHECK (kind IN ('mint', 'transfer_out', 'transfer_in', 'reversal', 'redemption', 'redemption_reversal'));
-- A re-credit must always succeed: the money never left the chain. It can
-- leave supply above a reserve lowered while the burn was in flight, so
-- supply <= reserve is no longer a table CHECK; the statements that raise
-- supply (mints) and set the reserve still enforce it in their WHERE.
DO $$
DECLARE c text;
BEGIN
  SELECT conname INTO c FROM pg_constraint
  WHERE conrelid = 'supply'::regclass AND contype = 'c' AND pg_get_constraintdef(oid) LIKE '%supply <= reserve%';
  IF c IS NOT NULL THEN EXECUTE format('ALTER TABLE supply DROP CONSTRAINT %I', c); END IF;
END $$;
`,
  },
  // Gas management: each settlement's cost, and why a chain's PENDING settlements wait.
  GAS_SETTLEMENT_MIGRATION,
  {
    version: 2101,
    name: "minter allowance generations: a manager's Set is the final word",
    sql: `
-- Every SetMinterAllowance bumps the allowance's generation; each charged
-- mint remembers the generation it was taken from, and a refund (rejection,
-- expiry, reversal, failed settlement) applies only while that generation is
-- current. Existing allowances and charges start at generation 0 together,
-- so charges made before this migration count as made before the next Set.
ALTER TABLE minter_allowances ADD COLUMN generation bigint NOT NULL DEFAULT 0;
ALTER TABLE mints ADD COLUMN allowance_generation bigint NOT NULL DEFAULT 0;
`,
  },
  {
    version: 2801,
    name: "mint seq: many mints per transaction, still in commit order",
    sql: `
-- A mint's seq is base + xid * per_xact + n: xid is the id of the
-- transaction that wrote it and n counts the mints that transaction wrote
-- before it (0, 1, ...; at most per_xact of them). Seqs are therefore in
-- transaction-id order, and in write order within a transaction, which is
-- what ListMints' horizon needs (src/adapters/postgres/ledger/feed.ts): a
-- transaction whose id is below the horizon has ended, and every mint it
-- wrote is below base + horizon * per_xact.
--
-- The trigger assigns seq whatever the INSERT says, so a replica still
-- running the one-mint-per-transaction statements writes the same seqs.
-- Its n lives in a transaction-local setting: it starts again at 0 in
-- every transaction, and a rolled-back savepoint takes its mints' n back
-- with them.
--
-- base is above every seq written before: the table lock waits for the
-- transactions still writing mints, so every seq already handed out (and
-- every page token holding one) stays below the new ones and keeps paging
-- from where it was.
LOCK TABLE mints IN SHARE ROW EXCLUSIVE MODE;
CREATE TABLE mint_seq_xact (
  id smallint PRIMARY KEY CHECK (id = 1),
  base bigint NOT NULL,
  per_xact bigint NOT NULL CHECK (per_xact > 0)
);
INSERT INTO mint_seq_xact (id, base, per_xact) SELECT 1, COALESCE(MAX(seq), 0) + 1, 4096 FROM mints;
CREATE FUNCTION mints_assign_seq() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  s mint_seq_xact;
  n bigint;
BEGIN
  SELECT * INTO s FROM mint_seq_xact WHERE id = 1;
  n := COALESCE(NULLIF(current_setting('usdc_mint.mints_in_xact', true), ''), '0')::bigint;
  IF n >= s.per_xact THEN
    RAISE EXCEPTION 'at most % mints per transaction', s.per_xact USING ERRCODE = 'program_limit_exceeded';
  END IF;
  PERFORM set_config('usdc_mint.mints_in_xact', (n + 1)::text, true);
  NEW.seq := s.base + pg_current_xact_id()::text::bigint * s.per_xact + n;
  RETURN NEW;
END;
$$;
CREATE TRIGGER mints_assign_seq BEFORE INSERT ON mints FOR EACH ROW EXECUTE FUNCTION mints_assign_seq();
`,
  },
  // Group commit: many mints and transfers in one transaction and one statement.
  GROUP_COMMIT_MIGRATION,
  // The ledger's event feed (WatchLedger), written by triggers.
  LEDGER_EVENTS_MIGRATION,
];

/**
 * The advisory lock key of the runner (two int4 halves: "mint" in ASCII, and
 * 1 for "migrations"), so it never collides with other advisory locks.
 */
const MIGRATION_LOCK = [0x6d696e74, 1] as const;

export interface MigrationLogger {
  info(o: object, m: string): void;
  warn(o: object, m: string): void;
}

/**
 * Applies the pending migrations on `client` (a dedicated session: the
 * advisory lock is held by the session). Returns the versions applied now,
 * empty when the schema was already current.
 */
export async function runMigrations(
  client: pg.ClientBase,
  logger?: MigrationLogger,
  migrations: readonly Migration[] = MIGRATIONS,
): Promise<number[]> {
  await client.query("SELECT pg_advisory_lock($1, $2)", [...MIGRATION_LOCK]);
  try {
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version integer PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
    const res = await client.query<{ version: number }>("SELECT version FROM schema_migrations ORDER BY version");
    const applied = new Set(res.rows.map((r) => r.version));
    const known = new Set(migrations.map((m) => m.version));
    const unknown = [...applied].filter((v) => !known.has(v));
    if (unknown.length > 0) {
      // A newer replica migrated further during a rolling deploy; migrations
      // are additive, so this older code keeps working on the newer schema.
      logger?.warn({ unknownVersions: unknown }, "database schema is newer than this build");
    }
    const done: number[] = [];
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (applied.has(m.version)) continue;
      await client.query("BEGIN");
      try {
        await client.query(m.sql);
        await client.query("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", [m.version, m.name]);
        await client.query("COMMIT");
      } catch (err) {
        await client.query("ROLLBACK").catch(() => undefined);
        throw err;
      }
      logger?.info({ version: m.version, name: m.name }, "applied schema migration");
      done.push(m.version);
    }
    return done;
  } finally {
    await client.query("SELECT pg_advisory_unlock($1, $2)", [...MIGRATION_LOCK]).catch(() => undefined);
  }
}
