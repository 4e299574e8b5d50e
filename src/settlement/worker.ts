/**
 * The settlement worker: one per chain, per process; only the holder of the
 * chain's sender lock acts, so one sender per chain across all replicas.
 *
 * Each pass (`tick`):
 * 1. Follows every SUBMITTED settlement by looking its stored hashes up:
 *    mined and `confirmations` deep → CONFIRMED (or FAILED if it reverted);
 *    mined but shallower → progress recorded; unknown to the node → the SAME
 *    signed bytes are broadcast again (after a crash between sign and
 *    broadcast, or a node that lost its pool). Nothing is ever signed twice.
 *    Unknown while its nonce is used on-chain: dropped → FAILED, but only on
 *    proof (see `dropVerdict`); until then it waits, SUBMITTED.
 * 2. Signs PENDING settlements in commit order, one nonce each: sign, store
 *    the hash and bytes (PENDING → SUBMITTED) BEFORE broadcast, then send.
 *    A mint's transaction mints to the treasury; a redemption's (kind
 *    "burn", issue 16) burns from it; everything else is the same.
 *
 * Nonces: the next one is max(highest stored + 1, the chain's mined count),
 * derived again after any error, so a store write whose outcome is unknown
 * can never hand the same nonce to a second mint.
 *
 * A chain outage or a store outage ends the pass; the worker waits (backing
 * off up to `maxBackoffMs`) and resumes where the stored state says it is.
 */
import type { Clock } from "../domain/clock.js";
import {
  ChainUnavailableError,
  noSettlementMetrics,
  WorkerCrash,
  type ChainSettlement,
  type ChainSettlementMetrics,
  type FaultHook,
  type FaultPoint,
  type Fees,
  type Hex,
  type SenderLock,
  type Settlement,
  type SettlementOutbox,
  type SettlementTx,
  type SignedTx,
  type TxLookup,
} from "./ports.js";

export interface SettlementWorkerOptions {
  readonly chain: ChainSettlement;
  readonly outbox: SettlementOutbox;
  readonly lock: SenderLock;
  readonly clock: Clock;
  /** Confirmations (the including block counts as 1) before CONFIRMED or FAILED; at least 1. */
  readonly confirmations: number;
  /** Pause between passes when idle. */
  readonly pollIntervalMs: number;
  /** Longest pause after repeated errors. */
  readonly maxBackoffMs?: number;
  /** Most settlements signed and not final at once (bounds the nonce gap a stuck transaction can leave). */
  readonly maxInFlight?: number;
  /**
   * Issue 16: a transaction not mined this long after it was signed (wall ms)
   * is replaced by one with the same nonce and higher fees (default: never).
   */
  readonly feeBumpTimeoutMs?: number;
  /** How long an unknown transaction waits before its bytes are broadcast again. */
  readonly rebroadcastAfterMs?: number;
  /** Test-only: called at each fault point (see `createFaultHook`). */
  readonly faultHook?: FaultHook;
  /** Issue 16: where the worker records outcomes, fee bumps, reorgs and failed passes (default: nowhere). */
  readonly metrics?: ChainSettlementMetrics;
  /** Told about every failed pass (logging); never throws. */
  readonly onError?: (err: unknown) => void;
  /** Told once when the node cannot give a proof the worker needs (logging), e.g. a deep nonce read on a node that is not an archive node; never throws. */
  readonly onWarning?: (message: string) => void;
}

export interface TickReport {
  readonly role: "sender" | "standby";
  readonly signed: number;
  readonly confirmed: number;
  readonly failed: number;
  readonly rebroadcast: number;
}

/** What health reports for settlement, separately from the ledger's health. */
export interface WorkerStatus {
  readonly blockchain: string;
  readonly role: "sender" | "standby" | "stopped";
  /** False while the last pass failed (node or store unreachable). */
  readonly healthy: boolean;
  readonly lastError: string;
  readonly consecutiveErrors: number;
  /** Fee-bump replacements signed since start (issue 16). */
  readonly replacements: number;
}

type Mined = Extract<TxLookup, { kind: "mined" }> & { hash: Hex };

/** In-flight settlements looked up at once per pass. */
const LOOKUP_BATCH = 16;
/** How often a sender re-checks the token's configuration (queue or no queue). */
const PREFLIGHT_EVERY_MS = 60_000;

/** The chain or token is configured so that every mint would fail; the worker signs nothing until it is fixed. */
export class SettlementMisconfiguredError extends Error {
  override readonly name = "SettlementMisconfiguredError";
  readonly code = "SETTLEMENT_MISCONFIGURED";
}

export class SettlementWorker {
  private readonly chain: ChainSettlement;
  private readonly outbox: SettlementOutbox;
  private nextNonce: number | null = null;
  /** Monotonic ms of the last successful preflight; null = check before the next signature. */
  private preflightOkMs: number | null = null;
  private isSender = false;
  private stopping = false;
  private loop: Promise<void> | null = null;
  private wakeUp: (() => void) | null = null;
  private woken = false;
  private lastError = "";
  private consecutiveErrors = 0;
  /** Monotonic ms of the last broadcast per settlement, so unknown transactions are re-sent at a bounded rate. */
  private readonly lastSentMs = new Map<string, number>();
  /** Fee-bump replacements signed by this worker (issue 16), for status and metrics. */
  private replacements = 0;
  private readonly metrics: ChainSettlementMetrics;
  /** Per settlement: monotonic ms of the first pass of an unbroken run that proved its drop (see `dropVerdict`). */
  private readonly dropProofs = new Map<string, number>();
  /** True once the node's failure to read a deep nonce was reported, until it reads one again. */
  private deepReadWarned = false;

  constructor(private readonly opts: SettlementWorkerOptions) {
    if (!Number.isInteger(opts.confirmations) || opts.confirmations < 1) throw new Error("confirmations must be an integer ≥ 1");
    this.chain = opts.chain;
    this.outbox = opts.outbox;
    this.metrics = opts.metrics ?? noSettlementMetrics.chain(opts.chain.blockchain);
  }

  /** Starts the background loop. */
  start(): void {
    if (this.loop !== null) return;
    this.stopping = false;
    this.loop = this.run();
  }

  /** Asks for a pass now (a mint just committed); cheap, coalesced. */
  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  /** Finishes the pass in progress, releases the sender lock and resolves. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake();
    await this.loop;
    this.loop = null;
  }

  /** Resolves when the loop ended by itself (a test fault hook crashed it) or was stopped. */
  async ended(): Promise<void> {
    await this.loop;
  }

  /** True while this worker holds the chain's sender lock, as of its last pass (false once stopped: the lock is released). */
  get sender(): boolean {
    return this.isSender;
  }

  status(): WorkerStatus {
    return {
      blockchain: this.chain.blockchain,
      role: this.loop === null ? "stopped" : this.isSender ? "sender" : "standby",
      healthy: this.consecutiveErrors === 0,
      lastError: this.lastError,
      consecutiveErrors: this.consecutiveErrors,
      replacements: this.replacements,
    };
  }

  private async run(): Promise<void> {
    try {
      while (!this.stopping) {
        let delayMs = this.opts.pollIntervalMs;
        try {
          await this.tick();
          this.consecutiveErrors = 0;
          this.lastError = "";
        } catch (err) {
          if (err instanceof WorkerCrash) return; // as if the process died: no cleanup, no lock release beyond what death does
          this.consecutiveErrors++;
          this.lastError = err instanceof Error ? err.message : String(err);
          this.nextNonce = null;
          this.metrics.passFailed();
          this.opts.onError?.(err);
          delayMs = Math.min(this.opts.maxBackoffMs ?? 5_000, this.opts.pollIntervalMs * 2 ** Math.min(this.consecutiveErrors, 10));
        }
        if (this.stopping) break;
        await this.pause(delayMs);
      }
    } finally {
      if (this.isSender) {
        this.isSender = false;
        await this.opts.lock.release(this.chain.blockchain).catch(() => undefined);
      }
    }
  }

  private pause(delayMs: number): Promise<void> {
    if (this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const cancel = this.opts.clock.setTimer(delayMs, () => {
        this.wakeUp = null;
        resolve();
      });
      this.wakeUp = () => {
        cancel();
        this.wakeUp = null;
        this.woken = false;
        resolve();
      };
    });
  }

  /** One pass: follow what is in flight, then sign and send what is pending. Throws on outages. */
  async tick(): Promise<TickReport> {
    const chainName = this.chain.blockchain;
    if (!this.isSender) {
      if (!(await this.opts.lock.tryAcquire(chainName))) return { role: "standby", signed: 0, confirmed: 0, failed: 0, rebroadcast: 0 };
      this.isSender = true;
      this.nextNonce = null;
      this.preflightOkMs = null;
      this.dropProofs.clear();
    } else if (!(await this.opts.lock.held(chainName))) {
      this.isSender = false;
      this.nextNonce = null;
      return { role: "standby", signed: 0, confirmed: 0, failed: 0, rebroadcast: 0 };
    }
    const report = { role: "sender" as const, signed: 0, confirmed: 0, failed: 0, rebroadcast: 0 };

    const inFlight = await this.outbox.inFlight(chainName);
    // Read every pass, queue or no queue: an idle sender's health (and its
    // pass-failure count) follows the node, not only once a mint arrives.
    const head = await this.chain.headBlock();
    let open = 0;
    if (inFlight.length > 0) {
      // Lookups are independent reads: a few at a time. Re-sends stay in nonce
      // order within a batch only loosely, which the node tolerates (it queues
      // a nonce gap until the lower nonce arrives).
      for (let i = 0; i < inFlight.length; i += LOOKUP_BATCH) {
        const outcomes = await Promise.all(inFlight.slice(i, i + LOOKUP_BATCH).map((s) => this.follow(s, head)));
        for (const outcome of outcomes) {
          if (outcome === "confirmed") report.confirmed++;
          else if (outcome === "failed") report.failed++;
          else {
            open++;
            if (outcome === "rebroadcast") report.rebroadcast++;
          }
        }
      }
    }

    // After following what is in flight (a misconfiguration must not stop
    // confirmations), before signing; idle or not, so a dead node or a
    // blacklisted treasury shows in health before the first mint waits.
    await this.preflight();
    const room = (this.opts.maxInFlight ?? 64) - open;
    if (room <= 0) return report;
    const pending = await this.outbox.nextPending(chainName, room);
    if (pending.length === 0) return report;
    if (this.nextNonce === null) {
      const [stored, mined] = await Promise.all([this.outbox.highestNonce(chainName), this.chain.minedNonce()]);
      this.nextNonce = Math.max(stored + 1, mined);
    }
    let nonce: number = this.nextNonce;
    const fees = await this.chain.suggestFees();
    for (const s of pending) {
      const tx = await this.sign(s, nonce, fees);
      let recorded;
      try {
        recorded = await this.outbox.recordSigned(s.settlementId, { hash: tx.hash, raw: tx.raw, nonce, maxFeePerGas: fees.maxFeePerGas, maxPriorityFeePerGas: fees.maxPriorityFeePerGas, signedWallMs: this.opts.clock.wallMs() }, this.opts.clock.wallMs());
      } catch (err) {
        // The write may have committed: derive the nonce from the store again.
        this.nextNonce = null;
        throw err;
      }
      // Cancelled meanwhile (ReconcileMint): the bytes are dropped unsent and the nonce stays free.
      if (!recorded.ok) continue;
      this.nextNonce = ++nonce;
      report.signed++;
      this.fault("after-sign", s.settlementId);
      await this.send(s.settlementId, tx.raw);
      this.fault("after-broadcast", s.settlementId);
    }
    return report;
  }

  /**
   * Refuses to sign while a misconfiguration would make every mint revert
   * (and be reversed): checked when the worker becomes the sender and then
   * every PREFLIGHT_EVERY_MS, whether or not anything is queued; while it
   * finds a problem, every pass checks again (and fails, with backoff).
   */
  private async preflight(): Promise<void> {
    const now = this.opts.clock.nowMs();
    if (this.preflightOkMs !== null && now - this.preflightOkMs < PREFLIGHT_EVERY_MS) return;
    const problem = await this.chain.preflight();
    if (problem !== null) {
      this.preflightOkMs = null;
      throw new SettlementMisconfiguredError(`not signing: ${problem}`);
    }
    this.preflightOkMs = now;
  }

  /** A mint mints to the treasury; a redemption's burn (issue 16) burns from it. Same nonce sequence, same machinery. */
  private sign(s: Settlement, nonce: number, fees: Fees): Promise<SignedTx> {
    return s.kind === "burn" ? this.chain.signBurn(s.amountMicros, nonce, fees) : this.chain.signMint(s.amountMicros, nonce, fees);
  }

  private fault(point: FaultPoint, settlementId: string): void {
    this.opts.faultHook?.(point, settlementId);
  }

  /** Broadcasts and counts the attempt; an outage propagates (the bytes are stored; the next pass re-sends). */
  private async send(settlementId: string, raw: Hex): Promise<void> {
    this.lastSentMs.set(settlementId, this.opts.clock.nowMs());
    let error = "";
    try {
      const outcome = await this.chain.broadcast(raw);
      if (outcome.kind === "rejected") error = `node refused the transaction: ${outcome.reason}`;
    } catch (err) {
      if (err instanceof ChainUnavailableError) {
        await this.outbox.recordAttempt(settlementId, err.message, this.opts.clock.wallMs());
      }
      throw err;
    }
    await this.outbox.recordAttempt(settlementId, error, this.opts.clock.wallMs());
  }

  /**
   * Issue 16: replaces a stuck transaction: same nonce, fees raised by at
   * least 12.5% over the last transaction (nodes require 10% for both EIP-1559
   * fees) or to what the chain asks now, whichever is higher. The replacement
   * is stored before it is broadcast; whichever of the nonce's transactions
   * is mined settles the mint (the nonce admits only one).
   */
  private async bumpFees(s: Settlement, last: SettlementTx): Promise<boolean> {
    const suggested = await this.chain.suggestFees();
    const bump = (v: bigint): bigint => v + (v + 7n) / 8n;
    const priority = bump(last.maxPriorityFeePerGas) > suggested.maxPriorityFeePerGas ? bump(last.maxPriorityFeePerGas) : suggested.maxPriorityFeePerGas;
    let maxFee = bump(last.maxFeePerGas) > suggested.maxFeePerGas ? bump(last.maxFeePerGas) : suggested.maxFeePerGas;
    if (maxFee < priority) maxFee = priority;
    const fees = { maxFeePerGas: maxFee, maxPriorityFeePerGas: priority };
    const tx = await this.sign(s, last.nonce, fees);
    const wallMs = this.opts.clock.wallMs();
    const stored = await this.outbox.recordReplacement(s.settlementId, { hash: tx.hash, raw: tx.raw, nonce: last.nonce, maxFeePerGas: fees.maxFeePerGas, maxPriorityFeePerGas: fees.maxPriorityFeePerGas, signedWallMs: wallMs }, wallMs);
    if (!stored) return false;
    this.replacements++;
    this.metrics.feeBumped();
    await this.send(s.settlementId, tx.raw);
    return true;
  }

  /**
   * Whether a settlement none of whose transactions the node knows was
   * dropped for good. Two reads at "latest" prove nothing (a node behind a
   * load balancer, restarted, or that evicted the transaction answers
   * "unknown" while the transaction is mined by the time the count is read),
   * so the verdict needs proof: the nonce is consumed at a block
   * `confirmations` deep, AFTER that read every one of the nonce's hashes is
   * looked up again and none is mined or pending, and both hold on two
   * consecutive passes at least one poll interval apart. "unused": the nonce
   * is free at the head, so the bytes go out again; "wait": no verdict yet,
   * with the reason for the settlement's status.
   */
  private async dropVerdict(s: Settlement, nonce: number, head: bigint, proofSinceMs: number | undefined): Promise<{ kind: "dropped" | "unused" } | { kind: "wait"; reason: string }> {
    if ((await this.chain.minedNonce()) <= nonce) return { kind: "unused" };
    const depth = this.opts.confirmations;
    const deepBlock = head - BigInt(depth) + 1n;
    const shallow = { kind: "wait", reason: `waiting for proof of a drop: nonce ${nonce} is used at the head (block ${head}) but not yet ${depth} blocks deep` } as const;
    if (deepBlock < 0n) return shallow;
    const deep = await this.chain.nonceAt(deepBlock);
    if (deep.kind === "unavailable") {
      const reason = `waiting for proof of a drop: the node cannot read the signer's nonce at block ${deepBlock} (${depth} blocks deep): ${deep.reason}; deep confirmation settings need an archive node`;
      if (!this.deepReadWarned) {
        this.deepReadWarned = true;
        this.opts.onWarning?.(`${this.chain.blockchain}: ${reason}`);
      }
      return { kind: "wait", reason };
    }
    this.deepReadWarned = false;
    if (deep.count <= nonce) return shallow;
    // The nonce is consumed deep enough: is any of its transactions known now?
    for (const tx of s.txs) {
      const l = await this.chain.lookup(tx.hash, head);
      if (l.kind !== "unknown") return { kind: "wait", reason: `waiting: ${tx.hash} is ${l.kind} again` };
    }
    const nowMs = this.opts.clock.nowMs();
    if (proofSinceMs !== undefined && nowMs - proofSinceMs >= this.opts.pollIntervalMs) return { kind: "dropped" };
    this.dropProofs.set(s.settlementId, proofSinceMs ?? nowMs);
    return { kind: "wait", reason: `waiting for proof of a drop: nonce ${nonce} is used ${depth} blocks deep (block ${deepBlock}) and none of its transactions is known; checked again on the next pass` };
  }

  private async follow(s: Settlement, head: bigint): Promise<"confirmed" | "failed" | "open" | "rebroadcast"> {
    // A drop's proof must hold on consecutive passes: any other outcome starts it over.
    const proofSinceMs = this.dropProofs.get(s.settlementId);
    this.dropProofs.delete(s.settlementId);
    let mined: Mined | null = null;
    let anyPending = false;
    // Newest first: with fee bumps (issue 16) the latest replacement is the likeliest to be mined.
    for (const tx of [...s.txs].reverse()) {
      const l = await this.chain.lookup(tx.hash, head);
      if (l.kind === "mined") {
        mined = { ...l, hash: tx.hash };
        break;
      }
      if (l.kind === "pending") anyPending = true;
    }
    const wallMs = this.opts.clock.wallMs();
    if (mined !== null) {
      const where = { hash: mined.hash, blockNumber: mined.blockNumber, confirmations: mined.confirmations };
      if (mined.confirmations >= this.opts.confirmations) {
        this.lastSentMs.delete(s.settlementId);
        const seconds = (wallMs - s.createWallMs) / 1000;
        if (mined.status === "success") {
          // Counted only when this call made the change, so a settlement is counted once.
          if (await this.outbox.markConfirmed(s.settlementId, where, wallMs)) this.metrics.finished("confirmed", seconds, mined.confirmations);
          return "confirmed";
        }
        if (await this.outbox.markFailed(s.settlementId, where, `the ${s.kind} transaction reverted on-chain`, wallMs)) this.metrics.finished("reverted", seconds, mined.confirmations);
        return "failed";
      }
      if (s.minedHash !== mined.hash || s.blockNumber !== mined.blockNumber || s.confirmations !== mined.confirmations) {
        await this.outbox.recordProgress(s.settlementId, where, wallMs);
      }
      return "open";
    }
    // Mined before, gone now: a reorg took it out; it goes back to the pool or is re-sent below.
    if (s.minedHash !== null) {
      await this.outbox.recordProgress(s.settlementId, null, wallMs);
      this.metrics.reorged();
    }
    const last = s.txs[s.txs.length - 1];
    if (last === undefined) throw new Error(`settlement ${s.settlementId} is SUBMITTED without a transaction`);
    if (anyPending) {
      // Stuck in the pool: replace it with higher fees once the fee-bump timeout passed.
      const bumpMs = this.opts.feeBumpTimeoutMs;
      if (bumpMs !== undefined && wallMs - last.signedWallMs >= bumpMs && (await this.bumpFees(s, last))) return "rebroadcast";
      return "open";
    }
    const verdict = await this.dropVerdict(s, last.nonce, head, proofSinceMs);
    if (verdict.kind === "dropped") {
      this.lastSentMs.delete(s.settlementId);
      if (await this.outbox.markFailed(s.settlementId, null, `dropped: nonce ${last.nonce} was used by another transaction`, wallMs)) {
        this.metrics.finished("dropped", (wallMs - s.createWallMs) / 1000, 0);
      }
      return "failed";
    }
    if (verdict.kind === "wait") {
      if (s.lastError !== verdict.reason) await this.outbox.recordWaiting(s.settlementId, verdict.reason, wallMs);
      return "open";
    }
    const sentMs = this.lastSentMs.get(s.settlementId);
    if (sentMs !== undefined && this.opts.clock.nowMs() - sentMs < (this.opts.rebroadcastAfterMs ?? 2_000)) return "open";
    await this.send(s.settlementId, last.raw);
    this.metrics.rebroadcast();
    return "rebroadcast";
  }
}

/**
 * The test-only fault hook: stops at the `count`-th time `point` is reached.
 * `action` "exit" kills the process (SIGKILL: no cleanup, as a crash);
 * "throw" raises `WorkerCrash` to stop an in-process worker the same way.
 * Refused unless the operator set MINT_TEST_FAULTS=true (`enabled`).
 */
export function createFaultHook(opts: { enabled: boolean; point: FaultPoint; count?: number; action: "exit" | "throw"; kill?: () => void }): FaultHook {
  if (!opts.enabled) throw new Error("fault hooks are refused unless MINT_TEST_FAULTS=true");
  let seen = 0;
  return (point) => {
    if (point !== opts.point) return;
    seen++;
    if (seen !== (opts.count ?? 1)) return;
    if (opts.action === "throw") throw new WorkerCrash(`test fault at ${point}`);
    (opts.kill ?? (() => process.kill(process.pid, "SIGKILL")))();
  };
}
