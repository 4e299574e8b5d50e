import type { CommandSpec } from "../command.js";
import { bulkOptions, runBulk, transferRows } from "../bulk.js";
import { UsageError } from "../context.js";
import { record, transferFields } from "../output.js";

interface TransferOpts {
  readonly idempotencyKey?: string;
  readonly fromCsv?: string;
  readonly failures?: string;
  readonly concurrency: string;
  readonly batchSize: string;
}

export const transferCommand: CommandSpec = {
  register(program, run) {
    program
      .command("transfer")
      .description("move USDC between two accounts, or many transfers from a CSV file (--from-csv)")
      .argument("[from]", "debited account id")
      .argument("[to]", "credited account id")
      .argument("[amount]", 'decimal USDC, e.g. "25" or "0.5"')
      .option("--idempotency-key <key>", "idempotency key (default: a new UUIDv7; pass the same key to repeat safely)")
      .option("--from-csv <file>", "bulk transfer: CSV with header from_account_id,to_account_id,amount,idempotency_key")
      .option("--failures <file>", "bulk transfer: where to write the failed rows (default <file>.failures.csv)")
      .option("--concurrency <n>", "bulk transfer: BatchTransfer calls in flight at once (1-64)", "8")
      .option("--batch-size <n>", "bulk transfer: rows per BatchTransfer call (1-10000; at most the service's MINT_BATCH_MAX_ITEMS)", "1000")
      .action(
        run(async (ctx, from, to, amount, opts) => {
          const o = opts as TransferOpts;
          if (o.fromCsv !== undefined) {
            if (from !== undefined || to !== undefined || amount !== undefined) throw new UsageError("transfer --from-csv takes no from, to or amount arguments");
            if (o.idempotencyKey !== undefined) throw new UsageError("transfer --from-csv takes the keys from the file's idempotency_key column, not --idempotency-key");
            return runBulk(ctx, transferRows, bulkOptions(o.fromCsv, o));
          }
          if (from === undefined || to === undefined || amount === undefined) throw new UsageError("transfer needs <from>, <to> and <amount> (or --from-csv FILE)");
          const r = await ctx.client().transfer({ fromAccountId: String(from), toAccountId: String(to), amount: String(amount), idempotencyKey: o.idempotencyKey });
          return ctx.print(r, () => record([...transferFields(r.transfer), ["replayed", String(r.replayed)]]));
        }),
      );
  },
};
