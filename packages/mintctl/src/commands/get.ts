import type { CommandSpec } from "../command.js";
import { mintFields, record } from "../output.js";

export const getCommand: CommandSpec = {
  register(program, run) {
    program
      .command("get")
      .description("show one mint")
      .argument("<mint-id>", "mint id (mint_...)")
      .action(
        run(async (ctx, mintId) => {
          const m = await ctx.client().getMint(String(mintId));
          return ctx.print({ mint: m }, () => record(mintFields(m)));
        }),
      );
  },
};
