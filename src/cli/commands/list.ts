import type { CommandSpec } from "../command.js";
import { UsageError } from "../context.js";
import { MINT_COLUMNS, mintRow, table } from "../output.js";
import type { Mint } from "../../client/types.js";

export const listCommand: CommandSpec = {
  register(program, run) {
    program
      .command("list")
      .description("list mints, newest first, paging through all of them")
      .option("--account <account>", "only this account's mints")
      .option("--page-size <n>", "mints per page request (1-1000)", "100")
      .action(
        run(async (ctx, opts) => {
          const { account, pageSize } = opts as { account?: string; pageSize: string };
          const size = Number(pageSize);
          if (!Number.isInteger(size) || size < 1 || size > 1000) throw new UsageError(`--page-size must be an integer from 1 to 1000, got ${JSON.stringify(pageSize)}`);
          const mints: Mint[] = [];
          for await (const m of ctx.client().listAllMints({ accountId: account ?? "", pageSize: size })) mints.push(m);
          return ctx.print({ mints, count: mints.length }, () => table(MINT_COLUMNS, mints.map(mintRow)) + `${mints.length} mint${mints.length === 1 ? "" : "s"}\n`);
        }),
      );
  },
};
