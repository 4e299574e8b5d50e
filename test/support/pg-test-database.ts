/**
 * Throwaway PostgreSQL databases for tests: each one is created empty through
 * the `postgres` maintenance database and dropped (connections forced off)
 * when the test is done, so tests never see each other's rows.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";

/** The server the tests use; trust auth as user postgres. */
export const PG_SERVER_URL = process.env.MINT_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432";

export interface TestDatabase {
  readonly name: string;
  readonly url: string;
  /** Runs one statement in the test database on a short-lived connection. */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
  drop(): Promise<void>;
}

/**
 * A pool for a test's own queries. pg emits 'error' on an idle client whose
 * backend goes away, and an unheard 'error' is an uncaught exception that
 * fails the whole run: a test database dropped WITH (FORCE) right after a
 * pool's end() (which does not wait for its sockets to close) does exactly
 * that on a busy machine. The error is logged nowhere: the test's own
 * queries still reject on their own.
 */
export function testPool(config: pg.PoolConfig): pg.Pool {
  const pool = new pg.Pool(config);
  pool.on("error", () => undefined);
  return pool;
}

/** A client for a test's own queries; an error after its work (its database dropped) is not a test failure. */
export function testClient(config: pg.ClientConfig): pg.Client {
  const client = new pg.Client(config);
  client.on("error", () => undefined);
  return client;
}

async function onMaintenanceDb<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = testClient({ connectionString: `${PG_SERVER_URL}/postgres` });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

export async function createTestDatabase(opts: { defaultIsolation?: "serializable" | "repeatable read" } = {}): Promise<TestDatabase> {
  const name = `mint_test_${randomBytes(6).toString("hex")}`;
  await onMaintenanceDb(async (c) => {
    await c.query(`CREATE DATABASE ${name}`);
    // A fixed word from the union above, never caller text.
    if (opts.defaultIsolation !== undefined) await c.query(`ALTER DATABASE ${name} SET default_transaction_isolation = '${opts.defaultIsolation}'`);
  });
  const url = `${PG_SERVER_URL}/${name}`;
  return {
    name,
    url,
    async query(text, values) {
      const c = testClient({ connectionString: url });
      await c.connect();
      try {
        return await c.query(text, values);
      } finally {
        await c.end();
      }
    },
    async drop() {
      await onMaintenanceDb((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`));
    },
  };
}
