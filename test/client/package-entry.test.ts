// package.json declares the SDK entry (with its types) and the mintctl bin; each must point at what `npm run build` emits from src/.
// The packages users install apart from the server (packages/client, packages/mintctl) depend on no server package,
// and the server's own module graph never reaches them.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../support/service-process.js";

interface Manifest {
  name: string;
  exports: Record<string, { types: string; default: string }>;
  bin: Record<string, string>;
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
}
const manifest = (path: string): Manifest => JSON.parse(readFileSync(join(ROOT, path), "utf8")) as Manifest;
const pkg = manifest("package.json");

/** The source file tsc compiles to a dist path (dist/src/x.js or .d.ts -> src/x.ts). */
function sourceOf(distPath: string): string {
  return join(ROOT, distPath.replace(/^\.\//, "").replace(/^dist\//, "").replace(/\.d\.ts$|\.js$/, ".ts"));
}

/** Every source file reachable from `entry` through relative imports and exports (static and dynamic). */
function moduleGraph(entry: string): Set<string> {
  const seen = new Set<string>();
  const visit = (file: string): void => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g)) {
      const target = resolve(dirname(file), (m[1] as string).replace(/\.js$/, ".ts"));
      if (existsSync(target)) visit(target);
    }
  };
  visit(join(ROOT, entry));
  return seen;
}

describe("package.json entry points", () => {
  it("usdc-mint-service/client: types and code from src/client/index.ts, which re-exports @usdc-mint/client", () => {
    const entry = pkg.exports["./client"];
    expect(entry).toEqual({ types: "./dist/src/client/index.d.ts", default: "./dist/src/client/index.js" });
    expect(existsSync(sourceOf(entry?.types ?? ""))).toBe(true);
    expect(sourceOf(entry?.types ?? "")).toBe(sourceOf(entry?.default ?? ""));
    expect(readFileSync(sourceOf(entry?.default ?? ""), "utf8")).toContain('export * from "../../packages/client/src/index.js";');
  });
  it("bin mintctl: src/cli/main.ts, with a node shebang", () => {
    const bin = pkg.bin.mintctl ?? "";
    expect(readFileSync(sourceOf(bin), "utf8").startsWith("#!/usr/bin/env node\n")).toBe(true);
  });
  it("npm run audit:verify runs the built verifier with node alone (no tsx)", () => {
    expect(pkg.scripts["audit:verify"]).toBe("node dist/src/cli/audit-verify.js");
  });
});

describe("the packages installed apart from the server", () => {
  const client = manifest("packages/client/package.json");
  const mintctl = manifest("packages/mintctl/package.json");

  it("@usdc-mint/client depends on grpc-js and the protobuf runtime only, in the ranges the service tests with", () => {
    expect(client.name).toBe("@usdc-mint/client");
    expect(client.dependencies).toEqual({ "@bufbuild/protobuf": pkg.dependencies["@bufbuild/protobuf"], "@grpc/grpc-js": pkg.dependencies["@grpc/grpc-js"] });
  });
  it("@usdc-mint/mintctl adds commander and cli-progress only; its bin has a node shebang", () => {
    expect(Object.keys(mintctl.dependencies).sort()).toEqual(["@bufbuild/protobuf", "@grpc/grpc-js", "cli-progress", "commander"]);
    for (const [name, range] of Object.entries(mintctl.dependencies)) expect([name, range]).toEqual([name, pkg.dependencies[name]]);
    expect(mintctl.bin).toEqual({ mintctl: "dist/mintctl/src/main.js" });
    expect(readFileSync(join(ROOT, "packages/mintctl/src/main.ts"), "utf8").startsWith("#!/usr/bin/env node\n")).toBe(true);
  });
  it("their sources import nothing outside the packages (no server code)", () => {
    for (const entry of ["packages/client/src/index.ts", "packages/mintctl/src/main.ts"]) {
      const outside = [...moduleGraph(entry)].map((f) => relative(ROOT, f)).filter((f) => !f.startsWith("packages/"));
      expect(outside, entry).toEqual([]);
    }
  });
  it("the server's module graph (src/main.ts) never reaches them", () => {
    const graph = [...moduleGraph("src/main.ts")].map((f) => relative(ROOT, f));
    expect(graph.length).toBeGreaterThan(20);
    expect(graph.filter((f) => f.startsWith("packages/") || f.startsWith("src/client/") || f === "src/cli/main.ts")).toEqual([]);
  });
});
