import type { CommandSpec } from "../command.js";
import { mintFields, record } from "../output.js";

export const reconcileCommand: CommandSpec = {
  register(program, run) {
    program
      .command("reconcile")
      .description("reverse a failed mint (debits the account; repeating it is refused with MINT_ALREADY_REVERSED)")
      .argument("<mint-id>", "mint id (mint_...)")
      .option("--reason <text>", "why it is reversed (kept with the mint)", "")
      .action(
        run(async (ctx, mintId, opts) => {
          const m = await ctx.client().reconcileMint({ mintId: String(mintId), reason: (opts as { reason: string }).reason });
          return ctx.print({ mint: m }, () => record(mintFields(m)));
        }),
      );
  },
};
