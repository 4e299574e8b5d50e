/**
 * The in-process outbox, for the memory store and for tests. Each method runs
 * to completion without awaiting, so every step (state change plus its
 * ledger effect) is atomic with respect to every other call. PENDING and
 * in-flight settlements are indexed per chain, so the worker's queries never
 * scan settled history.
 */
import type { Blockchain } from "../../domain/model.js";
import {
  MAX_GET_MANY,
  type MinedAt,
  type NewSettlement,
  type RecordSignedOutcome,
  type Settlement,
  type SettlementBacklog,
  type SettlementEffects,
  type SettlementOutbox,
  type SettlementState,
  type SettlementTx,
  type SenderLock,
} from "../../domain/settlement/ports.js";

type Mined = MinedAt;

export class MemorySettlementOutbox implements SettlementOutbox {
  private readonly all = new Map<string, Settlement>();
  /** Per chain, insertion order = commit order. */
  private readonly pending = new Map<Blockchain, Map<string, Settlement>>();
  private readonly submitted = new Map<Blockchain, Map<string, Settlement>>();
  private readonly highest = new Map<Blockchain, number>();
  /** Why each chain's PENDING settlements wait ("" or absent: they do not). */
  private readonly waits = new Map<Blockchain, string>();
  private seq = 0;

  constructor(
    private readonly effects?: SettlementEffects,
    /** Told of every change of state after PENDING (the ledger's event feed). */
    private readonly observe?: (s: Settlement) => void,
  ) {}

  private index(map: Map<Blockchain, Map<string, Settlement>>, chain: Blockchain): Map<string, Settlement> {
    let m = map.get(chain);
    if (m === undefined) {
      m = new Map();
      map.set(chain, m);
    }
    return m;
  }

  private put(s: Settlement): Settlement {
    const before = this.all.get(s.settlementId);
    this.all.set(s.settlementId, s);
    if (before !== undefined && before.state !== s.state) this.observe?.(s);
    const p = this.index(this.pending, s.blockchain);
    const f = this.index(this.submitted, s.blockchain);
    p.delete(s.settlementId);
    f.delete(s.settlementId);
    if (s.state === "PENDING") p.set(s.settlementId, s);
    if (s.state === "SUBMITTED") f.set(s.settlementId, s);
    return s;
  }

  async enqueue(n: NewSettlement): Promise<void> {
    if (this.all.has(n.settlementId)) return;
    if (n.amountMicros <= 0n) throw new Error("enqueue: the amount must be positive");
    this.put({
      settlementId: n.settlementId,
      kind: n.kind ?? "mint",
      blockchain: n.blockchain,
      amountMicros: n.amountMicros,
      seq: ++this.seq,
      state: "PENDING",
      txs: [],
      minedHash: null,
      blockNumber: null,
      confirmations: 0,
      attempts: 0,
      lastError: "",
      waitReason: "",
      costWei: null,
      createWallMs: n.createWallMs,
      updateWallMs: n.createWallMs,
    });
  }

  async nextPending(blockchain: Blockchain, limit: number): Promise<Settlement[]> {
    const out: Settlement[] = [];
    for (const s of this.index(this.pending, blockchain).values()) {
      if (out.length >= limit) break;
      out.push(s);
    }
    return out;
  }

  async inFlight(blockchain: Blockchain): Promise<Settlement[]> {
    const nonceOf = (s: Settlement): number => s.txs[0]?.nonce ?? 0;
    return [...this.index(this.submitted, blockchain).values()].sort((a, b) => nonceOf(a) - nonceOf(b));
  }

  async highestNonce(blockchain: Blockchain): Promise<number> {
    return this.highest.get(blockchain) ?? -1;
  }

  async recordSigned(settlementId: string, tx: SettlementTx, wallMs: number): Promise<RecordSignedOutcome> {
    const s = this.all.get(settlementId);
    if (s === undefined || s.state !== "PENDING") return { ok: false, code: "SETTLEMENT_NOT_PENDING", state: s?.state ?? "MISSING" };
    if (tx.nonce <= (this.highest.get(s.blockchain) ?? -1)) throw new Error(`recordSigned: nonce ${tx.nonce} is already used on ${s.blockchain}`);
    this.highest.set(s.blockchain, tx.nonce);
    return { ok: true, settlement: this.put({ ...s, state: "SUBMITTED", txs: [...s.txs, tx], updateWallMs: wallMs }) };
  }

  async recordReplacement(settlementId: string, tx: SettlementTx, wallMs: number): Promise<boolean> {
    const s = this.all.get(settlementId);
    if (s === undefined || s.state !== "SUBMITTED") return false;
    if (tx.nonce !== s.txs[0]?.nonce) throw new Error(`recordReplacement: nonce ${tx.nonce} is not the settlement's nonce`);
    this.put({ ...s, txs: [...s.txs, tx], updateWallMs: wallMs });
    return true;
  }

  async recordAttempt(settlementId: string, error: string, wallMs: number): Promise<void> {
    const s = this.all.get(settlementId);
    if (s === undefined || s.state !== "SUBMITTED") return;
    this.put({ ...s, attempts: s.attempts + 1, lastError: error, updateWallMs: wallMs });
  }

  async recordWaiting(settlementId: string, reason: string, wallMs: number): Promise<void> {
    const s = this.all.get(settlementId);
    if (s === undefined || s.state !== "SUBMITTED") return;
    this.put({ ...s, lastError: reason, updateWallMs: wallMs });
  }

  async recordProgress(settlementId: string, mined: Mined | null, wallMs: number): Promise<void> {
    const s = this.all.get(settlementId);
    if (s === undefined || s.state !== "SUBMITTED") return;
    this.put({ ...s, minedHash: mined?.hash ?? null, blockNumber: mined?.blockNumber ?? null, confirmations: mined?.confirmations ?? 0, updateWallMs: wallMs });
  }

  async markConfirmed(settlementId: string, mined: Mined, wallMs: number): Promise<boolean> {
    const s = this.all.get(settlementId);
    if (s === undefined || s.state !== "SUBMITTED") return false;
    const done = this.put({
      ...s,
      state: "CONFIRMED",
      minedHash: mined.hash,
      blockNumber: mined.blockNumber,
      confirmations: mined.confirmations,
      lastError: "",
      costWei: mined.costWei ?? null,
      updateWallMs: wallMs,
    });
    await this.effects?.confirmed(undefined, done);
    return true;
  }

  async markFailed(settlementId: string, mined: Mined | null, reason: string, wallMs: number): Promise<boolean> {
    const s = this.all.get(settlementId);
    if (s === undefined || s.state !== "SUBMITTED") return false;
    const done = this.put({
      ...s,
      state: "FAILED",
      minedHash: mined?.hash ?? null,
      blockNumber: mined?.blockNumber ?? null,
      confirmations: mined?.confirmations ?? 0,
      lastError: reason,
      costWei: mined?.costWei ?? null,
      updateWallMs: wallMs,
    });
    await this.effects?.failed(undefined, done, reason);
    return true;
  }

  async cancel(settlementId: string): Promise<SettlementState | "MISSING"> {
    const s = this.all.get(settlementId);
    if (s === undefined) return "MISSING";
    if (s.state !== "PENDING") return s.state;
    this.all.delete(settlementId);
    this.index(this.pending, s.blockchain).delete(settlementId);
    return "PENDING";
  }

  async setWaitReason(blockchain: Blockchain, reason: string): Promise<void> {
    this.waits.set(blockchain, reason);
  }

  /** A settlement as read: a PENDING one carries its chain's wait reason. */
  private view(s: Settlement): Settlement {
    if (s.state !== "PENDING") return s;
    const waitReason = this.waits.get(s.blockchain) ?? "";
    return waitReason === "" ? s : { ...s, waitReason };
  }

  async get(settlementId: string): Promise<Settlement | null> {
    const s = this.all.get(settlementId);
    return s === undefined ? null : this.view(s);
  }

  async getMany(settlementIds: readonly string[]): Promise<Map<string, Settlement>> {
    if (settlementIds.length > MAX_GET_MANY) throw new Error(`getMany: at most ${MAX_GET_MANY} ids, got ${settlementIds.length}`);
    const out = new Map<string, Settlement>();
    for (const id of settlementIds) {
      const s = this.all.get(id);
      if (s !== undefined) out.set(id, this.view(s));
    }
    return out;
  }

  async backlog(): Promise<Map<Blockchain, SettlementBacklog>> {
    const out = new Map<Blockchain, SettlementBacklog>();
    for (const chain of new Set([...this.pending.keys(), ...this.submitted.keys()])) {
      const p = this.index(this.pending, chain);
      const f = this.index(this.submitted, chain);
      if (p.size + f.size === 0) continue;
      // PENDING is in commit order, so its first entry is its oldest; SUBMITTED
      // holds at most the worker's in-flight bound (64 by default).
      let oldest = Infinity;
      for (const s of p.values()) {
        oldest = s.createWallMs;
        break;
      }
      for (const s of f.values()) oldest = Math.min(oldest, s.createWallMs);
      out.set(chain, { pending: p.size, submitted: f.size, oldestCreateWallMs: oldest });
    }
    return out;
  }

  /** Every settlement, in commit order (tests and reconciliation). */
  list(blockchain?: Blockchain): Settlement[] {
    return [...this.all.values()]
      .filter((s) => blockchain === undefined || s.blockchain === blockchain)
      .sort((a, b) => a.seq - b.seq)
      .map((s) => this.view(s));
  }

  async close(): Promise<void> {}
}

/**
 * One sender per chain inside one process (the memory store runs a single
 * replica). Every worker gets its own instance over a shared table.
 */
export class InProcessSenderLock implements SenderLock {
  private readonly owner = {};
  constructor(private readonly table: Map<Blockchain, object>) {}

  async tryAcquire(blockchain: Blockchain): Promise<boolean> {
    const holder = this.table.get(blockchain);
    if (holder !== undefined && holder !== this.owner) return false;
    this.table.set(blockchain, this.owner);
    return true;
  }

  async held(blockchain: Blockchain): Promise<boolean> {
    return this.table.get(blockchain) === this.owner;
  }

  async release(blockchain: Blockchain): Promise<void> {
    if (this.table.get(blockchain) === this.owner) this.table.delete(blockchain);
  }
}
