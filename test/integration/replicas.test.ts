/**
 * Several replicas, one truth: three server processes (`node --import tsx
 * src/main.ts`) on one fresh PostgreSQL database and one Redis (logical
 * database 5, flushed first), each reached through its own generated client.
 *
 * - Concurrent same-key mints sent to different replicas make one mint.
 * - 15 mints for one account spread over the replicas within a second: 10 pass.
 * - The bank test: ~1000 concurrent transfers between 8 funded accounts,
 *   spread over the replicas; failed calls are retried on another replica
 *   with the same key; one replica is SIGKILLed mid-load and restarted on a
 *   new port. Money is conserved, nothing is applied twice, the ledger
 *   entries add up to the balances.
 * - Every replica restarted (SIGTERM, three new ones): every balance unchanged.
 * - A replica whose PostgreSQL goes away (a TCP relay cut) answers
 *   UNAVAILABLE with nothing applied and health NOT_SERVING, then recovers by
 *   itself when the relay comes back.
 */
import { randomBytes } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HealthCheckResponse_ServingStatus as Wire, HealthClient } from "../../gen/grpc/health/v1/health.js";
import { MintServiceClient, type TransferResponse, type VerifyAuditChainResponse } from "../../gen/usdc/mint/v1/mint.js";
import { expectJournalMatchesLedger, expectSealedWithoutGaps } from "../support/audit-checks.js";
import { createTestDatabase, type TestDatabase } from "../support/pg-test-database.js";
import { PgRelay } from "../support/pg-relay.js";
import { redisUrl } from "../support/pg-test-server.js";
import { isRunning, killIfRunning, listening, logLines, spawnService, type ServiceProcess } from "../support/service-process.js";
import { decodeError, expectError } from "../support/test-server.js";
import { callerFor, rpc, waitFor } from "./helpers.js";
import { prng } from "../support/prng.js";

const REDIS = redisUrl(5);
/** Account ids carry it, so a rerun never meets an earlier run's limiter windows. */
const RUN = randomBytes(3).toString("hex");
const MINT_SERVICE = "usdc.mint.v1.MintService";

interface Replica {
  readonly name: string;
  readonly proc: ServiceProcess;
  readonly address: string;
  readonly client: MintServiceClient;
  readonly health: HealthClient;
  readonly r: ReturnType<typeof rpc>;
  readonly call: ReturnType<typeof callerFor>;
}

let db: TestDatabase;
const everyReplica: Replica[] = [];
let replicaSeq = 0;

function baseEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { MINT_LISTEN: "127.0.0.1:0", MINT_STORE: db.url, MINT_REDIS_URL: REDIS, MINT_LOG_LEVEL: "warn", ...extra };
}

async function startReplica(env: Record<string, string>): Promise<Replica> {
  const proc = spawnService(env);
  const name = `replica-${++replicaSeq}`;
  let address: string;
  try {
    address = await listening(proc);
  } catch (err) {
    killIfRunning(proc);
    throw err;
  }
  const client = new MintServiceClient(address, grpc.credentials.createInsecure());
  const health = new HealthClient(address, grpc.credentials.createInsecure());
  const call = callerFor(client);
  const replica: Replica = { name, proc, address, client, health, call, r: rpc(call) };
  everyReplica.push(replica);
  return replica;
}

function startReplicas(n: number, env: Record<string, string>): Promise<Replica[]> {
  return Promise.all(Array.from({ length: n }, () => startReplica(env)));
}

function closeClients(rep: Replica): void {
  rep.client.close();
  rep.health.close();
}

/** SIGTERM: the replica drains and exits 0. */
async function terminate(rep: Replica): Promise<void> {
  rep.proc.child.kill("SIGTERM");
  const exit = await rep.proc.exited;
  closeClients(rep);
  expect(exit, `${rep.name} exit; stderr: ${rep.proc.stderr()}`).toEqual({ code: 0, signal: null });
}

function healthOf(rep: Replica, service = ""): Promise<Wire | string> {
  return new Promise((resolve) => {
    rep.health.check({ service }, new grpc.Metadata(), { deadline: Date.now() + 3_000 }, (err, res) => resolve(err ? `error ${grpc.status[err.code]}` : res.status));
  });
}

function codeOf(err: unknown): string {
  const code = (err as grpc.ServiceError | undefined)?.code;
  return typeof code === "number" ? (grpc.status[code] ?? String(code)) : `not a gRPC error: ${String(err)}`;
}

/** Micro-USDC of a canonical or request amount string. */
function micros(amount: string): bigint {
  const [whole, frac = ""] = amount.split(".");
  return BigInt(whole ?? "0") * 1_000_000n + BigInt(frac.padEnd(6, "0"));
}

function usdc(m: bigint): string {
  return `${m / 1_000_000n}.${(m % 1_000_000n).toString().padStart(6, "0")}`;
}

beforeAll(async () => {
  db = await createTestDatabase();
  const redis = new Redis(REDIS, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    await redis.flushdb();
  } finally {
    redis.disconnect();
  }
});

afterAll(async () => {
  for (const rep of everyReplica) {
    killIfRunning(rep.proc);
    closeClients(rep);
  }
  await Promise.all(everyReplica.map((rep) => rep.proc.exited));
  await db?.drop();
});

describe("three replicas on one PostgreSQL database and one Redis", () => {
  let replicas: Replica[] = [];
  /** Every account any test touched, with its balance when that test ended. */
  const balances = new Map<string, string>();

  beforeAll(async () => {
    replicas = await startReplicas(3, baseEnv());
    // Connections up before the concurrent parts, so calls really overlap.
    await Promise.all(replicas.map((rep) => rep.r.balance("warm-up")));
  });

  it("12 concurrent same-key mints, 4 to each replica, make exactly one mint", async () => {
    const account = `same-${RUN}`;
    const key = `same-key-${RUN}`;
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => (replicas[i % 3] as Replica).r.mint(account, "12.5", key)));
    expect(results.filter((x) => !x.replayed)).toHaveLength(1);
    expect(new Set(results.map((x) => x.mint?.mintId)).size).toBe(1);
    for (const rep of replicas) expect(await rep.r.balance(account)).toBe("12.5");
    const rows = await db.query<{ n: string }>("SELECT count(*) AS n FROM mints WHERE idempotency_key = $1", [key]);
    expect(rows.rows[0]?.n).toBe("1");
    const entries = await db.query<{ n: string }>("SELECT count(*) AS n FROM ledger_entries WHERE account_id = $1", [account]);
    expect(entries.rows[0]?.n).toBe("1");
    balances.set(account, "12.5");
  });

  it("15 mints for one account spread over the replicas within a second: exactly 10 pass, 5 RATE_LIMITED with RetryInfo", async () => {
    const account = `limited-${RUN}`;
    const started = Date.now();
    const settled = await Promise.allSettled(Array.from({ length: 15 }, (_, i) => (replicas[i % 3] as Replica).r.mint(account, "1", `limited-${i}`)));
    const tookMs = Date.now() - started;
    // The claim is about one window: all 15 must have been decided within it.
    expect(tookMs).toBeLessThan(1_000);
    const oks = settled.filter((x) => x.status === "fulfilled");
    expect(oks).toHaveLength(10);
    for (const x of settled) {
      if (x.status === "fulfilled") continue;
      const e = decodeError(x.reason);
      expect([grpc.status[e.code], e.reason]).toEqual(["RESOURCE_EXHAUSTED", "RATE_LIMITED"]);
      expect(e.retryDelayMs).toBeGreaterThan(0);
      expect(e.retryDelayMs).toBeLessThanOrEqual(1_000);
      expect(e.quotaFailure?.violations[0]?.subject).toBe(`account:${account}`);
    }
    for (const rep of replicas) expect(await rep.r.balance(account)).toBe("10");
    balances.set(account, "10");
  });

  it("bank test: ~1000 concurrent transfers over the replicas, one SIGKILLed and restarted mid-load; money conserved, nothing applied twice", async () => {
    // Restart the replicas with a limit that funding cannot hit (and check
    // that the restart kept what the tests above wrote).
    await Promise.all(replicas.map(terminate));
    replicas = await startReplicas(3, baseEnv({ MINT_RATE_LIMIT: "1000000" }));
    for (const [account, balance] of balances) expect(await (replicas[0] as Replica).r.balance(account)).toBe(balance);

    const seed = Math.floor(Math.random() * 2 ** 31);
    const random = prng(seed);
    const accounts = Array.from({ length: 8 }, (_, i) => `bank-${RUN}-${i}`);

    // Funding: 5 mints per account, spread over the replicas.
    const funding: { account: string; amount: bigint; key: string }[] = [];
    for (const account of accounts) {
      for (let j = 0; j < 5; j++) {
        funding.push({ account, amount: 100_000_000n + BigInt(Math.floor(random() * 100_000_000)), key: `fund-${account}-${j}` });
      }
    }
    const funded = await Promise.all(funding.map((f, i) => (replicas[i % 3] as Replica).r.mint(f.account, usdc(f.amount), f.key)));
    expect(funded.every((m) => !m.replayed)).toBe(true);
    const expected = new Map<string, bigint>(accounts.map((a) => [a, 0n]));
    for (const f of funding) expected.set(f.account, (expected.get(f.account) ?? 0n) + f.amount);
    const minted = funding.reduce((s, f) => s + f.amount, 0n);

    // The routing table the clients use: live replicas only.
    const live: Replica[] = [...replicas];
    let killed: Replica | null = null;
    let restarted: Replica | null = null;
    const servedOk = new Map<string, number>();

    interface Op {
      readonly key: string;
      readonly from: string;
      readonly to: string;
      readonly amount: bigint;
    }
    const ops: Op[] = Array.from({ length: 1000 }, (_, i) => {
      const from = accounts[Math.floor(random() * accounts.length)] as string;
      let to = from;
      while (to === from) to = accounts[Math.floor(random() * accounts.length)] as string;
      // Up to 300 USDC against ~1200 per account: most pass, some accounts run dry.
      return { key: `bank-${RUN}-xfer-${i}`, from, to, amount: 1n + BigInt(Math.floor(random() * 300_000_000)) };
    });

    const RETRYABLE = new Set(["UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "ABORTED"]);
    const retriesByCode: Record<string, number> = {};
    let retries = 0;
    let replayedOnRetry = 0;
    let insufficient = 0;
    const succeeded = new Map<string, TransferResponse>();
    const unexpected: string[] = [];

    const KILL_AFTER = 250;
    const GATE_AT = 600;
    let completed = 0;
    let signalKill: () => void = () => undefined;
    const killTime = new Promise<void>((res) => (signalKill = res));

    // Partway through: SIGKILL one replica, take it out of the routing table,
    // start a new one (new port) and put it in.
    const chaos = (async () => {
      await killTime;
      const victim = live[1] as Replica;
      killed = victim;
      live.splice(live.indexOf(victim), 1);
      victim.proc.child.kill("SIGKILL");
      const exit = await victim.proc.exited;
      expect(exit.signal).toBe("SIGKILL");
      const fresh = await startReplica(baseEnv({ MINT_RATE_LIMIT: "1000000" }));
      expect(fresh.address).not.toBe(victim.address);
      restarted = fresh;
      live.push(fresh);
    })();

    const runOp = async (op: Op, index: number): Promise<void> => {
      let last: Replica | null = null;
      for (let attempt = 0; attempt < 30; attempt++) {
        // Another replica than the one that just failed, whenever there is one.
        const others = live.filter((rep) => rep !== last);
        const pool = others.length > 0 ? others : live;
        const rep = pool[(index + attempt) % pool.length] as Replica;
        last = rep;
        try {
          const res = await rep.r.transfer(op.from, op.to, usdc(op.amount), op.key, 10_000);
          if (attempt > 0 && res.replayed) replayedOnRetry++;
          if (attempt === 0 && res.replayed) unexpected.push(`${op.key}: replayed on its first attempt`);
          const t = res.transfer;
          if (t?.fromAccountId !== op.from || t.toAccountId !== op.to || micros(t.amount) !== op.amount || t.idempotencyKey !== op.key) {
            unexpected.push(`${op.key}: answered ${JSON.stringify(t)}`);
          }
          succeeded.set(op.key, res);
          servedOk.set(rep.name, (servedOk.get(rep.name) ?? 0) + 1);
          return;
        } catch (err) {
          const code = codeOf(err);
          if (code === "FAILED_PRECONDITION" && decodeError(err).reason === "INSUFFICIENT_FUNDS") {
            insufficient++;
            return;
          }
          // A dropped connection may surface as INTERNAL (stream reset) from the replica just killed.
          const connectionLoss = code === "INTERNAL" && rep === killed;
          if (!RETRYABLE.has(code) && !connectionLoss) {
            unexpected.push(`${op.key}: ${code} ${(err as grpc.ServiceError).details ?? ""}`);
            return;
          }
          retries++;
          retriesByCode[code] = (retriesByCode[code] ?? 0) + 1;
        }
      }
      unexpected.push(`${op.key}: gave up after 30 attempts`);
    };

    // 64 in flight; ops from GATE_AT on wait for the restarted replica, so
    // it surely takes part in the load.
    let next = 0;
    const started = Date.now();
    const worker = async (): Promise<void> => {
      for (;;) {
        const index = next++;
        if (index >= ops.length) return;
        if (index >= GATE_AT) await chaos;
        await runOp(ops[index] as Op, index);
        if (++completed === KILL_AFTER) signalKill();
      }
    };
    await Promise.all(Array.from({ length: 64 }, worker));
    await chaos;
    const tookMs = Date.now() - started;

    expect(unexpected).toEqual([]);
    expect(killed).not.toBeNull();
    // The kill hit calls in flight, and their callers got through elsewhere.
    expect(retries).toBeGreaterThan(0);
    expect(restarted).not.toBeNull();
    expect(servedOk.get((restarted as Replica | null)?.name ?? "") ?? 0).toBeGreaterThan(0);
    expect(succeeded.size + insufficient).toBe(ops.length);

    // Expected balances from what the service said it applied.
    for (const op of ops) {
      if (!succeeded.has(op.key)) continue;
      expected.set(op.from, (expected.get(op.from) ?? 0n) - op.amount);
      expected.set(op.to, (expected.get(op.to) ?? 0n) + op.amount);
    }
    const reader = live[0] as Replica;
    const actual = new Map<string, bigint>();
    for (const a of accounts) actual.set(a, micros(await reader.r.balance(a)));
    const total = [...actual.values()].reduce((s, b) => s + b, 0n);
    expect(total).toBe(minted);
    for (const [a, b] of actual) expect(b, a).toBeGreaterThanOrEqual(0n);
    expect(Object.fromEntries(actual)).toEqual(Object.fromEntries(expected));

    // The database agrees: one transfer per succeeded key, no key applied twice.
    const keysInDb = await db.query<{ idempotency_key: string; transfer_id: string }>(
      "SELECT idempotency_key, transfer_id FROM transfers WHERE idempotency_key LIKE $1",
      [`bank-${RUN}-xfer-%`],
    );
    const count = await db.query<{ n: string }>("SELECT count(*) AS n FROM transfers");
    expect(Number(count.rows[0]?.n)).toBe(succeeded.size);
    const doubled = await db.query("SELECT idempotency_key FROM transfers GROUP BY idempotency_key HAVING count(*) > 1");
    expect(doubled.rows).toEqual([]);
    expect(new Set(keysInDb.rows.map((r) => r.idempotency_key))).toEqual(new Set(succeeded.keys()));
    expect(new Set(keysInDb.rows.map((r) => r.transfer_id))).toEqual(new Set([...succeeded.values()].map((r) => r.transfer?.transferId)));
    const storedKeys = await db.query<{ n: string }>("SELECT count(*) AS n FROM idempotency_keys WHERE scope = 'transfer' AND state = 'completed'");
    expect(Number(storedKeys.rows[0]?.n)).toBe(succeeded.size);

    // The append-only journal adds up to every balance, for every account.
    const journal = await db.query<{ account_id: string; balance: string; entries: string | null }>(
      `SELECT a.account_id, a.balance::text AS balance, (SELECT sum(e.amount) FROM ledger_entries e WHERE e.account_id = a.account_id)::text AS entries
       FROM accounts a ORDER BY a.account_id`,
    );
    for (const row of journal.rows) expect([row.account_id, row.entries]).toEqual([row.account_id, row.balance]);
    for (const a of accounts) expect(journal.rows.find((r) => r.account_id === a)?.balance).toBe(actual.get(a)?.toString());

    // The audit journal: one record per applied change, matching the ledger,
    // sealed 1..n without gaps (a record the killed replica committed but
    // did not seal is sealed by another replica's periodic pass), and whole.
    await waitFor(async () => (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM audit_journal WHERE seq IS NULL")).rows[0]!.n === 0, "the journal to be sealed");
    const records = await expectJournalMatchesLedger(db);
    expect(await expectSealedWithoutGaps(db)).toBe(records);
    const verdict = await reader.call<object, VerifyAuditChainResponse>("verifyAuditChain", { fromSeq: 0, toSeq: 0 });
    expect([verdict.whole, verdict.checked]).toEqual([true, records]);

    for (const a of accounts) balances.set(a, await reader.r.balance(a));
    replicas = [...live];
    console.log(
      `[bank] seed ${seed}: ${ops.length} transfers over 3 replicas (64 in flight, replica SIGKILLed after ${KILL_AFTER} and restarted) in ${tookMs} ms: ` +
        `${succeeded.size} applied, ${insufficient} INSUFFICIENT_FUNDS, ${retries} retries ${JSON.stringify(retriesByCode)} ` +
        `(${replayedOnRetry} of them answered by a replay: applied before the connection broke), ` +
        `calls OK per replica ${JSON.stringify(Object.fromEntries(servedOk))}; ` +
        `total ${usdc(total)} USDC = minted ${usdc(minted)} USDC over ${accounts.length} accounts, min balance ${usdc([...actual.values()].reduce((m, b) => (b < m ? b : m)))}`,
    );
  });

  it("audit journal: 1000 transfers sent at once over the 3 replicas; the chain is whole, no gaps, one record per applied change", async () => {
    const before = (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM audit_journal")).rows[0]!.n;
    // Ten sources, so most transfers touch different accounts and commit in parallel.
    const source = (i: number): string => `audit-${RUN}-src-${i % 10}`;
    for (let i = 0; i < 10; i++) await replicas[i % replicas.length]!.r.mint(source(i), "1000", `audit-${RUN}-fund-${i}`);
    const sent = Array.from({ length: 1000 }, (_, i) =>
      replicas[i % replicas.length]!.r.transfer(source(i), `audit-${RUN}-dst-${i % 50}`, "0.5", `audit-${RUN}-x-${i}`).then(
        () => true,
        () => false,
      ),
    );
    const applied = (await Promise.all(sent)).filter(Boolean).length;
    expect(applied).toBeGreaterThan(0);
    await waitFor(async () => (await db.query<{ n: number }>("SELECT count(*)::int AS n FROM audit_journal WHERE seq IS NULL")).rows[0]!.n === 0, "the journal to be sealed");
    const records = await expectJournalMatchesLedger(db);
    expect(applied).toBe(1000);
    expect(records - before).toBe(10 + applied);
    expect(await expectSealedWithoutGaps(db)).toBe(records);
    for (const r of replicas) {
      const verdict = await r.call<object, VerifyAuditChainResponse>("verifyAuditChain", { fromSeq: 0, toSeq: 0 });
      expect([verdict.whole, verdict.lastSeq]).toEqual([true, records]);
    }
    console.log(`[audit] 1000 concurrent transfers over 3 replicas: ${applied} applied; journal ${records} records, sealed 1..${records}, whole`);
  });

  it("after every replica restarts (SIGTERM all, three new ones on the same database), every balance is unchanged and keys still replay", async () => {
    expect(balances.size).toBeGreaterThanOrEqual(10);
    await Promise.all(replicas.map(terminate));
    replicas = await startReplicas(3, baseEnv());
    for (const rep of replicas) {
      const now = await Promise.all([...balances.keys()].map(async (a) => [a, await rep.r.balance(a)] as const));
      expect(Object.fromEntries(now)).toEqual(Object.fromEntries(balances));
    }
    const replay = await (replicas[2] as Replica).r.mint(`same-${RUN}`, "12.5", `same-key-${RUN}`);
    expect(replay.replayed).toBe(true);
    const sums = await db.query<{ a: string; e: string }>("SELECT (SELECT sum(balance) FROM accounts)::text AS a, (SELECT sum(amount) FROM ledger_entries)::text AS e");
    expect(sums.rows[0]?.a).toBe(sums.rows[0]?.e);
  });

  it("a replica whose PostgreSQL is unreachable answers UNAVAILABLE with nothing applied and NOT_SERVING, then recovers by itself", async () => {
    const relay = new PgRelay();
    await relay.start(0);
    try {
      const rep = await startReplica(baseEnv({ MINT_STORE: relay.url(db.name), MINT_PG_CONNECT_TIMEOUT: "1s" }));
      const account = `outage-${RUN}`;
      expect(await healthOf(rep)).toBe(Wire.SERVING);
      expect((await rep.r.mint(account, "1", `outage-1-${RUN}`)).replayed).toBe(false);

      await relay.stop();
      // One call at a time (thunks): a rejection must never wait unobserved for its turn.
      for (const [what, call] of [
        ["mint", () => rep.r.mint(account, "2", `outage-2-${RUN}`)],
        ["transfer", () => rep.r.transfer(account, `outage-to-${RUN}`, "0.5", `outage-xfer-${RUN}`)],
        ["balance", () => rep.r.balance(account)],
      ] as const) {
        const e = await expectError(call());
        expect([what, grpc.status[e.code]]).toEqual([what, "UNAVAILABLE"]);
      }
      await waitFor(async () => (await healthOf(rep)) === Wire.NOT_SERVING, "health NOT_SERVING", 10_000);
      expect(await healthOf(rep, MINT_SERVICE)).toBe(Wire.NOT_SERVING);
      // Nothing was applied (read past the relay, straight from the database).
      const mints = await db.query<{ n: string }>("SELECT count(*) AS n FROM mints WHERE account_id = $1", [account]);
      expect(mints.rows[0]?.n).toBe("1");
      const moved = await db.query<{ n: string }>("SELECT count(*) AS n FROM transfers WHERE from_account_id = $1", [account]);
      expect(moved.rows[0]?.n).toBe("0");
      // The other replicas, on the database directly, serve on.
      expect(await (replicas[0] as Replica).r.balance(account)).toBe("1");

      await relay.start(relay.port);
      await waitFor(async () => (await healthOf(rep)) === Wire.SERVING, "health SERVING again", 10_000);
      expect(await healthOf(rep, MINT_SERVICE)).toBe(Wire.SERVING);
      // The same keys now apply, once.
      expect((await rep.r.mint(account, "2", `outage-2-${RUN}`)).replayed).toBe(false);
      expect((await rep.r.transfer(account, `outage-to-${RUN}`, "0.5", `outage-xfer-${RUN}`)).replayed).toBe(false);
      expect(await rep.r.balance(account)).toBe("2.5");
      expect(await (replicas[0] as Replica).r.balance(`outage-to-${RUN}`)).toBe("0.5");
      await terminate(rep);
    } finally {
      await relay.stop();
    }
  });

  it("every replica still runs (none crashed along the way) and none logged an error", () => {
    for (const rep of replicas) expect(isRunning(rep.proc), rep.name).toBe(true);
    for (const rep of everyReplica) {
      const errors = logLines(rep.proc.stdout()).filter((l) => typeof l.level === "number" && l.level >= 50);
      expect(errors, rep.name).toEqual([]);
      expect(rep.proc.stderr(), rep.name).toBe("");
    }
  });
});
