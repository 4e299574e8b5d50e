/**
 * One command for a local settlement setup (npm run settlement:local):
 * a hardhat EDR node on a free loopback port, a SoftHSM2 token in a temporary
 * directory with a secp256k1 key generated on it, the FiatToken deployed with
 * that key as its minter, a PostgreSQL database, the settlement file and PIN
 * file, and the service itself (`src/main.ts`) with settlement, on a free
 * loopback port. It mints `--mints N` through the service's gRPC API, waits
 * until every one is CONFIRMED, prints ReconcileChain's comparison and keeps
 * running until Ctrl-C (or exits with `--exit`). The printed environment is
 * what `npm start` takes; a second replica beside the recipe's service needs
 * its own `MINT_LISTEN` (the line printed for it has one).
 *
 * Needs softhsm2 (`softhsm2-util` and its PKCS#11 module) and PostgreSQL
 * (`MINT_TEST_PG_URL`, default postgres://postgres@127.0.0.1:5432), both
 * checked before anything starts. The database (`--db`) is dropped and
 * re-created on every run, and refused while another session uses it.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import pg from "pg";
import { Blockchain, MintServiceClient, SettlementState, type GetMintResponse, type MintUsdcResponse, type ReconcileChainResponse } from "../gen/usdc/mint/v1/mint.js";
import { privateKeyToAddress } from "viem/accounts";
import { DEPLOYER_KEY, freePort, startEvmNode, type EvmNode } from "../test/support/evm/evm-node.js";
import { createDevToken, pkcs11SignerEnv, SOFTHSM_MODULE } from "../test/support/softhsm.js";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const argv = process.argv.slice(2);
const arg = (name: string, def: string): string => {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] !== undefined ? (argv[i + 1] as string) : def;
};
const MINTS = Number(arg("--mints", "5"));
const DB = arg("--db", "mint_settlement_local");
const PG = process.env.MINT_TEST_PG_URL ?? "postgres://postgres@127.0.0.1:5432";

const USAGE = `Usage: npm run settlement:local -- [--mints N] [--db NAME] [--exit]

Starts a local settlement setup: a hardhat EDR node, a SoftHSM2 token with a
secp256k1 key generated on it, the FiatToken with that key as minter, a
PostgreSQL database, and the service with settlement; mints N USDC mints
through its gRPC API, waits until every one is CONFIRMED and prints
ReconcileChain's comparison. Runs until Ctrl-C.

  --mints N   mints to make, 0 to 10000 (default 5)
  --db NAME   the PostgreSQL database to use (default mint_settlement_local);
              DROPPED AND RE-CREATED on every run, refused while another
              session (say another run of this recipe) is connected to it
  --exit      stop once every mint is CONFIRMED (exit 0 when ledger and chain agree)
  --help, -h  print this and exit

Needs softhsm2 (apt-get install softhsm2: softhsm2-util and ${SOFTHSM_MODULE})
and PostgreSQL at MINT_TEST_PG_URL (default postgres://postgres@127.0.0.1:5432,
a role that may create databases). Prints the environment for npm start, a
ready line for a second replica beside the recipe's service, and the public
test key of the token's master minter and blacklister.
`;

/** What is running, so a Ctrl-C at any point (during start-up, or a second one) cleans up what exists. */
const running: { dir: string | null; starting: Promise<EvmNode> | null; node: EvmNode | null; service: ChildProcess | null; client: grpc.Client | null } = {
  dir: null,
  starting: null,
  node: null,
  service: null,
  client: null,
};
let stopping = false;

/** Last resort on every exit path (an error, a second Ctrl-C): the PIN file's folder goes, the node is told to stop. */
function cleanUpNow(): void {
  running.service?.kill("SIGTERM");
  if (running.node !== null) void running.node.stop();
  if (running.dir !== null) rmSync(running.dir, { recursive: true, force: true });
  running.dir = null;
}
process.on("exit", cleanUpNow);

async function shutdown(code: number): Promise<never> {
  if (stopping) {
    // A second Ctrl-C: no more waiting, but nothing left behind.
    process.exit(code === 0 ? 130 : code);
  }
  stopping = true;
  running.client?.close();
  const service = running.service;
  if (service !== null && service.exitCode === null && service.signalCode === null) {
    const exited = new Promise((r) => service.once("exit", r));
    service.kill("SIGTERM");
    await exited;
  }
  // A node still starting (spawned after the signal reached the group) is waited for, then stopped.
  const node = running.node ?? (await running.starting?.catch(() => null)) ?? null;
  await node?.stop();
  process.exit(code);
}
process.on("SIGINT", () => void shutdown(0));
process.on("SIGTERM", () => void shutdown(0));

/** softhsm2 and PostgreSQL, checked before anything starts; each missing one is named with what to do. */
async function checkPrerequisites(): Promise<void> {
  const missing: string[] = [];
  try {
    execFileSync("softhsm2-util", ["--version"], { stdio: "pipe" });
  } catch {
    missing.push("softhsm2-util is not on PATH: install softhsm2 (apt-get install softhsm2)");
  }
  if (!existsSync(SOFTHSM_MODULE)) missing.push(`the SoftHSM2 PKCS#11 module ${SOFTHSM_MODULE} is missing: install softhsm2 (apt-get install softhsm2)`);
  const admin = new pg.Client({ connectionString: `${PG}/postgres`, connectionTimeoutMillis: 5_000 });
  admin.on("error", () => undefined);
  try {
    await admin.connect();
    const users = await admin.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1", [DB]);
    const n = users.rows[0]?.n ?? 0;
    if (n > 0) missing.push(`the database ${DB} is in use by ${n} session(s) (another settlement:local run?); this recipe drops and re-creates it: stop that run, or pass --db with another name`);
  } catch (err) {
    missing.push(`PostgreSQL is not reachable at ${PG} (${err instanceof Error ? err.message : String(err)}): start it, or set MINT_TEST_PG_URL`);
  } finally {
    await admin.end().catch(() => undefined);
  }
  if (missing.length > 0) throw new Error(`the recipe needs:\n  - ${missing.join("\n  - ")}`);
}

async function main(): Promise<void> {
  if (argv.includes("--help") || argv.includes("-h")) {
    process.stdout.write(USAGE);
    return;
  }
  if (!Number.isSafeInteger(MINTS) || MINTS < 0 || MINTS > 10_000) throw new Error("--mints must be an integer from 0 to 10000");
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(DB)) throw new Error("--db must be a plain lower-case database name");
  await checkPrerequisites();
  const dir = mkdtempSync(path.join(tmpdir(), "mint-settlement-local-"));
  running.dir = dir;
  running.starting = startEvmNode();
  const [node, token] = await Promise.all([running.starting, createDevToken("mint-treasury")]);
  running.node = node;
  if (stopping) return; // Ctrl-C while they started: shutdown stops them.
  const contract = await node.deployToken(token.address, 10n ** 18n);
  // The treasury is the HSM key's own address: it mints to itself, and a
  // redemption's burn takes from the caller's balance.
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
  const secondListen = `127.0.0.1:${await freePort()}`;
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
      `second replica  MINT_LISTEN=${secondListen} npm start (with the environment above: the service above holds ${listen}; the replica stands by for the chain's sender lock)`,
      `master minter   ${privateKeyToAddress(DEPLOYER_KEY)} key ${DEPLOYER_KEY} (hardhat's public test account #0: the token's owner, master minter and blacklister, for configureMinter and blacklist)`,
      `note            the database ${DB} is dropped and re-created on every run (--db NAME picks another; --help lists the flags)`,
      "",
      `minting ${MINTS} USDC mints on ETHEREUM through the service...`,
      "",
    ].join("\n"),
  );

  if (stopping) return;
  const service = spawn(process.execPath, ["--import", "tsx", path.join(ROOT, "src/main.ts")], { cwd: ROOT, env: { ...process.env, ...env, MINT_LOG_LEVEL: "warn" }, stdio: "inherit" });
  running.service = service;
  const client = new MintServiceClient(listen, grpc.credentials.createInsecure());
  running.client = client;
  const call = <Res>(method: "mintUsdc" | "getMint" | "reconcileChain", req: object): Promise<Res> =>
    new Promise((resolve, reject) => (client[method] as unknown as (r: object, cb: (e: Error | null, r: Res) => void) => void).call(client, req, (e, r) => (e ? reject(e) : resolve(r))));
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
  if (stopping) return; // interrupted: shutdown ends the process
  process.stderr.write(`settlement:local failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
