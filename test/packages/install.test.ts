/**
 * The packages a user installs without the server, as a user installs them:
 * `npm run pack:packages` builds and packs @usdc-mint/client and
 * @usdc-mint/mintctl; the client tarball goes into an empty project (its
 * installed tree holds no server package and nothing native) where the
 * docs' SDK example type-checks and runs against the real server; the mintctl
 * tarball is installed with `npm install -g` into a temporary prefix and run
 * from its bin/ against the real server.
 *
 * npm works from its local cache where it can (--prefer-offline): the
 * packages are the ones `npm ci` already fetched for the repository.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { blocks, DOC_ADDRESS, readPage } from "../support/doc-snippets.js";
import { ROOT } from "../support/service-process.js";
import { startTestServer, type TestServer } from "../support/test-server.js";

const run = promisify(execFile);
const NPM_FLAGS = ["--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"];
const NPM_ENV = { ...process.env, npm_config_update_notifier: "false" };

/** Packages that belong to the server (storage, chain, HSM, logging, metrics) or to the service package itself. */
const SERVER_PACKAGES = ["usdc-mint-service", "pg", "pg-pool", "ioredis", "viem", "pkcs11js", "pino", "prom-client", "async-mutex", "yaml", "@noble/curves", "hardhat"];

let work: string;
let tarballs: { client: string; mintctl: string };
let server: TestServer;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "mint-packages-"));
  const packed = await run(process.execPath, [join(ROOT, "scripts/pack-packages.mjs"), join(work, "tarballs")], { cwd: ROOT, env: NPM_ENV });
  tarballs = JSON.parse(packed.stdout.trim().split("\n").pop() ?? "") as typeof tarballs;
  server = await startTestServer();
}, 300_000);

afterAll(async () => {
  await server?.stop();
  if (work !== undefined) rmSync(work, { recursive: true, force: true });
});

/** Every installed package under a node_modules tree: name, version, and whether it builds native code. */
function installedPackages(nodeModules: string): { name: string; version: string; native: boolean }[] {
  const found: { name: string; version: string; native: boolean }[] = [];
  const visit = (dir: string): void => {
    for (const entry of readdirSync(dir)) {
      if (entry.startsWith(".")) continue;
      const path = join(dir, entry);
      if (entry.startsWith("@")) {
        visit(path);
        continue;
      }
      const manifest = join(path, "package.json");
      if (!existsSync(manifest)) continue;
      const pkg = JSON.parse(readFileSync(manifest, "utf8")) as { name: string; version: string; gypfile?: boolean };
      found.push({ name: pkg.name, version: pkg.version, native: pkg.gypfile === true || existsSync(join(path, "binding.gyp")) || hasNodeAddon(path) });
      if (existsSync(join(path, "node_modules"))) visit(join(path, "node_modules"));
    }
  };
  visit(nodeModules);
  return found;
}

/** A compiled addon (*.node) anywhere in a package's own files. */
function hasNodeAddon(dir: string): boolean {
  for (const entry of readdirSync(dir)) {
    if (entry === "node_modules") continue;
    const path = join(dir, entry);
    const st = statSync(path);
    if (st.isDirectory() ? hasNodeAddon(path) : entry.endsWith(".node")) return true;
  }
  return false;
}

/** The first TypeScript block of docs/sdk.md ("A first program"), talking to `address` instead of the docs' 127.0.0.1:50051. */
function sdkExample(address: string): string {
  const example = blocks(readPage("docs/sdk.md")).find((b) => b.lang === "ts");
  if (example === undefined) throw new Error("docs/sdk.md has no ```ts block");
  expect(example.body).toContain('from "@usdc-mint/client"');
  return example.body.split(DOC_ADDRESS).join(address);
}

describe("@usdc-mint/client from its packed tarball", () => {
  let app: string;

  it("installs into an empty project: the client, grpc-js and the protobuf runtime; no server package; nothing native", async () => {
    app = join(work, "app");
    mkdirSync(app);
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "sdk-example", private: true, type: "module" }));
    const t0 = Date.now();
    await run("npm", ["install", ...NPM_FLAGS, tarballs.client], { cwd: app, env: NPM_ENV });
    const seconds = (Date.now() - t0) / 1000;

    const tree = await run("npm", ["ls", "--all"], { cwd: app, env: NPM_ENV });
    const installed = installedPackages(join(app, "node_modules"));
    const names = new Set(installed.map((p) => p.name));
    expect([...names]).toEqual(expect.arrayContaining(["@usdc-mint/client", "@grpc/grpc-js", "@bufbuild/protobuf"]));
    expect(SERVER_PACKAGES.filter((n) => names.has(n)), tree.stdout).toEqual([]);
    expect(installed.filter((p) => p.native).map((p) => p.name)).toEqual([]);
    const client = JSON.parse(readFileSync(join(app, "node_modules/@usdc-mint/client/package.json"), "utf8")) as { dependencies: Record<string, string> };
    expect(Object.keys(client.dependencies).sort()).toEqual(["@bufbuild/protobuf", "@grpc/grpc-js"]);
    // Shipped: compiled code and declarations, no sources, tests or server code.
    const shipped = (await run("tar", ["-tzf", tarballs.client])).stdout.trim().split("\n");
    expect(shipped.filter((f) => !/^package\/(package\.json|README\.md|dist\/(src|gen)\/.+\.(js|d\.ts))$/.test(f))).toEqual([]);
    const du = await run("du", ["-sk", join(app, "node_modules")]);
    console.log(`@usdc-mint/client install: ${installed.length} packages, ${Math.round(Number(du.stdout.split("\t")[0]) / 1024)} MB node_modules, ${seconds.toFixed(1)} s`);
  }, 120_000);

  it("the first program of docs/sdk.md type-checks (strict, nodenext) and runs against the real server from that project", async () => {
    const code = sdkExample(server.address);
    writeFileSync(join(app, "example.ts"), code);
    writeFileSync(join(app, "example.mjs"), code);
    writeFileSync(
      join(app, "tsconfig.json"),
      JSON.stringify({ compilerOptions: { strict: true, noEmit: true, target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", types: ["node"], typeRoots: [join(ROOT, "node_modules/@types")] }, files: ["example.ts"] }),
    );
    // The declarations resolve from the installed package (app/node_modules), not from this repository.
    await run(process.execPath, [join(ROOT, "node_modules/typescript/bin/tsc"), "-p", "tsconfig.json"], { cwd: app });

    const env = { PATH: process.env.PATH ?? "" };
    const first = await run(process.execPath, ["example.mjs"], { cwd: app, env });
    expect(first.stdout).toMatch(/^mint_[0-9A-Z]{26} false 100500000n\n$/);
    const again = await run(process.execPath, ["example.mjs"], { cwd: app, env });
    expect(again.stdout).toBe(first.stdout.replace(" false ", " true "));
  }, 120_000);
});

describe("mintctl from its packed tarball", () => {
  it("npm install -g --prefix puts mintctl on PATH; it runs against the real server", async () => {
    const prefix = join(work, "global");
    await run("npm", ["install", "-g", "--prefix", prefix, ...NPM_FLAGS, tarballs.mintctl], { cwd: work, env: NPM_ENV });
    const bin = join(prefix, "bin");
    expect(existsSync(join(bin, "mintctl"))).toBe(true);
    const installed = installedPackages(join(prefix, "lib/node_modules"));
    expect(SERVER_PACKAGES.filter((n) => installed.some((p) => p.name === n))).toEqual([]);
    expect(installed.filter((p) => p.native).map((p) => p.name)).toEqual([]);

    // Found on PATH by name, as a shell would, from a folder with no node_modules.
    const env = { PATH: `${bin}:${process.env.PATH ?? ""}` };
    const help = await run("mintctl", ["--help"], { cwd: work, env });
    expect(help.stdout).toContain("Usage: mintctl");
    const account = `global-${Date.now()}`;
    const minted = JSON.parse((await run("mintctl", ["--address", server.address, "--json", "mint", account, "2.5", "--idempotency-key", "g-1"], { cwd: work, env })).stdout) as { mint: { accountId: string; amount: string }; replayed: boolean };
    expect([minted.mint.accountId, minted.mint.amount, minted.replayed]).toEqual([account, "2.5", false]);
    const balance = JSON.parse((await run("mintctl", ["--address", server.address, "--json", "balance", account], { cwd: work, env })).stdout) as { balance: string };
    expect(balance.balance).toBe("2.5");
    // A failed call keeps its exit code (10 + INVALID_ARGUMENT).
    const bad = await run("mintctl", ["--address", server.address, "mint", account, "1.0000001"], { cwd: work, env }).then(
      () => 0,
      (e: { code: number }) => e.code,
    );
    expect(bad).toBe(13);
  }, 120_000);
});
