/**
 * A real local EVM node for tests: hardhat@2's EDR node as a child process on
 * a free loopback port, and the FiatToken deployed from the committed
 * artifact with viem. The deployer (hardhat's first account, a publicly known
 * key) is the token's owner, master minter and blacklister.
 */
import { spawn, type ChildProcess } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  createPublicClient,
  createTestClient,
  createWalletClient,
  defineChain,
  http,
  parseEther,
  type PublicClient,
  type TestClient,
  type WalletClient,
  type Chain,
  type Account,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { fiatTokenAbi, fiatTokenBytecode } from "../../../src/adapters/evm/fiat-token-artifact.js";
import type { Address } from "../../../src/domain/settlement/ports.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const HARDHAT_BIN = path.join(ROOT, "node_modules", ".bin", "hardhat");
const HARDHAT_CONFIG = path.join(ROOT, "test", "support", "evm", "hardhat.config.cjs");

/** Hardhat's account #0 (public test key; never use it anywhere real). */
export const DEPLOYER_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80" as const;

export interface EvmNodeOptions {
  readonly chainId?: number;
  /** 0 (default) = automine: one block per transaction; N = a block every N ms. */
  readonly intervalMs?: number;
}

export interface EvmNode {
  readonly url: string;
  readonly port: number;
  readonly chainId: number;
  readonly chain: Chain;
  readonly publicClient: PublicClient;
  readonly testClient: TestClient;
  readonly deployer: WalletClient & { account: Account };
  /** Deploys a FiatToken and makes `minter` a minter with `allowance` (and gives it ETH for gas). */
  deployToken(minter: Address, allowance: bigint): Promise<Address>;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function waitForRpc(url: string, child: ChildProcess, output: () => string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`hardhat node exited with ${child.exitCode}: ${output()}`);
    try {
      const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }) });
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`hardhat node did not answer within ${timeoutMs} ms: ${output()}`);
}

export async function startEvmNode(options: EvmNodeOptions = {}): Promise<EvmNode> {
  const chainId = options.chainId ?? 31337;
  const port = await freePort();
  const child = spawn(HARDHAT_BIN, ["--config", HARDHAT_CONFIG, "node", "--hostname", "127.0.0.1", "--port", String(port)], {
    cwd: ROOT,
    env: { ...process.env, EVM_CHAIN_ID: String(chainId), EVM_INTERVAL_MS: String(options.intervalMs ?? 0), HARDHAT_DISABLE_TELEMETRY_PROMPT: "true" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const keep = (b: Buffer): void => {
    out = (out + b.toString()).slice(-4000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitForRpc(url, child, () => out, 30_000);
  } catch (err) {
    child.kill("SIGKILL");
    throw err;
  }
  const chain = defineChain({ id: chainId, name: "local", nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 }, rpcUrls: { default: { http: [url] } } });
  const transport = http(url, { retryCount: 0 });
  const publicClient = createPublicClient({ chain, transport }) as PublicClient;
  const testClient = createTestClient({ chain, transport, mode: "hardhat" });
  const deployer = createWalletClient({ chain, transport, account: privateKeyToAccount(DEPLOYER_KEY) });

  return {
    url,
    port,
    chainId,
    chain,
    publicClient,
    testClient,
    deployer,
    async deployToken(minter, allowance) {
      const owner = deployer.account.address;
      const hash = await deployer.deployContract({ abi: fiatTokenAbi, bytecode: fiatTokenBytecode, args: ["USD Coin", "USDC", owner, owner, owner], chain, account: deployer.account });
      if (options.intervalMs) await testClient.mine({ blocks: 1 });
      const receipt = await publicClient.waitForTransactionReceipt({ hash, timeout: 30_000 });
      const token = receipt.contractAddress;
      if (token === null || token === undefined || receipt.status !== "success") throw new Error("token deployment failed");
      const cfg = await deployer.writeContract({ address: token, abi: fiatTokenAbi, functionName: "configureMinter", args: [minter, allowance], chain, account: deployer.account, gas: 200_000n });
      if (options.intervalMs) await testClient.mine({ blocks: 1 });
      const cfgReceipt = await publicClient.waitForTransactionReceipt({ hash: cfg, timeout: 30_000 });
      if (cfgReceipt.status !== "success") throw new Error("configureMinter failed");
      await testClient.setBalance({ address: minter, value: parseEther("1000") });
      return token;
    },
    async stop() {
      if (child.exitCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 3_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
