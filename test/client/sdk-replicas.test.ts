/**
 * The SDK over three real server processes on one PostgreSQL database:
 * an `ipv4:` address list, one health watch per replica, round-robin over the
 * serving ones. A replica SIGKILLed while calls are in flight on it: every
 * logical operation completes, retried with its one key, and each is applied
 * exactly once. A replica that drains (SIGTERM) is skipped.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMintClient, toMicros, type MintClient, type RetryEvent } from "../../packages/client/src/index.js";
import { createTestDatabase, type TestDatabase } from "../support/pg-test-database.js";
import { killIfRunning, listening, spawnService, type ServiceProcess } from "../support/service-process.js";
import { waitFor } from "../integration/helpers.js";

let db: TestDatabase;
const procs: ServiceProcess[] = [];
const addresses: string[] = [];
let client: MintClient;
const retries: RetryEvent[] = [];

beforeAll(async () => {
  db = await createTestDatabase();
  const env = { MINT_LISTEN: "127.0.0.1:0", MINT_STORE: db.url, MINT_RATE_LIMIT: "1000000", MINT_LOG_LEVEL: "warn", MINT_SHUTDOWN_GRACE: "2s" };
  for (let i = 0; i < 3; i++) procs.push(spawnService(env));
  addresses.push(...(await Promise.all(procs.map((p) => listening(p)))));
  client = createMintClient({ addresses: `ipv4:${addresses.join(",")}`, defaultDeadlineMs: 10_000, onRetry: (e) => retries.push(e) });
});

afterAll(async () => {
  client?.close();
  for (const p of procs) killIfRunning(p);
  await Promise.all(procs.map((p) => p.exited));
  await db?.drop();
});

describe("three replicas through one SDK client", () => {
  it("sees every replica SERVING and spreads calls over all three", async () => {
    const states = await client.waitForHealth(10_000);
    expect(states.map((s) => s.status)).toEqual(["SERVING", "SERVING", "SERVING"]);
    expect(states.map((s) => s.address)).toEqual(addresses.map((a) => `ipv4:${a}`));
    for (let i = 0; i < 6; i++) await client.getBalance("warm-up");
  });

  it("a replica SIGKILLed mid-load: all 300 mints complete, each applied exactly once", async () => {
    const n = 300;
    let done = 0;
    const ops = Array.from({ length: n }, (_, i) => ({ accountId: `kill-${i % 10}`, amount: `${(i % 7) + 1}.25`, blockchain: "BASE" as const, idempotencyKey: `kill-key-${i}` }));
    const pending = ops.map((op) =>
      client.mintUsdc(op, { retry: { budgetMs: 60_000 } }).then((r) => {
        done++;
        return r;
      }),
    );
    // Kill while most calls are still in flight.
    await waitFor(() => done >= 20, "20 mints to complete", 20_000);
    const victim = procs[1] as ServiceProcess;
    victim.child.kill("SIGKILL");
    const results = await Promise.all(pending);
    expect(done).toBe(n);

    // The killed replica's calls failed on the transport and were retried elsewhere.
    const killedTarget = `ipv4:${addresses[1]}`;
    const cut = retries.filter((r) => r.error.address === killedTarget && !r.error.hasErrorInfo);
    expect(cut.length).toBeGreaterThan(0);
    for (const r of cut) expect(["UNAVAILABLE", "INTERNAL", "DEADLINE_EXCEEDED"]).toContain(r.error.code);
    await waitFor(() => client.endpoints()[1]?.status === "GONE", "the client to see the killed replica gone", 10_000);

    // Exactly one mint per key, and the ledger agrees with the requests.
    const rows = await db.query<{ n: string; keys: string }>("SELECT count(*) AS n, count(DISTINCT idempotency_key) AS keys FROM mints WHERE idempotency_key LIKE 'kill-key-%'");
    expect(rows.rows[0]).toEqual({ n: String(n), keys: String(n) });
    expect(new Set(results.map((r) => r.mint.mintId)).size).toBe(n);
    const expected = new Map<string, bigint>();
    for (const op of ops) expected.set(op.accountId, (expected.get(op.accountId) ?? 0n) + toMicros(op.amount));
    for (const [account, micros] of expected) expect(toMicros((await client.getBalance(account)).balance)).toBe(micros);
  });

  it("a draining replica (SIGTERM) is skipped: calls without retries all succeed on the one left", async () => {
    const leaving = procs[2] as ServiceProcess;
    leaving.child.kill("SIGTERM");
    await waitFor(() => client.endpoints()[2]?.status !== "SERVING", "the client to see the replica leave", 10_000);
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => client.mintUsdc({ accountId: "after-drain", amount: "1", blockchain: "BASE", idempotencyKey: `drain-${i}` }, { retry: false })));
    expect(results.every((r) => !r.replayed)).toBe(true);
    expect((await client.getBalance("after-drain")).balance).toBe("20");
    expect((await leaving.exited).code).toBe(0);
  });
});
