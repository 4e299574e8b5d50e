/**
 * MINT_SETTLEMENT_FILE and the signer settings, through loadConfig (the real
 * files in a temporary directory): good documents in JSON and YAML, and one
 * clear line naming the entry for each kind of mistake.
 */
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ConfigError, describeConfig, loadConfig } from "../../src/config.js";
import { chainsThatCannotBurn } from "../../src/settlement-runtime.js";

const dir = mkdtempSync(path.join(tmpdir(), "mint-settlement-config-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function file(text: string, ext = "yaml"): string {
  const p = path.join(dir, `f${++n}.${ext}`);
  writeFileSync(p, text);
  return p;
}

const TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
const TREASURY = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";
const PIN_FILE = file("123456\n", "pin");
const KEY_FILE = file("0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d\n", "key");
const PKCS11_ENV = { MINT_PKCS11_MODULE: "/usr/lib/softhsm/libsofthsm2.so", MINT_PKCS11_TOKEN_LABEL: "mint-hsm", MINT_PKCS11_PIN_FILE: PIN_FILE };

const YAML_DOC = `
blockchains:
  ETHEREUM:
    rpcUrl: http://127.0.0.1:8545
    chainId: 31337
    tokenContract: "${TOKEN}"
    treasury: "${TREASURY.toLowerCase()}"
    confirmations: 3
    feeBumpTimeout: 2m
  BASE:
    rpcUrl: https://base.example/rpc
    chainId: 8453
    tokenContract: "${TOKEN}"
    treasury: "${TREASURY}"
    confirmations: 12
    feeBumpTimeout: 90s
    gasLimit: 200000
    pollInterval: 250ms
    fromBlock: 19000000
    logsBlockRange: 500
`;

function errorOf(env: Record<string, string>, argv: string[] = []): string {
  try {
    loadConfig(argv, env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    const message = (err as Error).message;
    expect(message).not.toContain("\n");
    return message;
  }
  throw new Error("expected a ConfigError");
}

describe("settlement settings", () => {
  it("are off by default: no file, no settlement, no fault hook", () => {
    const c = loadConfig([], {});
    expect(c.settlement).toBeNull();
    expect(c.testFault).toBeNull();
  });

  it("read a YAML file: every chain with defaults filled in, addresses checksummed", () => {
    const c = loadConfig([], { MINT_SETTLEMENT_FILE: file(YAML_DOC), ...PKCS11_ENV });
    expect(c.settlement?.chains).toEqual([
      { blockchain: "ETHEREUM", rpcUrl: "http://127.0.0.1:8545", chainId: 31337, tokenContract: TOKEN, treasury: TREASURY, confirmations: 3, feeBumpTimeoutMs: 120_000, gasLimit: 150_000n, pollIntervalMs: 1_000, requestTimeoutMs: 10_000, fromBlock: 0n, logsBlockRange: 10_000n, maxFeePerGasWei: null, signerBalanceFloorWei: null, signerBalanceFloorTxs: 10 },
      { blockchain: "BASE", rpcUrl: "https://base.example/rpc", chainId: 8453, tokenContract: TOKEN, treasury: TREASURY, confirmations: 12, feeBumpTimeoutMs: 90_000, gasLimit: 200_000n, pollIntervalMs: 250, requestTimeoutMs: 10_000, fromBlock: 19_000_000n, logsBlockRange: 500n, maxFeePerGasWei: null, signerBalanceFloorWei: null, signerBalanceFloorTxs: 10 },
    ]);
    expect(c.settlement?.signer).toEqual({ kind: "pkcs11", modulePath: "/usr/lib/softhsm/libsofthsm2.so", tokenLabel: "mint-hsm", keyLabel: "mint-treasury", pinFile: PIN_FILE, pin: "123456" });
    expect(Object.isFrozen(c.settlement?.chains[0])).toBe(true);
  });

  it("name the chains whose treasury is not the signer's address (their burns would revert), case-insensitively", () => {
    const c = loadConfig([], { MINT_SETTLEMENT_FILE: file(YAML_DOC), ...PKCS11_ENV });
    const settings = c.settlement;
    if (settings === null) throw new Error("settlement is configured");
    expect(chainsThatCannotBurn(settings, TREASURY.toLowerCase())).toEqual([]);
    expect(chainsThatCannotBurn(settings, TOKEN)).toEqual(["ETHEREUM", "BASE"]);
  });

  it("read the gas settings: the fee ceiling and the balance floor in wei (decimal strings), or the floor as a count of transactions", () => {
    const gas = entry('    chainId: 31337\n    maxFeePerGas: "120000000000"\n    signerBalanceFloor: "50000000000000000"\n');
    const c = loadConfig([], { MINT_SETTLEMENT_FILE: file(gas), ...PKCS11_ENV });
    expect(c.settlement?.chains.map((x) => [x.maxFeePerGasWei, x.signerBalanceFloorWei, x.signerBalanceFloorTxs])).toEqual([
      [120_000_000_000n, 50_000_000_000_000_000n, 10],
      [null, null, 10],
    ]);
    const byCount = loadConfig([], { MINT_SETTLEMENT_FILE: file(entry("    chainId: 31337\n    signerBalanceFloorTxs: 25\n")), ...PKCS11_ENV });
    expect(byCount.settlement?.chains[0]).toMatchObject({ signerBalanceFloorWei: null, signerBalanceFloorTxs: 25 });
  });

  it("read the same document as JSON", () => {
    const json = JSON.stringify({ blockchains: { ETHEREUM: { rpcUrl: "http://127.0.0.1:8545", chainId: 1, tokenContract: TOKEN, treasury: TREASURY, confirmations: 1, feeBumpTimeout: "30s" } } });
    const c = loadConfig([], { MINT_SETTLEMENT_FILE: file(json, "json"), ...PKCS11_ENV });
    expect(c.settlement?.chains.map((x) => [x.blockchain, x.chainId, x.confirmations, x.feeBumpTimeoutMs])).toEqual([["ETHEREUM", 1, 1, 30_000]]);
  });

  it("never log the PIN or a key", () => {
    const c = loadConfig([], { MINT_SETTLEMENT_FILE: file(YAML_DOC), ...PKCS11_ENV });
    const logged = JSON.stringify(describeConfig(c));
    expect(logged).not.toContain("123456");
    expect(logged).toContain("ETHEREUM:31337:3");
    expect(logged).toContain("pkcs11:mint-hsm/mint-treasury");
    const dev = loadConfig([], { MINT_SETTLEMENT_FILE: file(YAML_DOC), MINT_SIGNER: "dev-key", MINT_DEV_KEY_FILE: KEY_FILE });
    expect(JSON.stringify(describeConfig(dev))).not.toContain("59c6995e");
  });

  const entry = (change: string): string => YAML_DOC.replace("    chainId: 31337\n", change);
  it.each([
    ["not YAML", "blockchains: [unclosed", /MINT_SETTLEMENT_FILE .*: not valid JSON or YAML/],
    ["no blockchains", "chains: {}", /: chains: unknown entry/],
    ["empty blockchains", "blockchains: {}", /blockchains: expected a mapping of at least one blockchain/],
    ["an unknown chain", YAML_DOC.replace("BASE:", "BASEE:"), /blockchains\.BASEE: unknown blockchain/],
    ["a non-EVM chain", YAML_DOC.replace("BASE:", "SOLANA:"), /blockchains\.SOLANA: not an EVM chain/],
    ["a missing entry", entry(""), /blockchains\.ETHEREUM\.chainId: missing/],
    ["a non-integer chain id", entry("    chainId: eight\n"), /blockchains\.ETHEREUM\.chainId: expected an integer from 1 to 4294967295, got "eight"/],
    ["a duplicate chain id", entry("    chainId: 8453\n"), /blockchains\.BASE\.chainId: 8453 is also the chain id of ETHEREUM/],
    ["an unknown key", entry("    chainId: 1\n    chainID: 1\n"), /blockchains\.ETHEREUM\.chainID: unknown entry/],
    ["a bad RPC URL", YAML_DOC.replace("http://127.0.0.1:8545", "ws://127.0.0.1:8545"), /blockchains\.ETHEREUM\.rpcUrl: expected an http:\/\/ or https:\/\/ URL/],
    ["a bad checksum", YAML_DOC.replace(`tokenContract: "${TOKEN}"`, `tokenContract: "${TOKEN.replace("f", "F")}"`), /blockchains\.ETHEREUM\.tokenContract: expected a non-zero 0x address/],
    ["the zero address", YAML_DOC.replace(`treasury: "${TREASURY.toLowerCase()}"`, `treasury: "0x0000000000000000000000000000000000000000"`), /blockchains\.ETHEREUM\.treasury: expected a non-zero/],
    ["zero confirmations", YAML_DOC.replace("confirmations: 3", "confirmations: 0"), /blockchains\.ETHEREUM\.confirmations: expected an integer from 1 to 1000, got 0/],
    ["a bad duration", YAML_DOC.replace("feeBumpTimeout: 2m", "feeBumpTimeout: 2 minutes"), /blockchains\.ETHEREUM\.feeBumpTimeout: expected a duration/],
    ["a negative start block", entry("    chainId: 31337\n    fromBlock: -1\n"), /blockchains\.ETHEREUM\.fromBlock: expected an integer from 0 to 9007199254740991, got -1/],
    ["a zero log range", entry("    chainId: 31337\n    logsBlockRange: 0\n"), /blockchains\.ETHEREUM\.logsBlockRange: expected an integer from 1 to 10000000, got 0/],
    ["a numeric duration", YAML_DOC.replace("feeBumpTimeout: 2m", "feeBumpTimeout: 120"), /blockchains\.ETHEREUM\.feeBumpTimeout: expected a duration .* got 120/],
    ["a fee ceiling as a number (loses wei precision)", entry("    chainId: 31337\n    maxFeePerGas: 50000000000\n"), /blockchains\.ETHEREUM\.maxFeePerGas: expected a wei amount as a decimal string of digits .* got 50000000000/],
    ["a fee ceiling in gwei words", entry('    chainId: 31337\n    maxFeePerGas: "50 gwei"\n'), /blockchains\.ETHEREUM\.maxFeePerGas: expected a wei amount .* got "50 gwei"/],
    ["a zero fee ceiling", entry('    chainId: 31337\n    maxFeePerGas: "0"\n'), /blockchains\.ETHEREUM\.maxFeePerGas: expected a wei amount .* at least 1, got "0"/],
    ["a negative balance floor", entry('    chainId: 31337\n    signerBalanceFloor: "-1"\n'), /blockchains\.ETHEREUM\.signerBalanceFloor: expected a wei amount/],
    ["a balance floor with leading zeros", entry('    chainId: 31337\n    signerBalanceFloor: "0100"\n'), /blockchains\.ETHEREUM\.signerBalanceFloor: expected a wei amount/],
    ["both floor settings", entry('    chainId: 31337\n    signerBalanceFloor: "100"\n    signerBalanceFloorTxs: 5\n'), /blockchains\.ETHEREUM\.signerBalanceFloorTxs: give either signerBalanceFloor \(wei\) or signerBalanceFloorTxs/],
    ["a fractional floor count", entry("    chainId: 31337\n    signerBalanceFloorTxs: 2.5\n"), /blockchains\.ETHEREUM\.signerBalanceFloorTxs: expected an integer from 0 to 1000000, got 2.5/],
  ])("refuse %s with one line naming the entry", (_what, text, message) => {
    expect(errorOf({ MINT_SETTLEMENT_FILE: file(text), ...PKCS11_ENV })).toMatch(message);
  });

  it("name the flag when the file came from a flag", () => {
    expect(errorOf({ ...PKCS11_ENV }, [`--settlement-file=${file("blockchains: {}")}`])).toMatch(/^flag --settlement-file /);
  });

  it.each([
    ["pkcs11 without a module", { MINT_PKCS11_MODULE: "" }, /MINT_PKCS11_MODULE: required with MINT_SIGNER=pkcs11/],
    ["pkcs11 without a token label", { MINT_PKCS11_TOKEN_LABEL: "" }, /MINT_PKCS11_TOKEN_LABEL: required/],
    ["pkcs11 without a PIN file", { MINT_PKCS11_PIN_FILE: "" }, /MINT_PKCS11_PIN_FILE: required/],
    ["an empty PIN file", { MINT_PKCS11_PIN_FILE: file("", "pin") }, /MINT_PKCS11_PIN_FILE: the file must hold the PIN on one line/],
    ["dev-key without a key file", { MINT_SIGNER: "dev-key" }, /MINT_DEV_KEY_FILE: required with MINT_SIGNER=dev-key/],
    ["dev-key with a malformed key", { MINT_SIGNER: "dev-key", MINT_DEV_KEY_FILE: file("not a key", "key") }, /MINT_DEV_KEY_FILE: the file must hold one 0x-prefixed 32-byte hex private key/],
    ["dev-key on a non-loopback listener", { MINT_SIGNER: "dev-key", MINT_DEV_KEY_FILE: KEY_FILE, MINT_LISTEN: "0.0.0.0:50051" }, /MINT_SIGNER: dev-key is refused on a non-loopback listener/],
  ])("refuse %s", (_what, change, message) => {
    expect(errorOf({ MINT_SETTLEMENT_FILE: file(YAML_DOC), ...PKCS11_ENV, ...change })).toMatch(message);
  });

  it("take the dev-key signer on a loopback listener", () => {
    for (const listen of ["127.0.0.1:0", "localhost:50051", "[::1]:50051"]) {
      const c = loadConfig([], { MINT_SETTLEMENT_FILE: file(YAML_DOC), MINT_SIGNER: "dev-key", MINT_DEV_KEY_FILE: KEY_FILE, MINT_LISTEN: listen });
      expect(c.settlement?.signer.kind).toBe("dev-key");
    }
  });

  it("refuse the test fault hook unless MINT_TEST_FAULTS=true, and parse it when allowed", () => {
    expect(errorOf({ MINT_TEST_FAULT: "after-sign" })).toMatch(/MINT_TEST_FAULT: fault hooks are refused unless MINT_TEST_FAULTS=true/);
    expect(loadConfig([], { MINT_TEST_FAULTS: "true", MINT_TEST_FAULT: "after-sign" }).testFault).toEqual({ point: "after-sign", count: 1 });
    expect(loadConfig([], { MINT_TEST_FAULTS: "true", MINT_TEST_FAULT: "after-broadcast:7" }).testFault).toEqual({ point: "after-broadcast", count: 7 });
    expect(errorOf({ MINT_TEST_FAULTS: "true", MINT_TEST_FAULT: "after-broadcast:0" })).toMatch(/expected after-sign or after-broadcast/);
  });
});
