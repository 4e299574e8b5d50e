/**
 * Issue 16: chain reconciliation. Compares one chain with the ledger: the
 * token's totalSupply() and the treasury's balance against the sum of the
 * CONFIRMED settlements, and looks every final settlement's transaction up
 * to find those whose on-chain state differs from the ledger's. Read-only.
 */
import type { Blockchain } from "../domain/model.js";
import type { ChainSettlement, Hex, Settlement, SettlementState } from "./ports.js";

export interface SettlementDifference {
  /** The mint; empty for an on-chain mint the ledger does not know. */
  readonly settlementId: string;
  /** null for an on-chain mint the ledger does not know. */
  readonly ledgerState: SettlementState | null;
  /** What the chain shows, in words. */
  readonly chainState: string;
  /** The transaction looked up; null when none. */
  readonly txHash: Hex | null;
}

export interface ChainReport {
  readonly blockchain: Blockchain;
  readonly agree: boolean;
  readonly totalSupplyMicros: bigint;
  readonly treasuryBalanceMicros: bigint;
  readonly confirmedSumMicros: bigint;
  readonly headBlock: bigint;
  readonly differences: readonly SettlementDifference[];
}

/** Lookups run a few at a time: the node is shared with the worker. */
const LOOKUP_BATCH = 16;

/**
 * `settlements`: every settlement of the chain in the ledger. PENDING and
 * SUBMITTED ones are in flight (the worker owns them) and are not compared;
 * CONFIRMED must be mined successfully; FAILED must not be mined successfully.
 * Throws ChainUnavailableError when the node cannot be reached.
 */
export async function reconcileChain(chain: ChainSettlement, settlements: readonly Settlement[]): Promise<ChainReport> {
  const [headBlock, totalSupplyMicros, treasuryBalanceMicros] = await Promise.all([chain.headBlock(), chain.totalSupply(), chain.treasuryBalance()]);
  let confirmedSumMicros = 0n;
  const final = settlements.filter((s) => s.state === "CONFIRMED" || s.state === "FAILED");
  for (const s of final) if (s.state === "CONFIRMED") confirmedSumMicros += s.amountMicros;
  const differences: SettlementDifference[] = [];
  for (let i = 0; i < final.length; i += LOOKUP_BATCH) {
    const found = await Promise.all(final.slice(i, i + LOOKUP_BATCH).map((s) => compare(chain, s, headBlock)));
    for (const d of found) if (d !== null) differences.push(d);
  }
  // Mints on-chain that no settlement of the ledger signed (minted behind the service's back).
  if (chain.treasuryMints !== undefined) {
    const ours = new Set<string>();
    for (const s of settlements) for (const t of s.txs) ours.add(t.hash.toLowerCase());
    for (const m of await chain.treasuryMints()) {
      if (ours.has(m.hash.toLowerCase())) continue;
      differences.push({ settlementId: "", ledgerState: null, chainState: `minted ${m.amountMicros} micro-USDC to the treasury in block ${m.blockNumber}; no settlement in the ledger`, txHash: m.hash });
    }
  }
  const agree = differences.length === 0 && totalSupplyMicros === confirmedSumMicros && treasuryBalanceMicros === confirmedSumMicros;
  return { blockchain: chain.blockchain, agree, totalSupplyMicros, treasuryBalanceMicros, confirmedSumMicros, headBlock, differences };
}

async function compare(chain: ChainSettlement, s: Settlement, head: bigint): Promise<SettlementDifference | null> {
  if (s.state === "CONFIRMED") {
    const hash = s.minedHash;
    if (hash === null) return { settlementId: s.settlementId, ledgerState: s.state, chainState: "no mined transaction recorded", txHash: null };
    const l = await chain.lookup(hash, head);
    if (l.kind === "mined" && l.status === "success") return null;
    const what = l.kind === "mined" ? `reverted in block ${l.blockNumber}` : l.kind === "pending" ? "in the pool, not mined" : "not on the chain";
    return { settlementId: s.settlementId, ledgerState: s.state, chainState: what, txHash: hash };
  }
  // FAILED: none of its transactions may have minted.
  for (const tx of s.txs) {
    const l = await chain.lookup(tx.hash, head);
    if (l.kind === "mined" && l.status === "success") {
      return { settlementId: s.settlementId, ledgerState: s.state, chainState: `minted in block ${l.blockNumber}`, txHash: tx.hash };
    }
  }
  return null;
}
