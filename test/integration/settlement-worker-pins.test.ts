/**
 * Single lines of the settlement worker whose change no other test noticed
 * (found by mutating them one at a time), pinned with a chain double on a
 * fake clock: what each line protects is stated in its test's name.
 */
import { describe, expect, it } from "vitest";
import { InProcessSenderLock, MemorySettlementOutbox } from "../../src/settlement/outbox-memory.js";
import { ChainUnavailableError } from "../../src/settlement/ports.js";
import { SettlementMisconfiguredError, SettlementWorker, type SettlementWorkerOptions } from "../../src/settlement/worker.js";
import { ChainDouble } from "../support/chain-double.js";
import { FakeClock } from "../support/fake-clock.js";

function rig(overrides: Partial<SettlementWorkerOptions> = {}): { chain: ChainDouble; outbox: MemorySettlementOutbox; clock: FakeClock; worker: () => SettlementWorker; enqueue(id: string): Promise<void> } {
  const chain = new ChainDouble();
  const outbox = new MemorySettlementOutbox();
  const clock = new FakeClock();
  return {
    chain,
    outbox,
    clock,
    // Each worker its own lock table: the first one's process is gone, its lock with it.
    worker: () => new SettlementWorker({ chain, outbox, lock: new InProcessSenderLock(new Map()), clock, confirmations: 1, pollIntervalMs: 1_000, ...overrides }),
    enqueue: (id) => outbox.enqueue({ settlementId: id, blockchain: "ETHEREUM", amountMicros: 1_000_000n, createWallMs: clock.wallMs() }),
  };
}

describe("settlement worker: lines pinned", () => {
  it("the next nonce counts what the outbox signed, not only what the chain mined: a restarted sender with transactions still in the pool takes the next free nonce", async () => {
    const r = rig();
    await r.enqueue("a");
    await r.enqueue("b");
    const first = r.worker();
    expect((await first.tick()).signed).toBe(2);
    // Nothing mined yet (the pool holds both); a new sender (a restart, a failover) derives the nonce afresh.
    await r.enqueue("c");
    const second = r.worker();
    expect((await second.tick()).signed).toBe(1);
    expect(r.outbox.list().map((s) => s.txs[0]?.nonce)).toEqual([0, 1, 2]);
  });

  it("an unknown transaction whose nonce is free is re-sent at most once per rebroadcast interval", async () => {
    const r = rig({ rebroadcastAfterMs: 2_000 });
    await r.enqueue("lost");
    const w = r.worker();
    await w.tick();
    expect(r.chain.sent).toHaveLength(1);
    for (let i = 0; i < 3; i++) {
      await r.clock.advance(500);
      await w.tick();
    }
    expect(r.chain.sent).toHaveLength(1);
    await r.clock.advance(500);
    await w.tick();
    expect(r.chain.sent).toHaveLength(2);
    expect(r.chain.sent[1]).toBe(r.chain.sent[0]);
    expect(r.outbox.list()[0]?.attempts).toBe(2);
  });
});

describe("settlement worker: more lines pinned", () => {
  it("a reorg clears the settlement's block and is counted once, however many passes it stays out", async () => {
    let reorgs = 0;
    const metrics = { finished() {}, feeBumped() {}, reorged: () => void reorgs++, rebroadcast() {}, passFailed() {} };
    const r = rig({ confirmations: 3, metrics });
    await r.enqueue("reorged");
    const w = r.worker();
    await w.tick();
    const hash = r.outbox.list()[0]?.txs[0]?.hash as `0x${string}`;
    r.chain.consumedAt.push(101n);
    r.chain.head = 101n;
    r.chain.answer(hash, { kind: "mined", blockNumber: 101n, blockHash: `0x${"12".repeat(32)}`, confirmations: 1, status: "success" }, { kind: "unknown" });
    await w.tick();
    expect(r.outbox.list()[0]).toMatchObject({ minedHash: hash, blockNumber: 101n, confirmations: 1 });
    r.chain.consumedAt.pop(); // the block is gone: the nonce is free again
    for (let i = 0; i < 3; i++) {
      await r.clock.advance(1_000);
      await w.tick();
    }
    expect(r.outbox.list()[0]).toMatchObject({ state: "SUBMITTED", minedHash: null, blockNumber: null, confirmations: 0 });
    expect(reorgs).toBe(1);
  });

  it("a fee bump raises both fees by at least 12.5% (nodes want 10%), and the fee cap never falls below the tip", async () => {
    const r = rig({ feeBumpTimeoutMs: 60_000 });
    r.chain.fees = { maxFeePerGas: 1_000_001n, maxPriorityFeePerGas: 100_001n };
    await r.enqueue("stuck");
    const w = r.worker();
    await w.tick();
    const first = r.outbox.list()[0]?.txs[0];
    r.chain.answer(first?.hash as `0x${string}`, { kind: "pending" });
    r.chain.fees = { maxFeePerGas: 10n, maxPriorityFeePerGas: 10n };
    await r.clock.advance(60_000);
    await w.tick();
    const bumped = r.outbox.list()[0]?.txs[1];
    // ceil(x / 8) on top: 1_000_001 → 1_125_002 (10% would be 1_100_001); 100_001 → 112_502.
    expect([bumped?.maxFeePerGas, bumped?.maxPriorityFeePerGas]).toEqual([1_125_002n, 112_502n]);
    // The chain now asks a tip above the bumped fee cap: the cap is raised to the tip.
    r.chain.answer(bumped?.hash as `0x${string}`, { kind: "pending" });
    r.chain.fees = { maxFeePerGas: 10n, maxPriorityFeePerGas: 5_000_000n };
    await r.clock.advance(60_000);
    await w.tick();
    const again = r.outbox.list()[0]?.txs[2];
    expect([again?.maxFeePerGas, again?.maxPriorityFeePerGas]).toEqual([5_000_000n, 5_000_000n]);
  });

  it("a broadcast the node refuses is recorded in the settlement's last error; an unreachable node too, and the pass fails", async () => {
    const r = rig();
    await r.enqueue("refused");
    r.chain.broadcastAnswer = { kind: "rejected", reason: "replacement transaction underpriced" };
    const w = r.worker();
    await w.tick();
    expect(r.outbox.list()[0]).toMatchObject({ state: "SUBMITTED", attempts: 1, lastError: "node refused the transaction: replacement transaction underpriced" });
    await r.enqueue("unreachable");
    r.chain.broadcastAnswer = new ChainUnavailableError("ETHEREUM node unreachable (eth_sendRawTransaction): fetch failed");
    await expect(w.tick()).rejects.toThrow(/unreachable/);
    expect(r.outbox.list()[1]).toMatchObject({ state: "SUBMITTED", attempts: 1, lastError: "ETHEREUM node unreachable (eth_sendRawTransaction): fetch failed" });
  });

  it("at most maxInFlight settlements are signed and not final at once", async () => {
    const r = rig({ maxInFlight: 2 });
    for (const id of ["a", "b", "c"]) await r.enqueue(id);
    const w = r.worker();
    expect((await w.tick()).signed).toBe(2);
    await r.clock.advance(500);
    expect((await w.tick()).signed).toBe(0);
    expect(r.outbox.list().map((s) => s.state)).toEqual(["SUBMITTED", "SUBMITTED", "PENDING"]);
  });

  it("a sender that lost the lock to another stands by and signs nothing", async () => {
    const r = rig();
    const table = new Map();
    const mine = new InProcessSenderLock(table);
    const w = new SettlementWorker({ chain: r.chain, outbox: r.outbox, lock: mine, clock: r.clock, confirmations: 1, pollIntervalMs: 1_000 });
    expect((await w.tick()).role).toBe("sender");
    table.clear();
    expect(await new InProcessSenderLock(table).tryAcquire("ETHEREUM")).toBe(true);
    await r.enqueue("not-mine");
    expect(await w.tick()).toMatchObject({ role: "standby", signed: 0 });
    expect(r.chain.signed).toHaveLength(0);
  });

  it("the preflight runs when the worker becomes the sender (again), and every minute while it stays one", async () => {
    const r = rig();
    const table = new Map();
    const w = new SettlementWorker({ chain: r.chain, outbox: r.outbox, lock: new InProcessSenderLock(table), clock: r.clock, confirmations: 1, pollIntervalMs: 1_000 });
    await w.tick();
    expect(r.chain.preflights).toBe(1);
    await r.clock.advance(59_000);
    await w.tick();
    expect(r.chain.preflights).toBe(1);
    await r.clock.advance(1_000);
    r.chain.preflightProblem = "ETHEREUM: the treasury 0x… is blacklisted by the token";
    await expect(w.tick()).rejects.toThrow(SettlementMisconfiguredError);
    expect(r.chain.preflights).toBe(2);
    r.chain.preflightProblem = null;
    await w.tick();
    expect(r.chain.preflights).toBe(3);
    // Lose the lock and win it back: checked again at once.
    table.clear();
    await r.clock.advance(1_000);
    expect((await w.tick()).role).toBe("standby");
    await w.tick();
    expect(r.chain.preflights).toBe(4);
  });
});
