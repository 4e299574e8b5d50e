/**
 * The settlement metrics move as settlements confirm, revert, are
 * dropped, fee-bumped and reorged, on a real EDR node with a real SoftHSM2
 * token (and a dev key where the test must sign a competing transaction).
 * The worker runs pass by pass (`tick`) on a fake clock, so the ages and
 * durations it records are exact and nothing sleeps for a fee-bump timeout.
 */
import { Registry } from "prom-client";
import { createWalletClient, http, parseGwei } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Blockchain } from "../../src/domain/model.js";
import { SettlementMetrics } from "../../src/observability/settlement-metrics.js";
import { MemorySettlementOutbox } from "../../src/adapters/memory/settlement-outbox.js";
import type { Signer } from "../../src/domain/settlement/ports.js";
import { DevKeySigner } from "../../src/adapters/evm/signer-dev-key.js";
import { Pkcs11Signer } from "../../src/adapters/pkcs11/signer-pkcs11.js";
import { timedSigner } from "../../src/workers/timed-signer.js";
import type { SettlementWorker } from "../../src/workers/settlement-sender.js";
import { startEvmNode, type EvmNode } from "../support/evm/evm-node.js";
import { BLOCKCHAIN, deployForSigner, expectChainMatchesOutbox, lockFor, newWorker, until, type TokenSetup } from "../support/evm/settlement-fixture.js";
import { FakeClock } from "../support/fake-clock.js";
import { parsePromText, sampleValue } from "../support/prom-text.js";
import { createDevToken } from "../support/softhsm.js";

let node: EvmNode;
let hsm: Pkcs11Signer;

beforeAll(async () => {
  const [n, token] = await Promise.all([startEvmNode(), createDevToken()]);
  node = n;
  hsm = Pkcs11Signer.open(token.settings);
}, 60_000);

afterAll(async () => {
  await hsm?.close();
  await node?.stop();
});

const CHAIN = { blockchain: BLOCKCHAIN };

interface Rig {
  readonly clock: FakeClock;
  readonly outbox: MemorySettlementOutbox;
  readonly worker: SettlementWorker;
  readonly setup: TokenSetup;
  /** The registry's exposition, parsed: what GET /metrics would answer. */
  value(name: string, labels?: Record<string, string>): Promise<number>;
  enqueue(id: string, amountMicros: bigint): Promise<void>;
}

/** A worker on a fake clock recording into a fresh registry, its signer timed through the same link the runtime uses. */
async function rig(signer: Signer, opts: { allowance?: bigint; confirmations?: number; feeBumpTimeoutMs?: number } = {}): Promise<Rig> {
  const clock = new FakeClock();
  const registry = new Registry();
  const chains: Blockchain[] = [BLOCKCHAIN];
  const metrics = new SettlementMetrics(registry, { chains, signer: signer.kind });
  const setup = await deployForSigner(node, timedSigner(signer, metrics), opts.allowance === undefined ? {} : { allowance: opts.allowance });
  const outbox = new MemorySettlementOutbox();
  const worker = newWorker({
    chain: setup.chain,
    outbox,
    lock: lockFor(new Map()),
    clock,
    confirmations: opts.confirmations ?? 1,
    metrics: metrics.chain(BLOCKCHAIN),
    ...(opts.feeBumpTimeoutMs !== undefined ? { feeBumpTimeoutMs: opts.feeBumpTimeoutMs } : {}),
  });
  metrics.watch({ backlog: () => outbox.backlog(), wallMs: () => clock.wallMs(), senders: () => (worker.sender ? [BLOCKCHAIN] : []) });
  return {
    clock,
    outbox,
    worker,
    setup,
    value: async (name, labels = {}) => sampleValue(parsePromText(await registry.metrics()), name, labels),
    enqueue: (id, amountMicros) => outbox.enqueue({ settlementId: id, blockchain: BLOCKCHAIN, amountMicros, createWallMs: clock.wallMs() }),
  };
}

describe("settlement metrics on a real node (fake clock, pass by pass)", () => {
  it("confirmations: the backlog gauges age on the clock, then the duration histogram, confirmations and signer latency move; nothing else does", async () => {
    const r = await rig(hsm);
    for (const i of [1, 2, 3]) await r.enqueue(`ok-${i}`, BigInt(i) * 1_000_000n);
    expect(await r.value("usdc_mint_settlements_open", { ...CHAIN, state: "PENDING" })).toBe(3);
    expect(await r.value("usdc_mint_settlement_oldest_unsettled_age_seconds", CHAIN)).toBe(0);
    expect(await r.value("usdc_mint_settlement_sender", CHAIN)).toBe(0);

    await r.clock.advance(30_000);
    expect(await r.value("usdc_mint_settlement_oldest_unsettled_age_seconds", CHAIN)).toBe(30);
    expect(await r.worker.tick()).toMatchObject({ signed: 3 });
    expect(await r.value("usdc_mint_settlement_sender", CHAIN)).toBe(1);
    expect(await r.value("usdc_mint_settlements_open", { ...CHAIN, state: "PENDING" })).toBe(0);
    expect(await r.value("usdc_mint_settlements_open", { ...CHAIN, state: "SUBMITTED" })).toBe(3);
    expect(await r.value("usdc_mint_settlement_signer_seconds_count", { signer: "pkcs11", outcome: "ok" })).toBe(3);
    expect(await r.value("usdc_mint_settlement_seconds_count", CHAIN)).toBe(0);

    await r.clock.advance(12_000);
    expect(await r.value("usdc_mint_settlement_oldest_unsettled_age_seconds", CHAIN)).toBe(42);
    expect(await r.worker.tick()).toMatchObject({ confirmed: 3 });
    // Each took 42 s on the clock from enqueue to CONFIRMED: all in the 60 s bucket, none in the 30 s one.
    expect(await r.value("usdc_mint_settlement_seconds_count", CHAIN)).toBe(3);
    expect(await r.value("usdc_mint_settlement_seconds_sum", CHAIN)).toBe(126);
    expect(await r.value("usdc_mint_settlement_seconds_bucket", { ...CHAIN, le: "30" })).toBe(0);
    expect(await r.value("usdc_mint_settlement_seconds_bucket", { ...CHAIN, le: "60" })).toBe(3);
    const depths = r.outbox.list().reduce((sum, s) => sum + s.confirmations, 0);
    expect(depths).toBeGreaterThanOrEqual(3);
    expect(await r.value("usdc_mint_settlement_confirmations_count", CHAIN)).toBe(3);
    expect(await r.value("usdc_mint_settlement_confirmations_sum", CHAIN)).toBe(depths);
    expect(await r.value("usdc_mint_settlements_open", { ...CHAIN, state: "SUBMITTED" })).toBe(0);
    expect(await r.value("usdc_mint_settlement_oldest_unsettled_age_seconds", CHAIN)).toBe(0);

    // Another pass finds nothing to do and counts nothing twice.
    await r.worker.tick();
    expect(await r.value("usdc_mint_settlement_seconds_count", CHAIN)).toBe(3);
    for (const reason of ["reverted", "dropped"]) expect(await r.value("usdc_mint_settlement_failures_total", { ...CHAIN, reason })).toBe(0);
    for (const name of ["fee_bumps", "reorgs", "rebroadcasts", "pass_failures"]) expect(await r.value(`usdc_mint_settlement_${name}_total`, CHAIN), name).toBe(0);
    expect(await r.value("usdc_mint_settlement_signer_seconds_count", { signer: "pkcs11", outcome: "error" })).toBe(0);
    expect((await expectChainMatchesOutbox(node, r.setup, r.outbox.list(), hsm)).problems).toEqual([]);
  });

  it("a revert (the minter allowance exhausted on-chain) counts one failure with reason reverted, once", async () => {
    const r = await rig(hsm, { allowance: 5_000_000n });
    await r.enqueue("fits", 3_000_000n);
    await r.enqueue("too-much", 3_000_000n);
    await r.worker.tick();
    await r.clock.advance(5_000);
    expect(await r.worker.tick()).toMatchObject({ confirmed: 1, failed: 1 });
    await r.worker.tick();
    expect(r.outbox.list().map((s) => s.state)).toEqual(["CONFIRMED", "FAILED"]);
    expect(await r.value("usdc_mint_settlement_failures_total", { ...CHAIN, reason: "reverted" })).toBe(1);
    expect(await r.value("usdc_mint_settlement_failures_total", { ...CHAIN, reason: "dropped" })).toBe(0);
    expect(await r.value("usdc_mint_settlement_seconds_count", CHAIN)).toBe(1);
    expect(await r.value("usdc_mint_settlement_seconds_sum", CHAIN)).toBe(5);
    expect(await r.value("usdc_mint_settlements_open", { ...CHAIN, state: "SUBMITTED" })).toBe(0);
    expect(await r.setup.chain.totalSupply()).toBe(3_000_000n);
  });

  it("a stuck transaction: no bump before the fee-bump timeout on the clock, one after; the age gauge shows the wait; the replacement settles", async () => {
    const r = await rig(hsm, { feeBumpTimeoutMs: 60_000 });
    await node.testClient.setAutomine(false);
    try {
      await r.enqueue("stuck", 4_000_000n);
      expect(await r.worker.tick()).toMatchObject({ signed: 1 });
      await r.clock.advance(59_000);
      await r.worker.tick();
      expect(await r.value("usdc_mint_settlement_fee_bumps_total", CHAIN)).toBe(0);
      await r.clock.advance(1_000);
      await r.worker.tick();
      expect(await r.value("usdc_mint_settlement_fee_bumps_total", CHAIN)).toBe(1);
      expect(r.outbox.list()[0]?.txs).toHaveLength(2);
      expect(await r.value("usdc_mint_settlement_signer_seconds_count", { signer: "pkcs11", outcome: "ok" })).toBe(2);
      expect(await r.value("usdc_mint_settlement_oldest_unsettled_age_seconds", CHAIN)).toBe(60);
      expect(await r.value("usdc_mint_settlements_open", { ...CHAIN, state: "SUBMITTED" })).toBe(1);
      await node.testClient.setAutomine(true);
      await node.testClient.mine({ blocks: 1 });
      await r.clock.advance(3_000);
      expect(await r.worker.tick()).toMatchObject({ confirmed: 1 });
    } finally {
      await node.testClient.setAutomine(true);
    }
    expect(await r.value("usdc_mint_settlement_fee_bumps_total", CHAIN)).toBe(1);
    expect(await r.value("usdc_mint_settlement_seconds_sum", CHAIN)).toBe(63);
    expect(await r.value("usdc_mint_settlement_rebroadcasts_total", CHAIN)).toBe(0);
    expect((await expectChainMatchesOutbox(node, r.setup, r.outbox.list(), hsm)).problems).toEqual([]);
  });

  it("a reorg before the depth (evm_snapshot/evm_revert) counts one reorg and one rebroadcast of the same bytes; CONFIRMED once", async () => {
    const r = await rig(hsm, { confirmations: 3 });
    const snapshot = await node.testClient.snapshot();
    await r.enqueue("reorg", 2_000_000n);
    await r.worker.tick();
    await r.worker.tick();
    expect(r.outbox.list()[0]?.blockNumber).not.toBeNull();
    await node.testClient.revert({ id: snapshot });
    await r.clock.advance(1_000);
    await r.worker.tick();
    expect(await r.value("usdc_mint_settlement_reorgs_total", CHAIN)).toBe(1);
    expect(await r.value("usdc_mint_settlement_rebroadcasts_total", CHAIN)).toBe(1);
    await node.testClient.mine({ blocks: 2 });
    expect(await r.worker.tick()).toMatchObject({ confirmed: 1 });
    expect(r.outbox.list()[0]?.txs).toHaveLength(1);
    expect(await r.value("usdc_mint_settlement_seconds_count", CHAIN)).toBe(1);
    expect(await r.value("usdc_mint_settlement_confirmations_sum", CHAIN)).toBe(3);
    expect(await r.value("usdc_mint_settlement_reorgs_total", CHAIN)).toBe(1);
    expect(await r.value("usdc_mint_settlement_fee_bumps_total", CHAIN)).toBe(0);
  });

  it("dropped: another transaction of the key takes the nonce; one failure with reason dropped", async () => {
    const key = generatePrivateKey();
    const r = await rig(new DevKeySigner(key));
    await node.testClient.setAutomine(false);
    try {
      await r.enqueue("dropped", 1_000_000n);
      await r.worker.tick();
      const ours = r.outbox.list()[0]?.txs[0];
      // The same key sends itself 0 ETH with the same nonce and far higher fees: the node replaces ours.
      const account = privateKeyToAccount(key);
      const wallet = createWalletClient({ chain: node.chain, transport: http(node.url), account });
      await wallet.sendTransaction({ to: account.address, value: 0n, nonce: ours?.nonce, gas: 21_000n, maxFeePerGas: parseGwei("500"), maxPriorityFeePerGas: parseGwei("100") });
      await node.testClient.mine({ blocks: 1 });
      await r.clock.advance(7_000);
      // Dropped only on proof: the nonce used deep enough with ours unknown, on two passes a poll interval apart.
      expect(await r.worker.tick()).toMatchObject({ failed: 0 });
      expect(await r.value("usdc_mint_settlement_failures_total", { ...CHAIN, reason: "dropped" })).toBe(0);
      await r.clock.advance(1_000);
      expect(await r.worker.tick()).toMatchObject({ failed: 1 });
    } finally {
      await node.testClient.setAutomine(true);
    }
    expect(r.outbox.list()[0]).toMatchObject({ state: "FAILED", lastError: expect.stringMatching(/^dropped: nonce/) });
    expect(await r.value("usdc_mint_settlement_failures_total", { ...CHAIN, reason: "dropped" })).toBe(1);
    expect(await r.value("usdc_mint_settlement_failures_total", { ...CHAIN, reason: "reverted" })).toBe(0);
    expect(await r.value("usdc_mint_settlement_seconds_count", CHAIN)).toBe(0);
    expect(await r.value("usdc_mint_settlement_signer_seconds_count", { signer: "dev-key", outcome: "ok" })).toBe(1);
  });

  it("a failed pass (the node unreachable) is counted; the pass counter moves only on the running loop's failures", async () => {
    const registry = new Registry();
    const metrics = new SettlementMetrics(registry, { chains: [BLOCKCHAIN], signer: "pkcs11" });
    const clock = new FakeClock();
    const setup = await deployForSigner(node, hsm, { rpcUrl: "http://127.0.0.1:1" });
    const outbox = new MemorySettlementOutbox();
    await outbox.enqueue({ settlementId: "down", blockchain: BLOCKCHAIN, amountMicros: 1n, createWallMs: clock.wallMs() });
    const errors: unknown[] = [];
    const worker = newWorker({ chain: setup.chain, outbox, lock: lockFor(new Map()), clock, metrics: metrics.chain(BLOCKCHAIN), onError: (e) => errors.push(e) });
    worker.start();
    try {
      // The refused connections are real I/O: poll for them, moving the fake clock past each backoff.
      await until(async () => {
        await clock.advance(1_000);
        return errors.length >= 2;
      }, 10_000);
    } finally {
      await worker.stop();
    }
    const failures = sampleValue(parsePromText(await registry.metrics()), "usdc_mint_settlement_pass_failures_total", CHAIN);
    expect(errors.length).toBeGreaterThanOrEqual(2);
    expect(failures).toBe(errors.length);
  });
});
