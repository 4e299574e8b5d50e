/**
 * Settlement bench (npm run bench:settlement [-- --quick]): on a local EDR
 * node with automine and a SoftHSM2 token.
 *
 * - Signing latency of one 32-byte digest, p50/p99: PKCS#11 (C_Sign plus the
 *   low-s normalisation and public-key recovery the HSM leaves to us) against
 *   the dev-key signer (noble-curves in process) as the baseline.
 * - Settled mints per second through the worker (sign, store, broadcast,
 *   look up, confirm at depth 1; in-memory outbox) against the node's own
 *   pace for the same mints: the same number of pre-signed mint transactions
 *   sent back to back and waited for. Alternating pairs; ratios per pair.
 */
import { keccak256, toHex, type Hex } from "viem";
import { systemClock } from "../src/domain/clock.js";
import { DevKeySigner } from "../src/adapters/evm/signer-dev-key.js";
import { Pkcs11Signer } from "../src/adapters/pkcs11/signer-pkcs11.js";
import { generatePrivateKey } from "viem/accounts";
import type { Signer } from "../src/domain/settlement/ports.js";
import { startEvmNode, type EvmNode } from "../test/support/evm/evm-node.js";
import { BLOCKCHAIN, deployForSigner, enqueueMany, lockFor, newOutbox, newWorker, until } from "../test/support/evm/settlement-fixture.js";
import { createDevToken } from "../test/support/softhsm.js";

const quick = process.argv.includes("--quick");
const SIGNATURES = quick ? 300 : 1_000;
const MINTS = quick ? 150 : 400;
const PAIRS = quick ? 2 : 3;

function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] as number;
}
const median = (xs: readonly number[]): number => quantile(xs, 0.5);

async function signLatencies(signer: Signer, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const digest = keccak256(toHex(`bench ${i} ${Math.random()}`));
    const t0 = performance.now();
    await signer.signDigest(digest);
    out.push((performance.now() - t0) * 1000);
  }
  return out;
}

/** Settlements per second through the worker, from the first pass to the last CONFIRMED. */
async function workerRate(node: EvmNode, signer: Signer): Promise<number> {
  const setup = await deployForSigner(node, signer);
  const { outbox, locks } = newOutbox();
  await enqueueMany(outbox, MINTS, `bench-${Date.now()}`);
  const worker = newWorker({ chain: setup.chain, outbox, lock: lockFor(locks), pollIntervalMs: 2, maxInFlight: 256 });
  const t0 = performance.now();
  worker.start();
  await until(() => outbox.list().every((s) => s.state === "CONFIRMED"), 300_000);
  const seconds = (performance.now() - t0) / 1000;
  await worker.stop();
  return MINTS / seconds;
}

/** The node's pace: the same mints pre-signed (dev key), sent back to back, waited for. */
async function nodeRate(node: EvmNode): Promise<number> {
  const signer = new DevKeySigner(generatePrivateKey());
  const setup = await deployForSigner(node, signer);
  const fees = await setup.chain.suggestFees();
  const base = await setup.chain.minedNonce();
  const raws: Hex[] = [];
  for (let i = 0; i < MINTS; i++) raws.push((await setup.chain.signMint(BigInt(i + 1), base + i, fees)).raw);
  const t0 = performance.now();
  let last: Hex = "0x";
  for (const raw of raws) {
    await setup.chain.broadcast(raw);
    last = keccak256(raw);
  }
  await until(async () => (await setup.chain.lookup(last)).kind === "mined", 300_000);
  return MINTS / ((performance.now() - t0) / 1000);
}

async function main(): Promise<void> {
  const started = performance.now();
  const [node, token] = await Promise.all([startEvmNode(), createDevToken()]);
  const hsm = Pkcs11Signer.open(token.settings);
  const dev = new DevKeySigner(generatePrivateKey());
  try {
    // Warm both paths (JIT, token session) before measuring.
    await signLatencies(hsm, 50);
    await signLatencies(dev, 50);
    const hsmUs = await signLatencies(hsm, SIGNATURES);
    const devUs = await signLatencies(dev, SIGNATURES);

    const pairs: { hsm: number; dev: number; node: number }[] = [];
    for (let p = 0; p < PAIRS; p++) {
      // Alternate the order (ABBA) so drift on a shared machine hits both sides.
      const order = p % 2 === 0 ? (["node", "hsm", "dev"] as const) : (["dev", "hsm", "node"] as const);
      const r: Record<string, number> = {};
      for (const what of order) r[what] = what === "node" ? await nodeRate(node) : await workerRate(node, what === "hsm" ? hsm : dev);
      pairs.push({ hsm: r.hsm as number, dev: r.dev as number, node: r.node as number });
    }

    const fmt = (x: number, d = 2): string => x.toFixed(d);
    const lines = [
      `usdc-mint settlement bench (${quick ? "quick" : "full"}): EDR node (automine) on 127.0.0.1, SoftHSM2 token, node ${process.version}, ${fmt((performance.now() - started) / 1000, 1)} s`,
      "",
      `signing one digest, ${SIGNATURES} sequential signatures each:`,
      `  pkcs11 (SoftHSM2, incl. low-s + recovery)  p50 ${fmt(median(hsmUs) / 1000, 3)} ms  p99 ${fmt(quantile(hsmUs, 0.99) / 1000, 3)} ms`,
      `  dev-key (in-process baseline)             p50 ${fmt(median(devUs) / 1000, 3)} ms  p99 ${fmt(quantile(devUs, 0.99) / 1000, 3)} ms`,
      `  ratio pkcs11 ÷ dev-key p50 ${fmt(median(hsmUs) / median(devUs))}`,
      "",
      `settled mints per second, ${MINTS} mints per run, depth 1, ${PAIRS} alternating pairs (median [min–max]):`,
      `  node alone (pre-signed, back to back)     ${fmt(median(pairs.map((x) => x.node)), 0)}/s`,
      `  worker + pkcs11 signer                    ${fmt(median(pairs.map((x) => x.hsm)), 0)}/s   ratio to node ${fmt(median(pairs.map((x) => x.hsm / x.node)))} [${fmt(Math.min(...pairs.map((x) => x.hsm / x.node)))}–${fmt(Math.max(...pairs.map((x) => x.hsm / x.node)))}]`,
      `  worker + dev-key signer                   ${fmt(median(pairs.map((x) => x.dev)), 0)}/s   ratio to node ${fmt(median(pairs.map((x) => x.dev / x.node)))} [${fmt(Math.min(...pairs.map((x) => x.dev / x.node)))}–${fmt(Math.max(...pairs.map((x) => x.dev / x.node)))}]`,
      `  (chain ${BLOCKCHAIN}; confirmations are counted on the node, so the worker's rate includes one lookup per mint)`,
    ];
    process.stdout.write(lines.join("\n") + "\n");
  } finally {
    await hsm.close();
    await node.stop();
  }
}

void main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`settlement bench failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
