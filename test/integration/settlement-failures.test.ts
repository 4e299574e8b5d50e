/**
 * Settlement failures through the real service, a real EDR node and (for the
 * randomized run) the real SoftHSM2 token:
 * - a transaction dropped for good (its nonce taken by another transaction of
 *   the same key) marks the settlement FAILED and reverses the mint once;
 * - after a randomized run of mints, on-chain failures, restarts and reorgs
 *   on PostgreSQL, every mint ends CONFIRMED or FAILED as predicted, and
 *   ReconcileChain reports no difference.
 * The seed of the randomized run is printed with every assertion
 * (MINT_TEST_SEED=<n> replays one).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createWalletClient, http, type Hex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  Blockchain,
  MintStatus,
  SettlementState,
  type GetBalanceResponse,
  type GetMintResponse,
  type Mint,
  type MintUsdcResponse,
  type ReconcileChainResponse,
} from "../../gen/usdc/mint/v1/mint.js";
import type { Signer } from "../../src/domain/settlement/ports.js";
import { startEvmNode, type EvmNode } from "../support/evm/evm-node.js";
import { BLOCKCHAIN, deployForSigner, mintsOnChain, until, type TokenSetup } from "../support/evm/settlement-fixture.js";
import { createTestDatabase, type TestDatabase } from "../support/pg-test-database.js";
import { createDevToken, pkcs11SignerEnv, type DevToken } from "../support/softhsm.js";
import { startTestServer, type TestServer } from "../support/test-server.js";
import { prng } from "../support/prng.js";

let node: EvmNode;
let token: DevToken;
let dir: string;
const dbs: TestDatabase[] = [];

beforeAll(async () => {
  [node, token] = await Promise.all([startEvmNode(), createDevToken()]);
  dir = mkdtempSync(path.join(tmpdir(), "mint-settlement-failures-"));
}, 60_000);

afterAll(async () => {
  await node?.stop();
  for (const db of dbs) await db.drop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

/** Writes the chain file for `setup` and returns the env that settles ETHEREUM with it. */
function chainEnv(setup: TokenSetup, confirmations: number): Record<string, string> {
  const file = path.join(dir, `chains-${setup.token}.yaml`);
  writeFileSync(
    file,
    `blockchains:\n  ${BLOCKCHAIN}:\n    rpcUrl: ${node.url}\n    chainId: ${node.chainId}\n    tokenContract: "${setup.token}"\n    treasury: "${setup.treasury}"\n    confirmations: ${confirmations}\n    feeBumpTimeout: 1m\n    pollInterval: 20ms\n    requestTimeout: 2s\n`,
  );
  return { MINT_SETTLEMENT_FILE: file };
}

const mint = (s: TestServer, accountId: string, amount: string, key: string): Promise<MintUsdcResponse> =>
  s.call("mintUsdc", { accountId, amount, blockchain: Blockchain.BLOCKCHAIN_ETHEREUM, idempotencyKey: key });
const getMint = async (s: TestServer, mintId: string): Promise<Mint> => (await s.call<object, GetMintResponse>("getMint", { mintId })).mint as Mint;
const balance = (s: TestServer, accountId: string): Promise<GetBalanceResponse> => s.call("getBalance", { accountId });
const reconcileChain = (s: TestServer): Promise<ReconcileChainResponse> => s.call("reconcileChain", { blockchain: Blockchain.BLOCKCHAIN_ETHEREUM });
const micros = (usdc: string): bigint => {
  const [whole, frac = ""] = usdc.split(".");
  return BigInt(whole ?? "0") * 1_000_000n + BigInt(frac.padEnd(6, "0"));
};

async function untilState(s: TestServer, mintId: string, state: SettlementState, timeoutMs = 30_000): Promise<void> {
  let last: SettlementState | undefined;
  await until(
    async () => {
      last = (await getMint(s, mintId)).settlement?.state;
      return last === state;
    },
    timeoutMs,
    () => `waiting for ${mintId} to be ${SettlementState[state]}, last ${last === undefined ? "none" : SettlementState[last]}`,
  );
}

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
])("a transaction dropped for good (%s store)", (_name, storeOf) => {
  it("its nonce used by another transaction of the same key: FAILED, the mint reverses itself once, pending back, the chain agrees", async () => {
    // The dev-key signer: the test holds the same key, as an operator who used it elsewhere would.
    const key = generatePrivateKey();
    const keyFile = path.join(dir, `key-${key.slice(2, 10)}`);
    writeFileSync(keyFile, key + "\n", { mode: 0o600 });
    const account = privateKeyToAccount(key);
    const setup = await deployForSigner(node, { address: account.address } as Signer);
    const s = await startTestServer({ MINT_STORE: await storeOf(), MINT_SIGNER: "dev-key", MINT_DEV_KEY_FILE: keyFile, ...chainEnv(setup, 1) });
    try {
      const first = await mint(s, "drop-alice", "3", "drop-1");
      await untilState(s, first.mint?.mintId ?? "", SettlementState.SETTLEMENT_STATE_CONFIRMED);

      await node.testClient.setAutomine(false);
      const r = await mint(s, "drop-alice", "2", "drop-2");
      const mintId = r.mint?.mintId ?? "";
      await untilState(s, mintId, SettlementState.SETTLEMENT_STATE_SUBMITTED);
      const sent = (await getMint(s, mintId)).settlement;
      const ours = await node.publicClient.getTransaction({ hash: sent?.txHashes[0] as Hex });
      // Another transaction with the same nonce and higher fees replaces ours in the pool, and is mined.
      const wallet = createWalletClient({ chain: node.chain, transport: http(node.url), account });
      const other = await wallet.sendTransaction({
        to: account.address,
        value: 0n,
        nonce: ours.nonce,
        gas: 21_000n,
        maxFeePerGas: (ours.maxFeePerGas ?? 10n ** 9n) * 3n,
        maxPriorityFeePerGas: (ours.maxPriorityFeePerGas ?? 10n ** 9n) * 3n,
        chain: node.chain,
      });
      await node.testClient.setAutomine(true);
      await node.testClient.mine({ blocks: 1 });
      expect((await node.publicClient.getTransactionReceipt({ hash: other })).status).toBe("success");

      await untilState(s, mintId, SettlementState.SETTLEMENT_STATE_FAILED);
      const failed = await getMint(s, mintId);
      expect(failed.status).toBe(MintStatus.MINT_STATUS_REVERSED);
      expect(failed.settlement?.lastError).toMatch(/^dropped: nonce \d+ was used by another transaction/);
      expect(failed.reverseReason).toMatch(/^settlement failed: /);
      expect(await balance(s, "drop-alice")).toMatchObject({ balance: "3", pendingBalance: "0" });
      expect(await setup.chain.totalSupply()).toBe(3_000_000n);
      expect((await mintsOnChain(node, setup)).size).toBe(1);
      // The worker keeps polling: the reversal happened once (the balance did not drop twice).
      const report = await reconcileChain(s);
      expect(report).toMatchObject({ agree: true, differences: [] });
      expect(await balance(s, "drop-alice")).toMatchObject({ balance: "3", pendingBalance: "0" });
    } finally {
      await node.testClient.setAutomine(true);
      await s.stop();
    }
  }, 60_000);
});

describe("a randomized run (PostgreSQL): mints, on-chain failures, restarts and reorgs", () => {
  it("every mint ends CONFIRMED (COMPLETED) or FAILED (REVERSED) as predicted; ledger, chain and ReconcileChain agree", async () => {
    const seed = Number(process.env.MINT_TEST_SEED ?? Date.now() % 2 ** 31);
    const random = prng(seed);
    const ops: string[] = [];
    const why = (): string => `seed ${seed}; ops ${ops.join(" ")}`;

    // Allowance 1000 USDC on-chain: ordinary mints (1-5 USDC) always pass, a 2000 USDC mint always reverts.
    const setup = await deployForSigner(node, { address: token.address } as Signer, { allowance: 1_000_000_000n });
    const db = await createTestDatabase();
    dbs.push(db);
    const env = { MINT_STORE: db.url, ...pkcs11SignerEnv(token, dir), ...chainEnv(setup, 3) };
    let s = await startTestServer(env);
    const expected = new Map<string, "CONFIRMED" | "FAILED">();
    const accountOf = new Map<string, string>();
    let n = 0;

    const newMint = async (amount: string, outcome: "CONFIRMED" | "FAILED"): Promise<string> => {
      const account = `rnd-${Math.floor(random() * 3)}`;
      const r = await mint(s, account, amount, `rnd-${seed}-${n++}`);
      const mintId = r.mint?.mintId ?? "";
      expected.set(mintId, outcome);
      accountOf.set(mintId, account);
      return mintId;
    };
    const states = async (): Promise<Map<string, SettlementState | undefined>> => {
      const out = new Map<string, SettlementState | undefined>();
      for (const id of expected.keys()) out.set(id, (await getMint(s, id)).settlement?.state);
      return out;
    };
    const terminal = (x: SettlementState | undefined) => x === SettlementState.SETTLEMENT_STATE_CONFIRMED || x === SettlementState.SETTLEMENT_STATE_FAILED;
    /** Mines blocks until every settlement so far is CONFIRMED or FAILED (confirmation depth 3). */
    const settleAll = async (): Promise<void> => {
      await until(
        async () => {
          const now = await states();
          if ([...now.values()].every(terminal)) return true;
          await node.testClient.mine({ blocks: 1 });
          return false;
        },
        60_000,
        why,
      );
    };

    try {
      for (let step = 0; step < 14; step++) {
        const x = random();
        if (x < 0.55) {
          ops.push("mint");
          await newMint(`${1 + Math.floor(random() * 5)}.${String(Math.floor(random() * 1e6)).padStart(6, "0")}`, "CONFIRMED");
        } else if (x < 0.7) {
          ops.push("fail");
          await newMint("2000", "FAILED");
        } else if (x < 0.85) {
          ops.push("restart");
          await s.stop();
          s = await startTestServer(env);
        } else {
          // A reorg before the confirmation depth: settle what is in flight,
          // snapshot, mint and let it be mined, then drop that block.
          ops.push("reorg");
          await settleAll();
          const snapshot = await node.testClient.snapshot();
          const mintId = await newMint("1.5", "CONFIRMED");
          await until(async () => ((await getMint(s, mintId)).settlement?.blockNumber ?? 0) > 0, 20_000, why);
          await node.testClient.revert({ id: snapshot });
        }
      }
      // Always at least one of each outcome, whatever the draw.
      ops.push("mint", "fail");
      await newMint("4.000004", "CONFIRMED");
      await newMint("2000", "FAILED");
      await settleAll();

      let confirmedSum = 0n;
      const perAccount = new Map<string, bigint>();
      const minedHashes = new Set<string>();
      for (const [mintId, outcome] of expected) {
        const m = await getMint(s, mintId);
        if (outcome === "CONFIRMED") {
          expect([m.status, m.settlement?.state], `${mintId}: ${why()}`).toEqual([MintStatus.MINT_STATUS_COMPLETED, SettlementState.SETTLEMENT_STATE_CONFIRMED]);
          confirmedSum += micros(m.amount);
          perAccount.set(m.accountId, (perAccount.get(m.accountId) ?? 0n) + micros(m.amount));
          minedHashes.add(m.settlement?.minedTxHash ?? "");
        } else {
          expect([m.status, m.settlement?.state], `${mintId}: ${why()}`).toEqual([MintStatus.MINT_STATUS_REVERSED, SettlementState.SETTLEMENT_STATE_FAILED]);
        }
      }
      for (const account of new Set(accountOf.values())) {
        const b = await balance(s, account);
        expect([micros(b.balance), b.pendingBalance], `${account}: ${why()}`).toEqual([perAccount.get(account) ?? 0n, "0"]);
      }
      // Each confirmed mint is on-chain exactly once, in the transaction the ledger names; nothing else was minted.
      const onChain = await mintsOnChain(node, setup);
      expect(new Set(onChain.keys()), why()).toEqual(minedHashes);
      expect([...onChain.values()].every((v) => v.length === 1), why()).toBe(true);
      expect(await setup.chain.totalSupply(), why()).toBe(confirmedSum);
      const report = await reconcileChain(s);
      expect({ agree: report.agree, differences: report.differences, confirmedSum: micros(report.confirmedSum) }, why()).toEqual({ agree: true, differences: [], confirmedSum });
    } finally {
      await s.stop();
    }
  }, 240_000);
});
