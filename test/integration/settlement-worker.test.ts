/**
 * The settlement worker against a real local EVM node (hardhat's EDR) and a
 * real PKCS#11 token (SoftHSM2): every settlement becomes exactly one mined
 * ERC-20 mint signed by the HSM key, through crashes and node outages.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EvmChainSettlement } from "../../src/adapters/evm/chain-evm.js";
import { fiatTokenAbi } from "../../src/adapters/evm/fiat-token-artifact.js";
import { MemorySettlementOutbox } from "../../src/adapters/memory/settlement-outbox.js";
import { Pkcs11Signer } from "../../src/adapters/pkcs11/signer-pkcs11.js";
import { createFaultHook } from "../../src/workers/settlement-sender.js";
import { PgRelay as TcpRelay } from "../support/pg-relay.js";
import { startEvmNode, type EvmNode } from "../support/evm/evm-node.js";
import { createDevToken } from "../support/softhsm.js";
import {
  BLOCKCHAIN,
  countByState,
  deployForSigner,
  enqueueMany,
  expectChainMatchesOutbox,
  lockFor,
  newOutbox,
  newWorker,
  until,
} from "../support/evm/settlement-fixture.js";

let node: EvmNode;
let signer: Pkcs11Signer;

beforeAll(async () => {
  const [n, token] = await Promise.all([startEvmNode(), createDevToken()]);
  node = n;
  signer = Pkcs11Signer.open(token.settings);
}, 60_000);

afterAll(async () => {
  await signer?.close();
  await node?.stop();
});

describe("settlement worker (real node, real PKCS#11 token)", () => {
  it("settles 50 mints: one mined mint each, signed by the HSM key; totalSupply() = treasury balance = confirmed sum", async () => {
    expect(signer.keyAttributes).toMatchObject({ extractable: false, sensitive: true, neverExtractable: true, local: true });
    const setup = await deployForSigner(node, signer);
    const { outbox, locks } = newOutbox();
    const expected = await enqueueMany(outbox, 50, "fifty");
    const worker = newWorker({ chain: setup.chain, outbox, lock: lockFor(locks) });
    worker.start();
    try {
      await until(() => outbox.list().every((s) => s.state === "CONFIRMED"), 30_000, () => JSON.stringify(countByState(outbox.list())));
    } finally {
      await worker.stop();
    }
    const list = outbox.list();
    expect(list).toHaveLength(50);
    // Commit order is nonce order: the worker signs in the outbox's order.
    const first = list[0]?.txs[0]?.nonce ?? -1;
    expect(list.map((s) => s.txs[0]?.nonce)).toEqual(list.map((_, i) => first + i));
    expect(list.every((s) => s.txs.length === 1 && s.attempts >= 1 && s.confirmations >= 1 && s.blockNumber !== null)).toBe(true);
    const { confirmedSum, problems } = await expectChainMatchesOutbox(node, setup, list, signer);
    expect(problems).toEqual([]);
    expect(confirmedSum).toBe(expected);
  });

  it.each(["after-sign", "after-broadcast"] as const)("a crash %s, then a restart: every settlement is mined exactly once", async (point) => {
    const setup = await deployForSigner(node, signer);
    const { outbox, locks } = newOutbox();
    const expected = await enqueueMany(outbox, 8, point);
    // The 3rd settlement crashes the worker at the fault point.
    const crashing = newWorker({ chain: setup.chain, outbox, lock: lockFor(locks), faultHook: createFaultHook({ enabled: true, point, count: 3, action: "throw" }) });
    crashing.start();
    await crashing.ended();
    const afterCrash = outbox.list();
    // Crashed at the 3rd: the first two are sent (confirmation waits for the next pass), the 3rd signed and stored.
    expect(countByState(afterCrash)).toEqual({ SUBMITTED: 3, PENDING: 5 });
    const third = afterCrash[2];
    const onNode = await setup.chain.lookup(third?.txs[0]?.hash ?? "0x");
    // after-sign: stored but never sent; after-broadcast: sent (automine has mined it).
    expect(onNode.kind).toBe(point === "after-sign" ? "unknown" : "mined");

    // The dead worker's lock went with it (a PostgreSQL session lock ends with its connection).
    locks.clear();
    const restarted = newWorker({ chain: setup.chain, outbox, lock: lockFor(locks) });
    restarted.start();
    try {
      await until(() => outbox.list().every((s) => s.state === "CONFIRMED"), 30_000, () => JSON.stringify(countByState(outbox.list())));
    } finally {
      await restarted.stop();
    }
    const list = outbox.list();
    // Resumed by looking hashes up: the crashed settlement kept its one signed transaction.
    expect(list[2]?.txs).toHaveLength(1);
    expect(list[2]?.txs[0]?.hash).toBe(third?.txs[0]?.hash);
    const { confirmedSum, problems } = await expectChainMatchesOutbox(node, setup, list, signer);
    expect(problems).toEqual([]);
    expect(confirmedSum).toBe(expected);
  });

  it("node unreachable for a while: the worker reports it, waits, and resumes; nothing lost or doubled", async () => {
    const relay = new TcpRelay(node.url);
    await relay.start();
    try {
      const setup = await deployForSigner(node, signer, { rpcUrl: `http://127.0.0.1:${relay.port}` });
      const { outbox, locks } = newOutbox();
      let expected = await enqueueMany(outbox, 5, "before");
      const worker = newWorker({ chain: setup.chain, outbox, lock: lockFor(locks) });
      worker.start();
      try {
        await until(() => outbox.list().every((s) => s.state === "CONFIRMED"), 30_000);
        await relay.stop();
        expected += await enqueueMany(outbox, 10, "during");
        worker.wake();
        await until(() => worker.status().consecutiveErrors >= 3, 10_000);
        expect(worker.status()).toMatchObject({ healthy: false, role: "sender" });
        expect(worker.status().lastError).toMatch(/unreachable/);
        expect(countByState(outbox.list()).CONFIRMED).toBe(5);
        await relay.start();
        await until(() => outbox.list().every((s) => s.state === "CONFIRMED"), 30_000, () => JSON.stringify(countByState(outbox.list())));
        await until(() => worker.status().healthy, 5_000);
      } finally {
        await worker.stop();
      }
      const { confirmedSum, problems } = await expectChainMatchesOutbox(node, setup, outbox.list(), signer);
      expect(problems).toEqual([]);
      expect(confirmedSum).toBe(expected);
    } finally {
      await relay.stop();
    }
  });

  it("a settlement cancelled while PENDING is never signed and uses no nonce", async () => {
    const setup = await deployForSigner(node, signer);
    const { outbox, locks } = newOutbox();
    await enqueueMany(outbox, 3, "cancel");
    expect(await outbox.cancel("cancel-2")).toBe("PENDING");
    const worker = newWorker({ chain: setup.chain, outbox, lock: lockFor(locks) });
    const report = await worker.tick();
    expect(report).toMatchObject({ role: "sender", signed: 2 });
    await until(async () => (await worker.tick()).confirmed === 0 && outbox.list().every((s) => s.state === "CONFIRMED"), 10_000);
    const [one, three] = outbox.list();
    expect([one?.settlementId, three?.settlementId]).toEqual(["cancel-1", "cancel-3"]);
    expect(three?.txs[0]?.nonce).toBe((one?.txs[0]?.nonce ?? -2) + 1);
    expect(await outbox.cancel("cancel-1")).toBe("CONFIRMED");
    const { problems } = await expectChainMatchesOutbox(node, setup, outbox.list(), signer);
    expect(problems).toEqual([]);
  });

  it("only one sender per chain: a second worker on the same lock table stays standby", async () => {
    const setup = await deployForSigner(node, signer);
    const { outbox, locks } = newOutbox();
    await enqueueMany(outbox, 2, "standby");
    const first = newWorker({ chain: setup.chain, outbox, lock: lockFor(locks) });
    const second = newWorker({ chain: setup.chain, outbox, lock: lockFor(locks) });
    expect((await first.tick()).role).toBe("sender");
    expect(await second.tick()).toEqual({ role: "standby", signed: 0, confirmed: 0, failed: 0, rebroadcast: 0 });
    expect(locks.size).toBe(1);
    expect(BLOCKCHAIN).toBe("ETHEREUM");
  });
});

describe("a mint the token refuses", () => {
  it("reverts on-chain (minter allowance exhausted) and is marked FAILED once, with the reason; nothing was minted for it", async () => {
    const setup = await deployForSigner(node, signer, { allowance: 5_000_000n });
    const failed: string[] = [];
    const outbox = new MemorySettlementOutbox({ confirmed: () => undefined, failed: (_tx, s, reason) => void failed.push(`${s.settlementId}: ${reason}`) });
    await outbox.enqueue({ settlementId: "fits", blockchain: BLOCKCHAIN, amountMicros: 3_000_000n, createWallMs: 0 });
    await outbox.enqueue({ settlementId: "too-much", blockchain: BLOCKCHAIN, amountMicros: 3_000_000n, createWallMs: 0 });
    const worker = newWorker({ chain: setup.chain, outbox, lock: lockFor(new Map()) });
    await until(async () => {
      await worker.tick();
      return outbox.list().every((s) => s.state === "CONFIRMED" || s.state === "FAILED");
    }, 10_000);
    await worker.tick();
    expect(outbox.list().map((s) => s.state)).toEqual(["CONFIRMED", "FAILED"]);
    expect(failed).toEqual(["too-much: the mint transaction reverted on-chain"]);
    expect(await setup.chain.totalSupply()).toBe(3_000_000n);
    const { problems } = await expectChainMatchesOutbox(node, setup, outbox.list(), signer);
    expect(problems).toEqual(["too-much is FAILED"]);
  });
});

describe("a chain configured so that every mint would fail: the worker signs nothing and says why", () => {
  it.each([
    ["the signer is not a minter", "not-minter", /not signing: ETHEREUM: the signer 0x[0-9a-fA-F]{40} is not a minter of token/],
    ["the treasury is blacklisted", "blacklisted", /not signing: ETHEREUM: the treasury 0x[0-9a-fA-F]{40} is blacklisted by the token/],
    ["the node is another chain", "chain-id", /not signing: ETHEREUM: the node's chain id is 31337, the settlement file says 1$/],
  ])("%s", async (_what, kind, message) => {
    const setup = await deployForSigner(node, signer);
    let chain = setup.chain;
    if (kind === "not-minter") {
      await node.deployer.writeContract({ address: setup.token, abi: fiatTokenAbi, functionName: "removeMinter", args: [signer.address], chain: node.chain, account: node.deployer.account });
    } else if (kind === "blacklisted") {
      await node.deployer.writeContract({ address: setup.token, abi: fiatTokenAbi, functionName: "blacklist", args: [setup.treasury], chain: node.chain, account: node.deployer.account });
    } else {
      chain = new EvmChainSettlement({ blockchain: BLOCKCHAIN, rpcUrl: node.url, chainId: 1, tokenAddress: setup.token, treasury: setup.treasury, gasLimit: 150_000n, requestTimeoutMs: 2_000 }, signer);
    }
    const { outbox, locks } = newOutbox();
    await enqueueMany(outbox, 2, kind);
    const worker = newWorker({ chain, outbox, lock: lockFor(locks) });
    await expect(worker.tick()).rejects.toThrow(message);
    expect(countByState(outbox.list())).toEqual({ PENDING: 2 });
    expect(await setup.chain.totalSupply()).toBe(0n);
  });
});

describe("a store write whose reply is lost", () => {
  it("recordSigned committed but threw: the worker derives the nonce again, sends the stored bytes, reuses no nonce", async () => {
    const setup = await deployForSigner(node, signer);
    let lose = 1;
    /** Commits, then loses the reply once (as a connection dropped after COMMIT). */
    class LossyOutbox extends MemorySettlementOutbox {
      override async recordSigned(...args: Parameters<MemorySettlementOutbox["recordSigned"]>): ReturnType<MemorySettlementOutbox["recordSigned"]> {
        const out = await super.recordSigned(...args);
        if (args[0] === "lossy-2" && lose-- > 0) throw new Error("connection terminated after COMMIT");
        return out;
      }
    }
    const outbox = new LossyOutbox();
    const expected = await enqueueMany(outbox, 4, "lossy");
    const errors: unknown[] = [];
    const worker = newWorker({ chain: setup.chain, outbox, lock: lockFor(new Map()), onError: (err) => errors.push(err) });
    worker.start();
    try {
      await until(() => outbox.list().every((s) => s.state === "CONFIRMED"), 30_000, () => JSON.stringify(countByState(outbox.list())));
    } finally {
      await worker.stop();
    }
    expect(errors.map((e) => (e as Error).message)).toEqual(["connection terminated after COMMIT"]);
    const nonces = outbox.list().map((s) => s.txs[0]?.nonce ?? -1);
    expect(new Set(nonces).size).toBe(4);
    expect(outbox.list().every((s) => s.txs.length === 1)).toBe(true);
    const { confirmedSum, problems } = await expectChainMatchesOutbox(node, setup, outbox.list(), signer);
    expect(problems).toEqual([]);
    expect(confirmedSum).toBe(expected);
  });
});
