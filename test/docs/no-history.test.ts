/**
 * What a user reads says what things are, not which change brought them: no
 * "issue N" in README.md, docs/, or the --help texts of the service and of
 * mintctl (every command and subcommand); none in the code's comments either
 * (src/, proto/, whose comments reflection serves, and packages/<name>/src),
 * nor in the tests' names and comments, the benchmarks, scripts/ and ops/.
 * bench/LATEST.md, a dated record of benchmark runs, is not checked.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Command } from "commander";
import { describe, expect, it } from "vitest";
import { COMMANDS } from "../../packages/mintctl/src/commands/index.js";
import { runCli } from "../../packages/mintctl/src/run.js";
import { helpText } from "../../src/config.js";
import { docPages, readPage } from "../support/doc-snippets.js";

const HISTORY = /\b(?:issues?|defect)\s*#?\d+/gi;

function mentions(text: string): string[] {
  return [...text.matchAll(HISTORY)].map((m) => m[0]);
}

const ROOT = join(import.meta.dirname, "../..");

/** Every file under `roots` whose name matches `names`, relative to the repository. */
function filesUnder(roots: string[], names: RegExp): string[] {
  return roots.flatMap((root) =>
    readdirSync(join(ROOT, root), { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile() && names.test(e.name))
      .map((e) => join(e.parentPath, e.name).slice(ROOT.length + 1)),
  );
}

/** Every source file under the code's roots. */
function sourceFiles(): string[] {
  return filesUnder(["src", "proto", ...readdirSync(join(ROOT, "packages")).map((p) => `packages/${p}/src`)], /\.(?:ts|proto)$/);
}

/** This file (its sample must hold what the check finds) and the dated record of benchmark runs. */
const NOT_SCANNED = new Set(["test/docs/no-history.test.ts", "bench/LATEST.md"]);

/** The tests, benchmarks, scripts and alert rules, with their fixtures' texts. */
function supportFiles(): string[] {
  return filesUnder(["test", "bench", "scripts", "ops"], /\.(?:ts|mjs|cjs|js|py|sh|sql|ya?ml|md)$/).filter((f) => !NOT_SCANNED.has(f));
}

function mentionsIn(files: string[]): string[] {
  return files.flatMap((f) => mentions(readFileSync(join(ROOT, f), "utf8")).map((m) => `${f}: ${m}`));
}

/** The help of every mintctl command and subcommand, as commander prints it. */
function commandHelps(): string[] {
  const program = new Command("mintctl");
  for (const c of COMMANDS) c.register(program, () => async () => {});
  const out: string[] = [];
  const walk = (cmd: Command): void => {
    for (const sub of cmd.commands) {
      out.push(sub.helpInformation());
      walk(sub);
    }
  };
  walk(program);
  return out;
}

describe('no "issue N" where a user reads', () => {
  it.each(docPages())("%s", (page) => {
    expect(mentions(readPage(page))).toEqual([]);
  });

  it("the service's --help", () => {
    expect(helpText()).toContain("MINT_LISTEN");
    expect(mentions(helpText())).toEqual([]);
  });

  it("mintctl --help and every command's --help", async () => {
    let top = "";
    await runCli(["--help"], { out: (s) => (top += s), err: (s) => (top += s), env: {}, stderrIsTTY: false });
    expect(top).toContain("Exit codes");
    const helps = commandHelps();
    expect(helps.length).toBeGreaterThanOrEqual(COMMANDS.length);
    expect([top, ...helps].flatMap(mentions)).toEqual([]);
  });

  it("the code's comments in src/, proto/ and packages/*/src", () => {
    const files = sourceFiles();
    expect(files).toContain("proto/usdc/mint/v1/mint.proto");
    expect(files).toContain("src/app.ts");
    expect(mentionsIn(files)).toEqual([]);
  });

  it("the tests' names and comments, bench/ (not LATEST.md), scripts/ and ops/", () => {
    const files = supportFiles();
    expect(files).toContain("test/contract/exactly-once-store.contract.ts");
    expect(files).toContain("bench/run.ts");
    expect(files).toContain("ops/alerts.yml");
    expect(files).not.toContain("bench/LATEST.md");
    expect(mentionsIn(files)).toEqual([]);
  });

  it("the check finds what it looks for", () => {
    expect(mentions("added in issue 12 and Issue #7; issues 7–16; see defect 6")).toEqual(["issue 12", "Issue #7", "issues 7", "defect 6"]);
  });
});
