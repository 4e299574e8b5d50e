/**
 * What a user reads says what things are, not which change brought them: no
 * "issue N" in README.md, docs/, or the --help texts of the service and of
 * mintctl (every command and subcommand).
 */
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

  it("the check finds what it looks for", () => {
    expect(mentions("added in issue 12 and Issue #7; issues 7–16; see defect 6")).toEqual(["issue 12", "Issue #7", "issues 7", "defect 6"]);
  });
});
