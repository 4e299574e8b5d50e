/**
 * Mint approvals and minter allowances across three server processes on one
 * PostgreSQL database: racing approvals of one large mint, sent to every replica
 * (each approver twice), complete it exactly once; racing allowance-bound mints
 * of one minter, spread over the replicas, never take more than its allowance.
 * Principals come from the x-mint-dev-principal header (the stop-gap until
 * authentication lands).
 */
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Blockchain, MintServiceClient, MintStatus, type ApproveMintResponse, type GetBalanceResponse, type GetMinterAllowanceResponse, type MintUsdcResponse } from "../../gen/usdc/mint/v1/mint.js";
import { createTestDatabase, type TestDatabase } from "../support/pg-test-database.js";
import { killIfRunning, listening, spawnService, type ServiceProcess } from "../support/service-process.js";
import { decodeError } from "../support/test-server.js";
import { callerFor } from "./helpers.js";

interface Replica {
  readonly proc: ServiceProcess;
  readonly client: MintServiceClient;
  readonly call: ReturnType<typeof callerFor>;
}

let db: TestDatabase;
const replicas: Replica[] = [];
const as = (principal: string) => ({ metadata: { "x-mint-dev-principal": principal } });

beforeAll(async () => {
  db = await createTestDatabase();
  const env = {
    MINT_LISTEN: "127.0.0.1:0",
    MINT_STORE: db.url,
    MINT_LOG_LEVEL: "warn",
    MINT_RATE_LIMIT: "100000",
    MINT_APPROVAL_THRESHOLD: "1000",
    MINT_APPROVALS_REQUIRED: "2",
    MINT_ALLOWANCES: "true",
    MINT_DEV_PRINCIPAL_HEADER: "true",
  };
  const procs = [spawnService(env), spawnService(env), spawnService(env)];
  try {
    for (const proc of procs) {
      const client = new MintServiceClient(await listening(proc), grpc.credentials.createInsecure());
      replicas.push({ proc, client, call: callerFor(client) });
    }
  } catch (err) {
    procs.forEach(killIfRunning);
    throw err;
  }
}, 60_000);

afterAll(async () => {
  for (const r of replicas) {
    r.client.close();
    killIfRunning(r.proc);
  }
  await db?.drop();
});

const on = (i: number): Replica => replicas[i % replicas.length] as Replica;

describe("three replicas on PostgreSQL: approvals and allowances", () => {
  it("racing approvals on every replica complete a large mint exactly once", async () => {
    await on(0).call("setMinterAllowance", { principal: "big-minter", amount: "1000000" }, as("reserve"));
    const pending = await on(0).call<object, MintUsdcResponse>("mintUsdc", { accountId: "acct-race", amount: "1500", blockchain: Blockchain.BLOCKCHAIN_BASE, idempotencyKey: "race-1" }, as("big-minter"));
    const mintId = pending.mint?.mintId as string;
    expect(pending.mint?.status).toBe(MintStatus.MINT_STATUS_PENDING_APPROVAL);
    const approvers = ["a1", "a2", "a3", "a4", "a5", "a6"];
    const results = await Promise.allSettled(
      [...approvers, ...approvers].map((who, i) => on(i).call<object, ApproveMintResponse>("approveMint", { mintId }, as(who))),
    );
    for (const r of results) {
      if (r.status === "rejected") expect(decodeError(r.reason).reason).toBe("MINT_COMPLETED");
    }
    const balance = await on(1).call<object, GetBalanceResponse>("getBalance", { accountId: "acct-race" });
    expect(balance.balance).toBe("1500");
    const entries = await db.query<{ n: string }>("SELECT count(*)::text AS n FROM ledger_entries WHERE ref_id = $1", [mintId]);
    expect(entries.rows[0]?.n).toBe("1");
    const row = await db.query<{ status: string; approvals: number }>("SELECT status, jsonb_array_length(approval->'approvals') AS approvals FROM mints WHERE mint_id = $1", [mintId]);
    expect(row.rows[0]).toEqual({ status: "COMPLETED", approvals: 2 });
  });

  it("racing mints of one minter over three replicas never exceed its allowance", async () => {
    await on(0).call("setMinterAllowance", { principal: "capped", amount: "100" }, as("reserve"));
    const results = await Promise.allSettled(
      Array.from({ length: 30 }, (_, i) =>
        on(i).call<object, MintUsdcResponse>("mintUsdc", { accountId: `acct-cap-${i % 4}`, amount: "7", blockchain: Blockchain.BLOCKCHAIN_BASE, idempotencyKey: `cap-${i}` }, as("capped")),
      ),
    );
    const ok = results.filter((r) => r.status === "fulfilled").length;
    for (const r of results) {
      if (r.status === "rejected") expect(decodeError(r.reason).reason).toBe("ALLOWANCE_EXCEEDED");
    }
    expect(ok).toBe(14); // 14 × 7 = 98 ≤ 100 < 105
    const left = await on(2).call<object, GetMinterAllowanceResponse>("getMinterAllowance", { principal: "capped" });
    expect(left.allowance).toBe("2");
    const sum = await db.query<{ s: string }>("SELECT COALESCE(sum(balance), 0)::text AS s FROM accounts WHERE account_id LIKE 'acct-cap-%'");
    expect(sum.rows[0]?.s).toBe("98000000");
  });
});
