/**
 * Wiring for settlement, so `src/app.ts` (or a process of its own,
 * `settlement-worker-main.ts`) needs a few lines: open the signer the
 * settings name, build one EVM adapter and one worker per configured chain
 * over the given outbox and sender lock, start and stop them together.
 */
import type { Clock } from "../domain/clock.js";
import type { Blockchain } from "../domain/model.js";
import { EvmChainSettlement } from "./chain-evm.js";
import type { ChainSettlement, FaultHook, SenderLock, Settlement, SettlementMetricsSink, SettlementOutbox, Signer } from "./ports.js";
import { reconcileChain, type ChainReport } from "./reconcile.js";
import type { SettlementSettings, SignerSettings } from "./settlement-config.js";
import { DevKeySigner } from "./signer-dev-key.js";
import { Pkcs11Signer } from "./signer-pkcs11.js";
import { timedSigner } from "./timed-signer.js";
import { SettlementWorker, type WorkerStatus } from "./worker.js";

/** Opens the signer the settings name; throws with one line when the token or key is unusable. */
export function openSigner(settings: SignerSettings): Signer {
  switch (settings.kind) {
    case "pkcs11":
      return Pkcs11Signer.open(settings);
    case "dev-key":
      return new DevKeySigner(settings.privateKey);
  }
}

export interface SettlementRuntime {
  /** True when mints on `blockchain` settle on-chain (credit pending until CONFIRMED); false means NOT_REQUIRED. */
  required(blockchain: Blockchain): boolean;
  /** Tells the chain's worker a settlement was just committed (saves up to one poll interval). */
  wake(blockchain: Blockchain): void;
  /** Per chain, for health: a chain outage shows here and never stops reads and transfers. */
  status(): WorkerStatus[];
  /** The chains this process signs for now (holds the sender lock). */
  senders(): Blockchain[];
  /** The chain's adapter (reconciliation reads through it); undefined when the chain does not settle. */
  chain(blockchain: Blockchain): ChainSettlement | undefined;
  start(): void;
  /** Stops every worker (each finishes its pass and releases its sender lock). */
  stop(): Promise<void>;
}

/** No settlement configured: every mint is NOT_REQUIRED (the default). */
export const noSettlement: SettlementRuntime = {
  required: () => false,
  wake: () => undefined,
  status: () => [],
  senders: () => [],
  chain: () => undefined,
  start: () => undefined,
  stop: async () => undefined,
};

export interface SettlementRuntimeOptions {
  readonly settings: SettlementSettings;
  readonly signer: Signer;
  readonly outbox: SettlementOutbox;
  readonly lock: SenderLock;
  readonly clock: Clock;
  readonly faultHook?: FaultHook;
  readonly onError?: (blockchain: Blockchain, err: unknown) => void;
  /** Told once when a chain's node cannot give a proof the worker needs (see `SettlementWorkerOptions.onWarning`). */
  readonly onWarning?: (blockchain: Blockchain, message: string) => void;
  /** Issue 16: settlement metrics (outcomes, fee bumps, reorgs, signer latency); none when metrics are off. */
  readonly metrics?: SettlementMetricsSink;
}

export function createSettlementRuntime(opts: SettlementRuntimeOptions): SettlementRuntime {
  const workers = new Map<Blockchain, SettlementWorker>();
  const chains = new Map<Blockchain, ChainSettlement>();
  // Without metrics the signer is used as it is: no link, no clock reads.
  const signer = opts.metrics === undefined ? opts.signer : timedSigner(opts.signer, opts.metrics);
  for (const c of opts.settings.chains) {
    const chain = new EvmChainSettlement(
      {
        blockchain: c.blockchain,
        rpcUrl: c.rpcUrl,
        chainId: c.chainId,
        tokenAddress: c.tokenContract,
        treasury: c.treasury,
        gasLimit: c.gasLimit,
        requestTimeoutMs: c.requestTimeoutMs,
        fromBlock: c.fromBlock,
        logsBlockRange: c.logsBlockRange,
      },
      signer,
    );
    chains.set(c.blockchain, chain);
    workers.set(
      c.blockchain,
      new SettlementWorker({
        chain,
        outbox: opts.outbox,
        lock: opts.lock,
        clock: opts.clock,
        confirmations: c.confirmations,
        pollIntervalMs: c.pollIntervalMs,
        feeBumpTimeoutMs: c.feeBumpTimeoutMs,
        maxBackoffMs: Math.max(c.pollIntervalMs, 10_000),
        ...(opts.faultHook !== undefined ? { faultHook: opts.faultHook } : {}),
        ...(opts.metrics !== undefined ? { metrics: opts.metrics.chain(c.blockchain) } : {}),
        onError: (err) => opts.onError?.(c.blockchain, err),
        onWarning: (message) => opts.onWarning?.(c.blockchain, message),
      }),
    );
  }
  return {
    required: (blockchain) => workers.has(blockchain),
    wake: (blockchain) => workers.get(blockchain)?.wake(),
    status: () => [...workers.values()].map((w) => w.status()),
    senders: () => [...workers.entries()].filter(([, w]) => w.sender).map(([b]) => b),
    chain: (blockchain) => chains.get(blockchain),
    start: () => {
      for (const w of workers.values()) w.start();
    },
    stop: async () => {
      await Promise.all([...workers.values()].map((w) => w.stop()));
    },
  };
}

/**
 * Issue 16: the chains whose redemptions cannot burn: the token burns from
 * the caller's own balance, so a treasury other than the signer's address
 * makes every burn revert (and be re-credited). For a warning at start.
 */
export function chainsThatCannotBurn(settings: SettlementSettings, signerAddress: string): Blockchain[] {
  return settings.chains.filter((c) => c.treasury.toLowerCase() !== signerAddress.toLowerCase()).map((c) => c.blockchain);
}

/** What the gRPC handlers read of settlement (issue 15: Mint.settlement; issue 16: ReconcileChain). */
export interface SettlementReads {
  required(blockchain: Blockchain): boolean;
  /** The settlements of these mints that exist (a mint without one is NOT_REQUIRED), in one outbox lookup. */
  getMany(mintIds: readonly string[]): Promise<Map<string, Settlement>>;
  /** null when the chain does not settle. Throws ChainUnavailableError when the node cannot be reached. */
  reconcile(blockchain: Blockchain): Promise<ChainReport | null>;
}

export function settlementReads(runtime: SettlementRuntime, outbox: SettlementOutbox & { list(blockchain: Blockchain): Promise<Settlement[]> | Settlement[] }): SettlementReads {
  return {
    required: (b) => runtime.required(b),
    // One batch per page (one query in PostgreSQL), not one lookup per mint.
    getMany: (mintIds) => outbox.getMany(mintIds),
    async reconcile(b) {
      const chain = runtime.chain(b);
      if (chain === undefined) return null;
      return reconcileChain(chain, await outbox.list(b));
    },
  };
}
