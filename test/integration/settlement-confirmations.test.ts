/**
 * Confirmation depth on a node that mines on an interval (no automine):
 * a settlement is CONFIRMED only once its block is 3 deep.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DevKeySigner } from "../../src/adapters/evm/signer-dev-key.js";
import type { Settlement } from "../../src/domain/settlement/ports.js";
import { generatePrivateKey } from "viem/accounts";
import { startEvmNode, type EvmNode } from "../support/evm/evm-node.js";
import { deployForSigner, enqueueMany, expectChainMatchesOutbox, lockFor, newOutbox, newWorker, until } from "../support/evm/settlement-fixture.js";

let node: EvmNode;
const signer = new DevKeySigner(generatePrivateKey());

beforeAll(async () => {
  node = await startEvmNode({ intervalMs: 250 });
}, 60_000);

afterAll(async () => {
  await node?.stop();
});

describe("confirmation depth 3 with interval mining", () => {
  it("the running worker reports 1 and 2 confirmations as SUBMITTED and CONFIRMED only at 3", async () => {
    const setup = await deployForSigner(node, signer);
    const { outbox, locks } = newOutbox();
    await enqueueMany(outbox, 3, "interval");
    const seen = new Map<string, Set<string>>();
    const observe = (): void => {
      for (const s of outbox.list()) {
        const set = seen.get(s.settlementId) ?? new Set();
        set.add(`${s.state}:${s.confirmations}`);
        seen.set(s.settlementId, set);
      }
    };
    const worker = newWorker({ chain: setup.chain, outbox, lock: lockFor(locks), confirmations: 3, pollIntervalMs: 10 });
    worker.start();
    try {
      await until(() => {
        observe();
        return outbox.list().every((s) => s.state === "CONFIRMED");
      }, 30_000);
    } finally {
      await worker.stop();
    }
    for (const s of outbox.list()) {
      const states = seen.get(s.settlementId) ?? new Set();
      expect([...states]).toEqual(expect.arrayContaining(["SUBMITTED:1", "SUBMITTED:2"]));
      expect([...states].some((x) => /^CONFIRMED:[0-2]$/.test(x))).toBe(false);
      expect(s.confirmations).toBeGreaterThanOrEqual(3);
    }
    const { problems } = await expectChainMatchesOutbox(node, setup, outbox.list(), signer);
    expect(problems).toEqual([]);
  });

  it("block by block (interval mining paused, blocks mined by hand): SUBMITTED at depths 0, 1, 2; CONFIRMED at 3", async () => {
    const setup = await deployForSigner(node, signer);
    await node.testClient.setIntervalMining({ interval: 0 });
    try {
      const { outbox, locks } = newOutbox();
      await enqueueMany(outbox, 1, "manual");
      const worker = newWorker({ chain: setup.chain, outbox, lock: lockFor(locks), confirmations: 3 });
      const state = (): Pick<Settlement, "state" | "confirmations"> => {
        const s = outbox.list()[0] as Settlement;
        return { state: s.state, confirmations: s.confirmations };
      };
      expect(await worker.tick()).toMatchObject({ signed: 1 });
      await worker.tick();
      expect(state()).toEqual({ state: "SUBMITTED", confirmations: 0 });
      for (const depth of [1, 2]) {
        await node.testClient.mine({ blocks: 1 });
        await worker.tick();
        expect(state()).toEqual({ state: "SUBMITTED", confirmations: depth });
      }
      await node.testClient.mine({ blocks: 1 });
      expect(await worker.tick()).toMatchObject({ confirmed: 1 });
      expect(state()).toEqual({ state: "CONFIRMED", confirmations: 3 });
    } finally {
      await node.testClient.setIntervalMining({ interval: 250 });
    }
  });
});
