/**
 * Gas management against the real local node (hardhat's EDR), driven with the
 * node's own controls: `hardhat_setBalance` drains the signer,
 * `hardhat_setNextBlockBaseFeePerGas` + `evm_mine` lifts the base fee above
 * the ceiling, and a transaction of the same key parked in the pool makes the
 * worker's own transaction an underpriced replacement. The worker is driven
 * pass by pass (`tick()`), so nothing depends on timing.
 */
import { parseGwei, type Hex } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SettlementMetrics } from "../../src/observability/settlement-metrics.js";
import { EvmChainSettlement } from "../../src/settlement/chain-evm.js";
import { DevKeySigner } from "../../src/settlement/signer-dev-key.js";
import type { Settlement } from "../../src/settlement/ports.js";
import type { SettlementWorker, SettlementWorkerOptions } from "../../src/settlement/worker.js";
import { startEvmNode, type EvmNode } from "../support/evm/evm-node.js";
import { BLOCKCHAIN, deployForSigner, enqueueMany, lockFor, newOutbox, newWorker, type TokenSetup } from "../support/evm/settlement-fixture.js";
import { FakeClock } from "../support/fake-clock.js";
import { parsePromText, sampleValue } from "../support/prom-text.js";

let node: EvmNode;

beforeAll(async () => {
  node = await startEvmNode();
}, 60_000);

afterAll(async () => {
  await node?.stop();
});

const GAS_LIMIT = 150_000n;

interface Rig {
  readonly setup: TokenSetup;
  readonly signer: DevKeySigner;
  readonly key: Hex;
  readonly outbox: ReturnType<typeof newOutbox>["outbox"];
  readonly worker: SettlementWorker;
  readonly registry: Registry;
  metric(name: string, labels?: Record<string, string>): Promise<number>;
}

/** A fresh key and token (the key funded with 1000 ETH), `n` settlements enqueued, a worker with `options` (not started: the test drives `tick()`). */
async function rig(n: number, prefix: string, options: Partial<SettlementWorkerOptions> = {}): Promise<Rig> {
  const key = generatePrivateKey();
  const signer = new DevKeySigner(key);
  const setup = await deployForSigner(node, signer);
  const { outbox, locks } = newOutbox();
  await enqueueMany(outbox, n, prefix);
  const registry = new Registry();
  const metrics = new SettlementMetrics(registry, { chains: [BLOCKCHAIN], signer: "dev-key" });
  const worker = newWorker({ chain: setup.chain, outbox, lock: lockFor(locks), metrics: metrics.chain(BLOCKCHAIN), ...options });
  return {
    setup,
    signer,
    key,
    outbox,
    worker,
    registry,
    async metric(name, labels = {}) {
      return sampleValue(parsePromText(await registry.metrics()), name, { blockchain: BLOCKCHAIN, ...labels });
    },
  };
}

/** Sets the base fee of the next block and mines it, so the latest block (where fees are suggested from) has it. */
async function baseFee(wei: bigint): Promise<void> {
  await node.testClient.request({ method: "hardhat_setNextBlockBaseFeePerGas", params: [`0x${wei.toString(16)}`] } as never);
  await node.testClient.request({ method: "evm_mine", params: [] } as never);
}

const signed = (list: readonly Settlement[]): number => list.filter((s) => s.txs.length > 0).length;

describe("gas: the signer's balance floor", () => {
  it("below the floor nothing is signed, the chain is unhealthy with the reason, PENDING settlements say why; topped up, all settle", async () => {
    const r = await rig(3, "floor", { signerBalanceFloorWei: parseGwei("2000000") /* 0.002 ETH */ });
    await node.testClient.setBalance({ address: r.signer.address, value: parseGwei("1000000") /* 0.001 ETH */ });
    for (let i = 0; i < 3; i++) await r.worker.tick();

    const list = r.outbox.list();
    expect(signed(list)).toBe(0);
    expect(list.every((s) => s.state === "PENDING" && s.waitReason.startsWith("waiting for funds: signer balance 1000000000000000 wei is below the floor of 2000000000000000 wei"))).toBe(true);
    expect(await node.publicClient.getTransactionCount({ address: r.signer.address })).toBe(0);
    const status = r.worker.status();
    expect(status.healthy).toBe(false);
    expect(status.lastError).toContain("below the floor");
    expect(await r.metric("usdc_mint_settlement_signer_balance_gwei")).toBe(1_000_000);
    expect(await r.metric("usdc_mint_settlement_signer_balance_floor_gwei")).toBe(2_000_000);
    expect(await r.metric("usdc_mint_settlements_waiting", { reason: "signer_balance" })).toBe(3);

    await node.testClient.setBalance({ address: r.signer.address, value: parseGwei("1000000000") /* 1 ETH */ });
    for (let i = 0; i < 3 && !r.outbox.list().every((s) => s.state === "CONFIRMED"); i++) await r.worker.tick();
    expect(r.outbox.list().map((s) => [s.state, s.waitReason])).toEqual([
      ["CONFIRMED", ""],
      ["CONFIRMED", ""],
      ["CONFIRMED", ""],
    ]);
    expect(r.worker.status()).toMatchObject({ healthy: true, lastError: "", waitReason: "" });
    expect(await r.metric("usdc_mint_settlements_waiting", { reason: "signer_balance" })).toBe(0);
  });

  it("the balance is read while idle: an empty queue still reports a drained signer", async () => {
    const r = await rig(0, "idle");
    await node.testClient.setBalance({ address: r.signer.address, value: 0n });
    await r.worker.tick();
    expect(r.worker.status()).toMatchObject({ healthy: false, signerBalanceWei: 0n });
    // The derived floor: 10 transactions at the fee it would sign now.
    const fees = await r.setup.chain.suggestFees();
    expect(await r.metric("usdc_mint_settlement_signer_balance_floor_gwei")).toBeCloseTo(Number(10n * GAS_LIMIT * fees.maxFeePerGas) / 1e9, 6);
  });

  it("nothing is signed that the signer cannot pay for: a balance for one transaction's worst case signs one", async () => {
    const r = await rig(3, "pay", { signerBalanceFloorWei: 0n });
    const fees = await r.setup.chain.suggestFees();
    const worst = GAS_LIMIT * fees.maxFeePerGas;
    await node.testClient.setBalance({ address: r.signer.address, value: worst + worst / 10n });
    await r.worker.tick();
    const list = r.outbox.list();
    expect(signed(list)).toBe(1);
    expect(list.filter((s) => s.state === "PENDING").every((s) => s.waitReason.startsWith("waiting for funds: the signer's balance cannot pay for another transaction"))).toBe(true);
    expect(await r.metric("usdc_mint_settlements_waiting", { reason: "signer_balance" })).toBe(2);
    // The first one is mined (automine); what is left still cannot pay for a second.
    for (let i = 0; i < 3; i++) await r.worker.tick();
    expect(r.outbox.list().map((s) => s.state)).toEqual(["CONFIRMED", "PENDING", "PENDING"]);
    expect(await node.publicClient.getTransactionCount({ address: r.signer.address })).toBe(1);
  });
});

describe("gas: the fee ceiling", () => {
  it("a base fee above the ceiling holds settlements PENDING with the reason; once it covers base + tip, they are signed at min(suggested, ceiling)", async () => {
    const cap = parseGwei("50");
    const r = await rig(2, "cap", { maxFeePerGasWei: cap });
    await baseFee(parseGwei("60"));
    for (let i = 0; i < 2; i++) await r.worker.tick();
    let list = r.outbox.list();
    expect(signed(list)).toBe(0);
    expect(list.every((s) => s.state === "PENDING" && /^waiting for the fee ceiling: base fee 60000000000 wei \+ tip \d+ wei is above maxFeePerGas 50000000000 wei$/.test(s.waitReason))).toBe(true);
    expect(await r.metric("usdc_mint_settlements_waiting", { reason: "fee_ceiling" })).toBe(2);
    expect(r.worker.status().healthy).toBe(true); // waiting on fees is no outage

    // Base 30 gwei: suggested 2 × 30 + tip is above the ceiling, base + tip is not: signed at the ceiling.
    await baseFee(parseGwei("30"));
    await r.worker.tick();
    list = r.outbox.list();
    expect(list.map((s) => s.txs.map((t) => t.maxFeePerGas))).toEqual([[cap], [cap]]);
    expect(await r.metric("usdc_mint_settlements_waiting", { reason: "fee_ceiling" })).toBe(0);
    for (let i = 0; i < 3 && !r.outbox.list().every((s) => s.state === "CONFIRMED"); i++) await r.worker.tick();
    expect(r.outbox.list().map((s) => [s.state, s.waitReason])).toEqual([
      ["CONFIRMED", ""],
      ["CONFIRMED", ""],
    ]);
  });

  it("fee bumps of a stuck transaction stop at the ceiling", async () => {
    const cap = parseGwei("40");
    await baseFee(parseGwei("10"));
    const r = await rig(1, "bumpcap", { maxFeePerGasWei: cap, feeBumpTimeoutMs: 0 });
    await node.testClient.setAutomine(false);
    try {
      for (let i = 0; i < 15; i++) await r.worker.tick();
      const [s] = r.outbox.list();
      const fees = s?.txs.map((t) => t.maxFeePerGas) ?? [];
      expect(fees.length).toBeGreaterThan(2);
      expect(fees.every((f) => f <= cap)).toBe(true);
      // The last one is as close to the ceiling as a replacement can get: another 10% raise would pass it.
      const last = fees[fees.length - 1] ?? 0n;
      expect(last + (last + 9n) / 10n).toBeGreaterThan(cap);
      // So no further replacement is signed, and the settlement's status says why.
      const count = fees.length;
      for (let i = 0; i < 3; i++) await r.worker.tick();
      expect(r.outbox.list()[0]?.txs.length).toBe(count);
      expect(r.outbox.list()[0]?.lastError).toBe(`waiting for the fee ceiling: a replacement must raise maxFeePerGas ${last} wei by 10%, above the ceiling of ${cap} wei`);
      await node.testClient.mine({ blocks: 1 });
    } finally {
      await node.testClient.setAutomine(true);
    }
    for (let i = 0; i < 3 && r.outbox.list()[0]?.state !== "CONFIRMED"; i++) await r.worker.tick();
    expect(r.outbox.list()[0]?.state).toBe("CONFIRMED");
  });
});

describe("gas: refused at broadcast", () => {
  it("an underpriced replacement is classified and bumped (never the same bytes again), within the ceiling; without room it waits", async () => {
    await baseFee(parseGwei("10"));
    const cap = parseGwei("60");
    const r = await rig(1, "underpriced", { maxFeePerGasWei: cap });
    await node.testClient.setAutomine(false);
    try {
      // The same key's transaction at nonce 0 with a high tip waits in the pool: the worker's nonce 0 is an underpriced replacement.
      const account = privateKeyToAccount(r.key);
      const parked = await account.signTransaction({ type: "eip1559", chainId: node.chainId, nonce: 0, to: account.address, value: 0n, gas: 21_000n, maxFeePerGas: parseGwei("50"), maxPriorityFeePerGas: parseGwei("5") });
      await node.publicClient.request({ method: "eth_sendRawTransaction", params: [parked] });

      await r.worker.tick();
      let [s] = r.outbox.list();
      expect(s?.state).toBe("SUBMITTED");
      expect(s?.lastError).toMatch(/^node refused the transaction \(underpriced\): .*replacement transaction underpriced/i);
      expect(await r.metric("usdc_mint_settlement_broadcast_refusals_total", { refusal: "underpriced" })).toBe(1);

      for (let i = 0; i < 30; i++) await r.worker.tick();
      [s] = r.outbox.list();
      const txs = s?.txs ?? [];
      expect(txs.length).toBeGreaterThan(5);
      // Each attempt carried new, higher fees: the refused bytes were never offered again.
      expect(s?.attempts).toBe(txs.length);
      expect(new Set(txs.map((t) => t.hash)).size).toBe(txs.length);
      expect(txs.every((t, i) => i === 0 || t.maxFeePerGas > (txs[i - 1]?.maxFeePerGas ?? 0n) || t.maxFeePerGas === cap)).toBe(true);
      expect(txs.every((t) => t.maxFeePerGas <= cap)).toBe(true);
      // The ceiling (60 gwei) lets the fee pass 110% of the parked 50 gwei, but the tip must pass 5.5 gwei too:
      // bumps go on while both can rise, then stop at the ceiling and wait.
      const settled = txs.length;
      for (let i = 0; i < 3; i++) await r.worker.tick();
      expect(r.outbox.list()[0]?.txs.length).toBe(settled);
      expect(r.outbox.list()[0]?.attempts).toBe(settled);
    } finally {
      await node.testClient.setAutomine(true);
    }
  });

  it("refused for insufficient funds: waits for funds without resending, then sends the same bytes once the signer is topped up", async () => {
    const key = generatePrivateKey();
    const inner = new DevKeySigner(key);
    // The balance drops between the worker's read and its broadcast (the one race a pass cannot see): drained while signing.
    let drained = false;
    const signer = {
      kind: inner.kind,
      address: inner.address,
      close: () => inner.close(),
      async signDigest(digest: Hex) {
        if (!drained) {
          drained = true;
          await node.testClient.setBalance({ address: inner.address, value: 0n });
        }
        return inner.signDigest(digest);
      },
    };
    const setup = await deployForSigner(node, signer);
    const { outbox, locks } = newOutbox();
    await enqueueMany(outbox, 2, "funds");
    const worker = newWorker({ chain: setup.chain, outbox, lock: lockFor(locks), rebroadcastAfterMs: 1 });
    await worker.tick();
    let [first, second] = outbox.list();
    expect(first?.state).toBe("SUBMITTED");
    expect(first?.lastError).toMatch(/^node refused the transaction \(insufficient-funds\): Sender doesn't have enough funds/);
    expect(second?.txs).toEqual([]); // the refusal stopped the pass's signing
    for (let i = 0; i < 3; i++) await worker.tick();
    [first, second] = outbox.list();
    expect(first?.attempts).toBe(1); // not offered again while the signer cannot pay
    expect(second?.waitReason).toMatch(/^waiting for funds: signer balance 0 wei/);
    await node.testClient.setBalance({ address: inner.address, value: parseGwei("1000000000") });
    for (let i = 0; i < 4 && !outbox.list().every((s) => s.state === "CONFIRMED"); i++) await worker.tick();
    [first, second] = outbox.list();
    expect([first?.state, second?.state]).toEqual(["CONFIRMED", "CONFIRMED"]);
    expect(first?.txs).toHaveLength(1); // the same signed bytes, sent again
    expect(first?.attempts).toBe(2);
  });

  it("an unknown refusal is reported and backs off exponentially instead of being offered again every rebroadcast interval", async () => {
    const key = generatePrivateKey();
    const signer = new DevKeySigner(key);
    const setup = await deployForSigner(node, signer);
    // Signed for another chain id: a refusal in no known class ("incompatible EIP-155 transaction").
    // The preflight is the real chain's (it would refuse the wrong id), everything else the misconfigured one's.
    const wrong = new EvmChainSettlement({ blockchain: BLOCKCHAIN, rpcUrl: node.url, chainId: node.chainId + 1, tokenAddress: setup.token, treasury: setup.treasury, gasLimit: GAS_LIMIT, requestTimeoutMs: 2_000 }, signer);
    const chain = Object.assign(Object.create(wrong) as EvmChainSettlement, { preflight: () => setup.chain.preflight() });
    const { outbox, locks } = newOutbox();
    await enqueueMany(outbox, 2, "unknown");
    const clock = new FakeClock();
    const notices: string[] = [];
    const registry = new Registry();
    const metrics = new SettlementMetrics(registry, { chains: [BLOCKCHAIN], signer: "dev-key" });
    const worker = newWorker({ chain, outbox, lock: lockFor(locks), clock, rebroadcastAfterMs: 50, metrics: metrics.chain(BLOCKCHAIN), onNotice: (m) => notices.push(m) });
    await worker.tick();
    expect(outbox.list()[0]?.lastError).toMatch(/^node refused the transaction \(unknown\): /);
    expect(outbox.list()[1]?.txs).toEqual([]); // the refusal stopped the pass's signing
    // Two simulated seconds, a pass every 50 ms: offered again at about 100, 300, 700 and 1500 ms, not 40 times.
    for (let i = 0; i < 40; i++) {
      await clock.advance(50);
      await worker.tick();
    }
    const attempts = outbox.list()[0]?.attempts ?? 0;
    expect(attempts).toBeGreaterThanOrEqual(3);
    expect(attempts).toBeLessThanOrEqual(6);
    expect(sampleValue(parsePromText(await registry.metrics()), "usdc_mint_settlement_broadcast_refusals_total", { blockchain: BLOCKCHAIN, refusal: "unknown" })).toBe(attempts);
    expect(notices.filter((n) => n.includes("(unknown)"))).toHaveLength(attempts);
    // Nothing new is signed behind the refused nonce; the PENDING one says why.
    expect(outbox.list()[1]?.txs).toEqual([]);
    expect(outbox.list()[1]?.waitReason).toMatch(/^waiting for an earlier transaction the node refused \(nonce 0, unknown\)/);
  });

  it("the node's wordings are classified: underpriced, below the base fee, insufficient funds, nonce too low; already known counts as accepted", async () => {
    await baseFee(parseGwei("10"));
    const key = generatePrivateKey();
    const signer = new DevKeySigner(key);
    const setup = await deployForSigner(node, signer);
    const chain = setup.chain;
    const fees = { maxFeePerGas: parseGwei("30"), maxPriorityFeePerGas: parseGwei("1") };

    const first = await chain.signMint(1n, 0, fees);
    expect(await chain.broadcast(first.raw)).toEqual({ kind: "accepted" });
    // Mined at once (automine): the same bytes again, or others with its nonce, are "Nonce too low".
    expect(await chain.broadcast(first.raw)).toMatchObject({ kind: "rejected", refusal: "nonce-too-low", reason: expect.stringMatching(/^Nonce too low\. Expected nonce/) });
    const low = await chain.signMint(2n, 0, fees);
    expect(await chain.broadcast(low.raw)).toMatchObject({ kind: "rejected", refusal: "nonce-too-low" });

    const belowBase = await chain.signMint(1n, 1, { maxFeePerGas: parseGwei("1"), maxPriorityFeePerGas: parseGwei("1") });
    expect(await chain.broadcast(belowBase.raw)).toMatchObject({ kind: "rejected", refusal: "underpriced" });

    await node.testClient.setBalance({ address: signer.address, value: 1000n });
    const poor = await chain.signMint(1n, 1, fees);
    expect(await chain.broadcast(poor.raw)).toMatchObject({ kind: "rejected", refusal: "insufficient-funds" });
    await node.testClient.setBalance({ address: signer.address, value: parseGwei("1000000000") });

    await node.testClient.setAutomine(false);
    try {
      const pooled = await chain.signMint(2n, 1, fees);
      expect(await chain.broadcast(pooled.raw)).toEqual({ kind: "accepted" });
      expect(await chain.broadcast(pooled.raw)).toEqual({ kind: "accepted" }); // "Known transaction: 0x…"
      const cheaper = await chain.signMint(3n, 1, { maxFeePerGas: parseGwei("31"), maxPriorityFeePerGas: parseGwei("1") });
      expect(await chain.broadcast(cheaper.raw)).toMatchObject({ kind: "rejected", refusal: "underpriced" });
      await node.testClient.mine({ blocks: 1 });
    } finally {
      await node.testClient.setAutomine(true);
    }
  });
});

describe("gas: what each settlement cost", () => {
  it("stores gasUsed × effectiveGasPrice from the receipt and sums it per chain in gwei", async () => {
    const r = await rig(2, "cost");
    for (let i = 0; i < 4 && !r.outbox.list().every((s) => s.state === "CONFIRMED"); i++) await r.worker.tick();
    const list = r.outbox.list();
    expect(list.every((s) => s.state === "CONFIRMED")).toBe(true);
    let total = 0n;
    for (const s of list) {
      const receipt = await node.publicClient.getTransactionReceipt({ hash: s.minedHash as Hex });
      const cost = receipt.gasUsed * receipt.effectiveGasPrice;
      expect(cost).toBeGreaterThan(0n);
      expect(s.costWei).toBe(cost);
      total += cost;
    }
    expect(await r.metric("usdc_mint_settlement_gas_cost_gwei_total")).toBeCloseTo(Number(total) / 1e9, 6);
  });
});
