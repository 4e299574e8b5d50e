/**
 * Vitest global setup: gives the contract suites a directory to record the
 * (money rule, store) pairs their passing tests covered, and prints the
 * rule × store table when the run ends, so an empty cell is visible.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { MONEY_RULES, type MoneyRule } from "../contract/money-rules.js";

/** The stores every money rule must be covered on. */
const STORES = ["memory", "postgres"] as const;

export default function setup(project: TestProject): () => void {
  const dir = mkdtempSync(join(tmpdir(), "contract-coverage-"));
  project.provide("contractCoverageDir", dir);
  return () => {
    const pairs = new Set<string>();
    for (const f of readdirSync(dir)) for (const line of readFileSync(join(dir, f), "utf8").split("\n")) if (line !== "") pairs.add(line);
    rmSync(dir, { recursive: true, force: true });
    if (pairs.size === 0) return;
    console.log(moneyRuleTable(pairs));
  };
}

/** The table as text: one row per rule, one column per store, "ok" or "--" (not covered in this run). */
export function moneyRuleTable(pairs: ReadonlySet<string>): string {
  const rules = Object.keys(MONEY_RULES) as MoneyRule[];
  const width = Math.max(...rules.map((r) => r.length));
  const lines = [`money rules × stores (contract suites, this run)`, `${"rule".padEnd(width)}  ${STORES.map((s) => s.padEnd(8)).join("  ")}`];
  let empty = 0;
  for (const rule of rules) {
    const cells = STORES.map((store) => {
      const ok = pairs.has(`${rule}\t${store}`);
      if (!ok) empty++;
      return (ok ? "ok" : "--").padEnd(8);
    });
    lines.push(`${rule.padEnd(width)}  ${cells.join("  ")}`);
  }
  lines.push(empty === 0 ? "every cell covered" : `${empty} empty cell(s): "--" (a store not run, a test filtered out, or a rule without a test)`);
  return lines.join("\n");
}
