/**
 * Settlement settings: the MINT_SETTLEMENT_FILE document (JSON or YAML) and
 * the signer variables, validated together at start. `src/config.ts` (the
 * only reader of env and argv) hands the raw values here; every problem is
 * one line naming the variable (or flag) and, inside the file, the entry:
 *
 *   MINT_SETTLEMENT_FILE /etc/mint/chains.yaml: blockchains.BASE.chainId: expected a positive integer, got "eight"
 *
 * Without MINT_SETTLEMENT_FILE nothing settles (every mint is NOT_REQUIRED).
 */
import { getAddress, isAddress, zeroAddress } from "viem";
import { parse as parseYaml } from "yaml";
import { BLOCKCHAINS, type Blockchain } from "../domain/model.js";
import { FAULT_POINTS, type Address, type FaultPoint } from "./ports.js";

/** The chains the EVM adapter can settle on; the others need adapters of their own. */
export const EVM_BLOCKCHAINS: readonly Blockchain[] = ["ETHEREUM", "BASE", "ARBITRUM", "POLYGON", "AVALANCHE", "OPTIMISM"];

export interface ChainSettings {
  readonly blockchain: Blockchain;
  /** http(s) JSON-RPC endpoint. */
  readonly rpcUrl: string;
  readonly chainId: number;
  readonly tokenContract: Address;
  /** Address every mint credits; totalSupply() = its balance while tokens stay there. */
  readonly treasury: Address;
  /** Confirmations (the including block counts as 1) before CONFIRMED; 1..1000. */
  readonly confirmations: number;
  /** A transaction not mined within this is replaced with a higher fee (issue 16). */
  readonly feeBumpTimeoutMs: number;
  readonly gasLimit: bigint;
  /** Pause between the worker's passes when idle. */
  readonly pollIntervalMs: number;
  /** Timeout of one JSON-RPC request. */
  readonly requestTimeoutMs: number;
  /** Issue 16: ReconcileChain scans the token's Transfer logs from this block (the token's deployment block); 0 by default. */
  readonly fromBlock: bigint;
  /** Issue 16: at most this many blocks per eth_getLogs request (providers cap the range); 10000 by default. */
  readonly logsBlockRange: bigint;
  /**
   * The fee ceiling: the most the service pays per gas (wei). Transactions are
   * signed at min(suggested maxFeePerGas, ceiling) while the ceiling covers the
   * base fee plus the tip; above that PENDING settlements wait, and a fee bump
   * never passes it. null (`maxFeePerGas` absent): no ceiling.
   */
  readonly maxFeePerGasWei: bigint | null;
  /**
   * The signer's balance floor (wei): below it the chain is NOT_SERVING and
   * nothing is signed. null (`signerBalanceFloor` absent): derived each pass as
   * `signerBalanceFloorTxs` transactions at the fee the worker would sign now
   * (gasLimit × maxFeePerGas).
   */
  readonly signerBalanceFloorWei: bigint | null;
  /** Transactions the derived floor covers; 10 by default. Ignored when `signerBalanceFloor` is set. */
  readonly signerBalanceFloorTxs: number;
}

export type SignerSettings =
  | { readonly kind: "pkcs11"; readonly modulePath: string; readonly tokenLabel: string; readonly keyLabel: string; readonly pinFile: string; readonly pin: string }
  | { readonly kind: "dev-key"; readonly keyFile: string; readonly privateKey: `0x${string}` };

export interface SettlementSettings {
  readonly file: string;
  readonly chains: readonly ChainSettings[];
  readonly signer: SignerSettings;
}

/** The test-only fault hook: stop at the `count`-th time the worker reaches `point`. */
export interface FaultSpec {
  readonly point: FaultPoint;
  readonly count: number;
}

/** The settings src/config.ts reads for settlement, one per variable ("" when unset). */
export interface SettlementVariables {
  /** MINT_SETTLEMENT_FILE */
  readonly settlementFile: string;
  /** MINT_SIGNER */
  readonly signer: "pkcs11" | "dev-key";
  readonly pkcs11Module: string;
  readonly pkcs11TokenLabel: string;
  readonly pkcs11KeyLabel: string;
  readonly pkcs11PinFile: string;
  readonly devKeyFile: string;
  readonly testFaults: boolean;
  /** MINT_TEST_FAULT: "after-sign" or "after-broadcast", optionally ":N". */
  readonly testFaultPoint: string;
}

export interface RawSettlementValues extends SettlementVariables {
  /** The listener, to refuse the dev-key signer on a non-loopback address. */
  readonly listen: string;
}

export interface SettlementIo {
  /** Reads a whole file as UTF-8; throws when it cannot. */
  readFile(path: string): string;
  parseDurationMs(raw: string): number | undefined;
  /** How to name a setting in an error: "MINT_X" or "flag --x", whichever supplied the value. */
  nameOf(env: string): string;
}

export class SettlementConfigError extends Error {
  override readonly name = "SettlementConfigError";
}

const CHAIN_KEYS = ["rpcUrl", "chainId", "tokenContract", "treasury", "confirmations", "feeBumpTimeout", "gasLimit", "pollInterval", "requestTimeout", "fromBlock", "logsBlockRange", "maxFeePerGas", "signerBalanceFloor", "signerBalanceFloorTxs"] as const;
const REQUIRED_CHAIN_KEYS = ["rpcUrl", "chainId", "tokenContract", "treasury", "confirmations", "feeBumpTimeout"] as const;

/** PKCS#11 labels are at most 32 bytes; we accept a plain subset so they survive shells and logs. */
export const LABEL_PATTERN = /^[A-Za-z0-9._-]{1,32}$/;
const FAULT_PATTERN = new RegExp(`^(${FAULT_POINTS.join("|")})(?::([1-9][0-9]{0,5}))?$`);

function show(value: unknown): string {
  const s = typeof value === "string" ? JSON.stringify(value) : typeof value === "bigint" ? value.toString() : JSON.stringify(value) ?? String(value);
  return s.length > 80 ? s.slice(0, 77) + "..." : s;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Parses and validates the settlement document. `where` prefixes every error
 * ("MINT_SETTLEMENT_FILE /path"). JSON is YAML, so one parser reads both.
 */
export function parseSettlementDocument(text: string, where: string, parseDurationMs: (raw: string) => number | undefined): ChainSettings[] {
  const fail = (path: string, message: string): never => {
    throw new SettlementConfigError(`${where}: ${path}${path === "" ? "" : ": "}${message}`.replace(/\s*\n\s*/g, " "));
  };
  let doc: unknown;
  try {
    doc = parseYaml(text, { prettyErrors: false, maxAliasCount: 16 });
  } catch (err) {
    return fail("", `not valid JSON or YAML (${err instanceof Error ? err.message : String(err)})`);
  }
  if (!isPlainObject(doc)) return fail("", 'expected a mapping with a "blockchains" entry');
  for (const key of Object.keys(doc)) if (key !== "blockchains") fail(key, 'unknown entry (expected only "blockchains")');
  const chains = doc.blockchains;
  if (!isPlainObject(chains) || Object.keys(chains).length === 0) return fail("blockchains", "expected a mapping of at least one blockchain, e.g. ETHEREUM");

  const out: ChainSettings[] = [];
  const seenChainIds = new Map<number, string>();
  for (const [name, entry] of Object.entries(chains)) {
    const at = `blockchains.${name}`;
    if (!(BLOCKCHAINS as readonly string[]).includes(name)) fail(at, `unknown blockchain (expected one of ${EVM_BLOCKCHAINS.join(", ")})`);
    if (!EVM_BLOCKCHAINS.includes(name as Blockchain)) fail(at, `not an EVM chain; settlement supports ${EVM_BLOCKCHAINS.join(", ")}`);
    if (!isPlainObject(entry)) return fail(at, "expected a mapping");
    for (const key of Object.keys(entry)) if (!(CHAIN_KEYS as readonly string[]).includes(key)) fail(`${at}.${key}`, `unknown entry (expected ${CHAIN_KEYS.join(", ")})`);
    for (const key of REQUIRED_CHAIN_KEYS) if (entry[key] === undefined || entry[key] === null) fail(`${at}.${key}`, "missing");

    const integer = (key: string, min: number, max: number, def?: number): number => {
      const v = entry[key] ?? def;
      if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min || v > max) fail(`${at}.${key}`, `expected an integer from ${min} to ${max}, got ${show(v)}`);
      return v as number;
    };
    const duration = (key: string, minMs: number, maxMs: number, def?: string): number => {
      const v = entry[key] ?? def;
      const ms = typeof v === "string" ? parseDurationMs(v) : undefined;
      if (ms === undefined || ms < minMs || ms > maxMs) fail(`${at}.${key}`, `expected a duration such as 500ms, 30s, 5m (${minMs} ms to ${maxMs / 60_000} min), got ${show(v)}`);
      return ms as number;
    };
    const address = (key: string): Address => {
      const v = entry[key];
      // Mixed case must be a valid EIP-55 checksum: a typo in an address must not send money elsewhere.
      if (typeof v !== "string" || !isAddress(v, { strict: true }) || v.toLowerCase() === zeroAddress) fail(`${at}.${key}`, `expected a non-zero 0x address (EIP-55 checksummed if mixed case), got ${show(v)}`);
      return getAddress(v as string);
    };

    // Wei amounts are decimal strings: YAML and JSON numbers lose precision past 2^53 (about 0.009 ETH).
    const wei = (key: string, min: bigint): bigint | null => {
      const v = entry[key];
      if (v === undefined || v === null) return null;
      if (typeof v !== "string" || !/^(0|[1-9][0-9]{0,77})$/.test(v) || BigInt(v) < min) fail(`${at}.${key}`, `expected a wei amount as a decimal string of digits (e.g. "50000000000"), at least ${min}, got ${show(v)}`);
      return BigInt(v as string);
    };
    const rpc = entry.rpcUrl;
    let rpcUrl = "";
    try {
      if (typeof rpc !== "string") throw new Error();
      const u = new URL(rpc);
      if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error();
      rpcUrl = rpc;
    } catch {
      fail(`${at}.rpcUrl`, `expected an http:// or https:// URL, got ${show(rpc)}`);
    }
    const chainId = integer("chainId", 1, 2 ** 32 - 1);
    const other = seenChainIds.get(chainId);
    if (other !== undefined) fail(`${at}.chainId`, `${chainId} is also the chain id of ${other}`);
    seenChainIds.set(chainId, name);
    const gasLimit = integer("gasLimit", 50_000, 10_000_000, 150_000);
    out.push({
      blockchain: name as Blockchain,
      rpcUrl,
      chainId,
      tokenContract: address("tokenContract"),
      treasury: address("treasury"),
      confirmations: integer("confirmations", 1, 1000),
      feeBumpTimeoutMs: duration("feeBumpTimeout", 1_000, 86_400_000),
      gasLimit: BigInt(gasLimit),
      pollIntervalMs: duration("pollInterval", 10, 600_000, "1s"),
      requestTimeoutMs: duration("requestTimeout", 100, 600_000, "10s"),
      fromBlock: BigInt(integer("fromBlock", 0, Number.MAX_SAFE_INTEGER, 0)),
      logsBlockRange: BigInt(integer("logsBlockRange", 1, 10_000_000, 10_000)),
      maxFeePerGasWei: wei("maxFeePerGas", 1n),
      signerBalanceFloorWei: (() => {
        const floor = wei("signerBalanceFloor", 0n);
        if (floor !== null && entry.signerBalanceFloorTxs !== undefined) fail(`${at}.signerBalanceFloorTxs`, "give either signerBalanceFloor (wei) or signerBalanceFloorTxs (transactions at the current fee), not both");
        return floor;
      })(),
      signerBalanceFloorTxs: integer("signerBalanceFloorTxs", 0, 1_000_000, 10),
    });
  }
  return out;
}

function isLoopback(listen: string): boolean {
  const host = listen.slice(0, listen.lastIndexOf(":")).replace(/^\[|\]$/g, "");
  return host === "localhost" || host === "::1" || /^127\.[0-9]+\.[0-9]+\.[0-9]+$/.test(host);
}

/**
 * Cross-checks and reads the files the settings name. A file that is named
 * must be readable even when unused, so a typo shows at start, not at the
 * first mint. Secrets (PIN, dev key) are read here and never echoed.
 */
export function resolveSettlementSettings(raw: RawSettlementValues, io: SettlementIo): { settlement: SettlementSettings | null; testFault: FaultSpec | null } {
  const fail = (env: string, message: string): never => {
    throw new SettlementConfigError(`invalid ${io.nameOf(env)}: ${message}`);
  };
  const read = (env: string, path: string): string => {
    try {
      return io.readFile(path);
    } catch (err) {
      const code = (err as { code?: string }).code;
      return fail(env, `cannot read ${JSON.stringify(path)}${code !== undefined ? ` (${code})` : ""}`);
    }
  };

  let testFault: FaultSpec | null = null;
  if (raw.testFaultPoint !== "") {
    const m = FAULT_PATTERN.exec(raw.testFaultPoint);
    if (m === null) return fail("MINT_TEST_FAULT", `${JSON.stringify(raw.testFaultPoint)}: expected ${FAULT_POINTS.join(" or ")}, optionally :N (stop the N-th time)`);
    if (!raw.testFaults) return fail("MINT_TEST_FAULT", "fault hooks are refused unless MINT_TEST_FAULTS=true (test machines only)");
    testFault = { point: m[1] as FaultPoint, count: m[2] === undefined ? 1 : Number(m[2]) };
  }

  const pin = raw.pkcs11PinFile === "" ? "" : read("MINT_PKCS11_PIN_FILE", raw.pkcs11PinFile).replace(/\r?\n$/, "");
  if (raw.pkcs11PinFile !== "" && (pin === "" || /[\r\n]/.test(pin))) fail("MINT_PKCS11_PIN_FILE", "the file must hold the PIN on one line");
  const devKey = raw.devKeyFile === "" ? "" : read("MINT_DEV_KEY_FILE", raw.devKeyFile).trim();
  if (raw.devKeyFile !== "" && !/^0x[0-9a-fA-F]{64}$/.test(devKey)) fail("MINT_DEV_KEY_FILE", "the file must hold one 0x-prefixed 32-byte hex private key");
  const documentText = raw.settlementFile === "" ? null : read("MINT_SETTLEMENT_FILE", raw.settlementFile);

  if (documentText === null) return { settlement: null, testFault };
  const chains = parseSettlementDocument(documentText, `${io.nameOf("MINT_SETTLEMENT_FILE")} ${raw.settlementFile}`, io.parseDurationMs);

  let signer: SignerSettings;
  if (raw.signer === "pkcs11") {
    if (raw.pkcs11Module === "") return fail("MINT_PKCS11_MODULE", "required with MINT_SIGNER=pkcs11 (the path of the PKCS#11 module)");
    if (raw.pkcs11TokenLabel === "") return fail("MINT_PKCS11_TOKEN_LABEL", "required with MINT_SIGNER=pkcs11");
    if (raw.pkcs11PinFile === "") return fail("MINT_PKCS11_PIN_FILE", "required with MINT_SIGNER=pkcs11");
    signer = { kind: "pkcs11", modulePath: raw.pkcs11Module, tokenLabel: raw.pkcs11TokenLabel, keyLabel: raw.pkcs11KeyLabel, pinFile: raw.pkcs11PinFile, pin };
  } else {
    if (raw.devKeyFile === "") return fail("MINT_DEV_KEY_FILE", "required with MINT_SIGNER=dev-key");
    // A key in a file holds the treasury: only for a service no other host can reach.
    if (!isLoopback(raw.listen)) return fail("MINT_SIGNER", `dev-key is refused on a non-loopback listener (${raw.listen}); use pkcs11`);
    signer = { kind: "dev-key", keyFile: raw.devKeyFile, privateKey: devKey as `0x${string}` };
  }
  return { settlement: { file: raw.settlementFile, chains, signer }, testFault };
}
