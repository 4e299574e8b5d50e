/**
 * A settlement cancelled by ReconcileMint while its transaction is being
 * signed is never broadcast: the worker signs, the outbox refuses to record
 * the bytes (no longer PENDING), and the bytes are dropped unsent. On memory
 * and PostgreSQL, against a real node, with a signer that waits on a latch
 * while ReconcileMint runs: the cancelled mint's bytes never reach the node,
 * its nonce goes to the next settlement, and the chain shows only that one.
 */
import { generatePrivateKey } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EcdsaSignature, Hex, SignedTx, Signer } from "../../src/settlement/ports.js";
import { InProcessSenderLock } from "../../src/settlement/outbox-memory.js";
import { DevKeySigner } from "../../src/settlement/signer-dev-key.js";
import { SettlementWorker } from "../../src/settlement/worker.js";
import { startEvmNode, type EvmNode } from "../support/evm/evm-node.js";
import { deployForSigner, mintsOnChain, until } from "../support/evm/settlement-fixture.js";
import { SETTLING_STORES, settlingMint } from "../support/settlement-stores.js";

let node: EvmNode;

beforeAll(async () => {
  node = await startEvmNode();
}, 60_000);

afterAll(async () => {
  await node?.stop();
});

/** A signer whose next signature waits until `release()`; `entered` resolves when it starts waiting. */
class LatchedSigner implements Signer {
  readonly kind = "dev-key" as const;
  readonly address;
  private latch: { entered: () => void; gate: Promise<void> } | null = null;
  private open: () => void = () => undefined;

  constructor(private readonly inner: DevKeySigner) {
    this.address = inner.address;
  }

  /** Arms the latch for the next signature; resolves once that signature is waiting. */
  arm(): Promise<void> {
    return new Promise((entered) => {
      const gate = new Promise<void>((r) => {
        this.open = r;
      });
      this.latch = { entered, gate };
    });
  }

  release(): void {
    this.open();
  }

  async signDigest(digest: Hex): Promise<EcdsaSignature> {
    const latch = this.latch;
    if (latch !== null) {
      this.latch = null;
      latch.entered();
      await latch.gate;
    }
    return this.inner.signDigest(digest);
  }

  async close(): Promise<void> {}
}

describe.each(SETTLING_STORES)("a settlement cancelled while it is signed (%s store)", (_name, make) => {
  it("is never broadcast: the bytes never reach the node, the nonce goes to the next settlement, the chain shows only that one", async () => {
    const s = await make();
    try {
      const signer = new LatchedSigner(new DevKeySigner(generatePrivateKey()));
      const setup = await deployForSigner(node, signer);
      const signed: SignedTx[] = [];
      const signMint = setup.chain.signMint.bind(setup.chain);
      setup.chain.signMint = async (amount, nonce, fees) => {
        const tx = await signMint(amount, nonce, fees);
        signed.push(tx);
        return tx;
      };
      const worker = new SettlementWorker({ chain: setup.chain, outbox: s.outbox, lock: new InProcessSenderLock(new Map()), clock: s.clock, confirmations: 1, pollIntervalMs: 20 });

      const cancelled = await settlingMint(s, "latch", 7_000_000n);
      const waiting = signer.arm();
      const pass = worker.tick();
      await waiting;
      // The worker is inside signDigest for the PENDING settlement: ReconcileMint cancels it now.
      const reversed = await s.store.reverseMint(cancelled.mintId, "wrong account", s.clock.wallMs(), { deadlineMs: Number.POSITIVE_INFINITY });
      expect(reversed.ok).toBe(true);
      signer.release();
      expect(await pass).toMatchObject({ signed: 0 });
      expect(signed).toHaveLength(1);
      const dropped = signed[0] as SignedTx;
      expect(await setup.chain.lookup(dropped.hash)).toEqual({ kind: "unknown" });
      expect(await s.outbox.get(cancelled.mintId)).toBeNull();

      const next = await settlingMint(s, "latch", 2_000_000n);
      expect(await worker.tick()).toMatchObject({ signed: 1 });
      expect((await s.outbox.get(next.mintId))?.txs.map((t) => t.nonce)).toEqual([dropped.nonce]);
      await until(async () => (await worker.tick()).confirmed === 1, 20_000);
      expect((await s.outbox.get(next.mintId))?.state).toBe("CONFIRMED");
      expect(await setup.chain.lookup(dropped.hash)).toEqual({ kind: "unknown" });
      const onChain = await mintsOnChain(node, setup);
      expect([...onChain.values()]).toEqual([[2_000_000n]]);
      expect(await setup.chain.totalSupply()).toBe(2_000_000n);
      expect(await s.store.getBalance("latch")).toBe(2_000_000n);
      expect((await s.store.getMint(cancelled.mintId))?.status).toBe("REVERSED");
    } finally {
      await s.close();
    }
  }, 60_000);
});
