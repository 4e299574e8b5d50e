/**
 * `startTestServer` on the shared adapters: a fresh PostgreSQL database per
 * server (MINT_STORE) and the Redis limiter (MINT_REDIS_URL). Stopping the
 * server drops its database.
 */
import type { Clock } from "../../src/domain/clock.js";
import { createTestDatabase, type TestDatabase } from "./pg-test-database.js";
import { startTestServer, type TestServer } from "./test-server.js";

/** The Redis server the tests use (no database path). */
export const REDIS_SERVER_URL = process.env.MINT_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

/** The URL of Redis logical database `db` on the test server. */
export function redisUrl(db: number): string {
  const u = new URL(REDIS_SERVER_URL);
  u.pathname = `/${db}`;
  return u.toString();
}

export interface PgTestServer extends TestServer {
  readonly db: TestDatabase;
}

/**
 * Starts the service in-process on a new empty database and `redis` (a
 * redis:// URL, or "" for the in-memory limiter). `env` is passed on as is.
 */
export async function startPgTestServer(env: Record<string, string>, redis: string, clock?: Clock): Promise<PgTestServer> {
  const db = await createTestDatabase();
  let server: TestServer;
  try {
    server = await startTestServer({ ...env, MINT_STORE: db.url, MINT_REDIS_URL: redis }, clock);
  } catch (err) {
    await db.drop();
    throw err;
  }
  return {
    ...server,
    db,
    async stop() {
      try {
        await server.stop();
      } finally {
        await db.drop();
      }
    },
  };
}
