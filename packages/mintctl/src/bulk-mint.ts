/**
 * `mintctl mint --from-csv FILE`: one MintUsdc per row, a few in flight at
 * once, each with the idempotency key of its row, so running the same file
 * again replays instead of minting twice. Progress goes to stderr (a bar on
 * a terminal, plain lines otherwise); the summary to stdout; failed rows, with
 * their error, to a CSV that can be fixed and fed back as input.
 */
import { readFileSync, writeFileSync } from "node:fs";
import cliProgress from "cli-progress";
import { MintServiceError, toMintServiceError } from "../../client/src/errors.js";
import { csvLine, parseCsv } from "./csv.js";
import { UsageError, type Context } from "./context.js";
import { EXIT_BULK_FAILURES, EXIT_OK } from "./exit-codes.js";
import { record } from "./output.js";

export interface BulkMintOptions {
  readonly file: string;
  readonly failuresFile: string;
  readonly defaultChain: string;
  readonly concurrency: number;
}

interface Row {
  readonly line: number;
  readonly accountId: string;
  readonly amount: string;
  readonly blockchain: string;
  readonly idempotencyKey: string;
}

export interface BulkMintSummary {
  readonly total: number;
  readonly applied: number;
  readonly replayed: number;
  readonly failed: number;
  /** Where the failed rows were written; null when none failed. */
  readonly failuresFile: string | null;
}

const REQUIRED = ["account_id", "amount", "idempotency_key"] as const;
/** Most rows one run takes: the whole file is read into memory first. */
export const MAX_ROWS = 1_000_000;

function readRows(file: string, defaultChain: string): Row[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new UsageError(`--from-csv ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  let parsed: ReturnType<typeof parseCsv>;
  try {
    parsed = parseCsv(text.replace(/^\uFEFF/, ""));
  } catch (err) {
    throw new UsageError(`--from-csv ${file}: ${(err as Error).message}`);
  }
  const [header, ...body] = parsed;
  if (header === undefined) throw new UsageError(`--from-csv ${file}: the file is empty (expected a header: ${REQUIRED.join(",")}[,blockchain])`);
  const names = header.fields.map((f) => f.trim().toLowerCase());
  const missing = REQUIRED.filter((c) => !names.includes(c));
  if (missing.length > 0) throw new UsageError(`--from-csv ${file}: the header lacks ${missing.join(", ")} (expected ${REQUIRED.join(",")}[,blockchain])`);
  if (body.length > MAX_ROWS) throw new UsageError(`--from-csv ${file}: ${body.length} rows; at most ${MAX_ROWS} per run`);
  const col = (name: string): number => names.indexOf(name);
  const at = (fields: string[], name: string): string => (col(name) < 0 ? "" : (fields[col(name)] ?? ""));
  return body.map(({ line, fields }) => ({
    line,
    accountId: at(fields, "account_id"),
    amount: at(fields, "amount"),
    blockchain: at(fields, "blockchain") || defaultChain,
    idempotencyKey: at(fields, "idempotency_key"),
  }));
}

/** Progress on stderr: cli-progress on a terminal, a plain line per 10% (and at the end) otherwise. */
function progress(ctx: Context, total: number): { tick(s: { applied: number; replayed: number; failed: number }): void; stop(): void } {
  if (ctx.io.stderrIsTTY && ctx.io.stderr !== undefined) {
    const bar = new cliProgress.SingleBar(
      { stream: ctx.io.stderr, format: "mint [{bar}] {value}/{total} | applied {applied} replayed {replayed} failed {failed}", hideCursor: true },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { applied: 0, replayed: 0, failed: 0 });
    return { tick: (s) => bar.increment(1, s), stop: () => bar.stop() };
  }
  let done = 0;
  let lastDecile = 0;
  return {
    tick(s) {
      done++;
      const decile = Math.floor((done * 10) / total);
      if (decile > lastDecile || done === total) {
        lastDecile = decile;
        ctx.io.err(`mint: ${done}/${total} rows (applied ${s.applied}, replayed ${s.replayed}, failed ${s.failed})\n`);
      }
    },
    stop() {},
  };
}

export async function bulkMint(ctx: Context, opts: BulkMintOptions): Promise<number> {
  const rows = readRows(opts.file, opts.defaultChain);
  const client = ctx.client();
  const counts = { applied: 0, replayed: 0, failed: 0 };
  const failures: { row: Row; error: MintServiceError }[] = [];
  const bar = progress(ctx, rows.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < rows.length; i = next++) {
      const row = rows[i] as Row;
      try {
        const r = await client.mintUsdc({ accountId: row.accountId, amount: row.amount, blockchain: row.blockchain, idempotencyKey: row.idempotencyKey });
        if (r.replayed) counts.replayed++;
        else counts.applied++;
      } catch (err) {
        counts.failed++;
        failures.push({ row, error: toMintServiceError(err) });
      }
      bar.tick(counts);
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.concurrency, Math.max(1, rows.length)) }, worker));
  bar.stop();

  let failuresFile: string | null = null;
  if (failures.length > 0) {
    failures.sort((a, b) => a.row.line - b.row.line);
    const lines = [csvLine(["line", "account_id", "amount", "blockchain", "idempotency_key", "code", "reason", "message"])];
    for (const { row, error } of failures) lines.push(csvLine([String(row.line), row.accountId, row.amount, row.blockchain, row.idempotencyKey, error.code, error.reason, error.message]));
    writeFileSync(opts.failuresFile, lines.join(""));
    failuresFile = opts.failuresFile;
  }
  const summary: BulkMintSummary = { total: rows.length, ...counts, failuresFile };
  ctx.print(summary, () =>
    record([
      ["total", String(summary.total)],
      ["applied", String(summary.applied)],
      ["replayed", String(summary.replayed)],
      ["failed", String(summary.failed)],
      ["failures_file", failuresFile ?? ""],
    ]),
  );
  return failures.length > 0 ? EXIT_BULK_FAILURES : EXIT_OK;
}
