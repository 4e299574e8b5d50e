// package.json declares the SDK entry (with its types) and the mintctl bin; each must point at what `npm run build` emits from src/.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../support/service-process.js";

const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { exports: Record<string, { types: string; default: string }>; bin: Record<string, string> };

/** The source file tsc compiles to a dist path (dist/src/x.js or .d.ts -> src/x.ts). */
function sourceOf(distPath: string): string {
  return join(ROOT, distPath.replace(/^\.\//, "").replace(/^dist\//, "").replace(/\.d\.ts$|\.js$/, ".ts"));
}

describe("package.json entry points", () => {
  it("usdc-mint-service/client: types and code from src/client/index.ts", () => {
    const entry = pkg.exports["./client"];
    expect(entry).toEqual({ types: "./dist/src/client/index.d.ts", default: "./dist/src/client/index.js" });
    expect(existsSync(sourceOf(entry?.types ?? ""))).toBe(true);
    expect(sourceOf(entry?.types ?? "")).toBe(sourceOf(entry?.default ?? ""));
  });
  it("bin mintctl: src/cli/main.ts, with a node shebang", () => {
    const bin = pkg.bin.mintctl ?? "";
    expect(readFileSync(sourceOf(bin), "utf8").startsWith("#!/usr/bin/env node\n")).toBe(true);
  });
});
