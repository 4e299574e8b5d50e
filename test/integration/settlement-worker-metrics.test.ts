/**
 * The standalone settlement worker's metrics listener follows the service's
 * rules (one config reader, one listener): a non-loopback address without
 * TLS and a scrape token stops the start (exit 2, one line), and a
 * configured scrape token is asked for. The worker runs as a real process on
 * PostgreSQL with a dev key and a chain node nobody answers at (it starts,
 * serves metrics and retries its passes; nothing needs to settle here).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { generatePrivateKey, privateKeyToAddress } from "viem/accounts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tokenDigestHex } from "../../src/auth/authenticate.js";
import { newToken } from "../support/auth-fixtures.js";
import { freePort } from "../support/evm/evm-node.js";
import { createTestDatabase, type TestDatabase } from "../support/pg-test-database.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const WORKER_MAIN = path.join(ROOT, "src", "settlement", "settlement-worker-main.ts");

let db: TestDatabase;
let dir: string;
let env: Record<string, string>;

beforeAll(async () => {
  db = await createTestDatabase();
  dir = mkdtempSync(path.join(tmpdir(), "mint-worker-metrics-"));
  const keyFile = path.join(dir, "dev-key");
  writeFileSync(keyFile, generatePrivateKey() + "\n", { mode: 0o600 });
  const settlementFile = path.join(dir, "chains.yaml");
  const address = (): string => privateKeyToAddress(generatePrivateKey());
  writeFileSync(
    settlementFile,
    `blockchains:\n  BASE:\n    rpcUrl: http://127.0.0.1:${await freePort()}\n    chainId: 8453\n    tokenContract: "${address()}"\n    treasury: "${address()}"\n    confirmations: 1\n    feeBumpTimeout: 1m\n    pollInterval: 1s\n    requestTimeout: 1s\n`,
  );
  env = { MINT_STORE: db.url, MINT_SETTLEMENT_FILE: settlementFile, MINT_SIGNER: "dev-key", MINT_DEV_KEY_FILE: keyFile, MINT_LOG_LEVEL: "error" };
}, 60_000);

afterAll(async () => {
  await db?.drop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

/** Runs the worker; with `whileRunning`, SIGTERMs it once that resolves (given the output so far) and returns its result. */
async function runWorker<T>(extra: Record<string, string>, whileRunning?: (output: () => string) => Promise<T | undefined>): Promise<{ code: number | null; output: string; result?: T }> {
  const child = spawn(process.execPath, ["--import", "tsx", WORKER_MAIN], { cwd: ROOT, env: { ...process.env, ...env, ...extra }, stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout.on("data", (b: Buffer) => (output = (output + b.toString()).slice(-8000)));
  child.stderr.on("data", (b: Buffer) => (output = (output + b.toString()).slice(-8000)));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  let result: T | undefined;
  if (whileRunning !== undefined) {
    let done = false;
    void exited.then(() => (done = true));
    try {
      while (!done && (result = await whileRunning(() => output)) === undefined) await new Promise((r) => setTimeout(r, 100));
    } finally {
      child.kill("SIGTERM");
    }
  }
  const code = await exited;
  return { code, output, ...(result === undefined ? {} : { result }) };
}

describe("the settlement worker's metrics listener", () => {
  it("refuses a non-loopback address without TLS and a scrape token: exit 2, one line naming what is missing", async () => {
    const exit = await runWorker({ MINT_METRICS_LISTEN: "0.0.0.0:0" });
    expect(exit.code).toBe(2);
    expect(exit.output.trim()).toMatch(/^usdc-mint settlement: MINT_METRICS_LISTEN=0\.0\.0\.0:0 is reachable from other hosts but MINT_TLS_CERT, MINT_TLS_KEY, MINT_METRICS_TOKEN_SHA256 are not set: .*MINT_METRICS_INSECURE=true/);
  });

  it("asks a scrape for the configured token", async () => {
    const token = newToken();
    const exit = await runWorker({ MINT_METRICS_LISTEN: "127.0.0.1:0", MINT_METRICS_TOKEN_SHA256: tokenDigestHex(token) }, async (output) => {
      const address = /"metricsAddress":"([^"]+)"/.exec(output())?.[1];
      if (address === undefined) return undefined;
      const anonymous = await fetch(`http://${address}/metrics`);
      const wrong = await fetch(`http://${address}/metrics`, { headers: { authorization: `Bearer ${newToken()}` } });
      const right = await fetch(`http://${address}/metrics`, { headers: { authorization: `Bearer ${token}` } });
      return { anonymous: anonymous.status, wrong: wrong.status, right: right.status, page: await right.text(), refusedPage: await anonymous.text() };
    });
    expect(exit.code, exit.output).toBe(0);
    expect(exit.result).toMatchObject({ anonymous: 401, wrong: 401, right: 200 });
    expect(exit.result?.page).toContain("usdc_mint_settlement_sender");
    expect(exit.result?.refusedPage).not.toContain("usdc_mint");
  });
});
