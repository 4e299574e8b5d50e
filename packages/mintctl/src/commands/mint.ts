import { BLOCKCHAINS } from "../../../client/src/types.js";
import { bulkOptions, mintRows, runBulk } from "../bulk.js";
import type { CommandSpec } from "../command.js";
import { UsageError } from "../context.js";
import { mintFields, record } from "../output.js";

interface MintOpts {
  readonly chain: string;
  readonly idempotencyKey?: string;
  readonly fromCsv?: string;
  readonly failures?: string;
  readonly concurrency: string;
  readonly batchSize: string;
}

export const mintCommand: CommandSpec = {
  register(program, run) {
    program
      .command("mint")
      .description("mint USDC into an account, or many from a CSV file (--from-csv)")
      .argument("[account]", "account id")
      .argument("[amount]", 'decimal USDC, e.g. "100.5"')
      .option("--chain <blockchain>", `blockchain: ${BLOCKCHAINS.join(", ")} (also the default for CSV rows without one)`, "ETHEREUM")
      .option("--idempotency-key <key>", "idempotency key (default: a new UUIDv7; pass the same key to repeat safely)")
      .option("--from-csv <file>", "bulk mint: CSV with header account_id,amount,idempotency_key[,blockchain]")
      .option("--failures <file>", "bulk mint: where to write the failed rows (default <file>.failures.csv)")
      .option("--concurrency <n>", "bulk mint: BatchMint calls in flight at once (1-64)", "8")
      .option("--batch-size <n>", "bulk mint: rows per BatchMint call (1-10000; at most the service's MINT_BATCH_MAX_ITEMS)", "1000")
      .action(
        run(async (ctx, account, amount, opts) => {
          const o = opts as MintOpts;
          if (o.fromCsv !== undefined) {
            if (account !== undefined || amount !== undefined) throw new UsageError("mint --from-csv takes no account or amount arguments");
            if (o.idempotencyKey !== undefined) throw new UsageError("mint --from-csv takes the keys from the file's idempotency_key column, not --idempotency-key");
            return runBulk(ctx, mintRows(o.chain), bulkOptions(o.fromCsv, o));
          }
          if (account === undefined || amount === undefined) throw new UsageError("mint needs <account> and <amount> (or --from-csv FILE)");
          const r = await ctx.client().mintUsdc({ accountId: String(account), amount: String(amount), blockchain: o.chain, idempotencyKey: o.idempotencyKey });
          return ctx.print(r, () => record([...mintFields(r.mint), ["replayed", String(r.replayed)]]));
        }),
      );
  },
};
