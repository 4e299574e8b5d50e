/**
 * On-chain settlement's Prometheus series (issue 16), on the registry of the
 * process that runs the workers: the service's own (settlement in-process)
 * or the standalone worker's (`settlement-worker-main.ts`). Recorded through
 * the `SettlementMetricsSink` port (src/settlement/ports.ts); the gauges of
 * what is still open are read from the outbox when Prometheus scrapes.
 *
 * Labels: `blockchain` (the configured chains only), `outcome` / `reason` /
 * `state` (closed lists), `signer` (the configured kind). Never a mint id,
 * hash or address, so the series are fixed when the process starts.
 */
import { Gauge, type Registry } from "prom-client";
import type { Blockchain } from "../domain/model.js";
import type { ChainSettlementMetrics, RefusalClass, SettlementBacklog, SettlementMetricsSink, SettlementOutcome, Signer, WaitKind } from "../settlement/ports.js";
import { combinations, FastCounter, FastHistogram, FastWeiCounter, type CounterCell, type HistogramCell, type WeiCounterCell } from "./fast-metrics.js";

/**
 * Seconds from a mint's commit to its settlement being final. Automine
 * settles in well under a second; a real chain takes its confirmation depth
 * times its block time (Ethereum at 12 confirmations: about 2.5 min), so the
 * buckets reach 2 h.
 */
export const SETTLEMENT_SECONDS_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 3600, 7200] as const;
/** Confirmations a transaction had when the worker saw it final (the configured depth, or more when the worker lags). */
export const CONFIRMATIONS_BUCKETS = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64, 128, 256, 1000] as const;
/** One signature: SoftHSM takes about 1 ms, a network HSM tens of ms; a hung device shows at 10 s. */
export const SIGNER_SECONDS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

const FAILURE_REASONS = ["reverted", "dropped"] as const;
const OPEN_STATES = ["PENDING", "SUBMITTED"] as const;
const WAIT_KINDS: readonly WaitKind[] = ["fee_ceiling", "signer_balance"];
const REFUSALS: readonly RefusalClass[] = ["underpriced", "insufficient-funds", "nonce-too-low", "unknown"];

/** wei → gwei as a float (exact to the wei below 2^53 gwei). */
function gwei(wei: bigint): number {
  return Number(wei / 1_000_000_000n) + Number(wei % 1_000_000_000n) / 1e9;
}

/** The gauges one chain's worker sets as it reads the chain (no scrape-time read). */
interface ChainGauges {
  readonly balance: Gauge;
  readonly floor: Gauge;
  readonly waiting: Gauge;
}

/** What the scrape-time gauges read. */
export interface SettlementMetricsSources {
  /** The open settlements per chain (the outbox's `backlog`); may query the store. */
  readonly backlog: () => Promise<Map<Blockchain, SettlementBacklog>>;
  /** Wall clock, ms: the age of the oldest open settlement is measured against it. */
  readonly wallMs: () => number;
  /** The chains this process signs for now (holds the chain's sender lock). */
  readonly senders: () => readonly Blockchain[];
}

export interface SettlementMetricsOptions {
  /** The configured chains: the only `blockchain` label values. */
  readonly chains: readonly Blockchain[];
  readonly signer: Signer["kind"];
}

class ChainCells implements ChainSettlementMetrics {
  constructor(
    private readonly seconds: HistogramCell,
    private readonly confirmations: HistogramCell,
    private readonly failures: Record<(typeof FAILURE_REASONS)[number], CounterCell>,
    private readonly feeBumps: CounterCell,
    private readonly reorgs: CounterCell,
    private readonly rebroadcasts: CounterCell,
    private readonly passFailures: CounterCell,
    private readonly cost: WeiCounterCell,
    private readonly refusals: Record<RefusalClass, CounterCell>,
    private readonly gauges: ChainGauges,
    private readonly blockchain: Blockchain,
  ) {}

  paid(costWei: bigint): void {
    this.cost.add(costWei);
  }

  signerBalance(balanceWei: bigint, floorWei: bigint): void {
    this.gauges.balance.set({ blockchain: this.blockchain }, gwei(balanceWei));
    this.gauges.floor.set({ blockchain: this.blockchain }, gwei(floorWei));
  }

  waiting(reason: WaitKind, settlements: number): void {
    this.gauges.waiting.set({ blockchain: this.blockchain, reason }, settlements);
  }

  refused(refusal: RefusalClass): void {
    this.refusals[refusal].inc();
  }

  finished(outcome: SettlementOutcome, seconds: number, confirmations: number): void {
    if (outcome === "confirmed") {
      this.seconds.observe(Math.max(0, seconds));
      this.confirmations.observe(confirmations);
    } else {
      this.failures[outcome].inc();
    }
  }

  feeBumped(): void {
    this.feeBumps.inc();
  }

  reorged(): void {
    this.reorgs.inc();
  }

  rebroadcast(): void {
    this.rebroadcasts.inc();
  }

  passFailed(): void {
    this.passFailures.inc();
  }
}

export class SettlementMetrics implements SettlementMetricsSink {
  private readonly byChain = new Map<Blockchain, ChainCells>();
  private readonly signerCells: { readonly ok: HistogramCell; readonly error: HistogramCell };
  private watched = false;

  constructor(
    private readonly registry: Registry,
    private readonly options: SettlementMetricsOptions,
  ) {
    const r = registry;
    const chains = combinations({ blockchain: [...options.chains] });
    const seconds = new FastHistogram(
      "usdc_mint_settlement_seconds",
      "Seconds from a mint's commit (enqueue) to its settlement CONFIRMED on-chain at the confirmation depth",
      chains,
      r,
      SETTLEMENT_SECONDS_BUCKETS,
    );
    const confirmations = new FastHistogram(
      "usdc_mint_settlement_confirmations",
      "Confirmations (the including block counts as 1) a settlement's transaction had when the worker marked it CONFIRMED",
      chains,
      r,
      CONFIRMATIONS_BUCKETS,
    );
    const failures = new FastCounter(
      "usdc_mint_settlement_failures_total",
      "Settlements FAILED (the mint reversed in the ledger), by reason: reverted on-chain, or dropped (its nonce used by another transaction)",
      combinations({ blockchain: [...options.chains], reason: FAILURE_REASONS }),
      r,
    );
    const feeBumps = new FastCounter("usdc_mint_settlement_fee_bumps_total", "Stuck transactions replaced with higher fees (same nonce)", chains, r);
    const reorgs = new FastCounter("usdc_mint_settlement_reorgs_total", "Mined settlement transactions that left the canonical chain before the confirmation depth", chains, r);
    const rebroadcasts = new FastCounter(
      "usdc_mint_settlement_rebroadcasts_total",
      "Signed transactions sent again unchanged (after a reorg, a crash between sign and broadcast, or a node that lost them)",
      chains,
      r,
    );
    const passFailures = new FastCounter(
      "usdc_mint_settlement_pass_failures_total",
      "Worker passes ended by an outage or a misconfiguration (node or store unreachable, preflight refused); the worker retries with backoff",
      chains,
      r,
    );
    const cost = new FastWeiCounter(
      "usdc_mint_settlement_gas_cost_gwei_total",
      "What final settlements' transactions cost the signer (receipt gasUsed x effectiveGasPrice), in gwei; reverted ones included, dropped ones cost nothing",
      chains,
      r,
    );
    const refusals = new FastCounter(
      "usdc_mint_settlement_broadcast_refusals_total",
      "Signed transactions a node refused at broadcast, by class: underpriced (bumped within the fee ceiling), insufficient-funds (waits for funds), nonce-too-low (treated as sent), unknown (backed off and reported)",
      combinations({ blockchain: [...options.chains], refusal: REFUSALS }),
      r,
    );
    // Set by the sender as it reads the chain: a process that never signed for a chain exports no balance for it.
    const gauges: ChainGauges = {
      balance: new Gauge({
        name: "usdc_mint_settlement_signer_balance_gwei",
        help: "The signer's native balance on the chain in gwei, read by the chain's sender every pass",
        labelNames: ["blockchain"],
        registers: [r],
      }),
      floor: new Gauge({
        name: "usdc_mint_settlement_signer_balance_floor_gwei",
        help: "The signer's balance floor in gwei (configured, or N transactions at the current fee): below it nothing is signed and the chain reports NOT_SERVING",
        labelNames: ["blockchain"],
        registers: [r],
      }),
      waiting: new Gauge({
        name: "usdc_mint_settlements_waiting",
        help: "PENDING settlements the sender held back in its last pass (at most its in-flight bound), by reason: fee_ceiling (base fee plus tip above maxFeePerGas) or signer_balance (below the floor, or cannot pay)",
        labelNames: ["blockchain", "reason"],
        registers: [r],
      }),
    };
    for (const blockchain of options.chains) {
      for (const reason of WAIT_KINDS) gauges.waiting.set({ blockchain, reason }, 0);
      const l = { blockchain };
      this.byChain.set(
        blockchain,
        new ChainCells(
          seconds.cell(l),
          confirmations.cell(l),
          { reverted: failures.cell({ blockchain, reason: "reverted" }), dropped: failures.cell({ blockchain, reason: "dropped" }) },
          feeBumps.cell(l),
          reorgs.cell(l),
          rebroadcasts.cell(l),
          passFailures.cell(l),
          cost.cell(l),
          Object.fromEntries(REFUSALS.map((refusal) => [refusal, refusals.cell({ blockchain, refusal })])) as Record<RefusalClass, CounterCell>,
          gauges,
          blockchain,
        ),
      );
    }
    const signer = new FastHistogram(
      "usdc_mint_settlement_signer_seconds",
      "Time one signature took in the settlement signer (the HSM call for pkcs11), by outcome",
      combinations({ signer: [options.signer], outcome: ["ok", "error"] }),
      r,
      SIGNER_SECONDS_BUCKETS,
    );
    this.signerCells = { ok: signer.cell({ signer: options.signer, outcome: "ok" }), error: signer.cell({ signer: options.signer, outcome: "error" }) };
  }

  chain(blockchain: Blockchain): ChainSettlementMetrics {
    const c = this.byChain.get(blockchain);
    if (c === undefined) throw new Error(`no settlement metrics declared for ${blockchain}`);
    return c;
  }

  signed(seconds: number, ok: boolean): void {
    (ok ? this.signerCells.ok : this.signerCells.error).observe(seconds);
  }

  /**
   * Registers the gauges read at scrape time. Call once, at wiring. One
   * backlog read per scrape serves both gauges; a store that cannot answer
   * (PostgreSQL down) leaves the last values, like the idempotency-key gauge.
   */
  watch(sources: SettlementMetricsSources): void {
    if (this.watched) throw new Error("SettlementMetrics.watch may be called once");
    this.watched = true;
    const chains = this.options.chains;
    // prom-client collects a scrape's metrics concurrently: both gauges share the read in flight.
    let inFlight: Promise<Map<Blockchain, SettlementBacklog> | undefined> | null = null;
    const backlog = (): Promise<Map<Blockchain, SettlementBacklog> | undefined> => {
      inFlight ??= sources
        .backlog()
        .catch(() => undefined)
        .finally(() => {
          inFlight = null;
        });
      return inFlight;
    };
    new Gauge({
      name: "usdc_mint_settlement_oldest_unsettled_age_seconds",
      help: "Age of the oldest settlement not yet final (PENDING or SUBMITTED), from its enqueue (the mint's commit, or the approval that completed it); 0 when none is open",
      labelNames: ["blockchain"],
      registers: [this.registry],
      async collect() {
        const b = await backlog();
        if (b === undefined) return;
        const now = sources.wallMs();
        for (const blockchain of chains) {
          const oldest = b.get(blockchain)?.oldestCreateWallMs;
          this.set({ blockchain }, oldest === undefined ? 0 : Math.max(0, (now - oldest) / 1000));
        }
      },
    });
    new Gauge({
      name: "usdc_mint_settlements_open",
      help: "Settlements not yet final, by state: PENDING (nothing signed) and SUBMITTED (signed, waiting to be mined and buried)",
      labelNames: ["blockchain", "state"],
      registers: [this.registry],
      async collect() {
        const b = await backlog();
        if (b === undefined) return;
        for (const blockchain of chains) {
          const open = b.get(blockchain);
          for (const state of OPEN_STATES) this.set({ blockchain, state }, state === "PENDING" ? (open?.pending ?? 0) : (open?.submitted ?? 0));
        }
      },
    });
    new Gauge({
      name: "usdc_mint_settlement_sender",
      help: "1 when this process holds the chain's sender lock (signs and broadcasts for it), 0 when it stands by",
      labelNames: ["blockchain"],
      registers: [this.registry],
      collect() {
        const senders = new Set(sources.senders());
        for (const blockchain of chains) this.set({ blockchain }, senders.has(blockchain) ? 1 : 0);
      },
    });
  }
}
