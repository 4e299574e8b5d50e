import type { CommandSpec } from "../command.js";
import { record } from "../output.js";

/** `mintctl allowance <principal> [amount] [--expected <amount>]`: read, or set (optionally compare-and-set), what a minter may still mint. */
export const allowanceCommand: CommandSpec = {
  register(program, run) {
    program
      .command("allowance")
      .description("show a minter's remaining allowance, or set it when an amount is given (\"0\" revokes)")
      .argument("<principal>", "the minter's principal name")
      .argument("[amount]", "new remaining allowance in USDC (not added to the old one)")
      .option("--expected <amount>", "set only if what is left is exactly this (USDC); otherwise ALLOWANCE_CHANGED with the value now")
      .action(
        run(async (ctx, principal, amount, opts) => {
          const client = ctx.client();
          const expected = (opts as { expected?: string }).expected;
          const set = { principal: String(principal), amount: String(amount), ...(expected === undefined ? {} : { expectedAmount: expected }) };
          const a = amount === undefined ? await client.getMinterAllowance(String(principal)) : await client.setMinterAllowance(set);
          return ctx.print(a, () => record([["principal", a.principal], ["allowance", a.allowance]]));
        }),
      );
  },
};
