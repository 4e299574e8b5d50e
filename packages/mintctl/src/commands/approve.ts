import type { CommandSpec } from "../command.js";
import { mintFields, record } from "../output.js";

/** `mintctl approve` and `mintctl reject`: M-of-N approval of large mints (issue 11). */
export const approveCommand: CommandSpec = {
  register(program, run) {
    program
      .command("approve")
      .description("approve a pending mint as this caller (the last required approval credits it; repeating counts once)")
      .argument("<mint-id>", "mint id (mint_...)")
      .action(
        run(async (ctx, mintId) => {
          const m = await ctx.client().approveMint(String(mintId));
          return ctx.print({ mint: m }, () => record(mintFields(m)));
        }),
      );
  },
};

export const rejectCommand: CommandSpec = {
  register(program, run) {
    program
      .command("reject")
      .description("reject a pending mint (nothing is credited; its idempotency key is freed)")
      .argument("<mint-id>", "mint id (mint_...)")
      .option("--reason <text>", "why it is rejected (kept with the mint)", "")
      .action(
        run(async (ctx, mintId, opts) => {
          const m = await ctx.client().rejectMint({ mintId: String(mintId), reason: (opts as { reason: string }).reason });
          return ctx.print({ mint: m }, () => record(mintFields(m)));
        }),
      );
  },
};
