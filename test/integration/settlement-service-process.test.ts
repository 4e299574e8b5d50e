/**
 * The service itself as a real process (`src/main.ts`) with
 * settlement on PostgreSQL, a real EDR node and a SoftHSM2 token, killed by
 * the test-only fault hook (SIGKILL, no cleanup) right after signing or right
 * after broadcasting a settlement, then restarted: every mint ends with
 * exactly one mined transaction, and the ledger agrees with the chain.
 */
import * as grpc from "@grpc/grpc-js";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Blockchain, MintServiceClient, type MintUsdcResponse } from "../../gen/usdc/mint/v1/mint.js";
import { PostgresSettlementOutbox } from "../../src/adapters/postgres/settlement-outbox.js";
import type { Signer } from "../../src/domain/settlement/ports.js";
import { startEvmNode, type EvmNode } from "../support/evm/evm-node.js";
import { BLOCKCHAIN, countByState, deployForSigner, expectChainMatchesOutbox, until, type TokenSetup } from "../support/evm/settlement-fixture.js";
import { createTestDatabase, type TestDatabase, testPool } from "../support/pg-test-database.js";
import { killIfRunning, listening, spawnService, type ServiceProcess } from "../support/service-process.js";
import { createDevToken, pkcs11SignerEnv, type DevToken } from "../support/softhsm.js";

let node: EvmNode;
let token: DevToken;
let dir: string;
const dbs: TestDatabase[] = [];
const running: ServiceProcess[] = [];

beforeAll(async () => {
  [node, token] = await Promise.all([startEvmNode(), createDevToken()]);
  dir = mkdtempSync(path.join(tmpdir(), "mint-settlement-service-process-"));
}, 60_000);

afterAll(async () => {
  for (const p of running) killIfRunning(p);
  await node?.stop();
  for (const db of dbs) await db.drop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

function envFor(setup: TokenSetup, storeUrl: string): Record<string, string> {
  const file = path.join(dir, `chains-${setup.token}.yaml`);
  writeFileSync(
    file,
    `blockchains:\n  ${BLOCKCHAIN}:\n    rpcUrl: ${node.url}\n    chainId: ${node.chainId}\n    tokenContract: "${setup.token}"\n    treasury: "${setup.treasury}"\n    confirmations: 1\n    feeBumpTimeout: 1m\n    pollInterval: 20ms\n    requestTimeout: 2s\n`,
  );
  return { MINT_LISTEN: "127.0.0.1:0", MINT_STORE: storeUrl, MINT_SETTLEMENT_FILE: file, ...pkcs11SignerEnv(token, dir), MINT_LOG_LEVEL: "warn" };
}

function mint(client: MintServiceClient, accountId: string, amount: string, key: string): Promise<MintUsdcResponse> {
  return new Promise((resolve, reject) =>
    client.mintUsdc({ accountId, amount, blockchain: Blockchain.BLOCKCHAIN_ETHEREUM, idempotencyKey: key }, (err, res) => (err ? reject(err) : resolve(res))),
  );
}

describe("the service killed by the fault hook, then restarted (PostgreSQL)", () => {
  it.each(["after-sign", "after-broadcast"] as const)("SIGKILL %s: one mined transaction per mint; ledger and chain agree", async (point) => {
    const db = await createTestDatabase();
    dbs.push(db);
    const setup = await deployForSigner(node, { address: token.address } as Signer);
    const env = envFor(setup, db.url);

    const first = spawnService({ ...env, MINT_TEST_FAULTS: "true", MINT_TEST_FAULT: `${point}:4` });
    running.push(first);
    const client = new MintServiceClient(await listening(first), grpc.credentials.createInsecure());
    // Calls racing the crash may fail; what counts is what the store committed.
    await Promise.allSettled(Array.from({ length: 10 }, (_, i) => mint(client, `proc-${i % 3}`, `${i + 1}`, `${point}-${i}`)));
    const died = await first.exited;
    client.close();
    expect(died.signal, first.stderr()).toBe("SIGKILL");

    const pool = testPool({ connectionString: db.url, max: 2 });
    try {
      const outbox = new PostgresSettlementOutbox(pool);
      const afterCrash = await outbox.list(BLOCKCHAIN);
      expect(afterCrash.length).toBeGreaterThanOrEqual(4);
      const fourth = afterCrash.find((s) => s.txs[0]?.nonce === Math.min(...afterCrash.filter((x) => x.txs.length > 0).map((x) => x.txs[0]?.nonce ?? 0)) + 3);
      expect(fourth?.state).toBe("SUBMITTED");
      expect((await setup.chain.lookup(fourth?.txs[0]?.hash ?? "0x")).kind).toBe(point === "after-sign" ? "unknown" : "mined");

      const second = spawnService(env);
      running.push(second);
      await listening(second);
      await until(async () => (await outbox.list(BLOCKCHAIN)).every((s) => s.state === "CONFIRMED"), 60_000, () => second.stderr());
      second.child.kill("SIGTERM");
      expect((await second.exited).code, second.stderr()).toBe(0);

      const list = await outbox.list(BLOCKCHAIN);
      expect(countByState(list)).toEqual({ CONFIRMED: afterCrash.length });
      expect(list.find((s) => s.settlementId === fourth?.settlementId)?.txs.map((t) => t.hash)).toEqual([fourth?.txs[0]?.hash]);
      const { confirmedSum, problems } = await expectChainMatchesOutbox(node, setup, list, { address: token.address });
      expect(problems).toEqual([]);
      // The ledger: every mint's credit is available, none pending, and the sum is what the chain holds.
      const ledger = await pool.query<{ available: string; pending: string; minted: string }>(
        "SELECT (SELECT sum(balance) FROM accounts)::text AS available, (SELECT sum(pending) FROM accounts)::text AS pending, (SELECT sum(amount) FROM mints WHERE status = 'COMPLETED')::text AS minted",
      );
      expect(ledger.rows[0]).toEqual({ available: confirmedSum.toString(), pending: "0", minted: confirmedSum.toString() });
    } finally {
      await pool.end();
    }
  }, 120_000);
});
