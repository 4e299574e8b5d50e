/**
 * `ChainSettlement` for EVM chains, through viem over JSON-RPC (HTTP).
 *
 * Transactions are built and signed here and returned BEFORE anything is
 * sent: the unsigned EIP-1559 transaction is serialized, its keccak256 digest
 * signed by the `Signer` (an HSM in production), and the signature attached.
 * The gas limit is fixed (not estimated), so a mint that would revert is
 * still mined and reverts on-chain, where the worker sees it, rather than
 * failing estimation forever.
 */
import {
  createPublicClient,
  encodeFunctionData,
  http,
  keccak256,
  serializeTransaction,
  BaseError,
  HttpRequestError,
  TimeoutError,
  RpcRequestError,
  TransactionReceiptNotFoundError,
  TransactionNotFoundError,
  parseAbiItem,
  zeroAddress,
  type PublicClient,
  type TransactionSerializableEIP1559,
} from "viem";
import type { Blockchain } from "../domain/model.js";
import { fiatTokenAbi } from "./fiat-token-artifact.js";
import {
  ChainUnavailableError,
  type TreasuryMint,
  type Address,
  type BroadcastOutcome,
  type ChainSettlement,
  type Fees,
  type Hex,
  type NonceAt,
  type SignedTx,
  type Signer,
  type TxLookup,
} from "./ports.js";

export interface EvmChainSettings {
  readonly blockchain: Blockchain;
  readonly rpcUrl: string;
  readonly chainId: number;
  readonly tokenAddress: Address;
  /**
   * Receives every mint; totalSupply() equals its balance while the tokens
   * stay there. Burns (issue 16) take from the signer's own balance, so the
   * treasury must be the signer's address for redemptions to settle.
   */
  readonly treasury: Address;
  /** Gas limit of one mint transaction. */
  readonly gasLimit: bigint;
  /** Timeout of one JSON-RPC request. */
  readonly requestTimeoutMs: number;
  /** Where reconciliation's log scans start (the token's deployment block); 0 when absent. */
  readonly fromBlock?: bigint;
  /** Most blocks per eth_getLogs request; 10000 when absent. */
  readonly logsBlockRange?: bigint;
}

/** Node messages that mean "I already have these exact bytes". */
const ALREADY_KNOWN = /already known|known transaction|already imported|already exists/i;

function isTransportError(err: unknown): boolean {
  if (!(err instanceof BaseError)) return err instanceof TypeError; // fetch's "fetch failed"
  return err.walk((e) => e instanceof HttpRequestError || e instanceof TimeoutError) !== null;
}

function message(err: unknown): string {
  if (err instanceof BaseError) return err.details !== "" ? err.details : err.shortMessage;
  return err instanceof Error ? err.message : String(err);
}

export class EvmChainSettlement implements ChainSettlement {
  readonly blockchain: Blockchain;
  readonly chainId: number;
  readonly treasury: Address;
  private readonly client: PublicClient;

  constructor(
    private readonly settings: EvmChainSettings,
    private readonly signer: Signer,
  ) {
    this.blockchain = settings.blockchain;
    this.chainId = settings.chainId;
    this.treasury = settings.treasury;
    // No retries inside viem: the worker owns retrying, with its own backoff.
    this.client = createPublicClient({ transport: http(settings.rpcUrl, { timeout: settings.requestTimeoutMs, retryCount: 0 }) });
  }

  /** Runs one RPC exchange; a transport failure becomes ChainUnavailableError, anything else propagates. */
  private async rpc<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (isTransportError(err)) throw new ChainUnavailableError(`${this.blockchain} node unreachable (${what}): ${message(err)}`);
      throw err;
    }
  }

  async signMint(amountMicros: bigint, nonce: number, fees: Fees): Promise<SignedTx> {
    if (amountMicros <= 0n) throw new Error("signMint: the amount must be positive");
    return this.sign(encodeFunctionData({ abi: fiatTokenAbi, functionName: "mint", args: [this.treasury, amountMicros] }), nonce, fees);
  }

  async signBurn(amountMicros: bigint, nonce: number, fees: Fees): Promise<SignedTx> {
    if (amountMicros <= 0n) throw new Error("signBurn: the amount must be positive");
    return this.sign(encodeFunctionData({ abi: fiatTokenAbi, functionName: "burn", args: [amountMicros] }), nonce, fees);
  }

  /** Signs a call of the token with `data`; returns the bytes unsent. */
  private async sign(data: Hex, nonce: number, fees: Fees): Promise<SignedTx> {
    const tx: TransactionSerializableEIP1559 = {
      type: "eip1559",
      chainId: this.chainId,
      nonce,
      to: this.settings.tokenAddress,
      value: 0n,
      data,
      gas: this.settings.gasLimit,
      maxFeePerGas: fees.maxFeePerGas,
      maxPriorityFeePerGas: fees.maxPriorityFeePerGas,
    };
    const digest = keccak256(serializeTransaction(tx));
    const sig = await this.signer.signDigest(digest);
    const raw = serializeTransaction(tx, { r: sig.r, s: sig.s, yParity: sig.yParity });
    return { hash: keccak256(raw), raw, nonce, fees, gasLimit: this.settings.gasLimit };
  }

  async preflight(): Promise<string | null> {
    const token = { address: this.settings.tokenAddress, abi: fiatTokenAbi } as const;
    const [chainId, code] = await this.rpc("preflight", () => Promise.all([this.client.getChainId(), this.client.getCode({ address: this.settings.tokenAddress })]));
    if (chainId !== this.chainId) return `${this.blockchain}: the node's chain id is ${chainId}, the settlement file says ${this.chainId}`;
    if (code === undefined || code === "0x") return `${this.blockchain}: no contract at token address ${this.settings.tokenAddress}`;
    const [isMinter, signerBlocked, treasuryBlocked] = await this.rpc("preflight", () =>
      Promise.all([
        this.client.readContract({ ...token, functionName: "isMinter", args: [this.signer.address] }),
        this.client.readContract({ ...token, functionName: "isBlacklisted", args: [this.signer.address] }),
        this.client.readContract({ ...token, functionName: "isBlacklisted", args: [this.treasury] }),
      ]),
    );
    if (!isMinter) return `${this.blockchain}: the signer ${this.signer.address} is not a minter of token ${this.settings.tokenAddress}`;
    if (signerBlocked) return `${this.blockchain}: the signer ${this.signer.address} is blacklisted by the token`;
    if (treasuryBlocked) return `${this.blockchain}: the treasury ${this.treasury} is blacklisted by the token`;
    return null;
  }

  async broadcast(raw: Hex): Promise<BroadcastOutcome> {
    try {
      await this.rpc("eth_sendRawTransaction", () => this.client.request({ method: "eth_sendRawTransaction", params: [raw] }));
      return { kind: "accepted" };
    } catch (err) {
      if (err instanceof ChainUnavailableError) throw err;
      const reason = message(err);
      if (ALREADY_KNOWN.test(reason)) return { kind: "accepted" };
      if (err instanceof RpcRequestError || err instanceof BaseError) return { kind: "rejected", reason };
      throw err;
    }
  }

  async lookup(hash: Hex, headBlock?: bigint): Promise<TxLookup> {
    const receipt = await this.rpc("eth_getTransactionReceipt", () =>
      this.client.getTransactionReceipt({ hash }).catch((err: unknown) => {
        if (err instanceof TransactionReceiptNotFoundError) return null;
        throw err;
      }),
    );
    if (receipt === null) {
      const tx = await this.rpc("eth_getTransactionByHash", () =>
        this.client.getTransaction({ hash }).catch((err: unknown) => {
          if (err instanceof TransactionNotFoundError) return null;
          throw err;
        }),
      );
      return tx === null ? { kind: "unknown" } : { kind: "pending" };
    }
    // A head read before the receipt may be older than the receipt's block: read it again then.
    const head = headBlock !== undefined && headBlock >= receipt.blockNumber ? headBlock : await this.headBlock();
    const confirmations = head >= receipt.blockNumber ? Number(head - receipt.blockNumber + 1n) : 0;
    return { kind: "mined", blockNumber: receipt.blockNumber, blockHash: receipt.blockHash, confirmations, status: receipt.status };
  }

  async suggestFees(): Promise<Fees> {
    const [block, tip] = await this.rpc("fees", () =>
      Promise.all([this.client.getBlock({ blockTag: "latest" }), this.client.request({ method: "eth_maxPriorityFeePerGas" })]),
    );
    const maxPriorityFeePerGas = BigInt(tip);
    // Twice the base fee: the base fee rises at most 12.5% per full block, so
    // the transaction stays includable through about six full blocks in a row.
    return { maxPriorityFeePerGas, maxFeePerGas: (block.baseFeePerGas ?? 0n) * 2n + maxPriorityFeePerGas };
  }

  async minedNonce(): Promise<number> {
    return this.rpc("eth_getTransactionCount", () => this.client.getTransactionCount({ address: this.signer.address, blockTag: "latest" }));
  }

  async nonceAt(blockNumber: bigint): Promise<NonceAt> {
    try {
      return { kind: "count", count: await this.rpc("eth_getTransactionCount", () => this.client.getTransactionCount({ address: this.signer.address, blockNumber })) };
    } catch (err) {
      if (err instanceof ChainUnavailableError) throw err;
      // The node answered but cannot read that block's state ("missing trie
      // node", "header not found", …): no proof either way.
      if (err instanceof BaseError) return { kind: "unavailable", reason: message(err) };
      throw err;
    }
  }

  async headBlock(): Promise<bigint> {
    return this.rpc("eth_blockNumber", () => this.client.getBlockNumber({ cacheTime: 0 }));
  }

  async totalSupply(): Promise<bigint> {
    return this.rpc("totalSupply", () => this.client.readContract({ address: this.settings.tokenAddress, abi: fiatTokenAbi, functionName: "totalSupply" }));
  }

  async treasuryBalance(): Promise<bigint> {
    return this.rpc("balanceOf", () =>
      this.client.readContract({ address: this.settings.tokenAddress, abi: fiatTokenAbi, functionName: "balanceOf", args: [this.treasury] }),
    );
  }

  /**
   * Issue 16: every mint to the treasury the chain recorded (Transfer from
   * 0x0 to the treasury), from `fromBlock` (the chain's configured start
   * block by default) to the head. Reconciliation uses it to find mints the
   * ledger knows nothing about.
   */
  treasuryMints(fromBlock = this.settings.fromBlock ?? 0n): Promise<TreasuryMint[]> {
    return this.transferLogs({ from: zeroAddress, to: this.treasury }, fromBlock);
  }

  /**
   * Issue 16: every burn from the treasury the chain recorded (Transfer from
   * the treasury to 0x0), for reconciliation to find burns the ledger did not sign.
   */
  treasuryBurns(fromBlock = this.settings.fromBlock ?? 0n): Promise<TreasuryMint[]> {
    return this.transferLogs({ from: this.treasury, to: zeroAddress }, fromBlock);
  }

  /** The token's Transfer logs matching `args` from `fromBlock` to the head, in requests of at most `logsBlockRange` blocks. */
  private async transferLogs(args: { from: Address; to: Address }, fromBlock: bigint): Promise<TreasuryMint[]> {
    const range = this.settings.logsBlockRange ?? 10_000n;
    const head = await this.headBlock();
    const out: TreasuryMint[] = [];
    for (let start = fromBlock; start <= head; start += range) {
      const end = start + range - 1n < head ? start + range - 1n : head;
      const logs = await this.rpc("eth_getLogs", () => this.client.getLogs({ address: this.settings.tokenAddress, event: TRANSFER_EVENT, args, fromBlock: start, toBlock: end }));
      for (const l of logs) out.push({ hash: l.transactionHash as Hex, amountMicros: l.args.value as bigint, blockNumber: l.blockNumber as bigint });
    }
    return out;
  }

  async close(): Promise<void> {}
}

const TRANSFER_EVENT = parseAbiItem("event Transfer(address indexed from, address indexed to, uint256 value)");
