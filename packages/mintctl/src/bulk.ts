/**
 * `mintctl mint --from-csv FILE` and `mintctl transfer --from-csv FILE`: the
 * rows go out as BatchMint / BatchTransfer calls of `--batch-size` rows
 * (`--concurrency` calls in flight at once), each row with the idempotency
 * key of its row, so running the same file again replays instead of applying
 * twice; the SDK resends rows whose own error is retryable (a rate limit) with
 * their key. Progress goes to stderr (a bar on a terminal, plain lines
 * otherwise); the summary to stdout; failed rows, with their error, to a CSV
 * that can be fixed and fed back as input.
 */
import { readFileSync, writeFileSync } from "node:fs";
import cliProgress from "cli-progress";
import type { BatchItemResult } from "../../client/src/batch.js";
import type { MintClient } from "../../client/src/client.js";
import type { MintServiceError } from "../../client/src/errors.js";
import { csvLine, parseCsv } from "./csv.js";
import { UsageError, type Context } from "./context.js";
import { EXIT_BULK_FAILURES, EXIT_OK } from "./exit-codes.js";
import { record } from "./output.js";

/** Most rows one run takes: the whole file is read into memory first. */
export const MAX_ROWS = 1_000_000;

export interface BulkOptions {
  readonly file: string;
  readonly failuresFile: string;
  /** Batch calls in flight at once. */
  readonly concurrency: number;
  /** Rows per batch call. */
  readonly batchSize: number;
}

/** One kind of bulk file: its columns, and how its rows are sent. */
export interface BulkKind<Row> {
  /** "mint" or "transfer": the progress lines' word. */
  readonly verb: string;
  /** The columns every file must have, and the optional ones, in the failures file's order. */
  readonly required: readonly string[];
  readonly optional: readonly string[];
  /** A row from its fields (`at(name)`: "" when absent). */
  row(at: (name: string) => string): Row;
  /** The row's columns, in `required` then `optional` order, for the failures file. */
  fields(row: Row): string[];
  /** Sends rows as batch calls of at most `batchSize`; one result per row. */
  send(client: MintClient, rows: readonly Row[], batchSize: number): Promise<BatchItemResult<{ replayed: boolean }>[]>;
}

export interface BulkSummary {
  readonly total: number;
  readonly applied: number;
  readonly replayed: number;
  readonly failed: number;
  /** Where the failed rows were written; null when none failed. */
  readonly failuresFile: string | null;
}

function readRows<Row>(file: string, kind: BulkKind<Row>): { line: number; row: Row }[] {
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
  const expected = `${kind.required.join(",")}${kind.optional.map((c) => `[,${c}]`).join("")}`;
  const [header, ...body] = parsed;
  if (header === undefined) throw new UsageError(`--from-csv ${file}: the file is empty (expected a header: ${expected})`);
  const names = header.fields.map((f) => f.trim().toLowerCase());
  const missing = kind.required.filter((c) => !names.includes(c));
  if (missing.length > 0) throw new UsageError(`--from-csv ${file}: the header lacks ${missing.join(", ")} (expected ${expected})`);
  if (body.length > MAX_ROWS) throw new UsageError(`--from-csv ${file}: ${body.length} rows; at most ${MAX_ROWS} per run`);
  return body.map(({ line, fields }) => ({ line, row: kind.row((name) => (names.indexOf(name) < 0 ? "" : (fields[names.indexOf(name)] ?? ""))) }));
}

type Counts = { applied: number; replayed: number; failed: number };

/** Progress on stderr: cli-progress on a terminal, a plain line per 10% (and at the end) otherwise. */
function progress(ctx: Context, verb: string, total: number): { add(n: number, s: Counts): void; stop(): void } {
  if (ctx.io.stderrIsTTY && ctx.io.stderr !== undefined) {
    const bar = new cliProgress.SingleBar(
      { stream: ctx.io.stderr, format: `${verb} [{bar}] {value}/{total} | applied {applied} replayed {replayed} failed {failed}`, hideCursor: true },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { applied: 0, replayed: 0, failed: 0 });
    return { add: (n, s) => bar.increment(n, s), stop: () => bar.stop() };
  }
  let done = 0;
  let lastDecile = 0;
  return {
    add(n, s) {
      done += n;
      const decile = Math.floor((done * 10) / total);
      if (decile > lastDecile || done === total) {
        lastDecile = decile;
        ctx.io.err(`${verb}: ${done}/${total} rows (applied ${s.applied}, replayed ${s.replayed}, failed ${s.failed})\n`);
      }
    },
    stop() {},
  };
}

export async function runBulk<Row>(ctx: Context, kind: BulkKind<Row>, opts: BulkOptions): Promise<number> {
  const rows = readRows(opts.file, kind);
  const client = ctx.client();
  const counts: Counts = { applied: 0, replayed: 0, failed: 0 };
  const failures: { line: number; row: Row; error: MintServiceError }[] = [];
  const bar = progress(ctx, kind.verb, rows.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let at = next; at < rows.length; at = next) {
      next = at + opts.batchSize;
      const slice = rows.slice(at, next);
      const results = await kind.send(client, slice.map((r) => r.row), opts.batchSize);
      results.forEach((r, i) => {
        if (r.ok) counts[r.value.replayed ? "replayed" : "applied"]++;
        else {
          counts.failed++;
          failures.push({ ...(slice[i] as { line: number; row: Row }), error: r.error });
        }
      });
      bar.add(slice.length, counts);
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.concurrency, Math.max(1, Math.ceil(rows.length / opts.batchSize))) }, worker));
  bar.stop();

  let failuresFile: string | null = null;
  if (failures.length > 0) {
    failures.sort((a, b) => a.line - b.line);
    const lines = [csvLine(["line", ...kind.required.filter((c) => c !== "idempotency_key"), ...kind.optional, "idempotency_key", "code", "reason", "message"])];
    for (const { line, row, error } of failures) lines.push(csvLine([String(line), ...kind.fields(row), error.code, error.reason, error.message]));
    writeFileSync(opts.failuresFile, lines.join(""));
    failuresFile = opts.failuresFile;
  }
  const summary: BulkSummary = { total: rows.length, ...counts, failuresFile };
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

/** The bulk flags both commands share, checked: `--concurrency` 1-64, `--batch-size` 1-10000. */
export function bulkOptions(file: string, o: { readonly failures?: string; readonly concurrency: string; readonly batchSize: string }): BulkOptions {
  const concurrency = Number(o.concurrency);
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) throw new UsageError(`--concurrency must be an integer from 1 to 64, got ${JSON.stringify(o.concurrency)}`);
  const batchSize = Number(o.batchSize);
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 10_000) throw new UsageError(`--batch-size must be an integer from 1 to 10000, got ${JSON.stringify(o.batchSize)}`);
  return { file, failuresFile: o.failures ?? `${file}.failures.csv`, concurrency, batchSize };
}

interface MintRow {
  readonly accountId: string;
  readonly amount: string;
  readonly blockchain: string;
  readonly idempotencyKey: string;
}

/** Mint rows: account_id,amount,idempotency_key[,blockchain] (empty blockchain: `defaultChain`). */
export function mintRows(defaultChain: string): BulkKind<MintRow> {
  return {
    verb: "mint",
    required: ["account_id", "amount", "idempotency_key"],
    optional: ["blockchain"],
    row: (at) => ({ accountId: at("account_id"), amount: at("amount"), blockchain: at("blockchain") || defaultChain, idempotencyKey: at("idempotency_key") }),
    fields: (r) => [r.accountId, r.amount, r.blockchain, r.idempotencyKey],
    send: (client, rows, batchSize) => client.batchMint(rows, { batchSize }),
  };
}

interface TransferRow {
  readonly fromAccountId: string;
  readonly toAccountId: string;
  readonly amount: string;
  readonly idempotencyKey: string;
}

/** Transfer rows: from_account_id,to_account_id,amount,idempotency_key. */
export const transferRows: BulkKind<TransferRow> = {
  verb: "transfer",
  required: ["from_account_id", "to_account_id", "amount", "idempotency_key"],
  optional: [],
  row: (at) => ({ fromAccountId: at("from_account_id"), toAccountId: at("to_account_id"), amount: at("amount"), idempotencyKey: at("idempotency_key") }),
  fields: (r) => [r.fromAccountId, r.toAccountId, r.amount, r.idempotencyKey],
  send: (client, rows, batchSize) => client.batchTransfer(rows, { batchSize }),
};
