/**
 * A statement built from named parts: its CTEs, in order, and the final
 * query that reads them. A journaled variant is the same parts plus the
 * audit journal's CTE (`j`), so no statement is ever cut out of another's
 * text.
 */
import { journalCte, journalCteWhen } from "../postgres-audit-journal.js";

export interface Statement {
  /** `name AS (…)` each, in the order they are written. */
  readonly ctes: readonly string[];
  /** The final query. */
  readonly final: string;
}

/** The SQL text of `s`. */
export function sql(s: Statement): string {
  return `\nWITH ${s.ctes.join(", ")}\n${s.final}`;
}

/** `s` with the journal's CTE added last, its 7 parameters starting at `$first`. */
export function journaled(s: Statement, first: number): Statement {
  return { ctes: [...s.ctes, journalCte(first)], final: s.final };
}

/** `s` with the journal's CTE added last, inserting only when the CTE `source` returned a row. */
export function journaledWhen(s: Statement, first: number, source: string): Statement {
  return { ctes: [...s.ctes, journalCteWhen(first, source)], final: s.final };
}
