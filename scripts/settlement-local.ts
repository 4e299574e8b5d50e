/**
 * One command for a local settlement setup (npm run settlement:local):
 * a hardhat EDR node on a free loopback port, a SoftHSM2 token in a temporary
 * directory with a secp256k1 key generated on it, the FiatToken deployed with
 * that key as its minter, a PostgreSQL database, the settlement file and PIN
 * file, and the service itself (`src/main.ts`) with settlement, on a free
 * loopback port. It mints `--mints N` through the service's gRPC API, waits
 * until every one is CONFIRMED, prints ReconcileChain's comparison and keeps
 * running until Ctrl-C (or exits with `--exit`). The printed environment is
 * what `npm start` takes.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import pg from "pg";
import { Blockchain, MintServiceClient, SettlementState, type GetMintResponse, type MintUsdcResponse, type ReconcileChainResponse } from "../gen/usdc/mint/v1/mint.js";
import { freePort, startEvmNode } from "../test/support/evm/evm-node.js";
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

async function main(): Promise<void> {
  if (!Number.isSafeInteger(MINTS) || MINTS < 0 || MINTS > 10_000) throw new Error("--mints must be an integer from 0 to 10000");
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(DB)) throw new Error("--db must be a plain lower-case database name");
  const dir = mkdtempSync(path.join(tmpdir(), "mint-settlement-local-"));
  const [node, token] = await Promise.all([startEvmNode(), createDevToken("mint-treasury")]);
  const contract = await node.deployToken(token.address, 10n ** 18n);
  // The treasury is the HSM key's own address: it mints to itself, and a
  // redemption's burn takes from the caller's balance (issue 16).
  const TREASURY = token.address;

  const admin = new pg.Client({ connectionString: `${PG}/postgres` });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${DB}`);
  await admin.end();
  const store = `${PG}/${DB}`;

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
  const listen = `127.0.0.1:${await freePort()}`;
  const env = { MINT_LISTEN: listen, MINT_STORE: store, MINT_SETTLEMENT_FILE: settlementFile, ...pkcs11SignerEnv(token, dir) };

  process.stdout.write(
    [
      `EDR node        ${node.url} (chain id ${node.chainId}, automine)`,
      `token           ${contract} (FiatToken, 6 decimals; minter = the HSM key ${token.address})`,
      `treasury        ${TREASURY} (the HSM key's own address: mints go to it, burns take from it)`,
      `SoftHSM2 token  ${token.settings.tokenLabel} (key ${token.settings.keyLabel}, generated on the token, non-extractable)`,
      `database        ${store}`,
      `service         ${listen} (npm start with this environment):`,
      ...Object.entries(env).map(([k, v]) => `  export ${k}=${v}`),
      "",
      `minting ${MINTS} USDC mints on ETHEREUM through the service...`,
      "",
    ].join("\n"),
  );

  const service = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "src/main.ts")], { cwd: ROOT, env: { ...process.env, ...env, MINT_LOG_LEVEL: "warn" }, stdio: "inherit" });
  const client = new MintServiceClient(listen, grpc.credentials.createInsecure());
  const call = <Res>(method: "mintUsdc" | "getMint" | "reconcileChain", req: object): Promise<Res> =>
    new Promise((resolve, reject) => (client[method] as unknown as (r: object, cb: (e: Error | null, r: Res) => void) => void).call(client, req, (e, r) => (e ? reject(e) : resolve(r))));
  const shutdown = async (code: number): Promise<never> => {
    client.close();
    service.kill("SIGTERM");
    await new Promise((r) => service.once("exit", r));
    await node.stop();
    rmSync(dir, { recursive: true, force: true });
    process.exit(code);
  };
  process.once("SIGINT", () => void shutdown(0));
  process.once("SIGTERM", () => void shutdown(0));
  await new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + 30_000, (err) => (err ? reject(err) : resolve())));

  const mintIds: string[] = [];
  for (let i = 1; i <= MINTS; i++) {
    const r = await call<MintUsdcResponse>("mintUsdc", { accountId: `demo-${(i % 3) + 1}`, amount: String(i), blockchain: Blockchain.BLOCKCHAIN_ETHEREUM, idempotencyKey: `settlement-local-${i}` });
    mintIds.push(r.mint?.mintId ?? "");
  }
  for (const mintId of mintIds) {
    for (;;) {
      const m = await call<GetMintResponse>("getMint", { mintId });
      if (m.mint?.settlement?.state === SettlementState.SETTLEMENT_STATE_CONFIRMED) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const report = await call<ReconcileChainResponse>("reconcileChain", { blockchain: Blockchain.BLOCKCHAIN_ETHEREUM });
  process.stdout.write(
    `all ${MINTS} CONFIRMED: totalSupply() = ${report.totalSupply} USDC, balanceOf(treasury) = ${report.treasuryBalance} USDC, confirmed in the ledger = ${report.confirmedSum} USDC; agree: ${report.agree}\n`,
  );
  if (argv.includes("--exit")) await shutdown(report.agree ? 0 : 1);
  process.stdout.write("running; Ctrl-C stops the service and the node (try: mintctl --address " + listen + " chain reconcile ETHEREUM)\n");
}

main().catch((err: unknown) => {
  process.stderr.write(`settlement:local failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
