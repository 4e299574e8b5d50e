/**
 * The SDK's watchLedger through real servers: an async iterator that resumes
 * by itself, from its last cursor, when the server cuts a slow consumer off
 * and when the replica it reads from shuts down (PostgreSQL, two replicas);
 * every event exactly once, in order.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMintClient, type LedgerEvent, type MintServiceError } from "../../src/client/index.js";
import { createTestDatabase, type TestDatabase } from "../support/pg-test-database.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

let db: TestDatabase;
let n = 0;
const key = (): string => `sdkwatch-${process.pid}-${++n}`;

function mint(s: TestServer, accountId: string): Promise<unknown> {
  return s.call("mintUsdc", { accountId, amount: "1", blockchain: 3, idempotencyKey: key() });
}

beforeAll(async () => {
  db = await createTestDatabase();
});

afterAll(async () => {
  await db?.drop();
});

describe("SDK watchLedger", () => {
  it("resumes by itself after the server cuts off a consumer that fell behind", async () => {
    const s = await startTestServer({ MINT_WATCH_BUFFER: "5", MINT_RATE_LIMIT: "100000" });
    const client = createMintClient({ addresses: s.address });
    try {
      const resumes: MintServiceError[] = [];
      const it = client.watchLedger({ from: "oldest", accounts: ["sdk-slow"], onResume: (r) => resumes.push(r.error) });
      await mint(s, "sdk-slow");
      const first = await it.next();
      expect(first.value?.kind).toBe("MINT_CREATED");
      // The consumer takes nothing while 1,000 more mints happen.
      for (let i = 0; i < 1000; i += 100) await Promise.all(Array.from({ length: 100 }, () => mint(s, "sdk-slow")));
      const got: LedgerEvent[] = [first.value as LedgerEvent];
      for await (const e of { [Symbol.asyncIterator]: () => it }) {
        got.push(e);
        if (got.length === 2002) break;
      }
      expect(resumes.map((e) => e.reason)).toContain("CONSUMER_TOO_SLOW");
      expect(new Set(got.map((e) => e.eventId)).size).toBe(2002);
      const created = got.filter((e) => e.kind === "MINT_CREATED").map((e) => e.mint?.mintId);
      expect(new Set(created).size).toBe(1001);
      // In order: each mint's COMPLETED right after its CREATED.
      for (let i = 0; i < got.length; i += 2) expect([got[i]?.kind, got[i + 1]?.kind, got[i + 1]?.mint?.mintId]).toEqual(["MINT_CREATED", "MINT_COMPLETED", got[i]?.mint?.mintId]);
    } finally {
      client.close();
      await s.stop();
    }
  });

  it("moves to the other replica when the one it reads from shuts down (PostgreSQL)", async () => {
    const env = { MINT_STORE: db.url, MINT_WATCH_POLL_INTERVAL: "20ms", MINT_RATE_LIMIT: "100000", MINT_PG_POOL_SIZE: "4" };
    const a = await startTestServer(env);
    const b = await startTestServer(env);
    const client = createMintClient({ addresses: [a.address, b.address] });
    let stopped: TestServer | undefined;
    try {
      await client.waitForHealth();
      const resumes: string[] = [];
      const it = client.watchLedger({ from: "oldest", accounts: ["sdk-move"], onResume: (r) => resumes.push(r.error.reason) });
      for (let i = 0; i < 20; i++) await mint(i % 2 === 0 ? a : b, "sdk-move");
      const got: LedgerEvent[] = [];
      for (let i = 0; i < 10; i++) got.push((await it.next()).value as LedgerEvent);
      // Shut down the replica serving the stream; mints go on at the other.
      const serving = a.app.watch.watcherCount > 0 ? a : b;
      const other = serving === a ? b : a;
      stopped = serving;
      await serving.stop();
      for (let i = 0; i < 20; i++) await mint(other, "sdk-move");
      while (got.length < 80) got.push((await it.next()).value as LedgerEvent);
      await it.return();
      expect(resumes).toContain("SHUTTING_DOWN");
      expect(new Set(got.map((e) => e.eventId)).size).toBe(80);
      const created = got.filter((e) => e.kind === "MINT_CREATED").map((e) => e.mint?.mintId);
      expect(new Set(created).size).toBe(40);
      // Exactly the feed's order: read it again in one go from the other replica.
      const again: LedgerEvent[] = [];
      for await (const e of client.watchLedger({ from: "oldest", accounts: ["sdk-move"] })) {
        again.push(e);
        if (again.length === 80) break;
      }
      expect(got.map((e) => e.eventId)).toEqual(again.map((e) => e.eventId));
    } finally {
      client.close();
      for (const s of [a, b]) if (s !== stopped) await s.stop();
    }
  });
});
