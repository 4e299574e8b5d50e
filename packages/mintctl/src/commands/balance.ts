import type { CommandSpec } from "../command.js";
import { record } from "../output.js";

export const balanceCommand: CommandSpec = {
  register(program, run) {
    program
      .command("balance")
      .description("show an account's balance")
      .argument("<account>", "account id")
      .action(
        run(async (ctx, account) => {
          const b = await ctx.client().getBalance(String(account));
          return ctx.print(b, () => record([
              ["account_id", b.accountId],
              ["balance", b.balance],
              ["pending_balance", b.pendingBalance],
              ["frozen", String(b.frozen ?? false)],
            ]));
        }),
      );
  },
};
