/**
 * One command for a local settlement setup (npm run settlement:local):
 * a hardhat EDR node on a free loopback port, a SoftHSM2 token in a temporary
 * directory with a secp256k1 key generated on it, the FiatToken deployed with
 * that key as its minter, a PostgreSQL database, the settlement file and PIN
 * file, and the settlement worker process, which settles `--mints N` demo
 * settlements and keeps running until Ctrl-C (or exits once they are
 * CONFIRMED with `--exit`).
 *
 * The mint path does not write settlement rows yet (it lands with the atomic
 * store, issue 7), so the demo settlements are put in the outbox directly;
 * the printed environment is what `npm start` will take once it is wired.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { runMigrations } from "../src/adapters/postgres/migrations.js";
import { EvmChainSettlement } from "../src/settlement/chain-evm.js";
import { PostgresSettlementOutbox, SETTLEMENT_MIGRATIONS } from "../src/settlement/outbox-postgres.js";
import type { Signer } from "../src/settlement/ports.js";
import { startEvmNode } from "../test/support/evm/evm-node.js";
import { createDevToken, pkcs11SignerEnv } from "../test/support/softhsm.js";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const argv = process.argv.slice(2);
const arg = (name: string, def: string): string => {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] !== undefined ? (argv[i + 1] as string) : def;
};
const MINTS = Number(arg("--mints", "5"));
const DB = arg("--db", "mint_settlement_local");
const PG = process.env.MINT_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432";
/** Hardhat's account #1: a publicly known address, fine as a local treasury. */
const TREASURY = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8" as const;

async function main(): Promise<void> {
  if (!Number.isSafeInteger(MINTS) || MINTS < 0 || MINTS > 10_000) throw new Error("--mints must be an integer from 0 to 10000");
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(DB)) throw new Error("--db must be a plain lower-case database name");
  const dir = mkdtempSync(path.join(tmpdir(), "mint-settlement-local-"));
  const [node, token] = await Promise.all([startEvmNode(), createDevToken("mint-treasury")]);
  const contract = await node.deployToken(token.address, 10n ** 18n);

  const admin = new pg.Client({ connectionString: `${PG}/postgres` });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${DB}`);
  await admin.end();
  const store = `${PG}/${DB}`;
  const migrator = new pg.Client({ connectionString: store });
  await migrator.connect();
  await runMigrations(migrator, undefined, SETTLEMENT_MIGRATIONS);
  await migrator.end();

  const settlementFile = path.join(dir, "chains.yaml");
  writeFileSync(
    settlementFile,
    [
      "blockchains:",
      "  ETHEREUM:",
      `    rpcUrl: ${node.url}`,
      `    chainId: ${node.chainId}`,
      `    tokenContract: "${contract}"`,
      `    treasury: "${TREASURY}"`,
      "    confirmations: 1",
      "    feeBumpTimeout: 1m",
      "    pollInterval: 200ms",
      "",
    ].join("\n"),
  );
  const env = { MINT_STORE: store, MINT_SETTLEMENT_FILE: settlementFile, ...pkcs11SignerEnv(token, dir) };

  const pool = new pg.Pool({ connectionString: store, max: 2 });
  const outbox = new PostgresSettlementOutbox(pool);
  for (let i = 1; i <= MINTS; i++) await outbox.enqueue({ settlementId: `demo-${i}`, blockchain: "ETHEREUM", amountMicros: BigInt(i) * 1_000_000n, createWallMs: Date.now() });

  process.stdout.write(
    [
      `EDR node        ${node.url} (chain id ${node.chainId}, automine)`,
      `token           ${contract} (FiatToken, 6 decimals; minter = the HSM key ${token.address})`,
      `treasury        ${TREASURY}`,
      `SoftHSM2 token  ${token.settings.tokenLabel} (key ${token.settings.keyLabel}, generated on the token, non-extractable)`,
      `database        ${store}`,
      "",
      "environment for the settlement worker (and, once wired, npm start):",
      ...Object.entries(env).map(([k, v]) => `  export ${k}=${v}`),
      "",
      `settling ${MINTS} demo mints...`,
      "",
    ].join("\n"),
  );

  const worker = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "src/settlement/settlement-worker-main.ts")], { cwd: ROOT, env: { ...process.env, ...env }, stdio: "inherit" });
  const chain = new EvmChainSettlement(
    { blockchain: "ETHEREUM", rpcUrl: node.url, chainId: node.chainId, tokenAddress: contract, treasury: TREASURY, gasLimit: 150_000n, requestTimeoutMs: 2_000 },
    { address: token.address } as Signer,
  );
  const shutdown = async (code: number): Promise<never> => {
    worker.kill("SIGTERM");
    await new Promise((r) => worker.once("exit", r));
    await pool.end();
    await node.stop();
    rmSync(dir, { recursive: true, force: true });
    process.exit(code);
  };
  process.once("SIGINT", () => void shutdown(0));
  process.once("SIGTERM", () => void shutdown(0));

  for (;;) {
    const res = await pool.query<{ state: string; n: string }>("SELECT state, count(*) AS n FROM settlements GROUP BY state ORDER BY state");
    const confirmed = Number(res.rows.find((r) => r.state === "CONFIRMED")?.n ?? 0);
    if (confirmed === MINTS) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const [supply, balance] = await Promise.all([chain.totalSupply(), chain.treasuryBalance()]);
  process.stdout.write(`all ${MINTS} CONFIRMED: totalSupply() = ${supply}, balanceOf(treasury) = ${balance} (micro-USDC)\n`);
  if (argv.includes("--exit")) await shutdown(supply === balance && supply === (BigInt(MINTS) * BigInt(MINTS + 1) / 2n) * 1_000_000n ? 0 : 1);
  process.stdout.write("running; Ctrl-C stops the node and the worker\n");
}

main().catch((err: unknown) => {
  process.stderr.write(`settlement:local failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
