/**
 * A chain double for races a real node cannot be made to produce on demand
 * (a lookup that misses while the transaction is mined, a node that cannot
 * read old state). It signs nothing for real: hashes are counters, and what
 * the "node" answers is set by the test.
 */
import type { Blockchain } from "../../src/domain/model.js";
import type { Address, BroadcastOutcome, ChainSettlement, Fees, Hex, NonceAt, SignedTx, TxLookup } from "../../src/settlement/ports.js";

let counter = 0;

export class ChainDouble implements ChainSettlement {
  readonly blockchain: Blockchain = "ETHEREUM";
  readonly chainId = 31337;
  readonly treasury: Address = `0x${"7e".repeat(20)}`;
  head = 100n;
  /** The block in which each nonce was consumed (index = nonce). */
  readonly consumedAt: bigint[] = [];
  /** When set, `nonceAt` answers "unavailable" with this reason (a node that keeps recent state only). */
  deepReadError: string | null = null;
  /** Every transaction signed, in order. */
  readonly signed: { kind: "mint" | "burn"; nonce: number; hash: Hex; raw: Hex }[] = [];
  /** Every raw transaction handed to the node, in order. */
  readonly sent: Hex[] = [];
  /** What preflight answers (null: all good). */
  preflightProblem: string | null = null;
  preflights = 0;
  /** What `suggestFees` answers. */
  fees: Fees = { maxFeePerGas: 2n * 10n ** 9n, maxPriorityFeePerGas: 10n ** 9n };
  /** What `broadcast` answers (an Error is thrown); the bytes count as sent either way. */
  broadcastAnswer: BroadcastOutcome | Error = { kind: "accepted" };
  private readonly answers = new Map<Hex, TxLookup[]>();

  /** The node answers `answers` to lookups of `hash`, one per lookup; the last one repeats. */
  answer(hash: Hex, ...answers: TxLookup[]): void {
    this.answers.set(hash, answers);
  }

  private sign(kind: "mint" | "burn", nonce: number, fees: Fees): SignedTx {
    const hash: Hex = `0x${(++counter).toString(16).padStart(64, "0")}`;
    const raw: Hex = `0x02${kind === "mint" ? "aa" : "bb"}${nonce.toString(16).padStart(8, "0")}${hash.slice(2)}`;
    this.signed.push({ kind, nonce, hash, raw });
    return { hash, raw, nonce, fees, gasLimit: 100_000n };
  }

  async signMint(_amountMicros: bigint, nonce: number, fees: Fees): Promise<SignedTx> {
    return this.sign("mint", nonce, fees);
  }

  async signBurn(_amountMicros: bigint, nonce: number, fees: Fees): Promise<SignedTx> {
    return this.sign("burn", nonce, fees);
  }

  async preflight(): Promise<string | null> {
    this.preflights++;
    return this.preflightProblem;
  }

  async broadcast(raw: Hex): Promise<BroadcastOutcome> {
    this.sent.push(raw);
    if (this.broadcastAnswer instanceof Error) throw this.broadcastAnswer;
    return this.broadcastAnswer;
  }

  async lookup(hash: Hex): Promise<TxLookup> {
    const queue = this.answers.get(hash);
    if (queue === undefined || queue.length === 0) return { kind: "unknown" };
    return (queue.length > 1 ? queue.shift() : queue[0]) as TxLookup;
  }

  async suggestFees(): Promise<Fees> {
    return this.fees;
  }

  private countAt(block: bigint): number {
    return this.consumedAt.filter((b) => b <= block).length;
  }

  async minedNonce(): Promise<number> {
    return this.countAt(this.head);
  }

  async nonceAt(blockNumber: bigint): Promise<NonceAt> {
    if (this.deepReadError !== null) return { kind: "unavailable", reason: this.deepReadError };
    return { kind: "count", count: this.countAt(blockNumber) };
  }

  async headBlock(): Promise<bigint> {
    return this.head;
  }

  async totalSupply(): Promise<bigint> {
    return 0n;
  }

  async treasuryBalance(): Promise<bigint> {
    return 0n;
  }

  async close(): Promise<void> {}
}
