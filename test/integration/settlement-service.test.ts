/**
 * On-chain settlement through the real service: the server on 127.0.0.1:0 with
 * the generated client, a real EDR node, a real SoftHSM2 token (the PKCS#11
 * signer), on the memory store and on PostgreSQL. Mints on a settling chain
 * are credited pending, settle on-chain and only then become spendable; a
 * mint the chain refuses reverses itself; ReconcileMint respects the
 * settlement; ReconcileChain proves ledger and chain agree (or says where not).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { privateKeyToAddress, generatePrivateKey } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { status as Code } from "@grpc/grpc-js";
import {
  Blockchain,
  MintStatus,
  SettlementState,
  type ApproveMintResponse,
  type GetBalanceResponse,
  type GetMintResponse,
  type ListMintsResponse,
  type MintUsdcResponse,
  type ReconcileChainResponse,
  type ReconcileMintResponse,
} from "../../gen/usdc/mint/v1/mint.js";
import { fiatTokenAbi } from "../../src/adapters/evm/fiat-token-artifact.js";
import type { Signer } from "../../src/domain/settlement/ports.js";
import { freePort, startEvmNode, type EvmNode } from "../support/evm/evm-node.js";
import * as grpc from "@grpc/grpc-js";
import { HealthCheckResponse_ServingStatus, HealthClient } from "../../gen/grpc/health/v1/health.js";
import { settlementHealthName } from "../../src/transport/grpc/server.js";
import { BLOCKCHAIN, deployForSigner, mintsOnChain, until, type TokenSetup } from "../support/evm/settlement-fixture.js";
import { createTestDatabase, type TestDatabase } from "../support/pg-test-database.js";
import { createDevToken, pkcs11SignerEnv, type DevToken } from "../support/softhsm.js";
import { expectError, startTestServer, type TestServer } from "../support/test-server.js";
import { mintctl } from "../support/stub-mint-server.js";
import { createMintClient } from "../../src/client/index.js";
import { sampleValue, scrapeMetrics, type Sample } from "../support/prom-text.js";

let node: EvmNode;
let token: DevToken;
let dir: string;
/** One database per service: a chain's settlements belong to one token, and each test deploys its own. */
const dbs: TestDatabase[] = [];
async function freshDatabase(): Promise<string> {
  const db = await createTestDatabase();
  dbs.push(db);
  return db.url;
}
const signer = (): Signer => ({ address: token.address }) as Signer;

beforeAll(async () => {
  [node, token] = await Promise.all([startEvmNode(), createDevToken()]);
  dir = mkdtempSync(path.join(tmpdir(), "mint-settlement-service-"));
}, 60_000);

afterAll(async () => {
  await node?.stop();
  for (const db of dbs) await db.drop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

/** The service settling ETHEREUM on a fresh token (minter: the HSM key unless `minter` says otherwise). */
async function serviceFor(
  storeOf: () => Promise<string>,
  opts: { allowance?: bigint; minter?: `0x${string}`; confirmations?: number; feeBumpTimeout?: string; rpcUrl?: string; env?: Record<string, string>; before?: (setup: TokenSetup) => Promise<unknown> } = {},
): Promise<{ s: TestServer; setup: TokenSetup }> {
  const setup =
    opts.minter === undefined
      ? await deployForSigner(node, signer(), opts.allowance === undefined ? {} : { allowance: opts.allowance })
      : { ...(await deployForSigner(node, { address: opts.minter } as Signer)) };
  const file = path.join(dir, `chains-${setup.token}.yaml`);
  writeFileSync(
    file,
    `blockchains:\n  ${BLOCKCHAIN}:\n    rpcUrl: ${opts.rpcUrl ?? node.url}\n    chainId: ${node.chainId}\n    tokenContract: "${setup.token}"\n    treasury: "${setup.treasury}"\n    confirmations: ${opts.confirmations ?? 1}\n    feeBumpTimeout: ${opts.feeBumpTimeout ?? "1m"}\n    pollInterval: 20ms\n    requestTimeout: 2s\n`,
  );
  await opts.before?.(setup);
  const s = await startTestServer({ MINT_STORE: await storeOf(), MINT_SETTLEMENT_FILE: file, ...pkcs11SignerEnv(token, dir), ...opts.env });
  return { s, setup };
}

const mint = (s: TestServer, accountId: string, amount: string, key: string): Promise<MintUsdcResponse> =>
  s.call("mintUsdc", { accountId, amount, blockchain: Blockchain.BLOCKCHAIN_ETHEREUM, idempotencyKey: key });
const getMint = async (s: TestServer, mintId: string) => (await s.call<object, GetMintResponse>("getMint", { mintId })).mint;
const balance = (s: TestServer, accountId: string): Promise<GetBalanceResponse> => s.call("getBalance", { accountId });
const transfer = (s: TestServer, from: string, to: string, amount: string, key: string) =>
  s.call("transfer", { fromAccountId: from, toAccountId: to, amount, idempotencyKey: key });
const reconcileChain = (s: TestServer): Promise<ReconcileChainResponse> => s.call("reconcileChain", { blockchain: Blockchain.BLOCKCHAIN_ETHEREUM });

async function untilState(s: TestServer, mintId: string, state: SettlementState, timeoutMs = 30_000): Promise<void> {
  let last: SettlementState | undefined;
  await until(
    async () => {
      last = (await getMint(s, mintId))?.settlement?.state;
      return last === state;
    },
    timeoutMs,
    () => `waiting for ${mintId} to be ${SettlementState[state]}, last ${last === undefined ? "none" : SettlementState[last]}`,
  );
}

describe.each([
  ["memory", async () => "memory"],
  ["postgres", freshDatabase],
])("settlement through the service (%s store)", (_name, storeOf) => {
  it("50 mints settle: pending until CONFIRMED, then available; totalSupply = treasury balance = confirmed sum; the chain agrees", async () => {
    const { s, setup } = await serviceFor(storeOf);
    try {
      const mints = await Promise.all(Array.from({ length: 50 }, (_, i) => mint(s, `acct-${i % 5}`, `${i + 1}.000001`, `k-${i}`)));
      for (const r of mints) expect([SettlementState.SETTLEMENT_STATE_PENDING, SettlementState.SETTLEMENT_STATE_SUBMITTED]).toContain(r.mint?.settlement?.state);
      for (const r of mints) await untilState(s, r.mint?.mintId ?? "", SettlementState.SETTLEMENT_STATE_CONFIRMED);
      const expected = mints.reduce((sum, r) => sum + BigInt(Math.round(Number(r.mint?.amount) * 1e6)), 0n);
      expect(await setup.chain.totalSupply()).toBe(expected);
      expect(await setup.chain.treasuryBalance()).toBe(expected);
      expect((await mintsOnChain(node, setup)).size).toBe(50);
      const one = await getMint(s, mints[0]?.mint?.mintId ?? "");
      expect(one?.settlement?.txHashes).toHaveLength(1);
      expect(one?.settlement?.minedTxHash).toBe(one?.settlement?.txHashes[0]);
      expect(one?.settlement?.confirmations).toBeGreaterThanOrEqual(1);
      expect(one?.settlement?.attempts).toBe(1);
      let available = 0n;
      for (let a = 0; a < 5; a++) {
        const b = await balance(s, `acct-${a}`);
        expect(b.pendingBalance).toBe("0");
        available += BigInt(Math.round(Number(b.balance) * 1e6));
      }
      expect(available).toBe(expected);
      const report = await reconcileChain(s);
      expect(report).toMatchObject({ agree: true, differences: [], totalSupply: report.confirmedSum, treasuryBalance: report.confirmedSum });
      expect(BigInt(Math.round(Number(report.confirmedSum) * 1e6))).toBe(expected);
    } finally {
      await s.stop();
    }
  }, 120_000);

  it("pending money cannot be transferred; after confirmation it can; ReconcileMint of a SUBMITTED mint is MINT_SETTLEMENT_IN_FLIGHT, of a CONFIRMED one MINT_SETTLED", async () => {
    const { s } = await serviceFor(storeOf);
    try {
      await node.testClient.setAutomine(false);
      const r = await mint(s, "pend-alice", "7", "pend-1");
      const mintId = r.mint?.mintId ?? "";
      await untilState(s, mintId, SettlementState.SETTLEMENT_STATE_SUBMITTED);
      expect(await balance(s, "pend-alice")).toEqual({ accountId: "pend-alice", balance: "0", pendingBalance: "7", frozen: false, freezeReason: "" });
      // The SDK shows the same: the pending balance and the mint's settlement.
      const sdk = createMintClient({ addresses: s.address, defaultDeadlineMs: 5_000 });
      try {
        expect(await sdk.getBalance("pend-alice")).toEqual({ accountId: "pend-alice", balance: "0", pendingBalance: "7", frozen: false, freezeReason: "" });
        const viaSdk = await sdk.getMint(mintId);
        expect(viaSdk.settlement).toMatchObject({ state: "SUBMITTED", minedTxHash: "", attempts: 1 });
        expect(viaSdk.settlement?.txHashes).toHaveLength(1);
      } finally {
        sdk.close();
      }
      const e = await expectError(transfer(s, "pend-alice", "pend-bob", "1", "pend-t1"));
      expect(e.reason).toBe("INSUFFICIENT_FUNDS");
      const inFlight = await expectError(s.call("reconcileMint", { mintId, reason: "test" }));
      expect([inFlight.code, inFlight.reason]).toEqual([Code.FAILED_PRECONDITION, "MINT_SETTLEMENT_IN_FLIGHT"]);
      await node.testClient.setAutomine(true);
      await node.testClient.mine({ blocks: 1 });
      await untilState(s, mintId, SettlementState.SETTLEMENT_STATE_CONFIRMED);
      expect(await balance(s, "pend-alice")).toEqual({ accountId: "pend-alice", balance: "7", pendingBalance: "0", frozen: false, freezeReason: "" });
      await transfer(s, "pend-alice", "pend-bob", "1", "pend-t1");
      expect((await balance(s, "pend-bob")).balance).toBe("1");
      const settled = await expectError(s.call("reconcileMint", { mintId, reason: "test" }));
      expect([settled.code, settled.reason]).toEqual([Code.FAILED_PRECONDITION, "MINT_SETTLED"]);
      expect((await getMint(s, mintId))?.status).toBe(MintStatus.MINT_STATUS_COMPLETED);
    } finally {
      await node.testClient.setAutomine(true);
      await s.stop();
    }
  }, 60_000);

  it("a large mint waits for approval with nothing credited or queued; the completing approval credits pending and settles it on-chain", async () => {
    const env = { MINT_APPROVAL_THRESHOLD: "5", MINT_APPROVALS_REQUIRED: "2", MINT_DEV_PRINCIPAL_HEADER: "true" };
    const { s, setup } = await serviceFor(storeOf, { env });
    const as = (principal: string) => ({ metadata: { "x-mint-dev-principal": principal } });
    try {
      const r = await s.call<object, MintUsdcResponse>("mintUsdc", { accountId: "appr-alice", amount: "10", blockchain: Blockchain.BLOCKCHAIN_ETHEREUM, idempotencyKey: "appr-1" }, as("minter-a"));
      const mintId = r.mint?.mintId ?? "";
      expect([r.mint?.status, r.mint?.settlement?.state]).toEqual([MintStatus.MINT_STATUS_PENDING_APPROVAL, SettlementState.SETTLEMENT_STATE_NOT_REQUIRED]);
      const first = await s.call<object, ApproveMintResponse>("approveMint", { mintId }, as("bob"));
      expect(first.mint?.status).toBe(MintStatus.MINT_STATUS_PENDING_APPROVAL);
      expect(await balance(s, "appr-alice")).toMatchObject({ balance: "0", pendingBalance: "0" });
      const done = await s.call<object, ApproveMintResponse>("approveMint", { mintId }, as("carol"));
      expect(done.mint?.status).toBe(MintStatus.MINT_STATUS_COMPLETED);
      expect(done.mint?.settlement?.state).not.toBe(SettlementState.SETTLEMENT_STATE_NOT_REQUIRED);
      await untilState(s, mintId, SettlementState.SETTLEMENT_STATE_CONFIRMED);
      expect(await balance(s, "appr-alice")).toMatchObject({ balance: "10", pendingBalance: "0" });
      expect(await setup.chain.totalSupply()).toBe(10_000_000n);
      expect((await reconcileChain(s)).agree).toBe(true);
    } finally {
      await s.stop();
    }
  }, 60_000);

  it("ReconcileMint of a PENDING mint (nothing signed: the key is not a minter) reverses the pending credit and frees the key; nothing reaches the chain", async () => {
    const { s, setup } = await serviceFor(storeOf, { minter: privateKeyToAddress(generatePrivateKey()) });
    try {
      const r = await mint(s, "cancel-alice", "3", "cancel-1");
      expect(r.mint?.settlement?.state).toBe(SettlementState.SETTLEMENT_STATE_PENDING);
      expect(await balance(s, "cancel-alice")).toMatchObject({ balance: "0", pendingBalance: "3" });
      const reversed = await s.call<object, ReconcileMintResponse>("reconcileMint", { mintId: r.mint?.mintId, reason: "cancel before signing" });
      expect(reversed.mint?.status).toBe(MintStatus.MINT_STATUS_REVERSED);
      expect(reversed.mint?.settlement?.state).toBe(SettlementState.SETTLEMENT_STATE_NOT_REQUIRED);
      expect(await balance(s, "cancel-alice")).toMatchObject({ balance: "0", pendingBalance: "0" });
      const again = await mint(s, "cancel-alice", "3", "cancel-1");
      expect(again.replayed).toBe(false);
      expect(again.mint?.mintId).not.toBe(r.mint?.mintId);
      expect(await setup.chain.totalSupply()).toBe(0n);
    } finally {
      await s.stop();
    }
  }, 60_000);

  it("a mint beyond the minter's allowance reverts on-chain and reverses itself once: FAILED, REVERSED, pending back, key free", async () => {
    const { s, setup } = await serviceFor(storeOf, { allowance: 5_000_000n });
    try {
      const first = await mint(s, "fail-alice", "4", "fail-1");
      await untilState(s, first.mint?.mintId ?? "", SettlementState.SETTLEMENT_STATE_CONFIRMED);
      const second = await mint(s, "fail-alice", "2", "fail-2");
      const mintId = second.mint?.mintId ?? "";
      await untilState(s, mintId, SettlementState.SETTLEMENT_STATE_FAILED);
      const failed = await getMint(s, mintId);
      expect(failed?.status).toBe(MintStatus.MINT_STATUS_REVERSED);
      expect(failed?.reverseReason).toMatch(/^settlement failed: /);
      expect(failed?.settlement?.lastError).toMatch(/reverted/);
      expect(await balance(s, "fail-alice")).toEqual({ accountId: "fail-alice", balance: "4", pendingBalance: "0", frozen: false, freezeReason: "" });
      const reconcile = await expectError(s.call("reconcileMint", { mintId, reason: "again" }));
      expect(reconcile.reason).toBe("MINT_ALREADY_REVERSED");
      // The key is free: the same key mints anew (and fails again: the allowance is still short).
      const retry = await mint(s, "fail-alice", "2", "fail-2");
      expect(retry.replayed).toBe(false);
      await untilState(s, retry.mint?.mintId ?? "", SettlementState.SETTLEMENT_STATE_FAILED);
      expect(await balance(s, "fail-alice")).toEqual({ accountId: "fail-alice", balance: "4", pendingBalance: "0", frozen: false, freezeReason: "" });
      expect(await setup.chain.totalSupply()).toBe(4_000_000n);
      expect((await reconcileChain(s)).agree).toBe(true);
    } finally {
      await s.stop();
    }
  }, 60_000);

  it("settlement metrics on the service's /metrics (scraped over HTTP) move as mints are submitted, confirmed and reverted; ListMints shows every settlement", async () => {
    const { s } = await serviceFor(storeOf, { allowance: 5_000_000n, env: { MINT_METRICS_LISTEN: "127.0.0.1:0" } });
    const eth = { blockchain: "ETHEREUM" };
    const scrape = (): Promise<Sample[]> => scrapeMetrics(s.app.metricsAddress as string);
    try {
      let m = await scrape();
      expect(sampleValue(m, "usdc_mint_settlement_seconds_count", eth)).toBe(0);
      expect(sampleValue(m, "usdc_mint_settlement_oldest_unsettled_age_seconds", eth)).toBe(0);
      // The service's own series are on the same page.
      expect(sampleValue(m, "grpc_server_handled_total", { grpc_method: "MintUsdc", grpc_code: "OK" })).toBe(0);

      await node.testClient.setAutomine(false);
      const first = await mint(s, "metrics-alice", "2", "metrics-1");
      await untilState(s, first.mint?.mintId ?? "", SettlementState.SETTLEMENT_STATE_SUBMITTED);
      m = await scrape();
      expect(sampleValue(m, "usdc_mint_settlements_open", { ...eth, state: "SUBMITTED" })).toBe(1);
      expect(sampleValue(m, "usdc_mint_settlement_oldest_unsettled_age_seconds", eth)).toBeGreaterThan(0);
      expect(sampleValue(m, "usdc_mint_settlement_sender", eth)).toBe(1);
      expect(sampleValue(m, "usdc_mint_settlement_signer_seconds_count", { signer: "pkcs11", outcome: "ok" })).toBe(1);
      await node.testClient.setAutomine(true);
      await node.testClient.mine({ blocks: 1 });
      await untilState(s, first.mint?.mintId ?? "", SettlementState.SETTLEMENT_STATE_CONFIRMED);

      const second = await mint(s, "metrics-alice", "2", "metrics-2");
      await untilState(s, second.mint?.mintId ?? "", SettlementState.SETTLEMENT_STATE_CONFIRMED);
      const third = await mint(s, "metrics-alice", "2", "metrics-3"); // beyond the 5 USDC allowance: reverts
      await untilState(s, third.mint?.mintId ?? "", SettlementState.SETTLEMENT_STATE_FAILED);
      m = await scrape();
      expect(sampleValue(m, "usdc_mint_settlement_seconds_count", eth)).toBe(2);
      expect(sampleValue(m, "usdc_mint_settlement_seconds_sum", eth)).toBeGreaterThan(0);
      expect(sampleValue(m, "usdc_mint_settlement_confirmations_count", eth)).toBe(2);
      expect(sampleValue(m, "usdc_mint_settlement_failures_total", { ...eth, reason: "reverted" })).toBe(1);
      expect(sampleValue(m, "usdc_mint_settlement_failures_total", { ...eth, reason: "dropped" })).toBe(0);
      expect(sampleValue(m, "usdc_mint_settlements_open", { ...eth, state: "PENDING" })).toBe(0);
      expect(sampleValue(m, "usdc_mint_settlements_open", { ...eth, state: "SUBMITTED" })).toBe(0);
      expect(sampleValue(m, "usdc_mint_settlement_oldest_unsettled_age_seconds", eth)).toBe(0);
      expect(sampleValue(m, "usdc_mint_settlement_signer_seconds_count", { signer: "pkcs11", outcome: "ok" })).toBe(3);
      expect(sampleValue(m, "usdc_mint_settlement_fee_bumps_total", eth)).toBe(0);
      // Bounded labels: only the configured chain, never a mint id or hash.
      const settlementSeries = m.filter((x) => x.name.startsWith("usdc_mint_settlement"));
      expect(new Set(settlementSeries.map((x) => x.labels.blockchain).filter((b) => b !== undefined))).toEqual(new Set(["ETHEREUM"]));
      expect(settlementSeries.some((x) => Object.values(x.labels).some((v) => v.startsWith("0x") || v.startsWith("mint_")))).toBe(false);

      // ListMints fills every mint's settlement from one batch lookup.
      const page = await s.call<object, ListMintsResponse>("listMints", { accountId: "metrics-alice", pageSize: 10, pageToken: "", status: 0 });
      expect(page.mints.map((x) => [x.mintId, x.settlement?.state])).toEqual(
        expect.arrayContaining([
          [first.mint?.mintId, SettlementState.SETTLEMENT_STATE_CONFIRMED],
          [second.mint?.mintId, SettlementState.SETTLEMENT_STATE_CONFIRMED],
          [third.mint?.mintId, SettlementState.SETTLEMENT_STATE_FAILED],
        ]),
      );
      expect(page.mints).toHaveLength(3);
      expect(page.mints.find((x) => x.mintId === first.mint?.mintId)?.settlement?.txHashes).toHaveLength(1);
    } finally {
      await node.testClient.setAutomine(true);
      await s.stop();
    }
  }, 60_000);

  it("a transaction stuck past the fee-bump timeout is replaced (same nonce, higher fees, stored first); exactly one is mined, CONFIRMED once", async () => {
    const { s, setup } = await serviceFor(storeOf, { feeBumpTimeout: "1s" });
    try {
      await node.testClient.setAutomine(false);
      const r = await mint(s, "bump-alice", "9", "bump-1");
      const mintId = r.mint?.mintId ?? "";
      await until(async () => ((await getMint(s, mintId))?.settlement?.txHashes.length ?? 0) >= 2, 20_000, () => "waiting for a replacement");
      await node.testClient.setAutomine(true);
      await node.testClient.mine({ blocks: 1 });
      await untilState(s, mintId, SettlementState.SETTLEMENT_STATE_CONFIRMED);
      const settled = (await getMint(s, mintId))?.settlement;
      const onChain = await mintsOnChain(node, setup);
      expect([...onChain.keys()]).toEqual([settled?.minedTxHash]);
      expect(settled?.txHashes).toContain(settled?.minedTxHash);
      const nonces = await Promise.all((settled?.txHashes ?? []).map(async (hash) => (await node.publicClient.getTransaction({ hash: hash as `0x${string}` }).catch(() => null))?.nonce));
      // The replaced ones are gone from the node; the mined one carries the settlement's nonce.
      expect(nonces.filter((n) => n !== undefined)).toEqual([Number(settled?.nonce)]);
      expect(await setup.chain.totalSupply()).toBe(9_000_000n);
      expect(await balance(s, "bump-alice")).toMatchObject({ balance: "9", pendingBalance: "0" });
      expect((await reconcileChain(s)).agree).toBe(true);
    } finally {
      await node.testClient.setAutomine(true);
      await s.stop();
    }
  }, 60_000);

  it("a reorg before the confirmation depth (evm_snapshot/evm_revert) rebroadcasts the same signed bytes; CONFIRMED once; totalSupply equals the ledger", async () => {
    const { s, setup } = await serviceFor(storeOf, { confirmations: 3 });
    try {
      const snapshot = await node.testClient.snapshot();
      const r = await mint(s, "reorg-alice", "5", "reorg-1");
      const mintId = r.mint?.mintId ?? "";
      await until(async () => ((await getMint(s, mintId))?.settlement?.blockNumber ?? 0) > 0, 20_000, () => "waiting for the mint to be mined");
      const before = (await getMint(s, mintId))?.settlement;
      expect(before?.state).toBe(SettlementState.SETTLEMENT_STATE_SUBMITTED);
      await node.testClient.revert({ id: snapshot });
      expect((await mintsOnChain(node, setup)).size).toBe(0);
      // The worker notices the transaction is gone and sends the same bytes again; automine mines them.
      await until(async () => (await mintsOnChain(node, setup)).size === 1, 20_000, () => "waiting for the rebroadcast");
      await node.testClient.mine({ blocks: 2 });
      await untilState(s, mintId, SettlementState.SETTLEMENT_STATE_CONFIRMED);
      const after = (await getMint(s, mintId))?.settlement;
      expect(after?.txHashes).toEqual(before?.txHashes);
      expect(after?.minedTxHash).toBe(before?.txHashes[0]);
      expect(after?.attempts).toBeGreaterThanOrEqual(2);
      expect(await setup.chain.totalSupply()).toBe(5_000_000n);
      expect(await balance(s, "reorg-alice")).toMatchObject({ balance: "5", pendingBalance: "0" });
      expect((await reconcileChain(s)).agree).toBe(true);
    } finally {
      await s.stop();
    }
  }, 60_000);

  it("after minting on-chain behind the service's back, ReconcileChain reports exactly that one", async () => {
    const { s, setup } = await serviceFor(storeOf);
    try {
      const r = await mint(s, "back-alice", "1", "back-1");
      await untilState(s, r.mint?.mintId ?? "", SettlementState.SETTLEMENT_STATE_CONFIRMED);
      expect((await reconcileChain(s)).agree).toBe(true);
      const clean = await mintctl(["--address", s.address, "chain", "reconcile", "ethereum"]);
      expect([clean.code, clean.out], clean.err).toEqual([0, expect.stringMatching(/agree\s+yes/)]);
      const account = node.deployer.account;
      await node.deployer.writeContract({ address: setup.token, abi: fiatTokenAbi, functionName: "configureMinter", args: [account.address, 10n ** 12n], chain: node.chain, account, gas: 200_000n });
      const hash = await node.deployer.writeContract({ address: setup.token, abi: fiatTokenAbi, functionName: "mint", args: [setup.treasury, 5_000_000n], chain: node.chain, account, gas: 200_000n });
      await node.publicClient.waitForTransactionReceipt({ hash, timeout: 10_000 });
      const report = await reconcileChain(s);
      expect(report.agree).toBe(false);
      expect(report.totalSupply).toBe("6");
      expect(report.confirmedSum).toBe("1");
      expect(report.differences).toHaveLength(1);
      expect(report.differences[0]).toMatchObject({ mintId: "", ledgerState: SettlementState.SETTLEMENT_STATE_UNSPECIFIED, txHash: hash });
      // mintctl exits 5 and names the transaction.
      const differs = await mintctl(["--address", s.address, "--json", "chain", "reconcile", "ETHEREUM"]);
      expect(differs.code).toBe(5);
      expect(JSON.parse(differs.out)).toMatchObject({ agree: false, totalSupply: "6", confirmedSum: "1", differences: [{ mintId: "", ledgerState: "UNSPECIFIED", txHash: hash }] });
    } finally {
      await s.stop();
    }
  }, 60_000);
});

describe("a chain outage (the node unreachable)", () => {
  it("settlement health is NOT_SERVING on its own name; the server stays SERVING; mints queue PENDING; reads and transfers go on; ReconcileChain is UNAVAILABLE", async () => {
    const { s } = await serviceFor(async () => "memory", { rpcUrl: `http://127.0.0.1:${await freePort()}` });
    const health = new HealthClient(s.address, grpc.credentials.createInsecure());
    const check = (service: string): Promise<HealthCheckResponse_ServingStatus> =>
      new Promise((resolve, reject) => health.check({ service }, (e, r) => (e ? reject(e) : resolve(r.status))));
    try {
      const r = await mint(s, "outage-alice", "2", "outage-1");
      expect(r.mint?.settlement?.state).toBe(SettlementState.SETTLEMENT_STATE_PENDING);
      await until(async () => (await check(settlementHealthName("ETHEREUM"))) === HealthCheckResponse_ServingStatus.NOT_SERVING, 10_000, () => "settlement health");
      expect(await check("")).toBe(HealthCheckResponse_ServingStatus.SERVING);
      expect(await check("usdc.mint.v1.MintService")).toBe(HealthCheckResponse_ServingStatus.SERVING);
      await s.call("mintUsdc", { accountId: "outage-alice", amount: "3", blockchain: Blockchain.BLOCKCHAIN_BASE, idempotencyKey: "outage-2" });
      await transfer(s, "outage-alice", "outage-bob", "3", "outage-t");
      expect(await balance(s, "outage-alice")).toEqual({ accountId: "outage-alice", balance: "0", pendingBalance: "2", frozen: false, freezeReason: "" });
      expect((await getMint(s, r.mint?.mintId ?? ""))?.settlement?.state).toBe(SettlementState.SETTLEMENT_STATE_PENDING);
      const e = await expectError(reconcileChain(s));
      expect([e.code, e.reason]).toEqual([Code.UNAVAILABLE, "CHAIN_UNAVAILABLE"]);
    } finally {
      health.close();
      await s.stop();
    }
  }, 30_000);
});

describe("health while idle (no mint queued): the sender still checks the node and the token", () => {
  const checker = (s: TestServer): { check(service: string): Promise<HealthCheckResponse_ServingStatus>; close(): void } => {
    const health = new HealthClient(s.address, grpc.credentials.createInsecure());
    return {
      check: (service) => new Promise((resolve, reject) => health.check({ service }, (e, r) => (e ? reject(e) : resolve(r.status)))),
      close: () => health.close(),
    };
  };

  it("a dead node: the chain's health NOT_SERVING and pass failures counted before any mint; the server SERVING", async () => {
    const { s } = await serviceFor(async () => "memory", { rpcUrl: `http://127.0.0.1:${await freePort()}`, env: { MINT_METRICS_LISTEN: "127.0.0.1:0" } });
    const h = checker(s);
    try {
      await until(async () => (await h.check(settlementHealthName("ETHEREUM"))) === HealthCheckResponse_ServingStatus.NOT_SERVING, 10_000, () => "settlement health");
      expect(sampleValue(await scrapeMetrics(s.app.metricsAddress as string), "usdc_mint_settlement_pass_failures_total", { blockchain: "ETHEREUM" })).toBeGreaterThan(0);
      expect(await h.check("")).toBe(HealthCheckResponse_ServingStatus.SERVING);
    } finally {
      h.close();
      await s.stop();
    }
  }, 30_000);

  it("a blacklisted treasury: NOT_SERVING before any mint (the preflight runs idle); SERVING again once it is lifted", async () => {
    const blacklist = (setup: TokenSetup, functionName: "blacklist" | "unBlacklist") =>
      node.deployer.writeContract({ address: setup.token, abi: fiatTokenAbi, functionName, args: [setup.treasury], chain: node.chain, account: node.deployer.account });
    const { s, setup } = await serviceFor(async () => "memory", { before: (setup) => blacklist(setup, "blacklist") });
    const h = checker(s);
    try {
      await until(async () => (await h.check(settlementHealthName("ETHEREUM"))) === HealthCheckResponse_ServingStatus.NOT_SERVING, 10_000, () => "settlement health");
      expect(await h.check("")).toBe(HealthCheckResponse_ServingStatus.SERVING);
      await blacklist(setup, "unBlacklist");
      await until(async () => (await h.check(settlementHealthName("ETHEREUM"))) === HealthCheckResponse_ServingStatus.SERVING, 20_000, () => "settlement health");
    } finally {
      h.close();
      await s.stop();
    }
  }, 60_000);
});

describe("ReconcileChain without settlement", () => {
  it("is FAILED_PRECONDITION SETTLEMENT_NOT_CONFIGURED; an unset chain is INVALID_ARGUMENT", async () => {
    const s = await startTestServer();
    try {
      const e = await expectError(s.call("reconcileChain", { blockchain: Blockchain.BLOCKCHAIN_BASE }));
      expect([e.code, e.reason]).toEqual([Code.FAILED_PRECONDITION, "SETTLEMENT_NOT_CONFIGURED"]);
      const bad = await expectError(s.call("reconcileChain", { blockchain: Blockchain.BLOCKCHAIN_UNSPECIFIED }));
      expect([bad.code, bad.reason]).toEqual([Code.INVALID_ARGUMENT, "INVALID_BLOCKCHAIN"]);
      const m = await s.call<object, MintUsdcResponse>("mintUsdc", { accountId: "plain", amount: "1", blockchain: Blockchain.BLOCKCHAIN_BASE, idempotencyKey: "plain-1" });
      expect(m.mint?.settlement?.state).toBe(SettlementState.SETTLEMENT_STATE_NOT_REQUIRED);
      expect(await s.call("getBalance", { accountId: "plain" })).toEqual({ accountId: "plain", balance: "1", pendingBalance: "0", frozen: false, freezeReason: "" });
    } finally {
      await s.stop();
    }
  });
});
