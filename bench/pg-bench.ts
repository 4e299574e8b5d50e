/**
 * PostgreSQL store: transfers/s of the service (MINT_STORE=postgres://…) vs
 * pgbench running the equivalent transfer transaction on the same database
 * with the same number of clients. Measured only once the PostgreSQL adapter
 * exists (src/adapters/postgres/index.ts exporting openPostgresStores);
 * until then the comparison is null.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { ROOT, type Launch } from "./servers.js";

export interface PgComparison {
  /** Median over pairs of service transfers/s ÷ pgbench tps; null when not measured. */
  readonly ratio: number | null;
  readonly ratioSpread: { median: number; min: number; max: number; q1: number; q3: number } | null;
  readonly clients: number;
  readonly service: { rps: number; p50Ms: number; p99Ms: number; errors: number };
  readonly pgbench: { tps: number; latencyMs: number };
  readonly note: string;
  readonly pairs: readonly { service: number; pgbench: number }[];
}

export interface PgOptions {
  readonly quick: boolean;
  readonly pairs: number;
  readonly launch: Launch;
  readonly log: (line: string) => void;
  readonly deadlineMs: number;
}

function notMeasured(note: string): PgComparison {
  return {
    ratio: null,
    ratioSpread: null,
    clients: 0,
    service: { rps: NaN, p50Ms: NaN, p99Ms: NaN, errors: 0 },
    pgbench: { tps: NaN, latencyMs: NaN },
    note,
    pairs: [],
  };
}

export async function runPgComparison(opts: PgOptions): Promise<PgComparison> {
  const index = path.join(ROOT, "src/adapters/postgres/index.ts");
  if (!existsSync(index) || !/export\s+(async\s+)?function\s+openPostgresStores|export\s*\{[^}]*openPostgresStores/.test(readFileSync(index, "utf8"))) {
    opts.log("  not measured: src/adapters/postgres/index.ts does not export openPostgresStores yet");
    return notMeasured("not measured: the PostgreSQL store does not exist yet (src/adapters/postgres/index.ts exporting openPostgresStores)");
  }
  return notMeasured("not measured: PostgreSQL comparison not implemented yet");
}
