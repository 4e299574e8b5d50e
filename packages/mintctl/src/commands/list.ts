import type { CommandSpec } from "../command.js";
import { UsageError } from "../context.js";
import { MINT_COLUMNS, mintRow, table } from "../output.js";
import type { Mint } from "../../../client/src/types.js";

/** Default cap on the mints one `list` prints: all of them on any ledger a person reads, yet bounded. */
export const DEFAULT_LIST_MAX = 100_000;

function positiveInt(flag: string, text: string, max: number): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new UsageError(`${flag} must be an integer from 1 to ${max}, got ${JSON.stringify(text)}`);
  return n;
}

export const listCommand: CommandSpec = {
  register(program, run) {
    program
      .command("list")
      .description("list mints, oldest first, paging through all of them (up to --max)")
      .option("--account <account>", "only this account's mints")
      .option("--page-size <n>", "mints per page request (1-1000)", "100")
      .option("--max <n>", "stop after this many mints", String(DEFAULT_LIST_MAX))
      .action(
        run(async (ctx, opts) => {
          const o = opts as { account?: string; pageSize: string; max: string };
          const pageSize = positiveInt("--page-size", o.pageSize, 1000);
          const max = positiveInt("--max", o.max, 100_000_000);
          const mints: Mint[] = [];
          let truncated = false;
          for await (const m of ctx.client().listAllMints({ accountId: o.account ?? "", pageSize })) {
            if (mints.length === max) {
              truncated = true;
              break;
            }
            mints.push(m);
          }
          const footer = `${mints.length} mint${mints.length === 1 ? "" : "s"}${truncated ? ` (stopped at --max ${max}; more remain)` : ""}\n`;
          return ctx.print({ mints, count: mints.length, truncated }, () => table(MINT_COLUMNS, mints.map(mintRow)) + footer);
        }),
      );
  },
};
