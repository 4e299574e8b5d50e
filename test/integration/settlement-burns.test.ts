/**
 * Redemptions settle too. Through the real service (127.0.0.1:0,
 * generated client), a real EDR node and token, the SoftHSM2 signer, on the
 * memory store and on PostgreSQL: a redemption on a settling chain burns from
 * the treasury through the settlement worker; a burn the chain refuses
 * re-credits the account once, journaled by the worker, however often the
 * worker restarts; ReconcileChain nets burns and names a burn that differs.
 *
 * The treasury is the signer's own address here (as in production): the
 * token's burn(amount) takes from the caller's balance.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Blockchain,
  SettlementState,
  type GetBalanceResponse,
  type GetMintResponse,
  type GetRedemptionResponse,
  type GetSupplyResponse,
  ListAuditEventsRequest,
  ListRedemptionsRequest,
  type ListAuditEventsResponse,
  type ListRedemptionsResponse,
  type MintUsdcResponse,
  type ReconcileChainResponse,
  type RedeemUsdcResponse,
} from "../../gen/usdc/mint/v1/mint.js";
import { generatePrivateKey } from "viem/accounts";
import { MemorySettlementOutbox } from "../../src/adapters/memory/settlement-outbox.js";
import type { Signer } from "../../src/domain/settlement/ports.js";
import { reconcileChain as compareChain } from "../../src/domain/settlement/reconcile.js";
import { DevKeySigner } from "../../src/adapters/evm/signer-dev-key.js";
import { expectJournalMatchesLedger } from "../support/audit-checks.js";
import { startEvmNode, type EvmNode } from "../support/evm/evm-node.js";
import { BLOCKCHAIN, countByState, deployForSigner, lockFor, newWorker, until, type TokenSetup } from "../support/evm/settlement-fixture.js";
import { createTestDatabase, type TestDatabase } from "../support/pg-test-database.js";
import { createDevToken, pkcs11SignerEnv, type DevToken } from "../support/softhsm.js";
import { mintctl } from "../support/stub-mint-server.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

let node: EvmNode;
let token: DevToken;
let dir: string;
const dbs: TestDatabase[] = [];
const signer = (): Signer => ({ address: token.address }) as Signer;

beforeAll(async () => {
  [node, token] = await Promise.all([startEvmNode(), createDevToken()]);
  dir = mkdtempSync(path.join(tmpdir(), "mint-settlement-burns-"));
}, 60_000);

afterAll(async () => {
  await node?.stop();
  for (const db of dbs) await db.drop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

interface Store {
  readonly url: string;
  /** The PostgreSQL database, to check the journal against the ledger; null for memory. */
  readonly db: TestDatabase | null;
}

/** The service settling ETHEREUM on `setup`'s token over `store` (BASE does not settle). */
async function startService(store: Store, setup: TokenSetup): Promise<TestServer> {
  const file = path.join(dir, `chains-${setup.token}.yaml`);
  writeFileSync(
    file,
    `blockchains:\n  ${BLOCKCHAIN}:\n    rpcUrl: ${node.url}\n    chainId: ${node.chainId}\n    tokenContract: "${setup.token}"\n    treasury: "${setup.treasury}"\n    confirmations: 1\n    feeBumpTimeout: 1m\n    pollInterval: 20ms\n    requestTimeout: 2s\n`,
  );
  return startTestServer({ MINT_STORE: store.url, MINT_SETTLEMENT_FILE: file, ...pkcs11SignerEnv(token, dir) });
}

const ETH = Blockchain.BLOCKCHAIN_ETHEREUM;
const mint = (s: TestServer, accountId: string, amount: string, key: string, blockchain = ETH): Promise<MintUsdcResponse> =>
  s.call("mintUsdc", { accountId, amount, blockchain, idempotencyKey: key });
const redeem = (s: TestServer, accountId: string, amount: string, key: string): Promise<RedeemUsdcResponse> =>
  s.call("redeemUsdc", { accountId, amount, blockchain: ETH, idempotencyKey: key });
const getRedemption = async (s: TestServer, redemptionId: string) => (await s.call<object, GetRedemptionResponse>("getRedemption", { redemptionId })).redemption;
const balance = (s: TestServer, accountId: string): Promise<GetBalanceResponse> => s.call("getBalance", { accountId });
const supply = async (s: TestServer): Promise<string | undefined> => (await s.call<object, GetSupplyResponse>("getSupply", {})).supply?.supply;
const reconcileChain = (s: TestServer): Promise<ReconcileChainResponse> => s.call("reconcileChain", { blockchain: ETH });

/** The worker's journal records (principal settlement-worker), oldest first. */
async function workerRecords(s: TestServer): Promise<{ action: string; request: Record<string, unknown>; result: Record<string, unknown> }[]> {
  const page = await s.call<ListAuditEventsRequest, ListAuditEventsResponse>("listAuditEvents", ListAuditEventsRequest.fromPartial({ principal: "settlement-worker", pageSize: 1000 }));
  return page.events.map((e) => ({ action: e.action, request: JSON.parse(e.requestJson) as Record<string, unknown>, result: JSON.parse(e.resultJson) as Record<string, unknown> }));
}

async function untilMintConfirmed(s: TestServer, mintId: string): Promise<void> {
  await until(async () => (await s.call<object, GetMintResponse>("getMint", { mintId })).mint?.settlement?.state === SettlementState.SETTLEMENT_STATE_CONFIRMED, 30_000, () => `waiting for mint ${mintId}`);
}

async function untilRedemption(s: TestServer, redemptionId: string, state: SettlementState): Promise<void> {
  let last: SettlementState | undefined;
  await until(
    async () => {
      last = (await getRedemption(s, redemptionId))?.settlement?.state;
      return last === state;
    },
    30_000,
    () => `waiting for ${redemptionId} to be ${SettlementState[state]}, last ${last === undefined ? "none" : SettlementState[last]}`,
  );
}

describe.each([
  ["memory", async (): Promise<Store> => ({ url: "memory", db: null })],
  [
    "postgres",
    async (): Promise<Store> => {
      const db = await createTestDatabase();
      dbs.push(db);
      return { url: db.url, db };
    },
  ],
])("redemptions settle as burns (%s store)", (name, storeOf) => {
  it("a redemption after a confirmed mint burns on-chain: totalSupply drops, CONFIRMED, journaled; a replay burns nothing more; ReconcileChain agrees", async () => {
    const store = await storeOf();
    const setup = await deployForSigner(node, signer(), { treasuryIsSigner: true });
    const s = await startService(store, setup);
    try {
      const m = await mint(s, "burn-alice", "10", "burn-m1");
      await untilMintConfirmed(s, m.mint?.mintId ?? "");
      expect(await setup.chain.totalSupply()).toBe(10_000_000n);

      const r = await redeem(s, "burn-alice", "4", "burn-r1");
      const id = r.redemption?.redemptionId ?? "";
      // Written with the debit: the response already carries the burn's settlement.
      expect([SettlementState.SETTLEMENT_STATE_PENDING, SettlementState.SETTLEMENT_STATE_SUBMITTED]).toContain(r.redemption?.settlement?.state);
      expect(await balance(s, "burn-alice")).toMatchObject({ balance: "6", pendingBalance: "0" });
      await untilRedemption(s, id, SettlementState.SETTLEMENT_STATE_CONFIRMED);

      const settled = (await getRedemption(s, id))?.settlement;
      expect(settled?.txHashes).toHaveLength(1);
      expect(settled?.minedTxHash).toBe(settled?.txHashes[0]);
      expect(settled?.confirmations).toBeGreaterThanOrEqual(1);
      expect(settled?.lastError).toBe("");
      expect(settled?.nonce).toBeDefined();
      // The chain burned exactly this, once, from the treasury.
      expect(await setup.chain.totalSupply()).toBe(6_000_000n);
      expect(await setup.chain.treasuryBalance()).toBe(6_000_000n);
      const burns = await setup.chain.treasuryBurns();
      expect(burns.map((b) => [b.hash, b.amountMicros])).toEqual([[settled?.minedTxHash, 4_000_000n]]);
      // The ledger: debited once, nothing more on CONFIRMED.
      expect(await balance(s, "burn-alice")).toMatchObject({ balance: "6", pendingBalance: "0" });
      expect(await supply(s)).toBe("6");
      const listed = await s.call<ListRedemptionsRequest, ListRedemptionsResponse>("listRedemptions", ListRedemptionsRequest.fromPartial({ accountId: "burn-alice" }));
      expect(listed.redemptions.map((x) => [x.redemptionId, x.settlement?.state])).toEqual([[id, SettlementState.SETTLEMENT_STATE_CONFIRMED]]);

      // A replay answers the same redemption with its settlement and signs nothing.
      const again = await redeem(s, "burn-alice", "4", "burn-r1");
      expect([again.replayed, again.redemption?.redemptionId, again.redemption?.settlement?.state]).toEqual([true, id, SettlementState.SETTLEMENT_STATE_CONFIRMED]);

      await until(async () => (await workerRecords(s)).some((x) => x.action === "SettleRedemption"), 10_000, () => "waiting for the journal");
      const journaled = (await workerRecords(s)).filter((x) => x.action === "SettleRedemption");
      expect(journaled).toHaveLength(1);
      expect(journaled[0]?.request).toMatchObject({ redemption_id: id, amount: "4000000", state: "CONFIRMED", tx_hash: settled?.minedTxHash });

      const report = await reconcileChain(s);
      expect(report).toMatchObject({ agree: true, differences: [], totalSupply: "6", treasuryBalance: "6", confirmedSum: "6" });
      expect(await setup.chain.totalSupply()).toBe(6_000_000n);
      if (store.db !== null) expect(await expectJournalMatchesLedger(store.db)).toBeGreaterThanOrEqual(3);
    } finally {
      await s.stop();
    }
  }, 90_000);

  it("a burn the chain refuses (the treasury holds less than the redemption) re-credits the account once, journaled, across worker restarts", async () => {
    const store = await storeOf();
    const setup = await deployForSigner(node, signer(), { treasuryIsSigner: true });
    let s = await startService(store, setup);
    try {
      // 2 USDC minted on ETHEREUM (in the treasury), 5 on BASE (no settlement): the ledger holds 7, the ETHEREUM treasury 2.
      const m = await mint(s, "refused-alice", "2", "refused-m1");
      await untilMintConfirmed(s, m.mint?.mintId ?? "");
      await mint(s, "refused-alice", "5", "refused-m2", Blockchain.BLOCKCHAIN_BASE);
      expect(await balance(s, "refused-alice")).toMatchObject({ balance: "7", pendingBalance: "0" });

      await node.testClient.setAutomine(false);
      const r = await redeem(s, "refused-alice", "5", "refused-r1");
      const id = r.redemption?.redemptionId ?? "";
      await untilRedemption(s, id, SettlementState.SETTLEMENT_STATE_SUBMITTED);
      expect(await balance(s, "refused-alice")).toMatchObject({ balance: "2", pendingBalance: "0" });
      expect(await supply(s)).toBe("2");
      const hash = (await getRedemption(s, id))?.settlement?.txHashes[0] as `0x${string}`;

      // The worker stops with the burn in flight; the chain mines it meanwhile, and it reverts.
      const runtime = s.app.settlement;
      if (runtime === undefined) throw new Error("settlement is configured");
      await runtime.stop();
      await node.testClient.setAutomine(true);
      await node.testClient.mine({ blocks: 1 });
      expect((await node.publicClient.getTransactionReceipt({ hash })).status).toBe("reverted");
      expect((await getRedemption(s, id))?.settlement?.state).toBe(SettlementState.SETTLEMENT_STATE_SUBMITTED);
      runtime.start();

      await untilRedemption(s, id, SettlementState.SETTLEMENT_STATE_FAILED);
      const failed = (await getRedemption(s, id))?.settlement;
      expect(failed?.lastError).toBe("the burn transaction reverted on-chain");
      expect(failed?.minedTxHash).toBe(hash);
      expect(await balance(s, "refused-alice")).toMatchObject({ balance: "7", pendingBalance: "0" });
      expect(await supply(s)).toBe("7");
      expect(await setup.chain.totalSupply()).toBe(2_000_000n);

      // Restart the worker again; a mint after it proves it made its passes. The re-credit is not repeated.
      await runtime.stop();
      runtime.start();
      const m3 = await mint(s, "refused-alice", "1", "refused-m3");
      await untilMintConfirmed(s, m3.mint?.mintId ?? "");
      expect(await balance(s, "refused-alice")).toMatchObject({ balance: "8", pendingBalance: "0" });
      expect(await supply(s)).toBe("8");

      // The key is kept: a retry answers the failed redemption (a new attempt takes a new key).
      const replay = await redeem(s, "refused-alice", "5", "refused-r1");
      expect([replay.replayed, replay.redemption?.redemptionId, replay.redemption?.settlement?.state]).toEqual([true, id, SettlementState.SETTLEMENT_STATE_FAILED]);

      await until(async () => (await workerRecords(s)).some((x) => x.action === "FailRedemptionSettlement"), 10_000, () => "waiting for the journal");
      const recredits = (await workerRecords(s)).filter((x) => x.action === "FailRedemptionSettlement");
      expect(recredits).toHaveLength(1);
      expect(recredits[0]?.result).toEqual({ account_id: "refused-alice", amount: "5000000", redemption_id: id, status: "RECREDITED" });
      expect(recredits[0]?.request).toMatchObject({ redemption_id: id, state: "FAILED", tx_hash: hash });

      // The chain agrees: 2 + 1 minted, the refused burn burned nothing.
      expect(await reconcileChain(s)).toMatchObject({ agree: true, differences: [], totalSupply: "3", treasuryBalance: "3", confirmedSum: "3" });

      if (store.db !== null) {
        // PostgreSQL: the whole service restarts on the same database; still one re-credit.
        await s.stop();
        s = await startService(store, setup);
        const m4 = await mint(s, "refused-alice", "1", "refused-m4");
        await untilMintConfirmed(s, m4.mint?.mintId ?? "");
        expect(await balance(s, "refused-alice")).toMatchObject({ balance: "9", pendingBalance: "0" });
        expect((await getRedemption(s, id))?.settlement?.state).toBe(SettlementState.SETTLEMENT_STATE_FAILED);
        expect((await workerRecords(s)).filter((x) => x.action === "FailRedemptionSettlement")).toHaveLength(1);
        const entries = await store.db.query<{ kind: string; amount: string }>("SELECT kind, amount::text AS amount FROM ledger_entries WHERE ref_id = $1 ORDER BY entry_id", [id]);
        expect(entries.rows).toEqual([
          { kind: "redemption", amount: "-5000000" },
          { kind: "redemption_reversal", amount: "5000000" },
        ]);
        await until(async () => (await store.db?.query("SELECT 1 FROM audit_journal WHERE seq IS NULL"))?.rowCount === 0, 10_000, () => "waiting for the sealer");
        await expectJournalMatchesLedger(store.db);
      }
    } finally {
      await node.testClient.setAutomine(true);
      await s.stop();
    }
  }, 120_000);

  // Last in each store's run: the revert leaves this service's worker a nonce gap, and nothing settles after it.
  it(`a CONFIRMED burn the chain no longer has (evm_revert) is named by ReconcileChain and mintctl (${name})`, async () => {
    const store = await storeOf();
    const setup = await deployForSigner(node, signer(), { treasuryIsSigner: true });
    const s = await startService(store, setup);
    try {
      const m = await mint(s, "gone-alice", "10", "gone-m1");
      await untilMintConfirmed(s, m.mint?.mintId ?? "");
      const snapshot = await node.testClient.snapshot();
      const r = await redeem(s, "gone-alice", "4", "gone-r1");
      const id = r.redemption?.redemptionId ?? "";
      await untilRedemption(s, id, SettlementState.SETTLEMENT_STATE_CONFIRMED);
      expect((await reconcileChain(s)).agree).toBe(true);
      const burned = (await getRedemption(s, id))?.settlement?.minedTxHash;

      await node.testClient.revert({ id: snapshot });
      expect(await setup.chain.totalSupply()).toBe(10_000_000n);
      const report = await reconcileChain(s);
      expect(report).toMatchObject({ agree: false, totalSupply: "10", treasuryBalance: "10", confirmedSum: "6" });
      expect(report.differences).toEqual([{ mintId: "", redemptionId: id, ledgerState: SettlementState.SETTLEMENT_STATE_CONFIRMED, chainState: "not on the chain", txHash: burned }]);
      const cli = await mintctl(["--address", s.address, "--json", "chain", "reconcile", "ETHEREUM"]);
      expect(cli.code).toBe(5);
      expect(JSON.parse(cli.out)).toMatchObject({ agree: false, confirmedSum: "6", differences: [{ mintId: "", redemptionId: id, ledgerState: "CONFIRMED", txHash: burned }] });
    } finally {
      await s.stop();
    }
  }, 90_000);
});

describe("the worker and chain reconciliation with burns (dev-key signer, memory outbox)", () => {
  it("mints and burns share one nonce sequence; a burn beyond the treasury FAILS; ReconcileChain nets burns and names a burn made behind the service's back", async () => {
    const key = new DevKeySigner(generatePrivateKey());
    const setup = await deployForSigner(node, key, { treasuryIsSigner: true });
    const outbox = new MemorySettlementOutbox();
    const worker = newWorker({ chain: setup.chain, outbox, lock: lockFor(new Map()) });
    const at = Date.now();
    await outbox.enqueue({ settlementId: "m1", blockchain: BLOCKCHAIN, amountMicros: 5_000_000n, createWallMs: at });
    await outbox.enqueue({ settlementId: "b1", kind: "burn", blockchain: BLOCKCHAIN, amountMicros: 2_000_000n, createWallMs: at });
    await outbox.enqueue({ settlementId: "b2", kind: "burn", blockchain: BLOCKCHAIN, amountMicros: 9_000_000n, createWallMs: at });
    worker.start();
    try {
      await until(() => outbox.list().every((x) => x.state === "CONFIRMED" || x.state === "FAILED"), 30_000, () => JSON.stringify(countByState(outbox.list())));
    } finally {
      await worker.stop();
    }
    const byId = new Map(outbox.list().map((x) => [x.settlementId, x]));
    expect(["m1", "b1", "b2"].map((id) => [id, byId.get(id)?.kind, byId.get(id)?.state])).toEqual([
      ["m1", "mint", "CONFIRMED"],
      ["b1", "burn", "CONFIRMED"],
      ["b2", "burn", "FAILED"],
    ]);
    // Commit order is nonce order, mints and burns alike.
    const first = byId.get("m1")?.txs[0]?.nonce ?? -1;
    expect(["b1", "b2"].map((id) => byId.get(id)?.txs[0]?.nonce)).toEqual([first + 1, first + 2]);
    expect(byId.get("b2")?.lastError).toBe("the burn transaction reverted on-chain");
    expect(await setup.chain.totalSupply()).toBe(3_000_000n);
    const clean = await compareChain(setup.chain, outbox.list());
    expect([clean.agree, clean.totalSupplyMicros, clean.treasuryBalanceMicros, clean.confirmedSumMicros, clean.differences]).toEqual([true, 3_000_000n, 3_000_000n, 3_000_000n, []]);

    // Burned with the treasury's key, outside the outbox.
    const fees = await setup.chain.suggestFees();
    const behind = await setup.chain.signBurn(1_000_000n, await setup.chain.minedNonce(), fees);
    expect(await setup.chain.broadcast(behind.raw)).toEqual({ kind: "accepted" });
    expect((await node.publicClient.waitForTransactionReceipt({ hash: behind.hash, timeout: 10_000 })).status).toBe("success");
    const report = await compareChain(setup.chain, outbox.list());
    expect([report.agree, report.totalSupplyMicros, report.confirmedSumMicros]).toEqual([false, 2_000_000n, 3_000_000n]);
    expect(report.differences).toEqual([
      { settlementId: "", kind: "burn", ledgerState: null, chainState: expect.stringMatching(/^burned 1000000 micro-USDC from the treasury in block \d+; no settlement in the ledger$/), txHash: behind.hash },
    ]);
    await key.close();
  }, 60_000);
});
