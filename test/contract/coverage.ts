/**
 * Records which money rules (./money-rules.ts) a store's contract tests
 * covered in this run, for the rule × store table and the per-store check.
 */
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import { expect, inject, it } from "vitest";
import { MONEY_RULES, type MoneyRule } from "./money-rules.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** Where the contract suites write the (rule, store) pairs they covered; empty when no global setup ran. */
    contractCoverageDir: string;
  }
}

/** The store column of a suite name: "postgres, default isolation SERIALIZABLE" counts as "postgres". */
export function storeOf(suiteName: string): string {
  return (suiteName.split(",")[0] ?? suiteName).trim();
}

const coveredHere = new Set<string>();

/** Records that a test of `rule` passed on `suiteName`'s store. Call it after the test's assertions. */
export function covered(rule: MoneyRule, suiteName: string): void {
  const store = storeOf(suiteName);
  const pair = `${rule}\t${store}`;
  if (coveredHere.has(pair)) return;
  coveredHere.add(pair);
  const dir = inject("contractCoverageDir");
  if (typeof dir === "string" && dir !== "") appendFileSync(join(dir, `${process.pid}.tsv`), `${pair}\n`);
}

/**
 * The last test of a store's suite: every money rule has a passing test on
 * `store` in this run. (A filtered run, `-t`, filters this test out too.)
 */
export function expectEveryMoneyRuleCovered(store: string): void {
  it(`covers every rule that moves money or allowance on ${store}`, () => {
    const missing = (Object.keys(MONEY_RULES) as MoneyRule[]).filter((r) => !coveredHere.has(`${r}\t${store}`));
    expect(missing).toEqual([]);
  });
}
