/**
 * ReconcileChain's scan of the token's Transfer logs on a real EDR
 * node starts at the chain's `fromBlock` and asks for at most
 * `logsBlockRange` blocks per eth_getLogs request (providers cap the range),
 * and still finds every mint to the treasury and every burn from it.
 */
import { privateKeyToAddress, generatePrivateKey } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EvmChainSettlement } from "../../src/adapters/evm/chain-evm.js";
import { fiatTokenAbi } from "../../src/adapters/evm/fiat-token-artifact.js";
import type { Address, Signer } from "../../src/domain/settlement/ports.js";
import { startEvmNode, type EvmNode } from "../support/evm/evm-node.js";
import { BLOCKCHAIN } from "../support/evm/settlement-fixture.js";

let node: EvmNode;
beforeAll(async () => {
  node = await startEvmNode();
}, 60_000);
afterAll(async () => {
  await node?.stop();
});

describe("the reconciliation log scan", () => {
  it("finds every treasury mint and burn in ranges of logsBlockRange blocks, from fromBlock on", async () => {
    // The deployer is the minter and mints to itself (treasury = minter, as in production), one block each.
    const minter = node.deployer.account.address;
    const token = await node.deployToken(minter, 10n ** 12n);
    const write = async (functionName: "mint" | "burn", args: readonly unknown[]): Promise<bigint> => {
      const hash = await node.deployer.writeContract({ address: token, abi: fiatTokenAbi, functionName, args, chain: node.chain, account: node.deployer.account, gas: 200_000n } as never);
      return (await node.publicClient.waitForTransactionReceipt({ hash, timeout: 10_000 })).blockNumber;
    };
    const blocks: bigint[] = [];
    for (let i = 1; i <= 5; i++) blocks.push(await write("mint", [minter, BigInt(i) * 1_000_000n]));
    blocks.push(await write("burn", [2_000_000n]));
    // Another address's mint is not the treasury's.
    await write("mint", [privateKeyToAddress(generatePrivateKey()), 7n]);

    const chainWith = (fromBlock: bigint, logsBlockRange: bigint) =>
      new EvmChainSettlement(
        { blockchain: BLOCKCHAIN, rpcUrl: node.url, chainId: node.chainId, tokenAddress: token, treasury: minter as Address, gasLimit: 150_000n, requestTimeoutMs: 2_000, fromBlock, logsBlockRange },
        { address: minter as Address } as Signer,
      );
    const amounts = (xs: { amountMicros: bigint }[]) => xs.map((x) => x.amountMicros);

    // Two blocks per request over the whole chain: all five mints and the burn.
    const all = chainWith(0n, 2n);
    expect(amounts(await all.treasuryMints())).toEqual([1_000_000n, 2_000_000n, 3_000_000n, 4_000_000n, 5_000_000n]);
    expect(amounts(await all.treasuryBurns())).toEqual([2_000_000n]);
    // From the third mint's block, one block per request: what came before is not scanned.
    const late = chainWith(blocks[2]!, 1n);
    expect(amounts(await late.treasuryMints())).toEqual([3_000_000n, 4_000_000n, 5_000_000n]);
    expect((await late.treasuryMints()).map((m) => m.blockNumber)).toEqual(blocks.slice(2, 5));
    // A start block past the head scans nothing.
    expect(await chainWith((await node.publicClient.getBlockNumber()) + 1n, 10n).treasuryMints()).toEqual([]);
  });
});
