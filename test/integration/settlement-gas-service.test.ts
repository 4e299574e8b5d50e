/**
 * Gas management through the real service (server on 127.0.0.1:0, generated
 * client, real EDR node, dev-key signer), on the memory store and on
 * PostgreSQL: a signer below its balance floor makes the chain's health
 * NOT_SERVING and its mints wait PENDING with `wait_reason`; topped up, they
 * settle, and Mint.settlement and Redemption.settlement carry what the
 * transaction cost (`cost_wei`), which `mintctl get` shows.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { parseEther, type Hex } from "viem";
import { generatePrivateKey } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HealthCheckResponse_ServingStatus, HealthClient } from "../../gen/grpc/health/v1/health.js";
import { Blockchain, SettlementState, type GetMintResponse, type GetRedemptionResponse, type Mint, type MintUsdcResponse, type RedeemUsdcResponse } from "../../gen/usdc/mint/v1/mint.js";
import { DevKeySigner } from "../../src/settlement/signer-dev-key.js";
import { settlementHealthName } from "../../src/transport/grpc/server.js";
import { startEvmNode, type EvmNode } from "../support/evm/evm-node.js";
import { BLOCKCHAIN, deployForSigner, until, type TokenSetup } from "../support/evm/settlement-fixture.js";
import { createTestDatabase, type TestDatabase } from "../support/pg-test-database.js";
import { mintctl } from "../support/stub-mint-server.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

let node: EvmNode;
let dir: string;
const dbs: TestDatabase[] = [];

beforeAll(async () => {
  node = await startEvmNode();
  dir = mkdtempSync(path.join(tmpdir(), "mint-settlement-gas-"));
}, 60_000);

afterAll(async () => {
  await node?.stop();
  for (const db of dbs) await db.drop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

/** The service settling ETHEREUM with a fresh dev key (funded with 1000 ETH) as minter and treasury, and `extra` settlement-file lines. */
async function serviceFor(store: string, extra: string): Promise<{ s: TestServer; setup: TokenSetup; signer: DevKeySigner }> {
  const key = generatePrivateKey();
  const signer = new DevKeySigner(key);
  const setup = await deployForSigner(node, signer, { treasuryIsSigner: true });
  const keyFile = path.join(dir, `key-${signer.address}`);
  writeFileSync(keyFile, key + "\n", { mode: 0o600 });
  const file = path.join(dir, `chains-${setup.token}.yaml`);
  writeFileSync(
    file,
    `blockchains:\n  ${BLOCKCHAIN}:\n    rpcUrl: ${node.url}\n    chainId: ${node.chainId}\n    tokenContract: "${setup.token}"\n    treasury: "${setup.treasury}"\n    confirmations: 1\n    feeBumpTimeout: 1m\n    pollInterval: 20ms\n    requestTimeout: 2s\n${extra}`,
  );
  const s = await startTestServer({ MINT_STORE: store, MINT_SETTLEMENT_FILE: file, MINT_SIGNER: "dev-key", MINT_DEV_KEY_FILE: keyFile });
  return { s, setup, signer };
}

const getMint = async (s: TestServer, mintId: string): Promise<Mint | undefined> => (await s.call<object, GetMintResponse>("getMint", { mintId })).mint;

describe.each([
  ["memory", async () => "memory"],
  [
    "postgres",
    async () => {
      const db = await createTestDatabase();
      dbs.push(db);
      return db.url;
    },
  ],
])("gas through the service (%s store)", (_name, storeOf) => {
  it("below the floor: health NOT_SERVING, the mint PENDING with wait_reason, nothing signed; topped up: CONFIRMED with cost_wei (mint and redemption), shown by mintctl get", async () => {
    const { s, setup, signer } = await serviceFor(await storeOf(), `    signerBalanceFloor: "${parseEther("2000")}"\n`);
    const health = new HealthClient(s.address, grpc.credentials.createInsecure());
    const check = (service: string): Promise<HealthCheckResponse_ServingStatus> =>
      new Promise((resolve, reject) => health.check({ service }, (e, r) => (e ? reject(e) : resolve(r.status))));
    try {
      await until(async () => (await check(settlementHealthName("ETHEREUM"))) === HealthCheckResponse_ServingStatus.NOT_SERVING, 10_000, () => "settlement health while idle below the floor");
      expect(await check("")).toBe(HealthCheckResponse_ServingStatus.SERVING);

      const m = await s.call<object, MintUsdcResponse>("mintUsdc", { accountId: "gas-alice", amount: "10", blockchain: Blockchain.BLOCKCHAIN_ETHEREUM, idempotencyKey: "gas-1" });
      const mintId = m.mint?.mintId ?? "";
      let waiting = "";
      await until(
        async () => {
          waiting = (await getMint(s, mintId))?.settlement?.waitReason ?? "";
          return waiting !== "";
        },
        10_000,
        () => "a wait reason on the PENDING mint",
      );
      expect(waiting).toMatch(/^waiting for funds: signer balance 1000000000000000000000 wei is below the floor of 2000000000000000000000 wei/);
      const pending = (await getMint(s, mintId))?.settlement;
      expect(pending).toMatchObject({ state: SettlementState.SETTLEMENT_STATE_PENDING, txHashes: [], costWei: undefined });
      expect(await node.publicClient.getTransactionCount({ address: signer.address })).toBe(0);
      const shown = await mintctl(["--address", s.address, "get", mintId]);
      expect(shown.out).toMatch(/settlement_state\s+PENDING/);
      expect(shown.out).toMatch(new RegExp(`settlement_wait_reason +${waiting.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\n`));

      await node.testClient.setBalance({ address: signer.address, value: parseEther("5000") });
      await until(async () => (await getMint(s, mintId))?.settlement?.state === SettlementState.SETTLEMENT_STATE_CONFIRMED, 20_000, () => "the mint CONFIRMED after the top-up");
      const settled = (await getMint(s, mintId))?.settlement;
      const receipt = await node.publicClient.getTransactionReceipt({ hash: settled?.minedTxHash as Hex });
      expect(settled?.costWei).toBe((receipt.gasUsed * receipt.effectiveGasPrice).toString());
      expect(settled?.waitReason).toBe("");
      await until(async () => (await check(settlementHealthName("ETHEREUM"))) === HealthCheckResponse_ServingStatus.SERVING, 10_000, () => "settlement health after the top-up");
      const after = await mintctl(["--address", s.address, "get", mintId]);
      expect(after.out).toMatch(new RegExp(`settlement_cost_wei\\s+${settled?.costWei ?? "?"}\\n`));
      const asJson = JSON.parse((await mintctl(["--address", s.address, "--json", "get", mintId])).out) as { mint: { settlement: { costWei: string } } };
      expect(asJson.mint.settlement.costWei).toBe(settled?.costWei);

      const r = await s.call<object, RedeemUsdcResponse>("redeemUsdc", { accountId: "gas-alice", amount: "4", blockchain: Blockchain.BLOCKCHAIN_ETHEREUM, idempotencyKey: "gas-r1" });
      const redemptionId = r.redemption?.redemptionId ?? "";
      const redemption = async () => (await s.call<object, GetRedemptionResponse>("getRedemption", { redemptionId })).redemption?.settlement;
      await until(async () => (await redemption())?.state === SettlementState.SETTLEMENT_STATE_CONFIRMED, 20_000, () => "the burn CONFIRMED");
      const burned = await redemption();
      const burnReceipt = await node.publicClient.getTransactionReceipt({ hash: burned?.minedTxHash as Hex });
      expect(burned?.costWei).toBe((burnReceipt.gasUsed * burnReceipt.effectiveGasPrice).toString());
      expect(await setup.chain.totalSupply()).toBe(6_000_000n);
    } finally {
      health.close();
      await s.stop();
    }
  });
});
