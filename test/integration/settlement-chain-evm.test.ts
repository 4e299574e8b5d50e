/**
 * The EVM adapter's answers that the worker's decisions rest on, against a
 * real node: the signer's nonce at a block (the proof of a drop), a lookup
 * given a head older than the receipt, and a broadcast of bytes the node
 * already holds.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generatePrivateKey } from "viem/accounts";
import { DevKeySigner } from "../../src/settlement/signer-dev-key.js";
import { startEvmNode, type EvmNode } from "../support/evm/evm-node.js";
import { deployForSigner } from "../support/evm/settlement-fixture.js";

let node: EvmNode;

beforeAll(async () => {
  node = await startEvmNode();
}, 60_000);

afterAll(async () => {
  await node?.stop();
});

describe("EvmChainSettlement (real node)", () => {
  it("nonceAt counts the signer's transactions as of a block; a block the node cannot read gives no count", async () => {
    const signer = new DevKeySigner(generatePrivateKey());
    const { chain } = await deployForSigner(node, signer);
    const fees = await chain.suggestFees();
    const before = await chain.headBlock();
    const tx = await chain.signMint(1_000_000n, 0, fees);
    expect(await chain.broadcast(tx.raw)).toEqual({ kind: "accepted" });
    const mined = await chain.lookup(tx.hash);
    expect(mined.kind).toBe("mined");
    const at = mined.kind === "mined" ? mined.blockNumber : 0n;
    expect(await chain.nonceAt(before)).toEqual({ kind: "count", count: 0 });
    expect(await chain.nonceAt(at)).toEqual({ kind: "count", count: 1 });
    const beyond = await chain.nonceAt(at + 1_000n);
    expect(beyond.kind).toBe("unavailable");
  });

  it("lookup with a head older than the receipt reads the head again: the including block counts as one confirmation", async () => {
    const signer = new DevKeySigner(generatePrivateKey());
    const { chain } = await deployForSigner(node, signer);
    const stale = await chain.headBlock();
    const tx = await chain.signMint(2_000_000n, 0, await chain.suggestFees());
    await chain.broadcast(tx.raw);
    const l = await chain.lookup(tx.hash, stale);
    expect(l).toMatchObject({ kind: "mined", confirmations: 1, status: "success" });
  });

  it("bytes the node already holds count as accepted", async () => {
    const signer = new DevKeySigner(generatePrivateKey());
    const { chain } = await deployForSigner(node, signer);
    await node.testClient.setAutomine(false);
    try {
      const tx = await chain.signMint(3_000_000n, 0, await chain.suggestFees());
      expect(await chain.broadcast(tx.raw)).toEqual({ kind: "accepted" });
      expect(await chain.broadcast(tx.raw)).toEqual({ kind: "accepted" });
      expect(await chain.lookup(tx.hash)).toEqual({ kind: "pending" });
    } finally {
      await node.testClient.setAutomine(true);
    }
  });
});
