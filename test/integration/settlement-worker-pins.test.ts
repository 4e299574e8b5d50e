/**
 * Single lines of the settlement worker whose change no other test noticed
 * (found by mutating them one at a time), pinned with a chain double on a
 * fake clock: what each line protects is stated in its test's name.
 */
import { describe, expect, it } from "vitest";
import { InProcessSenderLock, MemorySettlementOutbox } from "../../src/settlement/outbox-memory.js";
import { SettlementWorker, type SettlementWorkerOptions } from "../../src/settlement/worker.js";
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
