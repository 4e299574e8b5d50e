/**
 * The SDK's API reference: TypeDoc (packages/client/typedoc.json, what
 * `npm run docs:api` builds) validates that every symbol @usdc-mint/client
 * exports, and every member of an exported type, has a doc comment, and
 * treats a warning as an error. The second case runs the same configuration
 * over a file with undocumented exports, so the check is seen to fail.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { ROOT } from "../support/service-process.js";

const run = promisify(execFile);
const TYPEDOC = join(ROOT, "node_modules/typedoc/bin/typedoc");
const CONFIG = join(ROOT, "packages/client/typedoc.json");

/** Runs TypeDoc without writing HTML; answers its exit code and output (colours off). */
async function typedoc(options: string): Promise<{ code: number; output: string }> {
  const env = { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0" };
  return run(process.execPath, [TYPEDOC, "--options", options, "--emit", "none"], { cwd: ROOT, env }).then(
    (r) => ({ code: 0, output: r.stdout + r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, output: e.stdout + e.stderr }),
  );
}

const scratch = mkdtempSync(join(tmpdir(), "mint-api-docs-"));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe("API reference of @usdc-mint/client (TypeDoc)", () => {
  it("every exported symbol and member has a doc comment: validation passes with warnings as errors", async () => {
    const r = await typedoc(CONFIG);
    expect(r.output).not.toMatch(/warning|error/i);
    expect(r.code).toBe(0);
  }, 60_000);

  it("an exported function, interface member or constant without a doc comment fails the check", async () => {
    writeFileSync(
      join(scratch, "probe.ts"),
      [
        "/** Documented. */",
        "export function documented(): number { return 1; }",
        "export function bareFunction(): number { return 2; }",
        "/** Documented interface. */",
        "export interface Probe {",
        "  /** Documented member. */",
        "  readonly a: string;",
        "  readonly bareMember: number;",
        "}",
        "export const BARE_CONSTANT = 3;",
        "",
      ].join("\n"),
    );
    writeFileSync(join(scratch, "tsconfig.json"), JSON.stringify({ extends: join(ROOT, "tsconfig.json"), compilerOptions: { rootDir: ".", types: [] }, include: ["probe.ts"] }));
    // The SDK's configuration (validation, warnings as errors) over the probe file instead of the SDK's entry.
    writeFileSync(join(scratch, "typedoc.json"), JSON.stringify({ extends: [CONFIG], name: "probe", entryPoints: ["probe.ts"], tsconfig: "tsconfig.json" }));
    const r = await typedoc(join(scratch, "typedoc.json"));
    expect(r.code).not.toBe(0);
    expect(r.output).toMatch(/bareFunction \(\w+\).*does not have any documentation/);
    expect(r.output).toMatch(/Probe\.bareMember \(Property\).*does not have any documentation/);
    expect(r.output).toMatch(/BARE_CONSTANT \(Variable\).*does not have any documentation/);
    expect(r.output).not.toMatch(/\bdocumented \(\w+\).*does not have any documentation/);
  }, 60_000);
});
