import type { CommandSpec } from "../command.js";
import { record } from "../output.js";

/** `mintctl allowance <principal> [amount]`: read, or set, what a minter may still mint (issue 11). */
export const allowanceCommand: CommandSpec = {
  register(program, run) {
    program
      .command("allowance")
      .description("show a minter's remaining allowance, or set it when an amount is given (\"0\" revokes)")
      .argument("<principal>", "the minter's principal name")
      .argument("[amount]", "new remaining allowance in USDC (not added to the old one)")
      .action(
        run(async (ctx, principal, amount) => {
          const client = ctx.client();
          const a =
            amount === undefined
              ? await client.getMinterAllowance(String(principal))
              : await client.setMinterAllowance({ principal: String(principal), amount: String(amount) });
          return ctx.print(a, () => record([["principal", a.principal], ["allowance", a.allowance]]));
        }),
      );
  },
};
