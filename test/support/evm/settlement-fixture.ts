/**
 * Shared setup for the settlement tests: a real node, a fresh FiatToken per
 * test, the PKCS#11 signer, and helpers that read the chain's own record of
 * what was minted (Transfer events from 0x0 to the treasury).
 */
import { parseAbiItem, recoverTransactionAddress, zeroAddress, type Hex } from "viem";
import { privateKeyToAddress, generatePrivateKey } from "viem/accounts";
import { systemClock } from "../../../src/domain/clock.js";
import type { Blockchain } from "../../../src/domain/model.js";
import { EvmChainSettlement } from "../../../src/adapters/evm/chain-evm.js";
import { InProcessSenderLock, MemorySettlementOutbox } from "../../../src/adapters/memory/settlement-outbox.js";
import type { Address, Settlement, SettlementOutbox, Signer } from "../../../src/domain/settlement/ports.js";
import { SettlementWorker, type SettlementWorkerOptions } from "../../../src/workers/settlement-sender.js";
import type { EvmNode } from "./evm-node.js";

export const BLOCKCHAIN: Blockchain = "ETHEREUM";

export interface TokenSetup {
  readonly token: Address;
  readonly treasury: Address;
  readonly chain: EvmChainSettlement;
}

/**
 * Deploys a token with `signer` as minter (allowance `allowance`) minting to a
 * fresh treasury address, or to the signer's own address with
 * `treasuryIsSigner` (as in production: burns take from the signer's balance).
 */
export async function deployForSigner(node: EvmNode, signer: Signer, opts: { rpcUrl?: string; allowance?: bigint; treasuryIsSigner?: boolean } = {}): Promise<TokenSetup> {
  const token = await node.deployToken(signer.address, opts.allowance ?? 10n ** 18n);
  const treasury = opts.treasuryIsSigner === true ? signer.address : privateKeyToAddress(generatePrivateKey());
  const chain = new EvmChainSettlement(
    { blockchain: BLOCKCHAIN, rpcUrl: opts.rpcUrl ?? node.url, chainId: node.chainId, tokenAddress: token, treasury, gasLimit: 150_000n, requestTimeoutMs: 2_000 },
    signer,
  );
  return { token, treasury, chain };
}

export function newWorker(overrides: Partial<SettlementWorkerOptions> & Pick<SettlementWorkerOptions, "chain" | "outbox" | "lock">): SettlementWorker {
  return new SettlementWorker({ clock: systemClock, confirmations: 1, pollIntervalMs: 20, maxBackoffMs: 200, rebroadcastAfterMs: 200, ...overrides });
}

export function newOutbox(): { outbox: MemorySettlementOutbox; locks: Map<Blockchain, object> } {
  return { outbox: new MemorySettlementOutbox(), locks: new Map() };
}

export function lockFor(locks: Map<Blockchain, object>): InProcessSenderLock {
  return new InProcessSenderLock(locks);
}

/** Enqueues `n` settlements with distinct amounts (1..n USDC plus i micro); returns their sum. */
export async function enqueueMany(outbox: SettlementOutbox, n: number, prefix: string): Promise<bigint> {
  let sum = 0n;
  for (let i = 1; i <= n; i++) {
    const amountMicros = BigInt(i) * 1_000_000n + BigInt(i);
    sum += amountMicros;
    await outbox.enqueue({ settlementId: `${prefix}-${i}`, blockchain: BLOCKCHAIN, amountMicros, createWallMs: Date.now() });
  }
  return sum;
}

/** Polls until `done` holds, or throws after `timeoutMs` with `describe()` in the message. */
export async function until(done: () => boolean | Promise<boolean>, timeoutMs: number, describe: () => string = () => ""): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms ${describe()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function countByState(list: readonly Settlement[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const s of list) out[s.state] = (out[s.state] ?? 0) + 1;
  return out;
}

const TRANSFER = parseAbiItem("event Transfer(address indexed from, address indexed to, uint256 value)");

/** Every mint to the treasury the chain recorded: Transfer(0x0 → treasury) events, by transaction hash. */
export async function mintsOnChain(node: EvmNode, setup: TokenSetup): Promise<Map<Hex, bigint[]>> {
  const logs = await node.publicClient.getLogs({ address: setup.token, event: TRANSFER, args: { from: zeroAddress, to: setup.treasury }, fromBlock: 0n, toBlock: "latest" });
  const byTx = new Map<Hex, bigint[]>();
  for (const log of logs) {
    const list = byTx.get(log.transactionHash) ?? [];
    list.push(log.args.value as bigint);
    byTx.set(log.transactionHash, list);
  }
  return byTx;
}

/**
 * The settlement invariant plus exactly-once: every CONFIRMED settlement has
 * exactly one mined Transfer(0x0 → treasury) of its amount, there are no
 * others, each was signed by `signer` (recovered from the stored bytes), and
 * totalSupply() = balanceOf(treasury) = the confirmed sum.
 */
export async function expectChainMatchesOutbox(node: EvmNode, setup: TokenSetup, settlements: readonly Settlement[], signer: Pick<Signer, "address">): Promise<{ confirmedSum: bigint; problems: string[] }> {
  const problems: string[] = [];
  const onChain = await mintsOnChain(node, setup);
  let confirmedSum = 0n;
  const seen = new Set<Hex>();
  for (const s of settlements) {
    if (s.state !== "CONFIRMED") {
      problems.push(`${s.settlementId} is ${s.state}`);
      continue;
    }
    confirmedSum += s.amountMicros;
    const mined = s.minedHash as Hex;
    seen.add(mined);
    const values = onChain.get(mined) ?? [];
    if (values.length !== 1 || values[0] !== s.amountMicros) problems.push(`${s.settlementId}: chain has ${JSON.stringify(values.map(String))} in ${mined}`);
    const mintsForThis = s.txs.filter((t) => onChain.has(t.hash)).length;
    if (mintsForThis !== 1) problems.push(`${s.settlementId}: ${mintsForThis} of its transactions were mined`);
    for (const t of s.txs) {
      const from = await recoverTransactionAddress({ serializedTransaction: t.raw as `0x02${string}` });
      if (from !== signer.address) problems.push(`${s.settlementId}: ${t.hash} was signed by ${from}`);
    }
  }
  for (const hash of onChain.keys()) if (!seen.has(hash)) problems.push(`unexpected mint on-chain in ${hash}`);
  const [supply, balance] = await Promise.all([setup.chain.totalSupply(), setup.chain.treasuryBalance()]);
  if (supply !== confirmedSum) problems.push(`totalSupply ${supply} ≠ confirmed sum ${confirmedSum}`);
  if (balance !== confirmedSum) problems.push(`treasury balance ${balance} ≠ confirmed sum ${confirmedSum}`);
  return { confirmedSum, problems };
}
