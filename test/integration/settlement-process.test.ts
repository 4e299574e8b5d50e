/**
 * The settlement worker as a real process (src/settlement-worker-main.ts)
 * on PostgreSQL, a real EDR node and a SoftHSM2 token, killed by the
 * test-only fault hook (SIGKILL, no cleanup) right after signing or right
 * after broadcasting, then restarted: every settlement ends with exactly one
 * mined mint, and the signed bytes stored before the crash are the ones mined.
 */
import { spawn } from "node:child_process";
import { createServer, type AddressInfo } from "node:net";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runMigrations } from "../../src/adapters/postgres/migrations.js";
import { GAS_SETTLEMENT_MIGRATION, PostgresSettlementOutbox, SETTLEMENT_MIGRATIONS } from "../../src/adapters/postgres/settlement-outbox.js";
import type { Signer } from "../../src/domain/settlement/ports.js";
import { startEvmNode, type EvmNode } from "../support/evm/evm-node.js";
import { BLOCKCHAIN, countByState, deployForSigner, enqueueMany, expectChainMatchesOutbox, until, type TokenSetup } from "../support/evm/settlement-fixture.js";
import { createTestDatabase, type TestDatabase, testClient, testPool } from "../support/pg-test-database.js";
import { createDevToken, pkcs11SignerEnv, type DevToken } from "../support/softhsm.js";
import { Blockchain, SettlementState, type GetBalanceResponse, type GetRedemptionResponse, type MintUsdcResponse, type RedeemUsdcResponse } from "../../gen/usdc/mint/v1/mint.js";
import { BLOCKCHAINS } from "../../src/domain/model.js";
import { startTestServer } from "../support/test-server.js";
import { sampleValue, scrapeMetrics, type Sample } from "../support/prom-text.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const WORKER_MAIN = path.join(ROOT, "src", "settlement", "settlement-worker-main.ts");

let node: EvmNode;
let token: DevToken;
let dir: string;

beforeAll(async () => {
  [node, token] = await Promise.all([startEvmNode(), createDevToken()]);
  dir = mkdtempSync(path.join(tmpdir(), "mint-settlement-process-"));
}, 60_000);

afterAll(async () => {
  await node?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/**
 * Runs the worker process; resolves when it exits (or, with `stopWhen`, SIGTERMs it once that holds).
 * `stopWhen` is given the process's output so far (stdout and stderr).
 */
async function runWorker(env: Record<string, string>, stopWhen?: (output: () => string) => Promise<boolean>): Promise<Exit> {
  const child = spawn(process.execPath, ["--import", "tsx", WORKER_MAIN], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (b: Buffer) => (stderr = (stderr + b.toString()).slice(-4000)));
  child.stdout.on("data", (b: Buffer) => (stderr = (stderr + b.toString()).slice(-4000)));
  const exited = new Promise<Exit>((resolve) => child.once("exit", (code, signal) => resolve({ code, signal, stderr })));
  if (stopWhen !== undefined) {
    try {
      await until(async () => (await stopWhen(() => stderr)) || child.exitCode !== null, 60_000, () => stderr);
    } finally {
      if (child.exitCode === null) child.kill("SIGTERM");
    }
  }
  return exited;
}

describe("settlement worker process: killed by the fault hook, then restarted", () => {
  let db: TestDatabase;
  let pool: pg.Pool;

  beforeAll(async () => {
    db = await createTestDatabase();
    const c = testClient({ connectionString: db.url });
    await c.connect();
    await runMigrations(c, undefined, [...SETTLEMENT_MIGRATIONS, GAS_SETTLEMENT_MIGRATION]);
    await c.end();
    pool = testPool({ connectionString: db.url, max: 2 });
  });

  afterAll(async () => {
    await pool?.end();
    await db?.drop();
  });

  function envFor(setup: TokenSetup): Record<string, string> {
    const settlementFile = path.join(dir, `chains-${setup.token}.yaml`);
    writeFileSync(
      settlementFile,
      `blockchains:\n  ${BLOCKCHAIN}:\n    rpcUrl: ${node.url}\n    chainId: ${node.chainId}\n    tokenContract: "${setup.token}"\n    treasury: "${setup.treasury}"\n    confirmations: 1\n    feeBumpTimeout: 1m\n    pollInterval: 20ms\n    requestTimeout: 2s\n`,
    );
    return { MINT_STORE: db.url, MINT_SETTLEMENT_FILE: settlementFile, ...pkcs11SignerEnv(token, dir), MINT_LOG_LEVEL: "warn" };
  }

  it.each(["after-sign", "after-broadcast"] as const)("SIGKILL %s: the restart resumes from the stored hashes; one mined mint per settlement", async (point) => {
    const signer = { address: token.address } as Pick<Signer, "address">;
    const setup = await deployForSigner(node, signer as Signer);
    const outbox = new PostgresSettlementOutbox(pool);
    await pool.query("TRUNCATE settlement_txs, settlements RESTART IDENTITY");
    const expected = await enqueueMany(outbox, 10, point);
    const env = envFor(setup);

    const crashed = await runWorker({ ...env, MINT_TEST_FAULTS: "true", MINT_TEST_FAULT: `${point}:4` });
    expect(crashed.signal, crashed.stderr).toBe("SIGKILL");
    const afterCrash = await outbox.list(BLOCKCHAIN);
    // Up to the 4th signature: 3 sent before it, the 4th stored (and, after-broadcast, sent) when the process died.
    expect(afterCrash.filter((s) => s.state === "PENDING")).toHaveLength(6);
    const fourth = afterCrash[3];
    expect(fourth?.state).toBe("SUBMITTED");
    expect((await setup.chain.lookup(fourth?.txs[0]?.hash ?? "0x")).kind).toBe(point === "after-sign" ? "unknown" : "mined");

    const restarted = await runWorker(env, async () => (await outbox.list(BLOCKCHAIN)).every((s) => s.state === "CONFIRMED"));
    expect(restarted.code, restarted.stderr).toBe(0);
    const list = await outbox.list(BLOCKCHAIN);
    expect(countByState(list)).toEqual({ CONFIRMED: 10 });
    expect(list[3]?.txs.map((t) => t.hash)).toEqual([fourth?.txs[0]?.hash]);
    const { confirmedSum, problems } = await expectChainMatchesOutbox(node, setup, list, signer);
    expect(problems).toEqual([]);
    expect(confirmedSum).toBe(expected);
  });

  it("MINT_METRICS_LISTEN serves the worker's own /metrics (scraped over HTTP): the settlement series move as it confirms; none of the service's", async () => {
    const signer = { address: token.address } as Pick<Signer, "address">;
    const setup = await deployForSigner(node, signer as Signer);
    const outbox = new PostgresSettlementOutbox(pool);
    await pool.query("TRUNCATE settlement_txs, settlements RESTART IDENTITY");
    await enqueueMany(outbox, 4, "metrics");
    const eth = { blockchain: BLOCKCHAIN };
    let last: Sample[] = [];
    const exit = await runWorker({ ...envFor(setup), MINT_METRICS_LISTEN: "127.0.0.1:0" }, async (output) => {
      // The start line names the bound address (it goes out at any log level but silent).
      const address = /"metricsAddress":"([^"]+)"/.exec(output())?.[1];
      if (address === undefined) return false;
      last = await scrapeMetrics(address);
      return sampleValue(last, "usdc_mint_settlement_seconds_count", eth) === 4;
    });
    expect(exit.code, exit.stderr).toBe(0);
    expect(countByState(await outbox.list(BLOCKCHAIN))).toEqual({ CONFIRMED: 4 });
    expect(sampleValue(last, "usdc_mint_settlement_confirmations_count", eth)).toBe(4);
    expect(sampleValue(last, "usdc_mint_settlement_signer_seconds_count", { signer: "pkcs11", outcome: "ok" })).toBe(4);
    expect(sampleValue(last, "usdc_mint_settlement_sender", eth)).toBe(1);
    expect(sampleValue(last, "usdc_mint_settlement_failures_total", { ...eth, reason: "reverted" })).toBe(0);
    expect(last.some((x) => x.name === "process_cpu_user_seconds_total")).toBe(true);
    // A worker has no gRPC server and moves no money itself: none of the service's series.
    expect(last.some((x) => x.name.startsWith("grpc_server_") || x.name === "usdc_mint_minted_micro_usdc_total")).toBe(false);
  });

  it("a metrics address that cannot be bound stops the worker at start with one line naming MINT_METRICS_LISTEN (exit 1)", async () => {
    const setup = await deployForSigner(node, { address: token.address } as Signer);
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const port = (taken.address() as AddressInfo).port;
    try {
      const exit = await runWorker({ ...envFor(setup), MINT_METRICS_LISTEN: `127.0.0.1:${port}` });
      expect(exit.code).toBe(1);
      expect(exit.stderr.trim()).toBe(`usdc-mint settlement: MINT_METRICS_LISTEN=127.0.0.1:${port}: cannot listen (EADDRINUSE)`);
    } finally {
      await new Promise<void>((resolve) => taken.close(() => resolve()));
    }
  });

  it("refuses the fault hook without MINT_TEST_FAULTS=true (exit 2, one line)", async () => {
    const setup = await deployForSigner(node, { address: token.address } as Signer);
    const exit = await runWorker({ ...envFor(setup), MINT_TEST_FAULT: "after-sign" });
    expect(exit.code).toBe(2);
    expect(exit.stderr.trim()).toBe("usdc-mint settlement: invalid MINT_TEST_FAULT: fault hooks are refused unless MINT_TEST_FAULTS=true (test machines only)");
  });
});

describe("the worker process applies the ledger's effects", () => {
  it("next to a service that stands by: it makes a mint's credit available and re-credits a redemption whose burn the chain refused, once", async () => {
    const db = await createTestDatabase();
    const setup = await deployForSigner(node, { address: token.address } as Signer, { treasuryIsSigner: true });
    const settlementFile = path.join(dir, `chains-effects-${setup.token}.yaml`);
    writeFileSync(
      settlementFile,
      `blockchains:\n  ${BLOCKCHAIN}:\n    rpcUrl: ${node.url}\n    chainId: ${node.chainId}\n    tokenContract: "${setup.token}"\n    treasury: "${setup.treasury}"\n    confirmations: 1\n    feeBumpTimeout: 1m\n    pollInterval: 20ms\n    requestTimeout: 2s\n`,
    );
    const env = { MINT_STORE: db.url, MINT_SETTLEMENT_FILE: settlementFile, ...pkcs11SignerEnv(token, dir) };
    let finished = false;
    let passed = false;
    const worker = runWorker({ ...env, MINT_LOG_LEVEL: "warn" }, async () => finished);
    // The process holds the chain's sender lock before the service starts, so the service's own worker stands by.
    const senderLocked = async (): Promise<boolean> =>
      // pg_locks is the whole cluster's: only this test's database counts (other files settle ETHEREUM in theirs meanwhile).
      (
        await db.query(
          "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = $1 AND objid = $2 AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
          [0x6d696e74, 1500 + BLOCKCHAINS.indexOf(BLOCKCHAIN)],
        )
      ).rowCount === 1;
    await until(senderLocked, 30_000, () => "waiting for the worker process to take the sender lock");
    const s = await startTestServer({ MINT_STORE: db.url, MINT_SETTLEMENT_FILE: settlementFile, ...pkcs11SignerEnv(token, dir) });
    try {
      const balance = (accountId: string): Promise<GetBalanceResponse> => s.call("getBalance", { accountId });
      const m = await s.call<object, MintUsdcResponse>("mintUsdc", { accountId: "proc-alice", amount: "2", blockchain: Blockchain.BLOCKCHAIN_ETHEREUM, idempotencyKey: "proc-m1" });
      await until(async () => (await balance("proc-alice")).balance === "2", 30_000, () => `mint ${m.mint?.mintId}`);
      await s.call("mintUsdc", { accountId: "proc-alice", amount: "5", blockchain: Blockchain.BLOCKCHAIN_BASE, idempotencyKey: "proc-m2" });
      const r = await s.call<object, RedeemUsdcResponse>("redeemUsdc", { accountId: "proc-alice", amount: "5", blockchain: Blockchain.BLOCKCHAIN_ETHEREUM, idempotencyKey: "proc-r1" });
      const id = r.redemption?.redemptionId ?? "";
      await until(async () => (await s.call<object, GetRedemptionResponse>("getRedemption", { redemptionId: id })).redemption?.settlement?.state === SettlementState.SETTLEMENT_STATE_FAILED, 30_000, () => `redemption ${id}`);
      expect(await balance("proc-alice")).toMatchObject({ balance: "7", pendingBalance: "0" });
      // Done by the process: the service's own worker never held the lock.
      expect(s.app.settlement?.status().map((w) => w.role)).toEqual(["standby"]);
      const entries = await db.query<{ kind: string }>("SELECT kind FROM ledger_entries WHERE ref_id = $1 ORDER BY entry_id", [id]);
      expect(entries.rows.map((e) => e.kind)).toEqual(["redemption", "redemption_reversal"]);
      expect(await setup.chain.totalSupply()).toBe(2_000_000n);
      passed = true;
    } finally {
      finished = true;
      const exit = await worker;
      await s.stop();
      await db.drop();
      // Only after a passing body: a failure above must not be hidden by this one (its SIGTERM may reach a worker still starting).
      if (passed) expect({ code: exit.code, signal: exit.signal }, exit.stderr).toEqual({ code: 0, signal: null });
    }
  }, 90_000);
});
